//! Services (ports, types, cluster IPs) and Endpoints.

use std::collections::HashSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Endpoints, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use skiff_api::names::{NameRule, is_dns1123_label, is_dns1123_subdomain};

use crate::apiserver::field_error::FieldError;

use super::metadata::{labels, object_meta, object_meta_update};
use super::pod::PROTOCOLS;
use super::{IP_MSG, go_string_slice, ip, port_num_or_name, port_number, push_all, supported};

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

fn service_port(
    errs: &mut Vec<FieldError>,
    port: &ServicePort,
    path: &str,
    require_name: bool,
    names: &mut HashSet<String>,
) {
    let name = port.name.as_deref().unwrap_or("");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !name.is_empty() {
        push_all(errs, &format!("{path}.name"), name, is_dns1123_label(name));
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), name));
        }
    }
    port_number(errs, &format!("{path}.port"), port.port);
    supported(
        errs,
        &format!("{path}.protocol"),
        port.protocol.as_deref(),
        PROTOCOLS,
    );
    match &port.target_port {
        // Unset (or zero) is defaulted to `port`.
        None | Some(IntOrString::Int(0)) => {}
        Some(IntOrString::String(s)) if s.is_empty() => {}
        Some(target) => port_num_or_name(errs, &format!("{path}.targetPort"), target),
    }
    if let Some(node_port) = port.node_port
        && node_port != 0
    {
        port_number(errs, &format!("{path}.nodePort"), node_port);
    }
}

/// A Service on create: DNS-1035 name, a supported type, ports (required unless the Service is
/// headless or ExternalName, named when there are several, unique), a valid selector,
/// ClusterIPs, session affinity and traffic policies.
pub fn service(svc: &Service) -> Vec<FieldError> {
    let mut errs = object_meta(&svc.metadata, true, NameRule::Dns1035Label);
    let default_spec = Default::default();
    let spec = svc.spec.as_ref().unwrap_or(&default_spec);
    let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
    supported(&mut errs, "spec.type", Some(ty), SERVICE_TYPES);
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
    let headless = cluster_ip == "None";
    let ports = spec.ports.as_deref().unwrap_or_default();

    if ty == "ExternalName" {
        let cname = spec.external_name.as_deref().unwrap_or("");
        let cname = cname.strip_suffix('.').unwrap_or(cname);
        if cname.is_empty() {
            errs.push(FieldError::required("spec.externalName", ""));
        } else {
            push_all(
                &mut errs,
                "spec.externalName",
                cname,
                is_dns1123_subdomain(cname),
            );
        }
        if !cluster_ip.is_empty() {
            errs.push(FieldError::forbidden(
                "spec.clusterIP",
                "may not be set for ExternalName services",
            ));
        }
    } else if ports.is_empty() && !headless {
        errs.push(FieldError::required("spec.ports", ""));
    }
    if headless && matches!(ty, "NodePort" | "LoadBalancer") {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            "None",
            format!("may not be set to 'None' for {ty} services"),
        ));
    }

    let mut names = HashSet::new();
    let mut seen = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        service_port(&mut errs, port, &path, ports.len() > 1, &mut names);
        if ty == "ClusterIP" && port.node_port.unwrap_or(0) != 0 {
            errs.push(FieldError::forbidden(
                format!("{path}.nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
        let key = format!(
            "{}/{}",
            port.port,
            port.protocol.as_deref().unwrap_or("TCP")
        );
        if !seen.insert(key.clone()) {
            errs.push(FieldError::duplicate(path, key));
        }
    }
    errs.extend(labels(spec.selector.as_ref(), "spec.selector"));

    // ClusterIPs: "None", empty (allocated later) or addresses.
    let cluster_ips = spec.cluster_ips.as_deref().unwrap_or_default();
    if cluster_ips.is_empty() {
        if !cluster_ip.is_empty() && !headless {
            ip(&mut errs, "spec.clusterIP", cluster_ip);
        }
    } else {
        if !cluster_ip.is_empty() && cluster_ips[0] != cluster_ip {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                go_string_slice(cluster_ips),
                "must match `clusterIP`",
            ));
        }
        for (i, addr) in cluster_ips.iter().enumerate() {
            if !(i == 0 && addr == "None") {
                ip(&mut errs, &format!("spec.clusterIPs[{i}]"), addr);
            }
        }
    }
    for (i, addr) in spec.external_ips.iter().flatten().enumerate() {
        ip(&mut errs, &format!("spec.externalIPs[{i}]"), addr);
    }
    for (i, family) in spec.ip_families.iter().flatten().enumerate() {
        supported(
            &mut errs,
            &format!("spec.ipFamilies[{i}]"),
            Some(family),
            &["IPv4", "IPv6"],
        );
    }
    supported(
        &mut errs,
        "spec.ipFamilyPolicy",
        spec.ip_family_policy.as_deref(),
        &["SingleStack", "PreferDualStack", "RequireDualStack"],
    );

    supported(
        &mut errs,
        "spec.sessionAffinity",
        spec.session_affinity.as_deref(),
        &["ClientIP", "None"],
    );
    match spec.session_affinity.as_deref() {
        Some("ClientIP") => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            if let Some(t) = timeout
                && !(1..=86400).contains(&t)
            {
                errs.push(FieldError::invalid(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    t,
                    "must be greater than 0 and less than 86400",
                ));
            }
        }
        Some("None") if spec.session_affinity_config.is_some() => {
            errs.push(FieldError::forbidden(
                "spec.sessionAffinityConfig",
                "must not be set when session affinity is None",
            ));
        }
        _ => {}
    }
    supported(
        &mut errs,
        "spec.internalTrafficPolicy",
        spec.internal_traffic_policy.as_deref(),
        &["Cluster", "Local"],
    );
    if let Some(policy) = spec.external_traffic_policy.as_deref() {
        if !matches!(ty, "NodePort" | "LoadBalancer") {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                policy,
                "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
            ));
        } else {
            supported(
                &mut errs,
                "spec.externalTrafficPolicy",
                Some(policy),
                &["Cluster", "Local"],
            );
        }
    }
    errs
}

/// The ClusterIPs a Service holds: `clusterIPs`, or `clusterIP` when that list is empty.
fn service_cluster_ips(svc: &Service) -> Vec<String> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    match spec.cluster_ips.as_deref() {
        Some(ips) if !ips.is_empty() => ips.to_vec(),
        _ => spec
            .cluster_ip
            .iter()
            .filter(|ip| !ip.is_empty())
            .cloned()
            .collect(),
    }
}

/// Kubernetes' `ValidateServiceUpdate` rules: the primary ClusterIP may not change or be unset
/// once allocated (unless the Service moves to or from ExternalName).
pub fn service_update(old: &Service, new: &Service) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    let ty = |s: &Service| {
        s.spec
            .as_ref()
            .and_then(|s| s.type_.clone())
            .unwrap_or_default()
    };
    if ty(old) == "ExternalName" || ty(new) == "ExternalName" {
        return errs;
    }
    let (old_ips, new_ips) = (service_cluster_ips(old), service_cluster_ips(new));
    if old_ips.first().is_some_and(|ip| ip == "None")
        && new_ips.first().is_some_and(|ip| ip == "None")
    {
        return errs;
    }
    match (old_ips.first(), new_ips.first()) {
        (Some(_), None) => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            go_string_slice(&new_ips),
            "primary clusterIP can not be unset",
        )),
        (Some(o), Some(n)) if o != n => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            go_string_slice(&new_ips),
            "may not change once set",
        )),
        _ => {}
    }
    if old_ips.len() == new_ips.len() {
        for (i, (o, n)) in old_ips.iter().zip(&new_ips).enumerate().skip(1) {
            if o != n {
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    go_string_slice(&new_ips),
                    "may not change once set",
                ));
            }
        }
    }
    errs
}

/// Endpoint addresses may not be special (unspecified, loopback, link-local, multicast).
fn endpoint_ip(errs: &mut Vec<FieldError>, field: &str, value: &str) {
    let Ok(addr) = value.parse::<IpAddr>() else {
        errs.push(FieldError::invalid(field, value, IP_MSG));
        return;
    };
    let problem = if addr.is_unspecified() {
        Some("may not be unspecified (0.0.0.0)")
    } else if addr.is_loopback() {
        Some("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    } else if addr.is_multicast() {
        Some("may not be in the multicast range (224.0.0.0/4, ff00::/8)")
    } else if match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    } {
        Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    } else {
        None
    };
    if let Some(msg) = problem {
        errs.push(FieldError::invalid(field, value, msg));
    }
}

/// Endpoints: DNS-1123 subdomain name; each address a usable IP (not loopback, link-local,
/// multicast or unspecified) with a valid hostname and nodeName; each port a valid number
/// and protocol, named (DNS-1123 label) when a subset has several.
pub fn endpoints(ep: &Endpoints) -> Vec<FieldError> {
    let mut errs = object_meta(&ep.metadata, true, NameRule::Dns1123Subdomain);
    for (si, subset) in ep.subsets.iter().flatten().enumerate() {
        let sp = format!("subsets[{si}]");
        let lists = [
            ("addresses", &subset.addresses),
            ("notReadyAddresses", &subset.not_ready_addresses),
        ];
        for (list, addrs) in lists {
            for (ai, addr) in addrs.iter().flatten().enumerate() {
                let ap = format!("{sp}.{list}[{ai}]");
                endpoint_ip(&mut errs, &format!("{ap}.ip"), &addr.ip);
                if let Some(h) = addr.hostname.as_deref().filter(|h| !h.is_empty()) {
                    push_all(&mut errs, &format!("{ap}.hostname"), h, is_dns1123_label(h));
                }
                if let Some(n) = addr.node_name.as_deref().filter(|n| !n.is_empty()) {
                    push_all(
                        &mut errs,
                        &format!("{ap}.nodeName"),
                        n,
                        is_dns1123_subdomain(n),
                    );
                }
            }
        }
        let ports = subset.ports.as_deref().unwrap_or_default();
        let mut names = HashSet::new();
        for (pi, port) in ports.iter().enumerate() {
            let pp = format!("{sp}.ports[{pi}]");
            let name = port.name.as_deref().unwrap_or("");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(format!("{pp}.name"), ""));
            } else if !name.is_empty() {
                push_all(
                    &mut errs,
                    &format!("{pp}.name"),
                    name,
                    is_dns1123_label(name),
                );
                if !names.insert(name) {
                    errs.push(FieldError::duplicate(format!("{pp}.name"), name));
                }
            }
            port_number(&mut errs, &format!("{pp}.port"), port.port);
            supported(
                &mut errs,
                &format!("{pp}.protocol"),
                port.protocol.as_deref(),
                PROTOCOLS,
            );
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::PORT_RANGE_MSG;
    use super::super::tests::{fields, from, only};
    use super::*;
    use crate::apiserver::field_error::FieldErrorKind;

    fn service_json() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
        })
    }

    #[test]
    fn valid_services_have_no_errors() {
        let svc: Service = from(service_json());
        assert_eq!(service(&svc), vec![]);
        let mut defaulted = svc.clone();
        crate::apiserver::defaults::service(&mut defaulted);
        assert_eq!(service(&defaulted), vec![]);

        let headless: Service = from(
            json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {"clusterIP": "None", "selector": {"app": "db"}}}),
        );
        assert_eq!(service(&headless), vec![]);
        let external: Service = from(
            json!({"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "example.com."}}),
        );
        assert_eq!(service(&external), vec![]);
        let multi: Service = from(
            json!({"metadata": {"name": "multi", "namespace": "default"}, "spec": {"type": "NodePort", "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                {"name": "dns", "port": 53, "protocol": "UDP"}
            ]}}),
        );
        assert_eq!(service(&multi), vec![]);
    }

    #[test]
    fn service_name_is_dns1035() {
        let mut svc: Service = from(service_json());
        svc.metadata.name = Some("1web".into());
        let e = &service(&svc)[0];
        assert_eq!(e.field, "metadata.name");
        assert!(
            e.detail.starts_with("a DNS-1035 label must consist of"),
            "{e}"
        );
    }

    #[test]
    fn service_ports_rules() {
        let no_ports: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": {"app": "web"}}}),
        );
        assert_eq!(
            service(&no_ports),
            vec![FieldError::required("spec.ports", "")]
        );

        let svc: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"ports": [
            {"port": 0},
            {"name": "a", "port": 80, "targetPort": "Not_A_Name"},
            {"name": "a", "port": 80, "protocol": "ICMP", "nodePort": 30001}
        ], "selector": {"app": "bad value!"}, "type": "Bogus"}}),
        );
        let errs = service(&svc);
        assert_eq!(
            only(&errs, "spec.type").kind,
            FieldErrorKind::NotSupported("Bogus".into())
        );
        assert_eq!(
            only(&errs, "spec.ports[0].name").kind,
            FieldErrorKind::Required
        );
        assert_eq!(only(&errs, "spec.ports[0].port").detail, PORT_RANGE_MSG);
        assert!(errs.iter().any(|e| e.field == "spec.ports[1].targetPort"));
        assert_eq!(
            only(&errs, "spec.ports[2].name").kind,
            FieldErrorKind::Duplicate("a".into())
        );
        assert_eq!(
            only(&errs, "spec.ports[2].protocol").kind,
            FieldErrorKind::NotSupported("ICMP".into())
        );
        assert_eq!(
            only(&errs, "spec.selector").kind,
            FieldErrorKind::Invalid("bad value!".into())
        );

        let cluster_ip_node_port: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"ports": [{"port": 80, "nodePort": 30001}]}}),
        );
        assert_eq!(
            only(&service(&cluster_ip_node_port), "spec.ports[0].nodePort").kind,
            FieldErrorKind::Forbidden
        );

        let dup: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}}),
        );
        assert_eq!(
            service(&dup),
            vec![FieldError::duplicate("spec.ports[1]", "80/TCP")]
        );
    }

    #[test]
    fn service_types_and_addresses() {
        let ext: Service = from(
            json!({"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName", "clusterIP": "10.96.0.9"}}),
        );
        let errs = service(&ext);
        assert_eq!(
            only(&errs, "spec.externalName").kind,
            FieldErrorKind::Required
        );
        assert_eq!(
            only(&errs, "spec.clusterIP").kind,
            FieldErrorKind::Forbidden
        );

        let bad_ip: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.300", "ports": [{"port": 80}]}}),
        );
        assert_eq!(only(&service(&bad_ip), "spec.clusterIP").detail, IP_MSG);

        let affinity: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
                "ports": [{"port": 80}], "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}},
                "externalTrafficPolicy": "Local"
            }}),
        );
        let errs = service(&affinity);
        assert_eq!(
            fields(&errs),
            [
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                "spec.externalTrafficPolicy"
            ]
        );
    }

    #[test]
    fn service_cluster_ip_is_immutable() {
        let old: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 80}]}}),
        );
        let mut same = old.clone();
        same.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 81;
        assert_eq!(service_update(&old, &same), vec![]);

        let mut changed = old.clone();
        changed.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.11".into());
        changed.spec.as_mut().unwrap().cluster_ips = Some(vec!["10.96.0.11".into()]);
        let errs = service_update(&old, &changed);
        assert_eq!(
            only(&errs, "spec.clusterIPs[0]").to_string(),
            "spec.clusterIPs[0]: Invalid value: \"[]string{\"10.96.0.11\"}\": may not change once set"
        );

        let mut unset = old.clone();
        unset.spec.as_mut().unwrap().cluster_ip = None;
        unset.spec.as_mut().unwrap().cluster_ips = None;
        assert_eq!(
            only(&service_update(&old, &unset), "spec.clusterIPs[0]").detail,
            "primary clusterIP can not be unset"
        );

        let mut to_external = unset.clone();
        to_external.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        assert_eq!(service_update(&old, &to_external), vec![]);
    }

    #[test]
    fn endpoints_rules() {
        let ep: Endpoints = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "subsets": [{
                "addresses": [{"ip": "10.244.1.5", "nodeName": "node-1"}],
                "notReadyAddresses": [{"ip": "172.17.0.3"}],
                "ports": [{"port": 8080, "protocol": "TCP"}]
            }]}),
        );
        assert_eq!(endpoints(&ep), vec![]);
        let bad: Endpoints = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "subsets": [{
                "addresses": [{"ip": "127.0.0.1"}, {"ip": "not-an-ip"}, {"ip": "169.254.1.1"}],
                "ports": [{"port": 0}, {"name": "b", "port": 1, "protocol": "XTP"}]
            }]}),
        );
        let errs = endpoints(&bad);
        assert_eq!(
            only(&errs, "subsets[0].addresses[0].ip").detail,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)"
        );
        assert_eq!(only(&errs, "subsets[0].addresses[1].ip").detail, IP_MSG);
        assert!(
            only(&errs, "subsets[0].addresses[2].ip")
                .detail
                .contains("link-local")
        );
        assert_eq!(
            only(&errs, "subsets[0].ports[0].name").kind,
            FieldErrorKind::Required
        );
        assert_eq!(
            only(&errs, "subsets[0].ports[0].port").detail,
            PORT_RANGE_MSG
        );
        assert_eq!(
            only(&errs, "subsets[0].ports[1].protocol").kind,
            FieldErrorKind::NotSupported("XTP".into())
        );
        assert_eq!(errs.len(), 6, "{errs:#?}");
    }
}
