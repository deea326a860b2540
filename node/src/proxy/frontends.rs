//! What the data path should do for one Service: its frontends (ClusterIP, port, protocol)
//! and, for each, the ready backends its Endpoints list for that port. Pure: the Service and
//! Endpoints objects in, the wanted state out.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Endpoints, Service};

/// The transport protocols the socket hooks translate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// A Service or Endpoints port's `protocol` (TCP when unset); `None` for SCTP and the rest.
    pub fn parse(protocol: Option<&str>) -> Option<Self> {
        match protocol.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// The IANA number the kernel uses.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => skiff_node_ebpf::PROTOCOL_TCP,
            Protocol::Udp => skiff_node_ebpf::PROTOCOL_UDP,
        }
    }

    pub fn from_number(number: u8) -> Option<Self> {
        match number {
            skiff_node_ebpf::PROTOCOL_TCP => Some(Protocol::Tcp),
            skiff_node_ebpf::PROTOCOL_UDP => Some(Protocol::Udp),
            _ => None,
        }
    }
}

/// A Service address a client sends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    pub address: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
}

/// A pod address traffic is sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendAddress {
    pub address: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
}

/// What one frontend should do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Balancing {
    /// The ready backends, sorted (the order slots are written in); empty refuses connects.
    pub backends: Vec<BackendAddress>,
    /// `sessionAffinity: ClientIP`: how long a client keeps its backend, in seconds.
    pub affinity_timeout_s: Option<u32>,
    /// A NodePort frontend: clients outside the node reach it too.
    pub node_port: bool,
}

/// Where the agent runs: what `*TrafficPolicy: Local` and NodePorts need.
#[derive(Clone, Debug, Default)]
pub struct NodeContext {
    /// The Node's name (an endpoint is local when its `nodeName` is this).
    pub node_name: String,
    /// The addresses a NodePort is reachable at on this node (its IP and 127.0.0.1).
    pub addresses: Vec<Ipv4Addr>,
}

/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
const DEFAULT_AFFINITY_TIMEOUT_S: u32 = 10_800;

/// The frontends of `service` and what each should do, given its `endpoints`: its ClusterIP
/// ports, and for a NodePort (or LoadBalancer) Service each node address with each
/// nodePort. `internalTrafficPolicy: Local` keeps the ClusterIP to this node's endpoints,
/// `externalTrafficPolicy: Local` the NodePorts. A headless Service (`clusterIP: None`), an
/// ExternalName one or one without an IPv4 ClusterIP has none; ports whose protocol the hooks
/// do not translate (SCTP) are left out.
pub fn service_frontends(
    service: &Service,
    endpoints: Option<&Endpoints>,
    node: &NodeContext,
) -> BTreeMap<Frontend, Balancing> {
    let mut frontends = BTreeMap::new();
    let Some(spec) = &service.spec else {
        return frontends;
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return frontends;
    }
    let Some(address) = spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        return frontends;
    };
    let affinity_timeout_s = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_S)
    });
    let node_ports = matches!(
        spec.type_.as_deref(),
        Some("NodePort") | Some("LoadBalancer")
    );
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
    for port in spec.ports.iter().flatten() {
        let (Some(protocol), Ok(service_port)) = (
            Protocol::parse(port.protocol.as_deref()),
            u16::try_from(port.port),
        ) else {
            continue;
        };
        if service_port == 0 {
            continue;
        }
        let all = ready_backends(endpoints, port.name.as_deref(), protocol, None);
        let local = || {
            ready_backends(
                endpoints,
                port.name.as_deref(),
                protocol,
                Some(&node.node_name),
            )
        };
        let balancing = |backends: Vec<BackendAddress>, node_port: bool| Balancing {
            backends,
            affinity_timeout_s,
            node_port,
        };
        let cluster_ip = Frontend {
            address,
            port: service_port,
            protocol,
        };
        let backends = if internal_local { local() } else { all.clone() };
        frontends.insert(cluster_ip, balancing(backends, false));
        let node_port = port
            .node_port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0);
        if node_ports && node_port != 0 {
            let backends = if external_local { local() } else { all.clone() };
            for node_address in &node.addresses {
                let frontend = Frontend {
                    address: *node_address,
                    port: node_port,
                    protocol,
                };
                frontends.insert(frontend, balancing(backends.clone(), true));
            }
        }
    }
    frontends
}

/// The ready addresses of `endpoints` with the port named `port_name` (the endpoints
/// controller names each Endpoints port after its Service port; an unnamed single port
/// matches an unnamed one) and `protocol`, sorted; only those on node `on_node` if given.
fn ready_backends(
    endpoints: Option<&Endpoints>,
    port_name: Option<&str>,
    protocol: Protocol,
    on_node: Option<&str>,
) -> Vec<BackendAddress> {
    let mut backends = Vec::new();
    for subset in endpoints
        .into_iter()
        .flat_map(|e| e.subsets.iter().flatten())
    {
        let Some(port) = subset.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name.unwrap_or("")
                && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
        }) else {
            continue;
        };
        let Ok(target_port) = u16::try_from(port.port) else {
            continue;
        };
        if target_port == 0 {
            continue;
        }
        for address in subset.addresses.iter().flatten() {
            if on_node.is_some_and(|node| address.node_name.as_deref() != Some(node)) {
                continue;
            }
            if let Ok(ip) = address.ip.parse::<Ipv4Addr>() {
                backends.push(BackendAddress {
                    address: ip,
                    port: target_port,
                    protocol,
                });
            }
        }
    }
    backends.sort();
    backends.dedup();
    backends
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
        )
        .expect("a Service")
    }

    fn endpoints(subsets: serde_json::Value) -> Endpoints {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default"}, "subsets": subsets}),
        )
        .expect("Endpoints")
    }

    fn node() -> NodeContext {
        NodeContext {
            node_name: String::from("node-a"),
            addresses: vec![Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::LOCALHOST],
        }
    }

    fn backend(ip: [u8; 4], port: u16, protocol: Protocol) -> BackendAddress {
        BackendAddress {
            address: Ipv4Addr::from(ip),
            port,
            protocol,
        }
    }

    #[test]
    fn each_port_gets_the_ready_addresses_of_its_named_endpoints_port() {
        let svc = service(json!({"clusterIP": "10.96.0.20", "ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
        ]}));
        let eps = endpoints(json!([{
            "addresses": [{"ip": "10.244.1.3"}, {"ip": "10.244.0.2"}],
            "notReadyAddresses": [{"ip": "10.244.0.9"}],
            "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}],
        }]));
        let frontends = service_frontends(&svc, Some(&eps), &node());
        let http = Frontend {
            address: Ipv4Addr::new(10, 96, 0, 20),
            port: 80,
            protocol: Protocol::Tcp,
        };
        let dns = Frontend {
            address: Ipv4Addr::new(10, 96, 0, 20),
            port: 53,
            protocol: Protocol::Udp,
        };
        assert_eq!(frontends.len(), 2);
        assert_eq!(
            frontends[&http].backends,
            vec![
                backend([10, 244, 0, 2], 8080, Protocol::Tcp),
                backend([10, 244, 1, 3], 8080, Protocol::Tcp)
            ],
            "ready addresses only, sorted"
        );
        assert_eq!(
            frontends[&dns].backends,
            vec![
                backend([10, 244, 0, 2], 5353, Protocol::Udp),
                backend([10, 244, 1, 3], 5353, Protocol::Udp)
            ]
        );
        assert_eq!(frontends[&http].affinity_timeout_s, None);
    }

    #[test]
    fn a_service_without_endpoints_has_frontends_with_no_backends() {
        let svc = service(json!({"clusterIP": "10.96.0.21", "ports": [{"port": 80}]}));
        let frontends = service_frontends(&svc, None, &node());
        assert_eq!(frontends.len(), 1);
        assert!(frontends.values().all(|b| b.backends.is_empty()));
    }

    #[test]
    fn headless_external_name_and_sctp_have_no_frontends() {
        let headless = service(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
        assert!(service_frontends(&headless, None, &node()).is_empty());
        let external = service(
            json!({"type": "ExternalName", "externalName": "example.org", "clusterIP": "10.96.0.3", "ports": [{"port": 80}]}),
        );
        assert!(service_frontends(&external, None, &node()).is_empty());
        let sctp =
            service(json!({"clusterIP": "10.96.0.4", "ports": [{"port": 80, "protocol": "SCTP"}]}));
        assert!(service_frontends(&sctp, None, &node()).is_empty());
        let out_of_range = service(json!({"clusterIP": "10.96.0.5", "ports": [{"port": 70000}]}));
        assert!(service_frontends(&out_of_range, None, &node()).is_empty());
    }

    #[test]
    fn client_ip_affinity_takes_its_timeout_or_kubernetes_default() {
        let svc = service(
            json!({"clusterIP": "10.96.0.22", "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}, "ports": [{"port": 80}]}),
        );
        let frontends = service_frontends(&svc, None, &node());
        assert_eq!(
            frontends.values().next().unwrap().affinity_timeout_s,
            Some(60)
        );
        let svc = service(
            json!({"clusterIP": "10.96.0.22", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}),
        );
        let frontends = service_frontends(&svc, None, &node());
        assert_eq!(
            frontends.values().next().unwrap().affinity_timeout_s,
            Some(DEFAULT_AFFINITY_TIMEOUT_S)
        );
    }

    #[test]
    fn node_ports_listen_on_every_node_address_and_local_policies_keep_to_this_node() {
        let svc = service(json!({"type": "NodePort", "clusterIP": "10.96.0.30",
            "externalTrafficPolicy": "Local",
            "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}));
        let eps = endpoints(json!([{
            "addresses": [{"ip": "10.244.0.2", "nodeName": "node-a"}, {"ip": "10.244.1.2", "nodeName": "node-b"}],
            "ports": [{"port": 8080}],
        }]));
        let frontends = service_frontends(&svc, Some(&eps), &node());
        let at = |address: Ipv4Addr, port: u16| Frontend {
            address,
            port,
            protocol: Protocol::Tcp,
        };
        assert_eq!(frontends.len(), 3, "{frontends:?}");
        assert_eq!(
            frontends[&at(Ipv4Addr::new(10, 96, 0, 30), 80)]
                .backends
                .len(),
            2,
            "the ClusterIP keeps every endpoint"
        );
        for address in [Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::LOCALHOST] {
            assert_eq!(
                frontends[&at(address, 30080)].backends,
                vec![backend([10, 244, 0, 2], 8080, Protocol::Tcp)],
                "externalTrafficPolicy: Local"
            );
        }
        let internal = service(
            json!({"clusterIP": "10.96.0.31", "internalTrafficPolicy": "Local",
            "ports": [{"port": 80, "targetPort": 8080}]}),
        );
        let frontends = service_frontends(&internal, Some(&eps), &node());
        assert_eq!(
            frontends.values().next().unwrap().backends,
            vec![backend([10, 244, 0, 2], 8080, Protocol::Tcp)]
        );
    }
}
