//! The endpoints controller: keeps each Service's Endpoints (same name) listing the pods its
//! selector picks, as kube-controller-manager's endpoints controller does.
//!
//! - Pods with an IP that are not being deleted count: Ready ones under `addresses`, others
//!   under `notReadyAddresses` (all under `addresses` with `publishNotReadyAddresses`), each
//!   with its node and a reference to the pod.
//! - Each Service port becomes an endpoint port: its name, protocol and `targetPort`, a named
//!   target port looked up in the pod's containers (a pod without it is left out); pods whose
//!   ports resolve alike share one subset.
//! - A Service without a selector keeps the Endpoints its user writes; the Endpoints of a
//!   deleted Service are deleted, and so, when the controller starts, are Endpoints whose
//!   Service was deleted while no controller ran (Kubernetes' `checkLeftoverEndpoints`).
//!
//! Services are reconciled when they change and when a pod their selector picks changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::{info, warn};

use skiff_api::pod::{CachedPod, is_ready};

use super::informers::{Change, Index, Informers};

/// What a reconcile can fail with (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// Objects reconciled at once (kube-controller-manager's `--concurrent-endpoint-syncs`).
const CONCURRENT_SYNCS: u16 = 5;

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
    let leftovers = leftover_endpoints(
        client.clone(),
        services.clone(),
        informers.services.changes(),
        informers.endpoints.changes(),
    );
    let selected_by = SelectedBy::default();
    let pod_cache = pods.clone();
    let service_cache = services.clone();
    let context = Arc::new(Context {
        client,
        pods,
        pod_index: informers.pods.index(),
    });
    async move {
        info!("endpoints controller started");
        let leftovers = tokio::spawn(leftovers);
        let results = Controller::for_shared_stream(service_changes, services)
            // A pod's change concerns the Services in its namespace whose selector picks
            // it, or picked it before. The cache is updated before the change comes here.
            .watches_shared_stream(pod_changes, move |pod: Arc<CachedPod>| {
                let gone = pod_cache.get(&ObjectRef::from_obj(&*pod)).is_none();
                selected_by.services_of(&service_cache, &pod, gone)
            })
            .with_config(super::concurrent_syncs(CONCURRENT_SYNCS))
            .run(reconcile, error_policy, context);
        super::drive("endpoints", results, shutdown).await;
        leftovers.abort();
    }
}

/// Deletes the Endpoints of a Service that is deleted, and once the first lists are in, every
/// Endpoints without a Service (but leader-election records, which Endpoints once were).
async fn leftover_endpoints(
    client: kube::Client,
    services: Store<Service>,
    service_changes: impl futures::Stream<Item = Change<Service>> + Send + 'static,
    endpoints_changes: impl futures::Stream<Item = Change<Endpoints>> + Send + 'static,
) {
    enum Seen {
        Service(Change<Service>),
        Endpoints(Change<Endpoints>),
    }
    let mut endpoints_listed = false;
    let changes = futures::stream::select(
        service_changes.map(Seen::Service),
        endpoints_changes.map(Seen::Endpoints),
    );
    let mut changes = std::pin::pin!(changes);
    while let Some(seen) = changes.next().await {
        let (namespace, name) = match seen {
            Seen::Service(Change::Deleted(service)) => {
                (service.namespace().unwrap_or_default(), service.name_any())
            }
            Seen::Endpoints(Change::Synced) => {
                endpoints_listed = true;
                continue;
            }
            Seen::Endpoints(Change::Applied(endpoints)) if !endpoints_listed => {
                let leader_election = endpoints
                    .annotations()
                    .contains_key("control-plane.alpha.kubernetes.io/leader");
                if leader_election || !super::informers::synced(&services).await {
                    continue;
                }
                (
                    endpoints.namespace().unwrap_or_default(),
                    endpoints.name_any(),
                )
            }
            _ => continue,
        };
        // A Service of that name again (made anew since): its Endpoints are its own.
        if services
            .get(&ObjectRef::<Service>::new(&name).within(&namespace))
            .is_some()
        {
            continue;
        }
        let api: Api<Endpoints> = Api::namespaced(client.clone(), &namespace);
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => info!(%namespace, %name, "deleted the Endpoints of a Service that is gone"),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => {
                warn!(%namespace, %name, "deleting the Endpoints of a Service that is gone: {err}")
            }
        }
    }
}

struct Context {
    client: kube::Client,
    pods: Store<CachedPod>,
    /// The pods by namespace: a reconcile reads its Service's namespace only.
    pod_index: Index<CachedPod>,
}

fn error_policy(_service: Arc<Service>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!("syncing endpoints: {err}");
    Action::requeue(Duration::from_secs(5))
}

/// Which Services selected each pod when it was last seen, so that a pod whose labels change
/// also updates the Services that no longer select it.
#[derive(Default)]
pub(super) struct SelectedBy {
    last: Mutex<HashMap<String, Vec<ObjectRef<Service>>>>,
}

impl SelectedBy {
    /// The Services of the pod's namespace that select it now or selected it before; `gone`:
    /// the pod was deleted (it is forgotten).
    pub(super) fn services_of(
        &self,
        services: &Store<Service>,
        pod: &CachedPod,
        gone: bool,
    ) -> Vec<ObjectRef<Service>> {
        let namespace = pod.namespace();
        let now: Vec<ObjectRef<Service>> = services
            .state()
            .into_iter()
            .filter(|s| s.namespace() == namespace)
            .filter(|s| selector(s).is_some_and(|sel| selects(&sel, pod)))
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect();
        let uid = pod.uid().unwrap_or_default();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let mut affected = if gone || now.is_empty() {
            last.remove(&uid).unwrap_or_default()
        } else {
            last.insert(uid, now.clone()).unwrap_or_default()
        };
        affected.retain(|s| !now.contains(s));
        affected.extend(now);
        affected
    }
}

/// A Service's selector; `None` when it has none (its endpoints are its user's).
pub(super) fn selector(service: &Service) -> Option<BTreeMap<String, String>> {
    service
        .spec
        .as_ref()?
        .selector
        .clone()
        .filter(|s| !s.is_empty())
}

pub(super) fn selects(selector: &BTreeMap<String, String>, pod: &CachedPod) -> bool {
    let labels = pod.labels();
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &namespace);
    if service.metadata.deletion_timestamp.is_some() {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(err) => return Err(err.into()),
        }
        return Ok(Action::await_change());
    }
    let Some(selector) = selector(&service) else {
        // Endpoints of a Service without a selector are its user's.
        return Ok(Action::await_change());
    };
    if !super::informers::synced(&ctx.pods).await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let pods: Vec<Arc<CachedPod>> = ctx
        .pod_index
        .in_namespace(&namespace)
        .into_iter()
        .filter(|p| selects(&selector, p))
        .collect();
    let subsets = subsets(&service, &pods);
    let wanted = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            labels: service.metadata.labels.clone(),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    };
    match api.get_opt(&name).await? {
        Some(current)
            if current.subsets == wanted.subsets
                && current.metadata.labels == wanted.metadata.labels => {}
        Some(current) => {
            let updated = Endpoints {
                metadata: ObjectMeta {
                    resource_version: current.metadata.resource_version.clone(),
                    ..wanted.metadata
                },
                subsets: wanted.subsets,
            };
            api.replace(&name, &PostParams::default(), &updated).await?;
        }
        None => {
            api.create(&PostParams::default(), &wanted).await?;
        }
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// The name a pod's address has in its Service's DNS records: its `hostname` when its
/// `subdomain` is the Service (a StatefulSet's pods under their governing Service), as
/// Kubernetes' endpoints controller sets it.
pub(super) fn endpoint_hostname(service: &Service, pod: &CachedPod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.is_some() && spec.subdomain == service.metadata.name)
        .then(|| hostname.to_owned())
}

/// A Service's ports as they resolve on one pod: (name, number, protocol) each.
type ResolvedPorts = Vec<(String, i32, String)>;
/// Ready and not-ready addresses.
type Addresses = (Vec<EndpointAddress>, Vec<EndpointAddress>);

/// The subsets of a Service over its selected `pods`: pods grouped by how the Service's ports
/// resolve on them, addresses sorted by IP.
pub fn subsets(service: &Service, pods: &[Arc<CachedPod>]) -> Vec<EndpointSubset> {
    let spec = service.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let ports = spec.ports.unwrap_or_default();
    // Resolved port list -> (ready, not ready) addresses.
    let mut groups: BTreeMap<ResolvedPorts, Addresses> = BTreeMap::new();
    for pod in pods {
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(resolved) = ports
            .iter()
            .map(|port| resolve(port, pod))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let address = EndpointAddress {
            ip,
            hostname: endpoint_hostname(service, pod),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some(String::from("Pod")),
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            }),
        };
        let (ready, not_ready) = groups.entry(resolved).or_default();
        if publish_not_ready || is_ready(pod) {
            ready.push(address);
        } else {
            not_ready.push(address);
        }
    }
    groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name: (!name.is_empty()).then_some(name),
                            port,
                            protocol: Some(protocol),
                            app_protocol: None,
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

/// The Service port on this pod: (name, port number, protocol); `None` when a named target
/// port is not one of the pod's container ports.
pub(super) fn resolve(port: &ServicePort, pod: &CachedPod) -> Option<(String, i32, String)> {
    let protocol = port.protocol.clone().unwrap_or_else(|| String::from("TCP"));
    let number = match &port.target_port {
        None => port.port,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(name)) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => {
                pod.spec
                    .as_ref()?
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .find(|p| {
                        p.name.as_deref() == Some(name.as_str())
                            && p.protocol.as_deref().unwrap_or("TCP") == protocol
                    })?
                    .container_port
            }
        },
    };
    Some((port.name.clone().unwrap_or_default(), number, protocol))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: Option<&str>, ready: bool, named_port: Option<i32>) -> Arc<CachedPod> {
        let ports = named_port.map(|p| json!([{"name": "http", "containerPort": p}]));
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"),
                             "labels": {"app": "web"}},
                "spec": {"nodeName": "n1",
                         "containers": [{"name": "app", "image": "x", "ports": ports}]},
                "status": {"podIP": ip,
                           "conditions": [{"type": "Ready",
                                           "status": if ready { "True" } else { "False" }}]},
            }))
            .expect("pod"),
        )
    }

    fn service(target_port: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": target_port}]},
        }))
        .expect("service")
    }

    #[test]
    fn a_pod_that_stops_matching_still_updates_its_old_service() {
        let mut writer = kube::runtime::reflector::store::Writer::<Service>::default();
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(service(json!(8080))));
        let services = writer.as_reader();
        let selected_by = SelectedBy::default();
        let web = vec![ObjectRef::<Service>::new("web").within("default")];
        let mut labelled = (*pod("a", Some("10.244.0.11"), true, None)).clone();
        assert_eq!(selected_by.services_of(&services, &labelled, false), web);
        // Relabelled away: the Service that selected it hears of it once more.
        labelled.metadata.labels = Some(BTreeMap::from([(
            String::from("app"),
            String::from("other"),
        )]));
        assert_eq!(selected_by.services_of(&services, &labelled, false), web);
        assert!(
            selected_by
                .services_of(&services, &labelled, false)
                .is_empty()
        );
        // Deleted: forgotten.
        let matching = pod("a", Some("10.244.0.11"), true, None);
        selected_by.services_of(&services, &matching, false);
        assert_eq!(selected_by.services_of(&services, &matching, true), web);
        assert!(selected_by.last.lock().expect("lock").is_empty());
    }

    #[test]
    fn ready_and_not_ready_pods_with_ips() {
        let pods = [
            pod("b", Some("10.244.0.12"), true, None),
            pod("a", Some("10.244.0.11"), true, None),
            pod("c", Some("10.244.0.13"), false, None),
            pod("pending", None, false, None),
        ];
        let subsets = subsets(&service(json!(8080)), &pods);
        assert_eq!(subsets.len(), 1);
        let ips = |a: &Option<Vec<EndpointAddress>>| {
            a.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>()
        };
        assert_eq!(ips(&subsets[0].addresses), ["10.244.0.11", "10.244.0.12"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.244.0.13"]);
        let port = &subsets[0].ports.as_ref().expect("ports")[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
        let target = subsets[0].addresses.as_ref().expect("addresses")[0]
            .target_ref
            .clone()
            .expect("target");
        assert_eq!(target.name.as_deref(), Some("a"));
        assert_eq!(target.uid.as_deref(), Some("a-uid"));
    }

    #[test]
    fn named_target_ports_resolve_per_pod() {
        let pods = [
            pod("a", Some("10.244.0.11"), true, Some(8080)),
            pod("b", Some("10.244.0.12"), true, Some(9090)),
            pod("no-port", Some("10.244.0.13"), true, None),
        ];
        let subsets = subsets(&service(json!("http")), &pods);
        let by_port: Vec<(i32, Vec<String>)> = subsets
            .iter()
            .map(|s| {
                (
                    s.ports.as_ref().expect("ports")[0].port,
                    s.addresses.iter().flatten().map(|a| a.ip.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            by_port,
            [
                (8080, vec![String::from("10.244.0.11")]),
                (9090, vec![String::from("10.244.0.12")])
            ]
        );
    }
}
