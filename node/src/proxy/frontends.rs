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
}

/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
const DEFAULT_AFFINITY_TIMEOUT_S: u32 = 10_800;

/// The frontends of `service` and what each should do, given its `endpoints`. A headless
/// Service (`clusterIP: None`), an ExternalName one or one without an IPv4 ClusterIP has
/// none; ports whose protocol the hooks do not translate (SCTP) are left out.
pub fn service_frontends(
    service: &Service,
    endpoints: Option<&Endpoints>,
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
        let frontend = Frontend {
            address,
            port: service_port,
            protocol,
        };
        let mut backends = ready_backends(endpoints, port.name.as_deref(), protocol);
        backends.sort();
        backends.dedup();
        frontends.insert(
            frontend,
            Balancing {
                backends,
                affinity_timeout_s,
            },
        );
    }
    frontends
}

/// The ready addresses of `endpoints` with the port named `port_name` (the endpoints
/// controller names each Endpoints port after its Service port; an unnamed single port
/// matches an unnamed one) and `protocol`.
fn ready_backends(
    endpoints: Option<&Endpoints>,
    port_name: Option<&str>,
    protocol: Protocol,
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
            if let Ok(ip) = address.ip.parse::<Ipv4Addr>() {
                backends.push(BackendAddress {
                    address: ip,
                    port: target_port,
                    protocol,
                });
            }
        }
    }
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
        let frontends = service_frontends(&svc, Some(&eps));
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
        let frontends = service_frontends(&svc, None);
        assert_eq!(frontends.len(), 1);
        assert!(frontends.values().all(|b| b.backends.is_empty()));
    }

    #[test]
    fn headless_external_name_and_sctp_have_no_frontends() {
        let headless = service(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
        assert!(service_frontends(&headless, None).is_empty());
        let external = service(
            json!({"type": "ExternalName", "externalName": "example.org", "clusterIP": "10.96.0.3", "ports": [{"port": 80}]}),
        );
        assert!(service_frontends(&external, None).is_empty());
        let sctp =
            service(json!({"clusterIP": "10.96.0.4", "ports": [{"port": 80, "protocol": "SCTP"}]}));
        assert!(service_frontends(&sctp, None).is_empty());
        let out_of_range = service(json!({"clusterIP": "10.96.0.5", "ports": [{"port": 70000}]}));
        assert!(service_frontends(&out_of_range, None).is_empty());
    }

    #[test]
    fn client_ip_affinity_takes_its_timeout_or_kubernetes_default() {
        let svc = service(
            json!({"clusterIP": "10.96.0.22", "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}, "ports": [{"port": 80}]}),
        );
        let frontends = service_frontends(&svc, None);
        assert_eq!(
            frontends.values().next().unwrap().affinity_timeout_s,
            Some(60)
        );
        let svc = service(
            json!({"clusterIP": "10.96.0.22", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}),
        );
        let frontends = service_frontends(&svc, None);
        assert_eq!(
            frontends.values().next().unwrap().affinity_timeout_s,
            Some(DEFAULT_AFFINITY_TIMEOUT_S)
        );
    }
}
