//! The node-local API load balancer: what kubespray's `nginx-proxy` is on each node of a
//! cluster with several masters, inside the agent.
//!
//! An agent given several API servers (`skiff-node join https://a:6443,https://b:6443 ...`)
//! listens on a loopback port of its own and points every connection it makes to the API
//! (its client, its watches, the io_uring heartbeat) there. Each connection is passed on as
//! bytes, TLS end to end between the agent and a master, to the next master in turn that
//! accepts it; a master that refused a connection (or did not answer within
//! [`CONNECT_TIMEOUT`]) is passed over for [`DOWN_FOR`], and tried only when no other is up.
//! When a master dies its connections break, the agent's clients connect again, and the new
//! connections go to the masters that live: the agent fails over without knowing.
//!
//! The list starts with the servers given and then follows the `kubernetes` Endpoints, where
//! every live master keeps its address (`endpoint_leases` in the master), so masters that come
//! later are used and dead ones leave the list. The masters' serving certificate names
//! 127.0.0.1 (as kubespray adds `localhost` to the API servers' certificates), so TLS to the
//! loopback address verifies. `skiff-node api-balancer` runs one on its own, for kubectl on
//! the machine (`cargo xtask run --masters 3` puts it on 127.0.0.1:6443).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Endpoints;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::uring::ConnectionError;
use crate::uring::heartbeat::Target;

/// How long a master gets to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a master that refused a connection is passed over.
pub const DOWN_FOR: Duration = Duration::from_secs(5);

/// Errors of the balancer.
#[derive(Debug, thiserror::Error)]
pub enum BalancerError {
    /// A server is not `https://host[:port]`, or its host has no address.
    #[error("API server {url}: {source}")]
    Server {
        /// The server as given.
        url: String,
        /// Why.
        source: ConnectionError,
    },
    /// The listening socket.
    #[error("listening on {address}: {source}")]
    Listen {
        /// Where.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The masters connections go to, in turn.
#[derive(Debug, Default)]
pub struct Backends {
    masters: Vec<Master>,
    /// Where the next connection starts looking.
    next: usize,
}

#[derive(Debug)]
struct Master {
    address: SocketAddr,
    /// Passed over until then, after a connection it refused.
    down_until: Option<Instant>,
}

impl Backends {
    /// Masters at `addresses` (duplicates once), all up.
    pub fn new(addresses: Vec<SocketAddr>) -> Self {
        let mut backends = Self::default();
        backends.replace(addresses);
        backends
    }

    /// The addresses, in the order they are tried from.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.masters.iter().map(|m| m.address).collect()
    }

    /// The order to try the masters in for the next connection: round robin over those up,
    /// then those passed over (the last resort: one may be back).
    pub fn order(&mut self, now: Instant) -> Vec<SocketAddr> {
        let count = self.masters.len();
        if count == 0 {
            return Vec::new();
        }
        let start = self.next % count;
        self.next = (start + 1) % count;
        let rotated = (0..count).map(|i| &self.masters[(start + i) % count]);
        let (up, down): (Vec<&Master>, Vec<&Master>) =
            rotated.partition(|m| m.down_until.is_none_or(|until| until <= now));
        up.into_iter().chain(down).map(|m| m.address).collect()
    }

    /// `address` refused a connection (or did not answer in time) at `now`.
    pub fn failed(&mut self, address: SocketAddr, now: Instant) {
        if let Some(master) = self.masters.iter_mut().find(|m| m.address == address) {
            master.down_until = Some(now + DOWN_FOR);
        }
    }

    /// `address` accepted a connection.
    pub fn succeeded(&mut self, address: SocketAddr) {
        if let Some(master) = self.masters.iter_mut().find(|m| m.address == address) {
            master.down_until = None;
        }
    }

    /// The masters are now `addresses` (masters kept keep their state). An empty list changes
    /// nothing: with no master known, the last ones are the best guess.
    pub fn replace(&mut self, addresses: Vec<SocketAddr>) {
        if addresses.is_empty() {
            return;
        }
        let mut masters = Vec::with_capacity(addresses.len());
        for address in addresses {
            if masters.iter().any(|m: &Master| m.address == address) {
                continue;
            }
            let down_until = self
                .masters
                .iter()
                .find(|m| m.address == address)
                .and_then(|m| m.down_until);
            masters.push(Master {
                address,
                down_until,
            });
        }
        self.masters = masters;
    }
}

/// The masters of a balancer, shared with what keeps them current.
pub type SharedBackends = Arc<Mutex<Backends>>;

/// A balancer bound to its loopback port; [`ApiBalancer::serve`] runs it.
pub struct ApiBalancer {
    listener: TcpListener,
    backends: SharedBackends,
}

impl ApiBalancer {
    /// Listens on `address` (port 0: any free one) for connections to `servers`
    /// (`https://host[:port]`, port 443 when none is given).
    pub async fn bind(address: SocketAddr, servers: &[String]) -> Result<Self, BalancerError> {
        let mut addresses = Vec::new();
        for server in servers {
            addresses.extend(resolve(server).await?);
        }
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| BalancerError::Listen { address, source })?;
        Ok(Self {
            listener,
            backends: Arc::new(Mutex::new(Backends::new(addresses))),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The URL clients use: `https://<where it listens>`.
    pub fn url(&self) -> std::io::Result<String> {
        Ok(format!("https://{}", self.local_addr()?))
    }

    /// Its masters, to keep current ([`follow_endpoints`]).
    pub fn backends(&self) -> SharedBackends {
        self.backends.clone()
    }

    /// Passes connections on until the task is dropped.
    pub async fn serve(self) {
        loop {
            match self.listener.accept().await {
                Ok((client, _)) => {
                    tokio::spawn(relay(client, self.backends.clone()));
                }
                // Out of file descriptors and the like: the next accept may succeed.
                Err(err) => {
                    warn!(error = %err, "api balancer: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Connects `client` to the first master that accepts, then copies both ways until either
/// side closes.
async fn relay(mut client: TcpStream, backends: SharedBackends) {
    let order = lock(&backends).order(Instant::now());
    for address in order {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(mut master)) => {
                lock(&backends).succeeded(address);
                let _ = client.set_nodelay(true);
                let _ = master.set_nodelay(true);
                // Either side closing (a master that died, a client done) ends both.
                let _ = tokio::io::copy_bidirectional(&mut client, &mut master).await;
                return;
            }
            Ok(Err(err)) => {
                debug!(master = %address, error = %err, "api balancer: connect refused");
                lock(&backends).failed(address, Instant::now());
            }
            Err(_) => {
                debug!(master = %address, "api balancer: connect timed out");
                lock(&backends).failed(address, Instant::now());
            }
        }
    }
    warn!("api balancer: no master accepted a connection");
}

/// The lock; a panic elsewhere while holding it leaves a list that is still whole.
fn lock(backends: &SharedBackends) -> std::sync::MutexGuard<'_, Backends> {
    backends.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The socket addresses of `https://host[:port]`.
async fn resolve(server: &str) -> Result<Vec<SocketAddr>, BalancerError> {
    let error = |source| BalancerError::Server {
        url: server.to_owned(),
        source,
    };
    Target::from_url(server)
        .map_err(error)?
        .resolve()
        .await
        .map_err(error)
}

/// The masters the `kubernetes` Endpoints name: each address at the `https` port (or the only
/// port).
pub fn masters_of(endpoints: &Endpoints) -> Vec<SocketAddr> {
    let mut masters = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports = subset.ports.as_deref().unwrap_or_default();
        let port = ports
            .iter()
            .find(|p| p.name.as_deref() == Some("https"))
            .or_else(|| (ports.len() == 1).then(|| &ports[0]))
            .and_then(|p| u16::try_from(p.port).ok());
        let Some(port) = port else { continue };
        for address in subset.addresses.iter().flatten() {
            if let Ok(ip) = address.ip.parse::<std::net::IpAddr>() {
                masters.push(SocketAddr::new(ip, port));
            }
        }
    }
    masters
}

/// Keeps `backends` to the masters the `kubernetes` Endpoints name, until `client` is gone.
pub async fn follow_endpoints(client: kube::Client, backends: SharedBackends) {
    let api: Api<Endpoints> = Api::namespaced(client, "default");
    let config = watcher::Config::default().fields("metadata.name=kubernetes");
    let mut events = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        let endpoints = match event {
            Ok(Event::Apply(endpoints) | Event::InitApply(endpoints)) => endpoints,
            Ok(_) => continue,
            Err(err) => {
                debug!(error = %err, "api balancer: watching the kubernetes Endpoints");
                continue;
            }
        };
        let masters = masters_of(&endpoints);
        let mut backends = lock(&backends);
        if !masters.is_empty() && masters != backends.addresses() {
            info!(?masters, "api balancer: the masters changed");
            backends.replace(masters);
        }
    }
}

/// Points every cluster of `kubeconfig` at `url` (the balancer's).
pub fn point_kubeconfig_at(kubeconfig: &mut kube::config::Kubeconfig, url: &str) {
    for cluster in &mut kubeconfig.clusters {
        if let Some(cluster) = cluster.cluster.as_mut() {
            cluster.server = Some(url.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn connections_go_round_robin() {
        let mut backends = Backends::new(vec![addr(1), addr(2), addr(3)]);
        let now = Instant::now();
        let firsts: Vec<SocketAddr> = (0..4).map(|_| backends.order(now)[0]).collect();
        assert_eq!(firsts, [addr(1), addr(2), addr(3), addr(1)]);
        assert_eq!(backends.order(now), [addr(2), addr(3), addr(1)]);
    }

    #[test]
    fn a_master_that_refused_is_tried_last_until_its_time_is_up() {
        let mut backends = Backends::new(vec![addr(1), addr(2), addr(3)]);
        let now = Instant::now();
        backends.failed(addr(1), now);
        assert_eq!(backends.order(now), [addr(2), addr(3), addr(1)]);
        assert_eq!(backends.order(now), [addr(2), addr(3), addr(1)]);
        assert_eq!(backends.order(now), [addr(3), addr(2), addr(1)]);
        let later = now + DOWN_FOR;
        assert_eq!(backends.order(later), [addr(1), addr(2), addr(3)]);
        backends.failed(addr(2), now);
        backends.succeeded(addr(2));
        assert_eq!(backends.order(now), [addr(2), addr(3), addr(1)]);
    }

    #[test]
    fn with_every_master_down_all_are_still_tried() {
        let mut backends = Backends::new(vec![addr(1), addr(2)]);
        let now = Instant::now();
        backends.failed(addr(1), now);
        backends.failed(addr(2), now);
        assert_eq!(backends.order(now).len(), 2);
        assert!(Backends::default().order(now).is_empty());
    }

    #[test]
    fn a_new_list_keeps_what_is_known_of_the_masters_it_keeps() {
        let mut backends = Backends::new(vec![addr(1), addr(2)]);
        let now = Instant::now();
        backends.failed(addr(2), now);
        backends.replace(vec![addr(2), addr(3), addr(3)]);
        assert_eq!(backends.addresses(), [addr(2), addr(3)]);
        assert_eq!(backends.order(now), [addr(3), addr(2)]);
        backends.replace(Vec::new());
        assert_eq!(backends.addresses(), [addr(2), addr(3)], "empty: kept");
    }

    #[test]
    fn the_kubernetes_endpoints_name_each_master_at_its_https_port() {
        let endpoints: Endpoints = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "subsets": [
                {"addresses": [{"ip": "192.0.2.2"}, {"ip": "not an ip"}],
                 "ports": [{"name": "https", "port": 6444, "protocol": "TCP"}]},
                {"addresses": [{"ip": "192.0.2.3"}],
                 "ports": [{"port": 6445, "protocol": "TCP"}]},
                {"addresses": [{"ip": "192.0.2.4"}],
                 "ports": [{"name": "a", "port": 1}, {"name": "b", "port": 70000}]},
            ],
        }))
        .expect("endpoints");
        assert_eq!(
            masters_of(&endpoints),
            [
                "192.0.2.2:6444".parse::<SocketAddr>().expect("addr"),
                "192.0.2.3:6445".parse().expect("addr"),
            ]
        );
    }

    #[tokio::test]
    async fn servers_are_https_urls() {
        assert!(matches!(
            resolve("http://127.0.0.1:6443").await,
            Err(BalancerError::Server { .. })
        ));
        assert!(matches!(
            resolve("::").await,
            Err(BalancerError::Server { .. })
        ));
        assert_eq!(
            resolve("https://127.0.0.1:6444").await.expect("resolve"),
            [addr(6444)]
        );
        assert_eq!(
            resolve("https://[::1]").await.expect("resolve"),
            ["[::1]:443".parse::<SocketAddr>().expect("addr")]
        );
    }

    /// Real sockets on loopback: a connection goes to a master that listens, past one that
    /// does not, and the bytes pass both ways.
    #[tokio::test]
    async fn connections_pass_over_a_dead_master_to_a_live_one() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dead = TcpListener::bind(addr(0)).await.expect("bind");
        let dead_addr = dead.local_addr().expect("addr");
        drop(dead);
        let live = TcpListener::bind(addr(0)).await.expect("bind");
        let live_addr = live.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = live.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 5];
                    if stream.read_exact(&mut buf).await.is_ok() {
                        let _ = stream.write_all(&buf.map(|b| b.to_ascii_uppercase())).await;
                    }
                });
            }
        });
        let balancer = ApiBalancer::bind(
            addr(0),
            &[
                format!("https://{dead_addr}"),
                format!("https://{live_addr}"),
            ],
        )
        .await
        .expect("bind");
        let front = balancer.local_addr().expect("addr");
        let backends = balancer.backends();
        tokio::spawn(balancer.serve());
        for _ in 0..3 {
            let mut stream = TcpStream::connect(front).await.expect("connect");
            stream.write_all(b"hello").await.expect("write");
            let mut answer = [0u8; 5];
            stream.read_exact(&mut answer).await.expect("read");
            assert_eq!(&answer, b"HELLO");
        }
        let order = lock(&backends).order(Instant::now());
        assert_eq!(order.last(), Some(&dead_addr), "the dead one is tried last");
    }
}
