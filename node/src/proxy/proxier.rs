//! The two ways Services are programmed on a node, behind the one trait the watch loop
//! drives (kube-proxy's `Provider`): each takes the frontends the changed Services want.
//!
//! - [`EbpfProxier`]: the socket programs' maps ([`super::table`] says which writes,
//!   [`super::datapath`] makes them);
//! - [`IptablesProxier`]: kube-proxy's iptables rules ([`super::iptables`] says which,
//!   [`super::iptables_restore`] restores them).

use ipnet::Ipv4Net;
use tracing::{info, warn};

use std::sync::Arc;

use super::datapath::{Datapath, DatapathError, MapSizes};
use super::frontends::Protocol;
use super::iptables::{Rules, Wanted};
use super::iptables_restore::{self, IptablesError};
use super::node_netns::NodeNetns;
use super::sockets::{self, Peer};
use super::table::{self, MapWrite, ServiceName, Table};

/// Why a Service is not (wholly) programmed: a Warning Event on it.
#[derive(Debug)]
pub(super) struct Problem {
    pub service: ServiceName,
    pub reason: &'static str,
    pub message: String,
}

/// Programs the changed Services' frontends into the kernel.
pub(super) trait Proxier {
    /// Makes the data path do what each of `changed` wants (nothing, for a Service that is
    /// gone). `first` is the sync after both first lists: `changed` then names every Service
    /// there is, and what an earlier run left for others goes. Returns what could not be
    /// done, by Service (the other Services are programmed all the same).
    async fn sync(&mut self, changed: Vec<(ServiceName, Wanted)>, first: bool) -> Vec<Problem>;

    /// How many frontends are programmed.
    fn frontend_count(&self) -> usize;
}

/// Service load balancing by the eBPF socket programs.
pub(super) struct EbpfProxier {
    table: Table,
    datapath: Datapath,
    node_netns: Arc<NodeNetns>,
}

impl EbpfProxier {
    /// Loads the programs and takes over what an earlier run programmed (it keeps serving
    /// until the first sync rewrites only what changed meanwhile).
    pub(super) fn start(
        node: &str,
        sizes: MapSizes,
        devices: &[String],
    ) -> Result<Self, DatapathError> {
        let mut datapath = Datapath::load(node, sizes, devices)?;
        let (table, cleanup) = Table::adopt(
            sizes.services as usize,
            sizes.backends as usize,
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
        let node_netns = Arc::new(NodeNetns::open(node)?);
        Ok(EbpfProxier {
            table,
            datapath,
            node_netns,
        })
    }

    /// The node's network namespaces, which the runtime keeps.
    pub(super) fn node_netns(&self) -> Arc<NodeNetns> {
        self.node_netns.clone()
    }

    fn write(&mut self, name: &ServiceName, wanted: &Wanted, problems: &mut Vec<Problem>) {
        let (writes, errors) = self.table.update(name, wanted);
        for err in errors {
            warn!(service = %format!("{}/{}", name.0, name.1), "{err}");
            problems.push(Problem {
                service: name.clone(),
                reason: err.reason(),
                message: err.to_string(),
            });
        }
        let gone_udp: Vec<Peer> = writes
            .iter()
            .filter_map(|write| match write {
                MapWrite::DeleteBackend(id) => self.datapath.backend(*id),
                _ => None,
            })
            .filter(|backend| backend.protocol == Protocol::Udp)
            .map(|backend| (backend.address, backend.port))
            .collect();
        if !gone_udp.is_empty() {
            self.close_udp_sockets(gone_udp);
        }
        if let Err(err) = self.datapath.apply(&writes) {
            warn!(service = %format!("{}/{}", name.0, name.1), "programming the data path: {err}");
            problems.push(Problem {
                service: name.clone(),
                reason: "LoadBalancerMapFull",
                message: format!("programming the data path: {err}"),
            });
        }
    }
}

impl EbpfProxier {
    /// Destroys, off the watch loop, the connected UDP sockets sent to `gone` (backends about
    /// to leave the maps: their `REV_NAT` entries name them still).
    fn close_udp_sockets(&self, gone: Vec<Peer>) {
        let pin_dir = self.datapath.pin_dir().to_owned();
        let pods = self.node_netns.pods();
        tokio::task::spawn_blocking(move || match sockets::close_udp(&pin_dir, &gone, &pods) {
            Ok(0) => {}
            Ok(closed) => {
                info!(closed, backends = ?gone, "closed connected UDP sockets of removed backends")
            }
            Err(err) => {
                warn!(backends = ?gone, "closing connected UDP sockets of removed backends: {err}")
            }
        });
    }
}

impl Proxier for EbpfProxier {
    async fn sync(&mut self, changed: Vec<(ServiceName, Wanted)>, first: bool) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (name, wanted) in &changed {
            self.write(name, wanted, &mut problems);
        }
        if first {
            // Frontends of Services deleted while no agent ran.
            self.write(&table::adopted(), &Wanted::new(), &mut problems);
        }
        problems
    }

    fn frontend_count(&self) -> usize {
        self.table.frontend_count()
    }
}

/// Service load balancing by kube-proxy's iptables rules.
pub(super) struct IptablesProxier {
    rules: Rules,
    /// A restore failed: the next sync writes everything (kube-proxy's forced full sync).
    needs_full_sync: bool,
}

impl IptablesProxier {
    pub(super) fn new(node: &str, cluster_cidr: Ipv4Net, service_cidr: Ipv4Net) -> Self {
        IptablesProxier {
            rules: Rules::new(node, cluster_cidr, service_cidr),
            needs_full_sync: false,
        }
    }

    async fn try_sync(
        &mut self,
        changed: Vec<(ServiceName, Wanted)>,
        first: bool,
    ) -> Result<(), IptablesError> {
        let stale_udp: Vec<_> = self
            .rules
            .stale_udp_flows(&changed)
            .into_iter()
            .map(|(frontend, backend)| (frontend, self.rules.is_cluster_ip(&frontend), backend))
            .collect();
        let chains = self.rules.chains().clone();
        let inputs = if first || self.needs_full_sync {
            let live = blocking(move || iptables_restore::live_chains(&chains)).await?;
            if first {
                self.rules.full_sync(changed, &live)
            } else {
                self.rules.update(changed);
                self.rules.resync(&live)
            }
        } else {
            self.rules.update(changed).into_iter().collect()
        };
        if inputs.is_empty() {
            return Ok(());
        }
        blocking(move || {
            inputs
                .iter()
                .try_for_each(|input| iptables_restore::restore(input))
        })
        .await?;
        if first || self.needs_full_sync {
            let chains = self.rules.chains().clone();
            blocking(move || iptables_restore::ensure_jumps(&chains)).await?;
        }
        // With the rules no longer naming them, the flows to removed UDP backends go.
        if !stale_udp.is_empty() {
            blocking(move || {
                for (frontend, cluster_ip, backend) in &stale_udp {
                    if let Err(err) =
                        iptables_restore::clear_udp_flows(frontend, *cluster_ip, *backend)
                    {
                        warn!("clearing the UDP flows to a removed backend: {err}");
                    }
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

impl Proxier for IptablesProxier {
    async fn sync(&mut self, changed: Vec<(ServiceName, Wanted)>, first: bool) -> Vec<Problem> {
        // A failed restore concerns no Service of its own: it is logged, not an Event.
        match self.try_sync(changed, first).await {
            Ok(()) => self.needs_full_sync = false,
            Err(err) => {
                warn!("writing the iptables rules: {err}; the next sync writes them all");
                self.needs_full_sync = true;
            }
        }
        Vec::new()
    }

    fn frontend_count(&self) -> usize {
        self.rules.frontend_count()
    }
}

/// Runs `work` on tokio's blocking pool (iptables-restore of 10,000 Services takes seconds;
/// the agent's runtime has one thread).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IptablesError> + Send + 'static,
) -> Result<T, IptablesError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| {
            Err(IptablesError::Spawn {
                command: String::from("a blocking task"),
                source: std::io::Error::other(err),
            })
        })
}
