//! The endpointslice controller: keeps each Service's EndpointSlices (discovery.k8s.io/v1)
//! beside its Endpoints, as kube-controller-manager's `endpointslice` controller does.
//!
//! - The pods a Service selects that have an IP are its endpoints, with their node, a
//!   reference to the pod and Kubernetes' conditions: `ready` (the pod is Ready and not being
//!   deleted; always with `publishNotReadyAddresses`), `serving` (the pod is Ready, deleting
//!   or not) and `terminating` (it is being deleted).
//! - Pods whose ports resolve alike (a named target port is looked up per pod) share slices,
//!   at most 100 endpoints each (`--max-endpoints-per-slice`'s default), sorted by address.
//! - The slices are named `<service>-<random>`, labelled `kubernetes.io/service-name` and
//!   `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io` (with the
//!   Service's own labels), and owned by the Service, so they go with it.
//! - A Service without a selector has none from here (its user writes them).
//!
//! Services are reconciled when they change, when a pod they select (or selected) changes,
//! and when one of their slices changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::{info, warn};

use skiff_api::meta::controller_ref;
use skiff_api::pod::{CachedPod, is_ready};

use super::endpoints::{SelectedBy, endpoint_hostname, resolve, selector, selects};
use super::informers::{Index, Informers};

/// Objects reconciled at once (kube-controller-manager's `--concurrent-service-endpoint-syncs`).
const CONCURRENT_SYNCS: u16 = 5;

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming who keeps a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's name in [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Most endpoints in one slice.
const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// What a reconcile can fail with (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// The controller on the shared informers; it runs until `shutdown` resolves.
pub fn run(
    client: kube::Client,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let pods = informers.pods.reader();
    let pod_changes = informers.pods.subscribe();
    let services = informers.services.reader();
    let service_changes = informers.services.subscribe();
    let slices = informers.endpoint_slices.reader();
    let slice_changes = informers.endpoint_slices.subscribe();
    let selected_by = SelectedBy::default();
    let pod_cache = pods.clone();
    let service_cache = services.clone();
    let context = Arc::new(Context {
        client,
        pods,
        pod_index: informers.pods.index(),
        slices,
        pending: Mutex::new(HashMap::new()),
    });
    async move {
        info!("endpointslice controller started");
        let results = Controller::for_shared_stream(service_changes, services)
            .owns_shared_stream(slice_changes)
            .watches_shared_stream(pod_changes, move |pod: Arc<CachedPod>| {
                let gone = pod_cache.get(&ObjectRef::from_obj(&*pod)).is_none();
                selected_by.services_of(&service_cache, &pod, gone)
            })
            .with_config(super::concurrent_syncs(CONCURRENT_SYNCS))
            .run(reconcile, error_policy, context);
        super::drive("endpointslice", results, shutdown).await;
    }
}

/// Slices made that the cache has not shown yet, and when the first was made.
type Unseen = (Vec<String>, Instant);

struct Context {
    client: kube::Client,
    pods: Store<CachedPod>,
    /// The pods by namespace: a reconcile reads its Service's namespace only.
    pod_index: Index<CachedPod>,
    slices: Store<EndpointSlice>,
    /// Per Service, the slices it was given that the cache has not shown yet.
    pending: Mutex<HashMap<ObjectRef<Service>, Unseen>>,
}

fn error_policy(_service: Arc<Service>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!("syncing endpoint slices: {err}");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, Error> {
    // A deleted Service's slices go with it (the garbage collector follows their owner).
    if service.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(selector) = selector(&service) else {
        return Ok(Action::await_change());
    };
    if service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return Ok(Action::await_change());
    }
    if !super::informers::synced(&ctx.pods).await || !super::informers::synced(&ctx.slices).await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let pods: Vec<Arc<CachedPod>> = ctx
        .pod_index
        .in_namespace(&namespace)
        .into_iter()
        .filter(|p| selects(&selector, p))
        .collect();
    let wanted = slices(&service, &pods);
    let mut existing: Vec<Arc<EndpointSlice>> = ctx
        .slices
        .state()
        .into_iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(namespace.as_str())
                && s.labels().get(SERVICE_NAME_LABEL) == Some(&name)
                && s.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        })
        .collect();
    existing.sort_by_key(|s| s.name_any());
    // Slices made by an earlier reconcile that the cache does not show yet: no more are made
    // (nor any changed) until it does, so a burst of pod events never makes two.
    let key = ObjectRef::from_obj(service.as_ref());
    {
        let mut pending = ctx.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((names, since)) = pending.get(&key) {
            let seen = names
                .iter()
                .all(|n| existing.iter().any(|s| s.name_any() == *n));
            if seen || since.elapsed() > Duration::from_secs(30) {
                pending.remove(&key);
            } else {
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
        }
    }

    let mut labels = service.labels().clone();
    labels.insert(SERVICE_NAME_LABEL.to_owned(), name.clone());
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &namespace);
    for at in 0..wanted.len().max(existing.len()) {
        match (wanted.get(at), existing.get(at)) {
            (Some((ports, endpoints)), Some(current)) => {
                let same = current.address_type == "IPv4"
                    && current.endpoints == *endpoints
                    && current.ports.as_ref() == Some(ports)
                    && current.metadata.labels.as_ref() == Some(&labels);
                if !same {
                    let updated = EndpointSlice {
                        metadata: ObjectMeta {
                            labels: Some(labels.clone()),
                            ..current.metadata.clone()
                        },
                        address_type: String::from("IPv4"),
                        endpoints: endpoints.clone(),
                        ports: Some(ports.clone()),
                    };
                    api.replace(&current.name_any(), &PostParams::default(), &updated)
                        .await?;
                }
            }
            (Some((ports, endpoints)), None) => {
                let slice = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{name}-")),
                        namespace: Some(namespace.clone()),
                        labels: Some(labels.clone()),
                        owner_references: Some(vec![controller_ref(service.as_ref())]),
                        ..ObjectMeta::default()
                    },
                    address_type: String::from("IPv4"),
                    endpoints: endpoints.clone(),
                    ports: Some(ports.clone()),
                };
                let created = api.create(&PostParams::default(), &slice).await?;
                let mut pending = ctx.pending.lock().unwrap_or_else(PoisonError::into_inner);
                let entry = pending
                    .entry(key.clone())
                    .or_insert_with(|| (Vec::new(), Instant::now()));
                entry.0.push(created.name_any());
            }
            (None, Some(surplus)) => {
                match api
                    .delete(&surplus.name_any(), &DeleteParams::default())
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(err) => return Err(err.into()),
                }
            }
            (None, None) => {}
        }
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// The slices a Service's `pods` make: (ports, endpoints) each. A Service with no endpoints
/// still has one, empty, as Kubernetes keeps a placeholder.
fn slices(service: &Service, pods: &[Arc<CachedPod>]) -> Vec<(Vec<EndpointPort>, Vec<Endpoint>)> {
    let spec = service.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let service_ports = spec.ports.unwrap_or_default();
    let mut groups: BTreeMap<Vec<(String, i32, String)>, Vec<Endpoint>> = BTreeMap::new();
    for pod in pods {
        // IPv4 slices: a pod without an IPv4 address, or finished, is no endpoint.
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        else {
            continue;
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        let Some(resolved) = service_ports
            .iter()
            .map(|port| resolve(port, pod))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let serving = is_ready(pod);
        groups.entry(resolved).or_default().push(Endpoint {
            addresses: vec![ip],
            conditions: Some(EndpointConditions {
                ready: Some(publish_not_ready || (serving && !terminating)),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: endpoint_hostname(service, pod),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some(String::from("Pod")),
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                uid: pod.metadata.uid.clone(),
                ..ObjectReference::default()
            }),
            ..Endpoint::default()
        });
    }
    let port_list = |resolved: &[(String, i32, String)]| -> Vec<EndpointPort> {
        resolved
            .iter()
            .map(|(name, port, protocol)| EndpointPort {
                name: Some(name.clone()),
                port: Some(*port),
                protocol: Some(protocol.clone()),
                app_protocol: None,
            })
            .collect()
    };
    let mut slices = Vec::new();
    for (resolved, mut endpoints) in groups {
        endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
        for chunk in endpoints.chunks(MAX_ENDPOINTS_PER_SLICE) {
            slices.push((port_list(&resolved), chunk.to_vec()));
        }
    }
    if slices.is_empty() {
        // No endpoints: one placeholder slice without ports, as Kubernetes keeps.
        slices.push((Vec::new(), Vec::new()));
    }
    slices
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: &str, ready: bool, deleting: bool) -> Arc<CachedPod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"),
                             "labels": {"app": "web"},
                             "deletionTimestamp": deleting.then_some("2026-12-03T00:00:00Z")},
                "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "x"}]},
                "status": {"podIP": ip,
                           "conditions": [{"type": "Ready",
                                           "status": if ready { "True" } else { "False" }}]},
            }))
            .expect("pod"),
        )
    }

    fn service() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        }))
        .expect("service")
    }

    #[test]
    fn endpoints_carry_ready_serving_and_terminating() {
        let pods = [
            pod("b", "10.0.0.2", false, false),
            pod("a", "10.0.0.1", true, false),
            pod("c", "10.0.0.3", true, true),
        ];
        let slices = slices(&service(), &pods);
        assert_eq!(slices.len(), 1);
        let (ports, endpoints) = &slices[0];
        assert_eq!(ports[0].port, Some(8080));
        let seen: Vec<(String, bool, bool, bool)> = endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.clone().unwrap_or_default();
                (
                    e.addresses[0].clone(),
                    c.ready.unwrap_or_default(),
                    c.serving.unwrap_or_default(),
                    c.terminating.unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("10.0.0.1".to_owned(), true, true, false),
                ("10.0.0.2".to_owned(), false, false, false),
                ("10.0.0.3".to_owned(), false, true, true),
            ]
        );
    }

    #[test]
    fn a_slice_holds_at_most_100_endpoints_and_an_empty_service_keeps_one() {
        let pods: Vec<Arc<CachedPod>> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.0.{}.{}", i / 200, i % 200),
                    true,
                    false,
                )
            })
            .collect();
        let sizes: Vec<usize> = slices(&service(), &pods)
            .iter()
            .map(|(_, endpoints)| endpoints.len())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        let empty = slices(&service(), &[]);
        assert_eq!(empty.len(), 1);
        assert!(empty[0].0.is_empty() && empty[0].1.is_empty());
    }
}
