//! Cluster DNS, served by the master (CoreDNS's job in a kubeadm cluster): names under the
//! cluster domain answered from the shared Service and Endpoints informers ([`records`]),
//! every other name forwarded to the host's resolvers (hickory's forwarder), over UDP and TCP.
//!
//! The server listens where pods reach the master (the API server's advertise address). The
//! `kube-dns` Service in `kube-system` (the kubelets' `--cluster-dns`, 10.96.0.10 by default)
//! has no selector; its Endpoints name this server, so a pod's query to the ClusterIP is
//! load-balanced to it by the node's proxy like any other Service's traffic.

pub mod records;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverOpts};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{LowerName, Name};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::forwarder::{ForwardConfig, ForwardZoneHandler};
use hickory_server::zone_handler::{Catalog, MessageResponseBuilder};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tokio::net::{TcpListener, UdpSocket};
use tracing::{debug, info, warn};

use crate::endpoint_leases;

use crate::controllers::informers::Informers;
use records::{Answer, Zone};

/// The cluster DNS's name in `kube-system`, as kubeadm's CoreDNS Service is named.
pub const SERVICE_NAME: &str = "kube-dns";

/// How the cluster DNS runs.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Where the server listens: the API server's advertise address (reachable from pods).
    pub address: IpAddr,
    /// Its port (53; 0 picks a free one, which the `kube-dns` Endpoints name).
    pub port: u16,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
    /// The `kube-dns` Service's ClusterIP (what kubelets' `--cluster-dns` names).
    pub service_ip: Ipv4Addr,
    /// Resolvers for names outside the domain; empty: the host's (`/etc/resolv.conf`).
    pub upstreams: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("listening on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("{0}")]
    Domain(String),
    #[error("the resolvers for names outside the cluster: {0}")]
    Upstream(String),
}

/// How often the `kube-dns` Service and Endpoints are checked and put back (kube-apiserver
/// reconciles the `kubernetes` Endpoints as often).
const PUBLISH_PERIOD: Duration = Duration::from_secs(10);
/// The label of the DNS servers' Leases.
const LEASE_LABEL: (&str, &str) = ("k8s-app", "kube-dns");

/// Binds the server's sockets and returns it, to be run until `shutdown`; the `kube-dns`
/// Service and its Endpoints are written once it serves, and put back if they go or change.
pub async fn start(
    client: kube::Client,
    config: DnsConfig,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = ()> + Send + 'static, DnsError> {
    let zone = Zone::new(&config.domain).map_err(DnsError::Domain)?;
    let forwarder = forwarder(&config.upstreams)?;
    let (udp, tcp) = bind(config.address, config.port).await?;
    let listening = udp
        .local_addr()
        .map_err(|err| DnsError::Bind(SocketAddr::new(config.address, config.port), err))?;
    let handler = Handler {
        zone,
        objects: Stores {
            services: informers.services.reader(),
            endpoints: informers.endpoints.reader(),
        },
        forwarder,
    };
    let leases = informers.leases.reader();
    let mut server = Server::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(10), 64);
    info!(address = %listening, domain = %config.domain, "cluster DNS listening");
    Ok(async move {
        let publishing = async {
            let mut every = tokio::time::interval(PUBLISH_PERIOD);
            loop {
                every.tick().await;
                match publish(&client, &config, listening, &leases).await {
                    Ok(true) => {
                        info!(service_ip = %config.service_ip, endpoint = %listening, "published the {SERVICE_NAME} Service")
                    }
                    Ok(false) => {}
                    Err(err) => warn!("writing the {SERVICE_NAME} Service and Endpoints: {err}"),
                }
            }
        };
        tokio::select! {
            () = publishing => {}
            () = shutdown => {}
        }
        if let Err(err) = server.shutdown_gracefully().await {
            debug!("cluster DNS stopped: {err}");
        }
    })
}

/// A UDP socket and a TCP listener on the same port (`port` 0: a free one for both).
async fn bind(address: IpAddr, port: u16) -> Result<(UdpSocket, TcpListener), DnsError> {
    let wanted = SocketAddr::new(address, port);
    let mut attempts = 0;
    loop {
        let udp = UdpSocket::bind(wanted)
            .await
            .map_err(|err| DnsError::Bind(wanted, err))?;
        let bound = udp
            .local_addr()
            .map_err(|err| DnsError::Bind(wanted, err))?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            // The free UDP port was taken for TCP: try another.
            Err(_) if port == 0 && attempts < 10 => attempts += 1,
            Err(err) => return Err(DnsError::Bind(bound, err)),
        }
    }
}

/// The forwarder for names outside the cluster domain: `upstreams`, else the host's resolvers.
/// A resolver that does not answer makes a quick SERVFAIL (2 s, one attempt each), not a
/// client's time-out.
fn forwarder(upstreams: &[SocketAddr]) -> Result<Catalog, DnsError> {
    let (name_servers, mut options) = if upstreams.is_empty() {
        let (config, options) = hickory_resolver::system_conf::read_system_conf()
            .map_err(|err| DnsError::Upstream(format!("reading /etc/resolv.conf: {err}")))?;
        (config.name_servers().to_vec(), options)
    } else {
        let servers = upstreams
            .iter()
            .map(|upstream| {
                let mut server = NameServerConfig::udp_and_tcp(upstream.ip());
                for connection in &mut server.connections {
                    connection.port = upstream.port();
                }
                server
            })
            .collect();
        (servers, ResolverOpts::default())
    };
    options.timeout = Duration::from_secs(2);
    options.attempts = 1;
    let handler = ForwardZoneHandler::builder_tokio(ForwardConfig {
        name_servers,
        options: Some(options),
    })
    .build()
    .map_err(DnsError::Upstream)?;
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&Name::root()), vec![Arc::new(handler)]);
    Ok(catalog)
}

/// The `kube-dns` Service (created if missing) and its Endpoints (naming `listening` and the
/// other masters' DNS servers); true when the Service or the Endpoints were written.
async fn publish(
    client: &kube::Client,
    config: &DnsConfig,
    listening: SocketAddr,
    known: &Store<Lease>,
) -> Result<bool, kube::Error> {
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": SERVICE_NAME, "namespace": "kube-system", "labels": {
            "k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}},
        "spec": {"clusterIP": config.service_ip.to_string(), "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]},
    }))
    .map_err(kube::Error::SerdeError)?;
    let mut wrote = false;
    if services.get_opt(SERVICE_NAME).await?.is_none() {
        match services.create(&PostParams::default(), &service).await {
            Ok(_) => wrote = true,
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => return Err(err),
        }
    }
    // Every master's DNS server whose Lease is live ([`endpoint_leases`]), this one's too.
    let leases: Api<Lease> = Api::namespaced(client.clone(), endpoint_leases::NAMESPACE);
    let now = chrono::Utc::now();
    let lease = endpoint_leases::lease(SERVICE_NAME, LEASE_LABEL, listening, now);
    let name = lease.metadata.name.clone().unwrap_or_default();
    match leases.get_opt(&name).await? {
        None => match leases.create(&PostParams::default(), &lease).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => return Err(err),
        },
        Some(current) => {
            let mut renewed = lease;
            renewed.metadata.resource_version = current.metadata.resource_version;
            leases
                .replace(&name, &PostParams::default(), &renewed)
                .await?;
        }
    }
    // The other DNS servers' Leases, as the shared informer has them.
    let others: Vec<Arc<Lease>> = known
        .state()
        .into_iter()
        .filter(|lease| {
            lease.metadata.namespace.as_deref() == Some(endpoint_leases::NAMESPACE)
                && lease
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LEASE_LABEL.0))
                    == Some(&LEASE_LABEL.1.to_owned())
        })
        .collect();
    // Leases of DNS servers long gone (a master restarted on another free port) go.
    for lease in endpoint_leases::abandoned(others.iter().map(|lease| &**lease), now) {
        let Some(name) = lease.metadata.name.as_deref() else {
            continue;
        };
        let unchanged = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: lease.metadata.resource_version.clone(),
                uid: lease.metadata.uid.clone(),
            }),
            ..Default::default()
        };
        match leases.delete(name, &unchanged).await {
            Ok(_) => info!(lease = name, "deleted the Lease of a DNS server gone"),
            // Another master deleted it, or its server came back and renewed it.
            Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => {}
            Err(err) => return Err(err),
        }
    }
    let subsets: Vec<serde_json::Value> =
        endpoint_leases::live(others.iter().map(|lease| &**lease), listening, now)
        .into_iter()
        .map(|(port, ips)| {
            json!({
                "addresses": ips.into_iter().map(|ip| json!({"ip": ip.to_string()})).collect::<Vec<_>>(),
                "ports": [
                    {"name": "dns", "port": port, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": port, "protocol": "TCP"}],
            })
        })
        .collect();
    let endpoints_api: Api<Endpoints> = Api::namespaced(client.clone(), "kube-system");
    let mut endpoints: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": SERVICE_NAME, "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "subsets": subsets,
    }))
    .map_err(kube::Error::SerdeError)?;
    match endpoints_api.get_opt(SERVICE_NAME).await? {
        None => {
            endpoints_api
                .create(&PostParams::default(), &endpoints)
                .await?;
            wrote = true;
        }
        Some(current) if current.subsets != endpoints.subsets => {
            endpoints.metadata.resource_version = current.metadata.resource_version;
            endpoints_api
                .replace(SERVICE_NAME, &PostParams::default(), &endpoints)
                .await?;
            wrote = true;
        }
        Some(_) => {}
    }
    Ok(wrote)
}

/// The informers' Services and Endpoints, as [`records`] reads them.
struct Stores {
    services: Store<Service>,
    endpoints: Store<Endpoints>,
}

impl records::Objects for Stores {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
        self.services.get(&ObjectRef::new(name).within(namespace))
    }

    fn endpoints(&self, namespace: &str, name: &str) -> Option<Arc<Endpoints>> {
        self.endpoints.get(&ObjectRef::new(name).within(namespace))
    }
}

struct Handler {
    zone: Zone,
    objects: Stores,
    /// Names outside the zone.
    forwarder: Catalog,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let query = match request.request_info() {
            Ok(info) if request.metadata.op_code == OpCode::Query => info.query.clone(),
            // Not one question, or not a query (an update, a notify): the forwarder's
            // catalog answers as hickory does (FORMERR, NOTIMP, REFUSED).
            _ => {
                return self
                    .forwarder
                    .handle_request::<R, T>(request, response_handle)
                    .await;
            }
        };
        if !self.zone.contains(query.name()) {
            return self
                .forwarder
                .handle_request::<R, T>(request, response_handle)
                .await;
        }
        let answer = self
            .zone
            .answer(query.name(), query.query_type(), &self.objects);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        metadata.recursion_available = true;
        let mut builder = MessageResponseBuilder::from_message_request(request);
        let edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().max(512));
            edns
        });
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        let soa = [self.zone.soa().clone()];
        let sent = match &answer {
            Answer::Records {
                answers,
                additionals,
            } => {
                response_handle
                    .send_response(builder.build(metadata, answers, &[], &[], additionals))
                    .await
            }
            Answer::NoData => {
                response_handle
                    .send_response(builder.build(metadata, &[], &[], &soa, &[]))
                    .await
            }
            Answer::NxDomain => {
                metadata.response_code = ResponseCode::NXDomain;
                response_handle
                    .send_response(builder.build(metadata, &[], &[], &soa, &[]))
                    .await
            }
        };
        sent.unwrap_or_else(|err| {
            debug!(client = %request.src(), "sending a DNS answer: {err}");
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        })
    }
}
