//! Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`
//! — what kubectl reads to map kinds and short names to paths.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR,
};
use k8s_openapi::apimachinery::pkg::version::Info;

use super::authorization::reviews;
use super::metrics_api;
use super::resources::{self, RESOURCES, Resource};

/// The Kubernetes version skiff's API corresponds to (the types of k8s-openapi's `v1_32`).
pub const KUBERNETES_MINOR: &str = "32";

/// `/version`.
pub fn version() -> Info {
    Info {
        major: "1".into(),
        minor: KUBERNETES_MINOR.into(),
        git_version: format!(
            "v1.{KUBERNETES_MINOR}.0-skiff.{}",
            env!("CARGO_PKG_VERSION")
        ),
        git_commit: "skiff".into(),
        git_tree_state: "clean".into(),
        build_date: "1970-01-01T00:00:00Z".into(),
        go_version: "n/a (rust)".into(),
        compiler: "rustc".into(),
        platform: format!(
            "{}/{}",
            std::env::consts::OS,
            if cfg!(target_arch = "x86_64") {
                "amd64"
            } else {
                std::env::consts::ARCH
            }
        ),
    }
}

/// `/api`.
pub fn core_versions(server_address: &str) -> APIVersions {
    APIVersions {
        versions: vec!["v1".into()],
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".into(),
            server_address: server_address.into(),
        }],
    }
}

fn group(name: &str, version: &str) -> APIGroup {
    let gv = GroupVersionForDiscovery {
        group_version: format!("{name}/{version}"),
        version: version.into(),
    };
    APIGroup {
        name: name.into(),
        versions: vec![gv.clone()],
        preferred_version: Some(gv),
        server_address_by_client_cidrs: None,
    }
}

/// The groups and versions served: the stored resources' and the resource metrics'.
fn served_groups() -> Vec<(&'static str, &'static str)> {
    let mut groups = resources::groups();
    groups.extend(reviews::groups());
    groups.push((metrics_api::GROUP, metrics_api::VERSION));
    groups
}

/// `/apis`.
pub fn groups() -> APIGroupList {
    APIGroupList {
        groups: served_groups()
            .into_iter()
            .map(|(g, v)| group(g, v))
            .collect(),
    }
}

/// `/apis/<group>`, if served.
pub fn group_info(name: &str) -> Option<APIGroup> {
    served_groups()
        .into_iter()
        .find(|(g, _)| *g == name)
        .map(|(g, v)| group(g, v))
}

/// The verbs of every stored resource.
pub const OBJECT_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn subresource(r: &Resource, sub: &str) -> APIResource {
    let (kind, verbs, group, version): (&str, &[&str], Option<&str>, Option<&str>) = match sub {
        "binding" => ("Binding", &["create"], None, None),
        "eviction" => ("Eviction", &["create"], Some("policy"), Some("v1")),
        "scale" => (
            "Scale",
            &["get", "patch", "update"],
            Some("autoscaling"),
            Some("v1"),
        ),
        "log" => ("Pod", &["get"], None, None),
        "token" => (
            "TokenRequest",
            &["create"],
            Some("authentication.k8s.io"),
            Some("v1"),
        ),
        "exec" => ("PodExecOptions", &["create", "get"], None, None),
        "attach" => ("PodAttachOptions", &["create", "get"], None, None),
        "portforward" => ("PodPortForwardOptions", &["create", "get"], None, None),
        "proxy" => (
            "NodeProxyOptions",
            &["create", "delete", "get", "patch", "update"],
            None,
            None,
        ),
        _ => (r.kind, &["get", "patch", "update"], None, None),
    };
    APIResource {
        name: format!("{}/{sub}", r.plural),
        singular_name: String::new(),
        namespaced: r.namespaced,
        kind: kind.into(),
        verbs: strings(verbs),
        group: group.map(Into::into),
        version: version.map(Into::into),
        ..Default::default()
    }
}

/// `/apis/metrics.k8s.io/v1beta1`: nodes and pods, read-only.
fn metrics_resources() -> APIResourceList {
    let resource = |name: &str, singular: &str, kind: &str, namespaced| APIResource {
        name: name.into(),
        singular_name: singular.into(),
        namespaced,
        kind: kind.into(),
        verbs: strings(&["get", "list"]),
        ..Default::default()
    };
    APIResourceList {
        group_version: format!("{}/{}", metrics_api::GROUP, metrics_api::VERSION),
        resources: vec![
            resource("nodes", "", "NodeMetrics", false),
            resource("pods", "", "PodMetrics", true),
        ],
    }
}

/// `/api/v1` or `/apis/<group>/<version>`, if served.
pub fn resource_list(group: &str, version: &str) -> Option<APIResourceList> {
    if (group, version) == (metrics_api::GROUP, metrics_api::VERSION) {
        return Some(metrics_resources());
    }
    if let Some(list) = reviews::resource_list(group, version) {
        return Some(list);
    }
    if !resources::serves_group_version(group, version) {
        return None;
    }
    let mut list = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        list.push(APIResource {
            name: r.plural.into(),
            singular_name: r.singular.into(),
            namespaced: r.namespaced,
            kind: r.kind.into(),
            verbs: strings(OBJECT_VERBS),
            short_names: (!r.short_names.is_empty()).then(|| strings(r.short_names)),
            categories: (!r.categories.is_empty()).then(|| strings(r.categories)),
            ..Default::default()
        });
        list.extend(r.subresources.iter().map(|sub| subresource(r, sub)));
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(APIResourceList {
        group_version,
        resources: list,
    })
}
