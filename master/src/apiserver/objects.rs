//! API objects as stored: JSON bytes without `metadata.resourceVersion`, which is the store's
//! mod revision and is put back on the way out. Keys follow Kubernetes' etcd layout.

use bytes::Bytes;
use serde_json::Value;

use super::resources::Resource;
use super::status::ApiError;
use crate::store::{KeyValue, Revision};

/// The store key of one object: `/registry/pods/<ns>/<name>` or `/registry/nodes/<name>`.
pub fn key(resource: &Resource, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if resource.namespaced => format!("/registry/{}/{ns}/{name}", resource.plural),
        _ => format!("/registry/{}/{name}", resource.plural),
    }
}

/// The key prefix of a collection: every namespace (`None`) or one.
pub fn prefix(resource: &Resource, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if resource.namespaced => format!("/registry/{}/{ns}/", resource.plural),
        _ => format!("/registry/{}/", resource.plural),
    }
}

/// Encode an object for the store: resourceVersion is dropped (the store's revision is the truth).
pub fn encode(mut object: Value) -> Result<Bytes, ApiError> {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&object)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("encoding object: {e}")))
}

/// Decode a stored object and set its resourceVersion.
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut object: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::Internal(format!("stored object {} is not valid JSON: {e}", kv.key))
    })?;
    set_resource_version(&mut object, kv.mod_revision);
    Ok(object)
}

/// Set `metadata.resourceVersion`.
pub fn set_resource_version(object: &mut Value, revision: Revision) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

/// The stored bytes with `"resourceVersion":"<rev>"` spliced into the top-level metadata,
/// without parsing the object: the hot path of list and watch responses.
pub fn splice_resource_version(stored: &[u8], revision: Revision) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored.len() + 32);
    splice_resource_version_into(&mut out, stored, revision);
    out
}

/// [`splice_resource_version`], appending to `out` (watch responses batch many objects).
pub fn splice_resource_version_into(out: &mut Vec<u8>, stored: &[u8], revision: Revision) {
    match metadata_body_start(stored) {
        Some(at) => {
            out.extend_from_slice(&stored[..at]);
            out.extend_from_slice(b"\"resourceVersion\":\"");
            out.extend_from_slice(revision.to_string().as_bytes());
            out.push(b'"');
            let rest = &stored[at..];
            if rest.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'}') {
                out.push(b',');
            }
            out.extend_from_slice(rest);
        }
        None => out.extend_from_slice(stored),
    }
}

/// The offset just after the `{` that opens the top-level `"metadata"` object, if any.
fn metadata_body_start(json: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let start = i + 1;
                i = start;
                while i < json.len() && json[i] != b'"' {
                    if json[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if depth == 1 && &json[start..i.min(json.len())] == b"metadata" {
                    let mut j = i + 1;
                    while j < json.len() && (json[j].is_ascii_whitespace() || json[j] == b':') {
                        j += 1;
                    }
                    if json.get(j) == Some(&b'{') {
                        return Some(j + 1);
                    }
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// `metadata.<field>` as a string.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// The value of a field-selector path (`spec.nodeName`) as the string Kubernetes compares.
pub fn field_value(object: &Value, path: &str) -> Option<String> {
    let mut v = object;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The object's labels.
pub fn labels(object: &Value) -> std::collections::BTreeMap<String, String> {
    object
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splice_puts_the_revision_into_top_level_metadata() {
        let stored =
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"metadata":{}}}"#;
        let out = splice_resource_version(stored, 42);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], json!("42"));
        assert_eq!(v["metadata"]["name"], json!("a"));
        assert!(v["spec"]["metadata"].get("resourceVersion").is_none());
    }

    #[test]
    fn splice_skips_metadata_inside_strings_and_nested_objects() {
        let stored = br#"{"a":{"metadata":{}},"b":"\"metadata\":{","metadata":{}}"#;
        let v: Value = serde_json::from_slice(&splice_resource_version(stored, 7)).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], json!("7"));
        assert!(v["a"]["metadata"].get("resourceVersion").is_none());
    }

    #[test]
    fn field_values_follow_kubernetes_paths() {
        let pod = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert_eq!(field_value(&pod, "spec.nodeName").as_deref(), Some("n1"));
        assert_eq!(field_value(&pod, "status.podIP"), None);
    }
}
