//! discovery.k8s.io/v1 EndpointSlices, checked as Kubernetes' `ValidateEndpointSlice` checks
//! them: a known address type (which never changes), at most 1000 endpoints of 1 to 100
//! addresses of that type each, at most 20000 ports with unique names and known protocols.

use std::collections::BTreeSet;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use skiff_api::names::NameRule;

use crate::apiserver::field_error::FieldError;

use super::IMMUTABLE_MSG;
use super::metadata::{object_meta, object_meta_update};

const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 20_000;

/// An EndpointSlice.
pub fn endpoint_slice(slice: &EndpointSlice) -> Vec<FieldError> {
    let mut errs = object_meta(&slice.metadata, true, NameRule::Dns1123Subdomain);
    let address_type = slice.address_type.as_str();
    if address_type.is_empty() {
        errs.push(FieldError::required("addressType", ""));
    } else if !matches!(address_type, "IPv4" | "IPv6" | "FQDN") {
        errs.push(FieldError::not_supported(
            "addressType",
            address_type,
            &["FQDN", "IPv4", "IPv6"],
        ));
    }
    if slice.endpoints.len() > MAX_ENDPOINTS {
        errs.push(FieldError::too_many(
            "endpoints",
            slice.endpoints.len(),
            MAX_ENDPOINTS,
        ));
    }
    for (i, endpoint) in slice.endpoints.iter().enumerate() {
        let path = format!("endpoints[{i}].addresses");
        match endpoint.addresses.len() {
            0 => errs.push(FieldError::required(
                &path,
                "must contain at least 1 address",
            )),
            n if n > MAX_ADDRESSES => {
                errs.push(FieldError::too_many(&path, n, MAX_ADDRESSES));
            }
            _ => {}
        }
        for (j, address) in endpoint.addresses.iter().enumerate() {
            let valid = match address_type {
                "IPv4" => address.parse::<std::net::Ipv4Addr>().is_ok(),
                "IPv6" => address.parse::<std::net::Ipv6Addr>().is_ok(),
                _ => skiff_api::names::is_dns1123_subdomain(address).is_empty(),
            };
            if !valid {
                errs.push(FieldError::invalid(
                    format!("{path}[{j}]"),
                    address,
                    match address_type {
                        "IPv4" => "must be a valid IPv4 address",
                        "IPv6" => "must be a valid IPv6 address",
                        _ => "must be a valid DNS-1123 subdomain",
                    },
                ));
            }
        }
    }
    let ports = slice.ports.as_deref().unwrap_or_default();
    if ports.len() > MAX_PORTS {
        errs.push(FieldError::too_many("ports", ports.len(), MAX_PORTS));
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let name = port.name.as_deref().unwrap_or_default();
        if !names.insert(name) {
            errs.push(FieldError::duplicate(format!("ports[{i}].name"), name));
        }
        if let Some(protocol) = port.protocol.as_deref()
            && !matches!(protocol, "TCP" | "UDP" | "SCTP")
        {
            errs.push(FieldError::not_supported(
                format!("ports[{i}].protocol"),
                protocol,
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
    errs
}

/// EndpointSlice update rules: metadata, and the address type does not change.
pub fn endpoint_slice_update(old: &EndpointSlice, new: &EndpointSlice) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    if old.address_type != new.address_type {
        errs.push(FieldError::invalid(
            "addressType",
            &new.address_type,
            IMMUTABLE_MSG,
        ));
    }
    errs
}
