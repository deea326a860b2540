//! The answers for names under the cluster domain, as CoreDNS's kubernetes plugin gives them
//! (its `pods insecure` mode for pod names). Pure: a name and a type in, records out, read
//! from the Services and Endpoints [`Objects`] holds.
//!
//! - `<service>.<ns>.svc.<domain>`: A, the ClusterIP; for a headless Service the ready
//!   addresses of its Endpoints; CNAME for an ExternalName Service;
//! - `<hostname>.<service>.<ns>.svc.<domain>`: A, one ready address of a headless Service
//!   (its `hostname`, or its IP with dashes);
//! - `_<port>._<proto>.<service>.<ns>.svc.<domain>`: SRV for a named port (the target is the
//!   Service's name, or each endpoint's of a headless one), with the A records as additionals;
//! - `<a-b-c-d>.<ns>.pod.<domain>`: A, that IP.
//!
//! A name that exists without a record of the type asked (AAAA for a Service) has no data;
//! any other name under the domain does not exist (NXDOMAIN).

use std::net::Ipv4Addr;
use std::sync::Arc;

use hickory_server::proto::rr::rdata::{A, CNAME, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};

/// Seconds a client may keep an answer (CoreDNS's kubernetes plugin's default).
pub const TTL: u32 = 5;

/// The Services and Endpoints answers are read from.
pub trait Objects {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>>;
    fn endpoints(&self, namespace: &str, name: &str) -> Option<Arc<Endpoints>>;
}

/// What a name under the cluster domain has.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// Records of the type asked (or a CNAME), and the addresses of SRV targets.
    Records {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// The name exists, but has no record of the type asked.
    NoData,
    /// The name does not exist.
    NxDomain,
}

/// The cluster domain (`cluster.local`) and its SOA, which negative answers carry.
pub struct Zone {
    origin: LowerName,
    soa: Record,
}

impl Zone {
    /// The zone of `domain`; an error for a name that is not one.
    pub fn new(domain: &str) -> Result<Self, String> {
        let origin = Name::from_ascii(domain)
            .map_err(|err| format!("cluster domain {domain:?}: {err}"))?
            .to_lowercase();
        let mut origin = origin;
        origin.set_fqdn(true);
        let label = |prefix: &str| {
            Name::from_ascii(prefix)
                .and_then(|name| name.append_domain(&origin))
                .map_err(|err| format!("cluster domain {domain:?}: {err}"))
        };
        let soa = SOA::new(
            label("ns.dns")?,
            label("hostmaster")?,
            1,
            7200,
            1800,
            86400,
            TTL,
        );
        Ok(Self {
            soa: Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)),
            origin: LowerName::new(&origin),
        })
    }

    /// Whether `name` is the domain or under it.
    pub fn contains(&self, name: &LowerName) -> bool {
        self.origin.zone_of(name)
    }

    /// The zone's SOA record (the authority of negative answers).
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// What `name` (under the domain) has of `record_type`.
    pub fn answer(
        &self,
        name: &LowerName,
        record_type: RecordType,
        objects: &impl Objects,
    ) -> Answer {
        let depth =
            usize::from(name.num_labels()).saturating_sub(usize::from(self.origin.num_labels()));
        // The labels in front of the domain, lower-cased, first label first.
        let labels: Vec<String> = Name::from(name)
            .iter()
            .take(depth)
            .map(|label| String::from_utf8_lossy(label).to_ascii_lowercase())
            .collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let owner = Name::from(name);
        match labels.as_slice() {
            [] => match record_type {
                RecordType::SOA => records(vec![self.soa.clone()], Vec::new()),
                _ => Answer::NoData,
            },
            ["svc"] | [_, "svc"] | ["pod"] | [_, "pod"] => Answer::NoData,
            [service, namespace, "svc"] => {
                self.service(owner, namespace, service, record_type, objects)
            }
            [port, protocol, service, namespace, "svc"]
                if port.starts_with('_') && protocol.starts_with('_') =>
            {
                self.srv(
                    owner,
                    namespace,
                    service,
                    &port[1..],
                    &protocol[1..],
                    record_type,
                    objects,
                )
            }
            [host, service, namespace, "svc"] => {
                self.endpoint(owner, namespace, service, host, record_type, objects)
            }
            [dashed, _namespace, "pod"] => match dashed_ip(dashed) {
                Some(ip) if record_type == RecordType::A => {
                    records(vec![a_record(owner, ip)], Vec::new())
                }
                Some(_) => Answer::NoData,
                None => Answer::NxDomain,
            },
            _ => Answer::NxDomain,
        }
    }

    /// `<service>.<namespace>.svc.<domain>`.
    fn service(
        &self,
        owner: Name,
        namespace: &str,
        name: &str,
        record_type: RecordType,
        objects: &impl Objects,
    ) -> Answer {
        let Some(service) = objects.service(namespace, name) else {
            return Answer::NxDomain;
        };
        let spec = service.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") {
            let Some(target) = spec
                .external_name
                .as_deref()
                .and_then(|n| Name::from_ascii(n).ok())
                .map(|mut n| {
                    n.set_fqdn(true);
                    n
                })
            else {
                return Answer::NxDomain;
            };
            return records(
                vec![Record::from_rdata(owner, TTL, RData::CNAME(CNAME(target)))],
                Vec::new(),
            );
        }
        let addresses = match cluster_ip(&service) {
            ClusterIp::Address(ip) => vec![ip],
            ClusterIp::Headless => ready_addresses(objects.endpoints(namespace, name).as_deref())
                .iter()
                .filter_map(|a| a.ip.parse().ok())
                .collect(),
            ClusterIp::Other => Vec::new(),
        };
        if addresses.is_empty() {
            // CoreDNS: a headless Service without ready endpoints has no name.
            return Answer::NxDomain;
        }
        match record_type {
            RecordType::A => records(
                addresses
                    .into_iter()
                    .map(|ip| a_record(owner.clone(), ip))
                    .collect(),
                Vec::new(),
            ),
            _ => Answer::NoData,
        }
    }

    /// `<host>.<service>.<namespace>.svc.<domain>`: one endpoint of a headless Service.
    fn endpoint(
        &self,
        owner: Name,
        namespace: &str,
        service: &str,
        host: &str,
        record_type: RecordType,
        objects: &impl Objects,
    ) -> Answer {
        let headless = objects
            .service(namespace, service)
            .is_some_and(|s| matches!(cluster_ip(&s), ClusterIp::Headless));
        if !headless {
            return Answer::NxDomain;
        }
        let found = ready_addresses(objects.endpoints(namespace, service).as_deref())
            .into_iter()
            .find(|a| endpoint_host(a) == host)
            .and_then(|a| a.ip.parse::<Ipv4Addr>().ok());
        match (found, record_type) {
            (Some(ip), RecordType::A) => records(vec![a_record(owner, ip)], Vec::new()),
            (Some(_), _) => Answer::NoData,
            (None, _) => Answer::NxDomain,
        }
    }

    /// `_<port>._<protocol>.<service>.<namespace>.svc.<domain>`.
    #[allow(clippy::too_many_arguments)]
    fn srv(
        &self,
        owner: Name,
        namespace: &str,
        service_name: &str,
        port_name: &str,
        protocol: &str,
        record_type: RecordType,
        objects: &impl Objects,
    ) -> Answer {
        let Some(service) = objects.service(namespace, service_name) else {
            return Answer::NxDomain;
        };
        let spec = service.spec.clone().unwrap_or_default();
        let Some(port) = spec.ports.iter().flatten().find(|p| {
            p.name.as_deref() == Some(port_name)
                && p.protocol
                    .as_deref()
                    .unwrap_or("TCP")
                    .eq_ignore_ascii_case(protocol)
        }) else {
            return Answer::NxDomain;
        };
        if record_type != RecordType::SRV {
            return Answer::NoData;
        }
        let Ok(service_domain) = Name::from_ascii(format!("{service_name}.{namespace}.svc"))
            .and_then(|n| n.append_domain(&Name::from(&self.origin)))
        else {
            return Answer::NxDomain;
        };
        // (target, port, address) of each SRV record.
        let targets: Vec<(Name, u16, Ipv4Addr)> = match cluster_ip(&service) {
            ClusterIp::Address(ip) => u16::try_from(port.port)
                .map(|p| vec![(service_domain.clone(), p, ip)])
                .unwrap_or_default(),
            ClusterIp::Headless => {
                let endpoints = objects.endpoints(namespace, service_name);
                let mut targets = Vec::new();
                for subset in endpoints.iter().flat_map(|e| e.subsets.iter().flatten()) {
                    let Some(endpoint_port) = subset.ports.iter().flatten().find(|p| {
                        p.name.as_deref() == Some(port_name)
                            && p.protocol
                                .as_deref()
                                .unwrap_or("TCP")
                                .eq_ignore_ascii_case(protocol)
                    }) else {
                        continue;
                    };
                    let Ok(number) = u16::try_from(endpoint_port.port) else {
                        continue;
                    };
                    for address in subset.addresses.iter().flatten() {
                        let (Ok(ip), Ok(target)) = (
                            address.ip.parse::<Ipv4Addr>(),
                            Name::from_ascii(endpoint_host(address))
                                .and_then(|n| n.append_domain(&service_domain)),
                        ) else {
                            continue;
                        };
                        targets.push((target, number, ip));
                    }
                }
                targets
            }
            ClusterIp::Other => Vec::new(),
        };
        if targets.is_empty() {
            return Answer::NxDomain;
        }
        // CoreDNS spreads the weight evenly over the records.
        let weight = u16::try_from(100 / targets.len()).unwrap_or(1).max(1);
        let answers = targets
            .iter()
            .map(|(target, port, _)| {
                Record::from_rdata(
                    owner.clone(),
                    TTL,
                    RData::SRV(SRV::new(0, weight, *port, target.clone())),
                )
            })
            .collect();
        let additionals = targets
            .into_iter()
            .map(|(target, _, ip)| a_record(target, ip))
            .collect();
        records(answers, additionals)
    }
}

enum ClusterIp {
    Address(Ipv4Addr),
    Headless,
    /// No IPv4 ClusterIP (not allocated yet, or IPv6).
    Other,
}

fn cluster_ip(service: &Service) -> ClusterIp {
    match service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) {
        Some("None") => ClusterIp::Headless,
        Some(ip) => ip.parse().map_or(ClusterIp::Other, ClusterIp::Address),
        None => ClusterIp::Other,
    }
}

/// The ready addresses of every subset.
fn ready_addresses(endpoints: Option<&Endpoints>) -> Vec<&EndpointAddress> {
    endpoints
        .iter()
        .flat_map(|e| e.subsets.iter().flatten())
        .flat_map(|s| s.addresses.iter().flatten())
        .collect()
}

/// An endpoint's name within its Service: its `hostname`, else its IP with dashes.
fn endpoint_host(address: &EndpointAddress) -> String {
    address
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| address.ip.replace(['.', ':'], "-"))
}

/// `10-244-1-5` as 10.244.1.5.
fn dashed_ip(label: &str) -> Option<Ipv4Addr> {
    label.replace('-', ".").parse().ok()
}

fn a_record(owner: Name, ip: Ipv4Addr) -> Record {
    Record::from_rdata(owner, TTL, RData::A(A(ip)))
}

fn records(answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
    Answer::Records {
        answers,
        additionals,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    #[derive(Default)]
    struct Fake {
        services: HashMap<(String, String), Arc<Service>>,
        endpoints: HashMap<(String, String), Arc<Endpoints>>,
    }

    impl Objects for Fake {
        fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
            self.services.get(&(namespace.into(), name.into())).cloned()
        }
        fn endpoints(&self, namespace: &str, name: &str) -> Option<Arc<Endpoints>> {
            self.endpoints
                .get(&(namespace.into(), name.into()))
                .cloned()
        }
    }

    impl Fake {
        fn with(mut self, service: serde_json::Value, endpoints: serde_json::Value) -> Self {
            let service: Service = serde_json::from_value(service).expect("service");
            let key = (
                service.metadata.namespace.clone().unwrap_or_default(),
                service.metadata.name.clone().unwrap_or_default(),
            );
            if !endpoints.is_null() {
                let endpoints: Endpoints = serde_json::from_value(endpoints).expect("endpoints");
                self.endpoints.insert(key.clone(), Arc::new(endpoints));
            }
            self.services.insert(key, Arc::new(service));
            self
        }
    }

    fn cluster() -> Fake {
        Fake::default()
            .with(
                json!({"metadata": {"name": "web", "namespace": "shop"},
                       "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
                json!({"metadata": {"name": "web", "namespace": "shop"},
                       "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"name": "http", "port": 8080}]}]}),
            )
            .with(
                json!({"metadata": {"name": "db", "namespace": "shop"},
                       "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
                json!({"metadata": {"name": "db", "namespace": "shop"},
                       "subsets": [{"addresses": [{"ip": "10.244.1.7", "hostname": "db-0"}, {"ip": "10.244.2.8"}],
                                    "notReadyAddresses": [{"ip": "10.244.2.9"}],
                                    "ports": [{"name": "pg", "port": 5432}]}]}),
            )
            .with(
                json!({"metadata": {"name": "empty", "namespace": "shop"},
                       "spec": {"clusterIP": "None"}}),
                json!({"metadata": {"name": "empty", "namespace": "shop"}}),
            )
            .with(
                json!({"metadata": {"name": "away", "namespace": "shop"},
                       "spec": {"type": "ExternalName", "externalName": "example.org"}}),
                serde_json::Value::Null,
            )
    }

    fn ask(name: &str, record_type: RecordType) -> Answer {
        let zone = Zone::new("cluster.local").expect("zone");
        let name = LowerName::new(&Name::from_ascii(name).expect("name"));
        assert!(zone.contains(&name));
        zone.answer(&name, record_type, &cluster())
    }

    /// The answer's records as text (`<data>`), and the additionals'.
    fn data(answer: Answer) -> (Vec<String>, Vec<String>) {
        match answer {
            Answer::Records {
                answers,
                additionals,
            } => {
                let text = |records: Vec<Record>| {
                    records
                        .iter()
                        .map(|r| format!("{} {}", r.name, r.data))
                        .collect()
                };
                (text(answers), text(additionals))
            }
            other => panic!("expected records, got {other:?}"),
        }
    }

    #[test]
    fn a_service_name_is_its_cluster_ip_and_has_no_ipv6_address() {
        assert_eq!(
            data(ask("web.shop.svc.cluster.local.", RecordType::A)).0,
            ["web.shop.svc.cluster.local. 10.96.0.20"]
        );
        // Upper case asks for the same name.
        assert_eq!(
            data(ask("WEB.Shop.svc.cluster.local.", RecordType::A))
                .0
                .len(),
            1
        );
        assert_eq!(
            ask("web.shop.svc.cluster.local.", RecordType::AAAA),
            Answer::NoData
        );
        assert_eq!(
            ask("nothing.shop.svc.cluster.local.", RecordType::A),
            Answer::NxDomain
        );
        assert_eq!(
            ask("web.other.svc.cluster.local.", RecordType::A),
            Answer::NxDomain
        );
    }

    #[test]
    fn a_headless_service_is_its_ready_endpoints_each_by_host_name() {
        let (mut answers, _) = data(ask("db.shop.svc.cluster.local.", RecordType::A));
        answers.sort();
        assert_eq!(
            answers,
            [
                "db.shop.svc.cluster.local. 10.244.1.7",
                "db.shop.svc.cluster.local. 10.244.2.8"
            ]
        );
        assert_eq!(
            data(ask("db-0.db.shop.svc.cluster.local.", RecordType::A)).0,
            ["db-0.db.shop.svc.cluster.local. 10.244.1.7"]
        );
        assert_eq!(
            data(ask("10-244-2-8.db.shop.svc.cluster.local.", RecordType::A)).0,
            ["10-244-2-8.db.shop.svc.cluster.local. 10.244.2.8"]
        );
        // Not ready: no name.
        assert_eq!(
            ask("10-244-2-9.db.shop.svc.cluster.local.", RecordType::A),
            Answer::NxDomain
        );
        assert_eq!(
            ask("empty.shop.svc.cluster.local.", RecordType::A),
            Answer::NxDomain
        );
        // Endpoint names are a headless Service's only.
        assert_eq!(
            ask("10-244-1-5.web.shop.svc.cluster.local.", RecordType::A),
            Answer::NxDomain
        );
    }

    #[test]
    fn srv_records_name_the_service_or_each_endpoint_with_their_addresses() {
        let (answers, additionals) = data(ask(
            "_http._tcp.web.shop.svc.cluster.local.",
            RecordType::SRV,
        ));
        assert_eq!(
            answers,
            ["_http._tcp.web.shop.svc.cluster.local. 0 100 80 web.shop.svc.cluster.local."]
        );
        assert_eq!(additionals, ["web.shop.svc.cluster.local. 10.96.0.20"]);
        let (_, additionals) = data(ask(
            "_dns._udp.web.shop.svc.cluster.local.",
            RecordType::SRV,
        ));
        assert_eq!(additionals.len(), 1);
        assert_eq!(
            ask("_dns._tcp.web.shop.svc.cluster.local.", RecordType::SRV),
            Answer::NxDomain
        );

        let (mut answers, _) = data(ask("_pg._tcp.db.shop.svc.cluster.local.", RecordType::SRV));
        answers.sort();
        assert_eq!(
            answers,
            [
                "_pg._tcp.db.shop.svc.cluster.local. 0 50 5432 10-244-2-8.db.shop.svc.cluster.local.",
                "_pg._tcp.db.shop.svc.cluster.local. 0 50 5432 db-0.db.shop.svc.cluster.local.",
            ]
        );
    }

    #[test]
    fn external_names_pods_and_unknown_names() {
        assert_eq!(
            data(ask("away.shop.svc.cluster.local.", RecordType::A)).0,
            ["away.shop.svc.cluster.local. example.org."]
        );
        assert_eq!(
            data(ask("10-244-3-4.shop.pod.cluster.local.", RecordType::A)).0,
            ["10-244-3-4.shop.pod.cluster.local. 10.244.3.4"]
        );
        assert_eq!(
            ask("not-an-ip.shop.pod.cluster.local.", RecordType::A),
            Answer::NxDomain
        );
        assert_eq!(
            ask("shop.svc.cluster.local.", RecordType::A),
            Answer::NoData
        );
        assert_eq!(
            ask("a.b.c.d.e.f.svc.cluster.local.", RecordType::A),
            Answer::NxDomain
        );
        assert!(matches!(
            ask("cluster.local.", RecordType::SOA),
            Answer::Records { .. }
        ));
        let zone = Zone::new("cluster.local").expect("zone");
        assert!(!zone.contains(&LowerName::new(
            &Name::from_ascii("example.org.").expect("name")
        )));
        assert!(Zone::new("bad..domain").is_err());
    }
}
