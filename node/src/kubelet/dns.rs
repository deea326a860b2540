//! A pod's `/etc/resolv.conf` as the kubelet writes it (Kubernetes' `pkg/kubelet/network/dns`):
//!
//! - `dnsPolicy: ClusterFirst` (the default): the cluster DNS (`--cluster-dns`), searching
//!   `<ns>.svc.<domain> svc.<domain> <domain>` and then the host's search domains, with
//!   `ndots:5`; a pod on the host's network, or a node without cluster DNS, gets the host's
//!   file instead (`Default`);
//! - `ClusterFirstWithHostNet`: the cluster DNS on the host's network too;
//! - `Default`: the host's resolv.conf (`--resolv-conf`);
//! - `None`: only what the pod's `dnsConfig` says.
//!
//! `dnsConfig` then adds its nameservers and search domains (duplicates dropped) and sets its
//! options, which replace options of the same name. As the kubelet does, at most 3 nameservers
//! and 32 search domains are kept.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use super::paths;

/// glibc reads at most 3 nameservers (MAXNS).
const MAX_NAMESERVERS: usize = 3;
/// The kubelet's limit of search domains (glibc's since 2.26).
const MAX_SEARCHES: usize = 32;

/// The resolver configuration of the node: the cluster DNS and the host's own.
#[derive(Clone, Debug, Default)]
pub struct ClusterDns {
    /// The cluster DNS servers (`--cluster-dns`); empty: pods use the host's resolvers.
    pub servers: Vec<IpAddr>,
    /// The cluster domain (`--cluster-domain`, `cluster.local`).
    pub domain: String,
    /// The host's resolv.conf (`--resolv-conf`).
    pub host: ResolvConf,
}

/// The parts of a resolv.conf the kubelet reads and writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Reads the `nameserver`, `search` (or `domain`) and `options` lines of a resolv.conf.
    pub fn parse(text: &str) -> Self {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => conf.nameservers.extend(words.next().map(String::from)),
                Some("search") | Some("domain") => {
                    conf.searches = words.map(String::from).collect();
                }
                Some("options") => conf.options.extend(words.map(String::from)),
                _ => {}
            }
        }
        conf
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if !self.searches.is_empty() {
            text.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for server in &self.nameservers {
            text.push_str(&format!("nameserver {server}\n"));
        }
        if !self.options.is_empty() {
            text.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        text
    }
}

/// The resolv.conf `pod` gets; `None`: the container runtime's own (the host's, for a pod on
/// the host's network that asks for nothing else).
pub fn pod_resolv_conf(pod: &Pod, dns: &ClusterDns) -> Option<ResolvConf> {
    let spec = pod.spec.as_ref()?;
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster = !dns.servers.is_empty()
        && match policy {
            "ClusterFirstWithHostNet" => true,
            "ClusterFirst" => !host_network,
            _ => false,
        };
    let mut conf = if cluster {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let domain = &dns.domain;
        let mut searches = vec![
            format!("{namespace}.svc.{domain}"),
            format!("svc.{domain}"),
            domain.clone(),
        ];
        searches.extend(dns.host.searches.iter().cloned());
        ResolvConf {
            nameservers: dns.servers.iter().map(IpAddr::to_string).collect(),
            searches,
            options: vec![String::from("ndots:5")],
        }
    } else if policy == "None" {
        ResolvConf::default()
    } else if host_network && spec.dns_config.is_none() {
        return None;
    } else {
        dns.host.clone()
    };
    if let Some(config) = &spec.dns_config {
        conf.nameservers
            .extend(config.nameservers.iter().flatten().cloned());
        conf.searches
            .extend(config.searches.iter().flatten().cloned());
        for option in config.options.iter().flatten() {
            let Some(name) = option.name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            conf.options.retain(|o| o.split(':').next() != Some(name));
            conf.options.push(match &option.value {
                Some(value) => format!("{name}:{value}"),
                None => name.to_owned(),
            });
        }
    }
    dedup(&mut conf.nameservers);
    dedup(&mut conf.searches);
    conf.nameservers.truncate(MAX_NAMESERVERS);
    conf.searches.truncate(MAX_SEARCHES);
    Some(conf)
}

/// Writes the resolv.conf `pod` gets into its directory under `root` and returns its path
/// (`None`: the runtime's own); an error is the message of the pod's
/// `CreateContainerConfigError`.
pub fn write_pod_resolv_conf(
    pod: &Pod,
    dns: &ClusterDns,
    root: &Path,
) -> Result<Option<PathBuf>, String> {
    let Some(conf) = pod_resolv_conf(pod, dns) else {
        return Ok(None);
    };
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let path = paths::pod_resolv_conf(root, uid);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(paths::pod_dir(root, uid))?;
        std::fs::write(&path, conf.render())
    };
    write().map_err(|err| format!("writing {}: {err}", path.display()))?;
    Ok(Some(path))
}

/// Drops later duplicates, keeping the order.
fn dedup(list: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    list.retain(|item| seen.insert(item.clone()));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node() -> ClusterDns {
        ClusterDns {
            servers: vec!["10.96.0.10".parse().expect("ip")],
            domain: "cluster.local".into(),
            host: ResolvConf::parse(
                "# host\nnameserver 192.0.2.53\nsearch corp.example\noptions timeout:2 # x\n",
            ),
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": spec}),
        )
        .expect("pod")
    }

    #[test]
    fn cluster_first_searches_the_namespace_first_with_ndots_5() {
        let conf = pod_resolv_conf(&pod(json!({"containers": []})), &node()).expect("conf");
        assert_eq!(
            conf.render(),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n\
             nameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn the_host_network_and_default_get_the_hosts_resolvers() {
        let host_net = pod(json!({"containers": [], "hostNetwork": true}));
        assert_eq!(pod_resolv_conf(&host_net, &node()), None);
        let with_host_net = pod(
            json!({"containers": [], "hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
        );
        assert_eq!(
            pod_resolv_conf(&with_host_net, &node())
                .expect("conf")
                .nameservers,
            ["10.96.0.10"]
        );
        let default = pod(json!({"containers": [], "dnsPolicy": "Default"}));
        assert_eq!(
            pod_resolv_conf(&default, &node()).expect("conf"),
            node().host
        );
        // No cluster DNS on this node: ClusterFirst falls back to the host's.
        let no_cluster_dns = ClusterDns {
            servers: Vec::new(),
            ..node()
        };
        assert_eq!(
            pod_resolv_conf(&pod(json!({"containers": []})), &no_cluster_dns)
                .expect("conf")
                .nameservers,
            ["192.0.2.53"]
        );
    }

    #[test]
    fn dns_config_adds_servers_and_searches_and_overrides_options() {
        let none = pod(json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.2.3.4", "1.2.3.4", "5.6.7.8", "9.9.9.9", "8.8.8.8"],
            "searches": ["a.example", "b.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        let conf = pod_resolv_conf(&none, &node()).expect("conf");
        assert_eq!(conf.nameservers, ["1.2.3.4", "5.6.7.8", "9.9.9.9"]);
        assert_eq!(conf.searches, ["a.example", "b.example"]);
        assert_eq!(conf.options, ["ndots:2", "edns0"]);

        let merged = pod(json!({"containers": [], "dnsConfig": {
            "searches": ["svc.cluster.local", "extra.example"],
            "options": [{"name": "ndots", "value": "1"}]}}));
        let conf = pod_resolv_conf(&merged, &node()).expect("conf");
        assert_eq!(
            conf.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
                "extra.example"
            ]
        );
        assert_eq!(conf.options, ["ndots:1"]);
    }
}
