//! ConfigMaps and Secrets (their data keys) and ServiceAccounts: the objects a pod mounts
//! or runs as.

use skiff_api::names::NameRule;

use crate::apiserver::field_error::FieldError;

use super::metadata::object_meta;

/// Data keys of ConfigMaps and Secrets: `[-._a-zA-Z0-9]+`, at most 253 characters.
fn config_keys<'a>(
    errs: &mut Vec<FieldError>,
    field: &str,
    keys: impl Iterator<Item = &'a String>,
) {
    for key in keys {
        let valid = !key.is_empty()
            && key.len() <= 253
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && key != "."
            && key != "..";
        if !valid {
            errs.push(FieldError::invalid(
                format!("{field}[{key}]"),
                key,
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ));
        }
    }
}

/// A ConfigMap: a valid name and data keys, no key in both `data` and `binaryData`.
pub fn config_map(cm: &k8s_openapi::api::core::v1::ConfigMap) -> Vec<FieldError> {
    let mut errs = object_meta(&cm.metadata, true, NameRule::Dns1123Subdomain);
    config_keys(&mut errs, "data", cm.data.iter().flat_map(|d| d.keys()));
    config_keys(
        &mut errs,
        "binaryData",
        cm.binary_data.iter().flat_map(|d| d.keys()),
    );
    if let (Some(data), Some(binary)) = (&cm.data, &cm.binary_data) {
        for key in data.keys().filter(|k| binary.contains_key(*k)) {
            errs.push(FieldError::invalid(
                format!("data[{key}]"),
                key,
                "duplicate of key present in binaryData",
            ));
        }
    }
    errs
}

/// A Secret: a valid name and data keys.
pub fn secret(s: &k8s_openapi::api::core::v1::Secret) -> Vec<FieldError> {
    let mut errs = object_meta(&s.metadata, true, NameRule::Dns1123Subdomain);
    config_keys(&mut errs, "data", s.data.iter().flat_map(|d| d.keys()));
    config_keys(
        &mut errs,
        "stringData",
        s.string_data.iter().flat_map(|d| d.keys()),
    );
    errs
}

/// A ServiceAccount: a valid name.
pub fn service_account(sa: &k8s_openapi::api::core::v1::ServiceAccount) -> Vec<FieldError> {
    object_meta(&sa.metadata, true, NameRule::Dns1123Subdomain)
}
