//! Service load balancing on this node, kube-proxy's job, done by eBPF programs at the
//! socket layer (`node-ebpf/`): a connect or send to a Service's ClusterIP and port goes
//! straight to one of its ready pods.
//!
//! - [`route`]: the route that keeps the Service CIDR local, installed first;
//! - [`datapath`]: the programs, attached to the cgroup v2 root (and for NodePorts from
//!   outside the node, to its devices), and their pinned maps;
//! - [`devices`]: the devices carrying the node's addresses, where NodePort traffic arrives;
//! - [`forward`]: the host forwarding rule for what the TC programs send to pods;
//! - [`frontends`]: a Service and its Endpoints to the frontends and backends wanted (pure);
//! - [`table`]: what is programmed, and the ordered map writes of one Service's change (pure);
//! - [`dump`]: `skiff-node proxy dump`, the live maps as text.
//!
//! The agent watches every Service and Endpoints object; a change to one rewrites only that
//! Service's entries.

pub mod datapath;
pub mod devices;
pub mod dump;
pub mod forward;
pub mod frontends;
pub mod route;
pub mod table;

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use tracing::{debug, info, warn};

use datapath::{Datapath, DatapathError, MapSizes};
use table::{ServiceName, Table};

/// How Services are load-balanced (`--proxy-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyMode {
    /// eBPF socket programs (the default).
    Ebpf,
    /// No Service load balancing on this node.
    None,
}

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub node_name: String,
    /// Where NodePorts listen on this node: its IP and 127.0.0.1.
    pub node_addresses: Vec<std::net::Ipv4Addr>,
    /// The Service CIDR (the master's `--service-cluster-ip-range`).
    pub service_cidr: Ipv4Net,
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

/// Installs the route, loads the programs and keeps their maps in step with the cluster's
/// Services until the watch ends (never, but for a dropped client).
pub async fn run(client: kube::Client, config: ProxyConfig) -> Result<(), ProxyError> {
    route::keep_local(config.service_cidr)?;
    let devices = match &config.devices {
        Some(devices) => devices.clone(),
        None => devices::with_addresses(&config.node_addresses).map_err(ProxyError::Devices)?,
    };
    if !devices.is_empty()
        && let Err(err) = forward::allow_translated()
    {
        warn!("NodePorts from outside the node may be dropped by the host's FORWARD chain: {err}");
    }
    let mut datapath = Datapath::load(&config.node_name, config.map_sizes, &devices)?;
    // What an earlier run programmed keeps serving until the first sync rewrites only what
    // changed meanwhile.
    let (mut table, cleanup) = Table::adopt(
        config.map_sizes.services as usize,
        config.map_sizes.backends as usize,
        &datapath.service_entries(),
        &datapath.backend_entries(),
    );
    if let Err(err) = datapath.apply(&cleanup) {
        warn!("removing what an earlier run left half done: {err}");
    }
    info!(
        frontends = table.frontend_count(),
        "took over the programmed Services"
    );
    let services = watcher::watcher(Api::<Service>::all(client.clone()), Default::default())
        .default_backoff()
        .map(|event| Change::Service(Box::new(event)));
    let endpoints = watcher::watcher(Api::<Endpoints>::all(client), Default::default())
        .default_backoff()
        .map(|event| Change::Endpoints(Box::new(event)));
    let mut changes = std::pin::pin!(futures::stream::select(services, endpoints));
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
        if !(services_listed && endpoints_listed) || pending.is_empty() {
            continue;
        }
        let started = Instant::now();
        let count = pending.len();
        for name in std::mem::take(&mut pending) {
            sync_service(&name, &objects, &node, &mut table, &mut datapath);
        }
        if !synced {
            // Frontends of Services deleted while no agent ran.
            sync_service(
                &table::adopted(),
                &objects,
                &node,
                &mut table,
                &mut datapath,
            );
            synced = true;
            info!(services = count, frontends = table.frontend_count(), elapsed = ?started.elapsed(), "Services programmed");
        } else {
            debug!(services = count, frontends = table.frontend_count(), elapsed = ?started.elapsed(), "data path updated");
        }
    }
    info!("the Service watch ended");
    Ok(())
}

/// Makes the data path do what Service `name` and its Endpoints say (nothing: it is gone).
fn sync_service(
    name: &ServiceName,
    objects: &Objects,
    node: &frontends::NodeContext,
    table: &mut Table,
    datapath: &mut Datapath,
) {
    let wanted = match objects.services.get(name) {
        Some(service) => frontends::service_frontends(service, objects.endpoints.get(name), node),
        None => Default::default(),
    };
    let (writes, errors) = table.update(name, &wanted);
    for err in errors {
        warn!(service = %format!("{}/{}", name.0, name.1), "{err}");
    }
    if let Err(err) = datapath.apply(&writes) {
        warn!(service = %format!("{}/{}", name.0, name.1), "programming the data path: {err}");
    }
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
