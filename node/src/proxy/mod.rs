//! Service load balancing on this node, kube-proxy's job, in one of two ways
//! (`--proxy-mode`): eBPF programs at the socket layer (`node-ebpf/`), which send a connect or
//! send to a Service's ClusterIP and port straight to one of its ready pods, or kube-proxy's
//! iptables rules (DNAT in the nat table), the fallback for kernels without cgroup BPF.
//!
//! - [`route`]: the route that keeps the Service CIDR local, installed first;
//! - [`frontends`]: a Service and its Endpoints to the frontends and backends wanted (pure);
//! - [`proxier`]: the two modes behind one trait, which the watch loop here drives;
//! - [`datapath`]: the eBPF programs, attached to the cgroup v2 root (and for NodePorts from
//!   outside the node, to its devices), and their pinned maps;
//! - [`devices`]: the devices carrying the node's addresses, where NodePort traffic arrives;
//! - [`forward`]: the host forwarding rule for what the TC programs send to pods;
//! - [`node_netns`]: the node's own network namespaces, whose clients the socket hooks serve
//!   NodePorts;
//! - [`sockets`]: closing the connected UDP sockets of backends that are gone;
//! - [`table`]: what is in the maps, and the ordered writes of one Service's change (pure);
//! - [`dump`]: `skiff-node proxy dump`, the live maps as text;
//! - [`iptables`]: kube-proxy's iptables layout as `iptables-restore` input (pure);
//! - [`iptables_restore`]: running it, finding and removing a node's rules.
//!
//! The agent watches every Service and Endpoints object; a change to one rewrites only that
//! Service's entries (or chains).

pub mod datapath;
pub mod devices;
pub mod dump;
pub mod forward;
pub mod frontends;
pub mod iptables;
pub mod iptables_restore;
pub mod node_netns;
mod proxier;
pub mod route;
pub mod sockets;
pub mod table;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use skiff_api::events::{EventType, Recorder, Reporter};
use tracing::{debug, info, warn};

use datapath::{DatapathError, MapSizes};
use iptables_restore::IptablesError;
use node_netns::NodeNetns;
use proxier::{EbpfProxier, IptablesProxier, Proxier};
use table::ServiceName;

/// How Services are load-balanced (`--proxy-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyMode {
    /// eBPF socket programs (the default).
    Ebpf,
    /// kube-proxy's iptables rules (for kernels without cgroup BPF).
    Iptables,
    /// No Service load balancing on this node.
    None,
}

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub mode: ProxyMode,
    pub node_name: String,
    /// Where NodePorts listen on this node: its IP and 127.0.0.1.
    pub node_addresses: Vec<std::net::Ipv4Addr>,
    /// The Service CIDR (the master's `--service-cluster-ip-range`).
    pub service_cidr: Ipv4Net,
    /// The cluster's pod CIDR: iptables mode masquerades ClusterIP traffic from outside it.
    pub cluster_cidr: Ipv4Net,
    pub map_sizes: MapSizes,
    /// The devices NodePort traffic from outside the node arrives on (`--devices`); `None`:
    /// those carrying `node_addresses`.
    pub devices: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("keeping the Service CIDR local: {0}")]
    Route(#[from] route::RouteError),
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    #[error(transparent)]
    Iptables(#[from] IptablesError),
    #[error("{0}")]
    Sysctl(String),
    #[error("finding the devices of the node's addresses: {0}")]
    Devices(std::io::Error),
}

/// The Services and Endpoints as last seen.
#[derive(Default)]
struct Objects {
    services: HashMap<ServiceName, Service>,
    endpoints: HashMap<ServiceName, Endpoints>,
}

/// One event of either watch (boxed: a Service is much larger than an Endpoints).
enum Change {
    Service(Box<Result<Event<Service>, watcher::Error>>),
    Endpoints(Box<Result<Event<Endpoints>, watcher::Error>>),
}

/// The data path of one mode, set up (the Service CIDR kept local first) but not yet
/// following the cluster.
pub struct Proxy(Started);

enum Started {
    Ebpf(Box<EbpfProxier>),
    Iptables(IptablesProxier),
    None,
}

/// Keeps the Service CIDR local and sets up the data path of `config.mode`: for eBPF, the
/// programs loaded and attached, taking over what an earlier run programmed.
pub fn start(config: &ProxyConfig) -> Result<Proxy, ProxyError> {
    let started = match config.mode {
        ProxyMode::Ebpf => {
            route::keep_local(config.service_cidr)?;
            let devices = match &config.devices {
                Some(devices) => devices.clone(),
                None => {
                    devices::with_addresses(&config.node_addresses).map_err(ProxyError::Devices)?
                }
            };
            if !devices.is_empty()
                && let Err(err) = forward::allow_translated()
            {
                warn!(
                    "NodePorts from outside the node may be dropped by the host's FORWARD chain: {err}"
                );
            }
            Started::Ebpf(Box::new(EbpfProxier::start(
                &config.node_name,
                config.map_sizes,
                &devices,
            )?))
        }
        ProxyMode::Iptables => {
            // The route first: no rule is written while the CIDR could leave the machine.
            route::route_to_service_device(config.service_cidr)?;
            iptables_restore::enable_route_localnet()
                .map_err(|err| ProxyError::Sysctl(format!("setting route_localnet: {err}")))?;
            info!(device = route::SERVICE_DEVICE, cidr = %config.service_cidr, "the Service CIDR is routed to skiff's own device");
            Started::Iptables(IptablesProxier::new(
                &config.node_name,
                config.cluster_cidr,
                config.service_cidr,
            ))
        }
        ProxyMode::None => Started::None,
    };
    Ok(Proxy(started))
}

impl Proxy {
    /// The node's network namespaces (eBPF mode), for the runtime to keep as pods come and go.
    pub fn node_netns(&self) -> Option<Arc<NodeNetns>> {
        match &self.0 {
            Started::Ebpf(proxier) => Some(proxier.node_netns()),
            _ => None,
        }
    }

    /// Keeps the data path in step with the cluster's Services until the watch ends (never,
    /// but for a dropped client).
    pub async fn run(self, client: kube::Client, config: ProxyConfig) -> Result<(), ProxyError> {
        match self.0 {
            Started::Ebpf(proxier) => watch(client, &config, *proxier).await,
            Started::Iptables(proxier) => watch(client, &config, proxier).await,
            Started::None => Ok(()),
        }
    }
}

/// Removes what node `node`'s proxy left in the kernel, whichever its mode (`skiff-node proxy
/// cleanup`, with the agent stopped): the eBPF programs and maps, the iptables rules, and the
/// Service device when no other node's rules are left (its routes become `unreachable`).
pub fn cleanup(node: &str) -> Result<(), ProxyError> {
    datapath::cleanup(node)?;
    if iptables_restore::remove_rules(node)? && !iptables_restore::any_node_present()? {
        route::remove_service_device()?;
    }
    Ok(())
}

/// Feeds `proxier` what the changed Services want, as the watches report changes.
async fn watch(
    client: kube::Client,
    config: &ProxyConfig,
    mut proxier: impl Proxier,
) -> Result<(), ProxyError> {
    let services = watcher::watcher(Api::<Service>::all(client.clone()), Default::default())
        .default_backoff()
        .map(|event| Change::Service(Box::new(event)));
    let client_for_events = client.clone();
    let endpoints = watcher::watcher(Api::<Endpoints>::all(client), Default::default())
        .default_backoff()
        .map(|event| Change::Endpoints(Box::new(event)));
    let mut changes = std::pin::pin!(futures::stream::select(services, endpoints));
    // What cannot be programmed is told on the Service, as kube-proxy's component.
    let recorder = Recorder::start(
        client_for_events,
        Reporter {
            component: String::from("skiff-proxy"),
            host: Some(config.node_name.clone()),
            instance: config.node_name.clone(),
        },
    );
    let node = frontends::NodeContext {
        node_name: config.node_name.clone(),
        addresses: config.node_addresses.clone(),
    };
    let mut objects = Objects::default();
    let mut relisting_services: Option<HashMap<ServiceName, Service>> = None;
    let mut relisting_endpoints: Option<HashMap<ServiceName, Endpoints>> = None;
    // Nothing is written until both first lists are in: a Service seen before its Endpoints
    // would otherwise refuse connects for a moment.
    let (mut services_listed, mut endpoints_listed, mut synced) = (false, false, false);
    let mut pending: BTreeSet<ServiceName> = BTreeSet::new();
    while let Some(change) = changes.next().await {
        let touched: Vec<ServiceName> = match change {
            Change::Service(event) => match *event {
                Ok(event) => {
                    services_listed |= matches!(event, Event::InitDone);
                    apply_event(event, &mut objects.services, &mut relisting_services)
                }
                Err(err) => {
                    warn!("watching Services: {err}; retrying with back-off");
                    continue;
                }
            },
            Change::Endpoints(event) => match *event {
                Ok(event) => {
                    endpoints_listed |= matches!(event, Event::InitDone);
                    apply_event(event, &mut objects.endpoints, &mut relisting_endpoints)
                }
                Err(err) => {
                    warn!("watching Endpoints: {err}; retrying with back-off");
                    continue;
                }
            },
        };
        pending.extend(touched);
        if !(services_listed && endpoints_listed) || (synced && pending.is_empty()) {
            continue;
        }
        let started = Instant::now();
        let changed: Vec<_> = std::mem::take(&mut pending)
            .into_iter()
            .map(|name| {
                let wanted = match objects.services.get(&name) {
                    Some(service) => {
                        frontends::service_frontends(service, objects.endpoints.get(&name), &node)
                    }
                    None => Default::default(),
                };
                (name, wanted)
            })
            .collect();
        let count = changed.len();
        for problem in proxier.sync(changed, !synced).await {
            if let Some(service) = objects.services.get(&problem.service) {
                recorder.record(
                    skiff_api::events::object_ref(service),
                    EventType::Warning,
                    problem.reason,
                    problem.message,
                );
            }
        }
        if !synced {
            synced = true;
            info!(services = count, frontends = proxier.frontend_count(), elapsed = ?started.elapsed(), "Services programmed");
        } else {
            debug!(services = count, frontends = proxier.frontend_count(), elapsed = ?started.elapsed(), "data path updated");
        }
    }
    info!("the Service watch ended");
    Ok(())
}

/// Applies one watch event to `store` and returns the Services it touched. A re-list
/// collects into `relist` and, when done, replaces the store: Services gone meanwhile are
/// touched too.
fn apply_event<K: Resource + Clone>(
    event: Event<K>,
    store: &mut HashMap<ServiceName, K>,
    relist: &mut Option<HashMap<ServiceName, K>>,
) -> Vec<ServiceName> {
    match event {
        Event::Apply(object) => {
            let name = name_of(&object);
            store.insert(name.clone(), object);
            vec![name]
        }
        Event::Delete(object) => {
            let name = name_of(&object);
            store.remove(&name);
            vec![name]
        }
        Event::Init => {
            *relist = Some(HashMap::new());
            Vec::new()
        }
        Event::InitApply(object) => {
            relist
                .get_or_insert_with(HashMap::new)
                .insert(name_of(&object), object);
            Vec::new()
        }
        Event::InitDone => {
            let fresh = relist.take().unwrap_or_default();
            let mut touched: BTreeSet<ServiceName> = store.keys().cloned().collect();
            touched.extend(fresh.keys().cloned());
            *store = fresh;
            touched.into_iter().collect()
        }
    }
}

fn name_of<K: Resource>(object: &K) -> ServiceName {
    (object.namespace().unwrap_or_default(), object.name_any())
}
