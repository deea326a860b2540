//! `metrics.k8s.io/v1beta1`: the resource metrics `kubectl top` reads, served by the API
//! server itself from the node agents' Summary API (`/stats/summary`), as metrics-server
//! serves them from the kubelets' (so no extra component is needed).
//!
//! `NodeMetrics` (`nodes`, `nodes/<name>`) and `PodMetrics` (`pods`, `namespaces/<ns>/pods`,
//! `namespaces/<ns>/pods/<name>`): each request asks the agents for a fresh summary, in
//! parallel; an agent that does not answer leaves its node and pods out of a list (and a get of
//! them is 404), as metrics-server answers for nodes it could not scrape. CPU is in
//! nanocores, memory the working set in KiB, as metrics-server gives them. `labelSelector`
//! filters by the Node's or Pod's labels.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};

use skiff_api::selectors::LabelSelector;

use super::ApiServer;
use super::objects;
use super::pod_logs::kubelet_address;
use super::resources;
use super::status::ApiError;

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";

/// How long one agent may take to answer (its summary samples CPU over a second).
const SUMMARY_TIMEOUT: Duration = Duration::from_secs(5);
/// The window the figures cover, as reported (Docker's CPU sample).
const WINDOW: &str = "1s";

/// What a metrics request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Query<'a> {
    Nodes {
        name: Option<&'a str>,
    },
    Pods {
        namespace: Option<&'a str>,
        name: Option<&'a str>,
    },
}

impl<'a> Query<'a> {
    /// The request for the path segments after `/apis/metrics.k8s.io/v1beta1`.
    pub fn parse(rest: &[&'a str]) -> Option<Query<'a>> {
        Some(match rest {
            ["nodes"] => Query::Nodes { name: None },
            ["nodes", name] => Query::Nodes { name: Some(name) },
            ["pods"] => Query::Pods {
                namespace: None,
                name: None,
            },
            ["namespaces", ns, "pods"] => Query::Pods {
                namespace: Some(ns),
                name: None,
            },
            ["namespaces", ns, "pods", name] => Query::Pods {
                namespace: Some(ns),
                name: Some(name),
            },
            _ => return None,
        })
    }
}

impl ApiServer {
    /// A `NodeMetrics(List)` or `PodMetrics(List)` for `query`.
    pub(super) async fn resource_metrics(
        self: &Arc<Self>,
        query: Query<'_>,
        selector: &LabelSelector,
    ) -> Result<Value, ApiError> {
        let selected = |object: &Value| selector.matches(&objects::labels(object));
        let nodes = self.list_all("nodes", None).await?;
        let summaries = join_all(nodes.iter().map(|node| self.summary(node))).await;
        let scraped = nodes
            .iter()
            .zip(summaries)
            .filter_map(|(n, s)| Some((n, s?)));
        match query {
            Query::Nodes { name } => {
                let items: Vec<Value> = scraped
                    .filter(|(node, _)| {
                        name.is_none_or(|n| objects::meta_str(node, "name") == Some(n))
                    })
                    .filter(|(node, _)| selected(node))
                    .filter_map(|(node, summary)| node_metrics(node, &summary))
                    .collect();
                one_or_list(name, "NodeMetrics", "nodes", items)
            }
            Query::Pods { namespace, name } => {
                let pods = self.list_all("pods", namespace).await?;
                let wanted = |ns: &str, pod: &str| {
                    pods.iter().find(|p| {
                        objects::meta_str(p, "namespace") == Some(ns)
                            && objects::meta_str(p, "name") == Some(pod)
                            && name.is_none_or(|n| n == pod)
                            && selected(p)
                    })
                };
                let mut items = Vec::new();
                for (_, summary) in scraped {
                    for stats in summary["pods"].as_array().into_iter().flatten() {
                        let reference = &stats["podRef"];
                        let (Some(ns), Some(pod_name)) =
                            (reference["namespace"].as_str(), reference["name"].as_str())
                        else {
                            continue;
                        };
                        if let Some(pod) = wanted(ns, pod_name) {
                            items.push(pod_metrics(pod, stats));
                        }
                    }
                }
                one_or_list(name, "PodMetrics", "pods", items)
            }
        }
    }

    /// Every object of core resource `plural` (in `namespace`, if given).
    async fn list_all(
        &self,
        plural: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let resource = resources::find("", "v1", plural)
            .ok_or_else(|| ApiError::Internal(format!("{plural} are not served")))?;
        let listed = self
            .store
            .list(&objects::prefix(resource, namespace))
            .await?;
        listed.items.iter().map(objects::decode).collect()
    }

    /// The agent's `/stats/summary` of `node`; `None` when it cannot be had in time.
    async fn summary(&self, node: &Value) -> Option<Value> {
        let name = objects::meta_str(node, "name")?;
        let addr = kubelet_address(node, name).ok()?;
        let fetch = async {
            let response = self.kubelet.get(addr, "/stats/summary").await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            let body = response.into_body().collect().await.ok()?.to_bytes();
            serde_json::from_slice::<Value>(&body).ok()
        };
        tokio::time::timeout(SUMMARY_TIMEOUT, fetch)
            .await
            .ok()
            .flatten()
    }
}

/// The item named `name`, or the list of `items`.
fn one_or_list(
    name: Option<&str>,
    kind: &str,
    plural: &str,
    mut items: Vec<Value>,
) -> Result<Value, ApiError> {
    match name {
        Some(name) => match items.pop() {
            Some(item) => Ok(item),
            None => Err(ApiError::NotFound {
                kind: format!("{plural}.{GROUP}"),
                name: name.to_owned(),
            }),
        },
        None => Ok(json!({
            "kind": format!("{kind}List"),
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "metadata": {},
            "items": items,
        })),
    }
}

/// A `NodeMetrics` from the Node and its agent's summary.
fn node_metrics(node: &Value, summary: &Value) -> Option<Value> {
    let stats = &summary["node"];
    Some(json!({
        "kind": "NodeMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": metadata(node),
        "timestamp": stats["cpu"]["time"].as_str().or(stats["memory"]["time"].as_str())?,
        "window": WINDOW,
        "usage": usage(stats),
    }))
}

/// A `PodMetrics` from the Pod and its figures in a summary.
fn pod_metrics(pod: &Value, stats: &Value) -> Value {
    let containers: Vec<Value> = stats["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|container| json!({"name": container["name"], "usage": usage(container)}))
        .collect();
    json!({
        "kind": "PodMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": metadata(pod),
        "timestamp": stats["cpu"]["time"].as_str().or(stats["memory"]["time"].as_str()),
        "window": WINDOW,
        "containers": containers,
    })
}

/// Name, namespace, labels and the time of this answer, as metrics-server gives them.
fn metadata(object: &Value) -> Value {
    let mut metadata = Map::new();
    for field in ["name", "namespace", "labels"] {
        if let Some(value) = object["metadata"].get(field) {
            metadata.insert(field.to_owned(), value.clone());
        }
    }
    metadata.insert(
        String::from("creationTimestamp"),
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    Value::Object(metadata)
}

/// `{cpu, memory}` quantities from a summary's `cpu.usageNanoCores` and
/// `memory.workingSetBytes` (0 when not known).
fn usage(stats: &Value) -> Value {
    let nano_cores = stats["cpu"]["usageNanoCores"].as_u64().unwrap_or(0);
    let working_set = stats["memory"]["workingSetBytes"].as_u64().unwrap_or(0);
    json!({"cpu": format!("{nano_cores}n"), "memory": format!("{}Ki", working_set / 1024)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_nodes_and_pods_and_nothing_else() {
        assert_eq!(Query::parse(&["nodes"]), Some(Query::Nodes { name: None }));
        assert_eq!(
            Query::parse(&["namespaces", "default", "pods", "web"]),
            Some(Query::Pods {
                namespace: Some("default"),
                name: Some("web")
            })
        );
        assert_eq!(Query::parse(&["namespaces", "default"]), None);
        assert_eq!(Query::parse(&["services"]), None);
    }

    #[test]
    fn usage_is_nanocores_and_kibibytes_of_working_set() {
        let stats = json!({"cpu": {"usageNanoCores": 12_500_000u64}, "memory": {"workingSetBytes": 10_240u64}});
        assert_eq!(usage(&stats), json!({"cpu": "12500000n", "memory": "10Ki"}));
        assert_eq!(usage(&json!({})), json!({"cpu": "0n", "memory": "0Ki"}));
    }

    #[test]
    fn a_missing_item_is_not_found_and_a_list_has_its_kind() {
        assert!(matches!(
            one_or_list(Some("x"), "NodeMetrics", "nodes", Vec::new()),
            Err(ApiError::NotFound { .. })
        ));
        let list = one_or_list(None, "PodMetrics", "pods", vec![json!({})]).unwrap();
        assert_eq!(list["kind"], "PodMetricsList");
        assert_eq!(list["apiVersion"], "metrics.k8s.io/v1beta1");
    }
}
