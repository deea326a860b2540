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

/// Encode an object for the store: its resourceVersion is dropped (the store's revision is
/// the truth; [`set_resource_version`] puts the new one back after the write).
pub fn encode(object: &mut Value) -> Result<Bytes, ApiError> {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    let mut bytes = serde_json::to_vec(object)
        .map_err(|e| ApiError::Internal(format!("encoding object: {e}")))?;
    // The store and the watch cache keep these bytes for as long as the object lives: without
    // the room the encoder's doubling left (up to as much again), a million pods take
    // gigabytes less.
    bytes.shrink_to_fit();
    Ok(Bytes::from(bytes))
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

/// The value of a field-selector path (`spec.nodeName`) as the string kube-apiserver compares:
/// the object's entry in its kind's selectable field set (the `ToSelectableFields` /
/// `GetAttrs` of each `pkg/registry/*/strategy.go`), which holds Go's value of the field, so
/// an unset field reads as its default (`spec.unschedulable` is `false`, `status.replicas`
/// `0`) rather than as absent. `None` is the empty string. The kind comes from the object's
/// `kind`, which every stored object has.
pub fn field_value(object: &Value, path: &str) -> Option<String> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let field = |path: &str| lookup(object, path);
    let or = |path: &str, default: &str| field(path).or_else(|| Some(default.to_string()));
    match (kind, path) {
        // Go bools and ints: their zero value when unset.
        ("Node", "spec.unschedulable") | ("Pod", "spec.hostNetwork") => or(path, "false"),
        ("ReplicationController" | "ReplicaSet", "status.replicas") => or(path, "0"),
        ("Job", "status.successful") => or("status.succeeded", "0"),
        // Fields defaulted on create, for objects stored without them.
        ("Pod", "spec.restartPolicy") => or(path, "Always"),
        ("Pod", "spec.schedulerName") => or(path, "default-scheduler"),
        ("Pod", "status.phase") => or(path, "Pending"),
        ("Service", "spec.type") => or(path, "ClusterIP"),
        ("Secret", "type") => or(path, "Opaque"),
        ("Namespace", "status.phase") => or(path, "Active"),
        // Old v1 clients' name for `spec.nodeName`.
        ("Pod", "spec.host") => field("spec.nodeName"),
        // The primary IP: `podIPs[0]` (a v1 `podIP` alone converts to it).
        ("Pod", "status.podIP") => object
            .pointer("/status/podIPs/0/ip")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| field(path)),
        // Accepted by kube-apiserver's conversion but not in the field set: always empty.
        ("Pod", "status.podIPs") => None,
        // The component of `source`, else the reporting controller (events.k8s.io writers).
        ("Event", "source") => field("source.component")
            .filter(|c| !c.is_empty())
            .or_else(|| field("reportingComponent")),
        _ => field(path),
    }
}

/// The paths [`field_value`] reads for a field-selector path: the path itself, and the fields
/// some kinds take it from.
pub fn field_sources<'a>(path: &'a &'a str) -> &'a [&'a str] {
    match *path {
        "spec.host" => &["spec.nodeName"],
        "status.podIP" => &["status.podIP", "status.podIPs"],
        "status.successful" => &["status.succeeded"],
        "source" => &["source", "reportingComponent"],
        _ => std::slice::from_ref(path),
    }
}

/// Parses of the object in `json` only what lies on or under the dotted `paths` (and
/// `kind`): a selector's labels and fields of a pod without its containers, volumes,
/// conditions and managedFields, which are skipped unparsed. Whatever lies off the paths is
/// absent from the result, so [`field_value`] and [`labels`] read the same from it as from
/// the whole object. None when `json` is not a JSON object.
pub fn parse_paths(json: &[u8], paths: &[&str]) -> Option<Value> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let picked = serde::de::DeserializeSeed::deserialize(
        Pick {
            paths,
            prefix: String::new(),
        },
        &mut deserializer,
    )
    .ok()?;
    deserializer.end().ok()?;
    picked.is_object().then_some(picked)
}

/// A [`parse_paths`] step: the value at `prefix` (the root when empty), on the way to some
/// of `paths`.
struct Pick<'a> {
    paths: &'a [&'a str],
    prefix: String,
}

/// How much of a value [`Pick`] keeps.
enum Keep {
    /// All of it: a path ends here (or above).
    All,
    /// What lies on the paths that go through it.
    Part,
    /// Nothing.
    Nothing,
}

impl Pick<'_> {
    fn keep(&self, path: &str) -> Keep {
        if path == "kind" || self.paths.contains(&path) {
            return Keep::All;
        }
        let through = |wanted: &&str| {
            wanted
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('.'))
        };
        if self.paths.iter().any(through) {
            Keep::Part
        } else {
            Keep::Nothing
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Pick<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// A value on the way to a path that is not an object has nothing on the path: null.
impl<'de> serde::de::Visitor<'de> for Pick<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut picked = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.prefix.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.prefix)
            };
            match self.keep(&path) {
                Keep::All => {
                    picked.insert(key, map.next_value()?);
                }
                Keep::Part => {
                    let pick = Pick {
                        paths: self.paths,
                        prefix: path,
                    };
                    picked.insert(key, map.next_value_seed(pick)?);
                }
                Keep::Nothing => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(picked))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// The scalar at a dotted path, as a string; `None` if absent or null.
fn lookup(object: &Value, path: &str) -> Option<String> {
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
        let pod =
            json!({"kind": "Pod", "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert_eq!(field_value(&pod, "spec.nodeName").as_deref(), Some("n1"));
        assert_eq!(field_value(&pod, "spec.host").as_deref(), Some("n1"));
        assert_eq!(
            field_value(&pod, "status.phase").as_deref(),
            Some("Running")
        );
        assert_eq!(field_value(&pod, "status.podIP"), None);
        assert_eq!(field_value(&pod, "metadata.namespace"), None);
    }

    /// `field=value` on one object, as a list or watch with that selector judges it.
    fn selects(object: &Value, selector: &str) -> bool {
        skiff_api::selectors::FieldSelector::parse(selector)
            .expect("selector")
            .matches(|f| field_value(object, f))
    }

    #[test]
    fn node_fields_have_go_zero_values() {
        let unset = json!({"kind": "Node", "metadata": {"name": "n1"}, "spec": {}});
        let no_spec = json!({"kind": "Node", "metadata": {"name": "n1"}});
        let cordoned = json!({"kind": "Node", "spec": {"unschedulable": true}});
        for node in [&unset, &no_spec] {
            assert!(selects(node, "spec.unschedulable=false"));
            assert!(!selects(node, "spec.unschedulable=true"));
            assert!(selects(node, "spec.unschedulable!=true"));
        }
        assert!(selects(&cordoned, "spec.unschedulable=true"));
        assert!(!selects(&cordoned, "spec.unschedulable=false"));
    }

    #[test]
    fn pod_fields_have_kubernetes_values_when_unset() {
        let pending = json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                             "spec": {"containers": []}});
        assert!(selects(&pending, "spec.nodeName="));
        assert!(selects(&pending, "spec.host="));
        assert!(!selects(&pending, "spec.nodeName!="));
        assert!(selects(&pending, "spec.hostNetwork=false"));
        assert!(selects(&pending, "spec.restartPolicy=Always"));
        assert!(selects(&pending, "spec.schedulerName=default-scheduler"));
        assert!(selects(&pending, "spec.serviceAccountName="));
        assert!(selects(&pending, "status.phase=Pending"));
        assert!(selects(&pending, "status.podIP="));
        assert!(selects(&pending, "status.nominatedNodeName="));
        assert!(selects(
            &pending,
            "metadata.namespace=default,metadata.name=p"
        ));

        let running = json!({"kind": "Pod",
                             "spec": {"nodeName": "n1", "hostNetwork": true},
                             "status": {"phase": "Running", "podIP": "10.244.0.9",
                                        "podIPs": [{"ip": "10.244.0.9"}, {"ip": "fd00::9"}]}});
        assert!(selects(&running, "spec.nodeName=n1"));
        assert!(selects(&running, "spec.host=n1"));
        assert!(!selects(&running, "spec.nodeName="));
        assert!(selects(&running, "spec.hostNetwork=true"));
        assert!(selects(&running, "status.podIP=10.244.0.9"));
        // Selectable, but never in the field set.
        assert!(selects(&running, "status.podIPs="));
        // A v1 `podIP` without `podIPs` is still the primary IP.
        let legacy = json!({"kind": "Pod", "status": {"podIP": "10.244.0.7"}});
        assert!(selects(&legacy, "status.podIP=10.244.0.7"));
    }

    #[test]
    fn replica_counts_are_zero_when_unset() {
        for kind in ["ReplicaSet", "ReplicationController"] {
            let new = json!({"kind": kind, "spec": {"replicas": 3}});
            assert!(selects(&new, "status.replicas=0"), "{kind}");
            assert!(!selects(&new, "status.replicas!=0"), "{kind}");
            let scaled = json!({"kind": kind, "status": {"replicas": 3}});
            assert!(selects(&scaled, "status.replicas=3"), "{kind}");
        }
    }

    #[test]
    fn event_source_falls_back_to_the_reporting_controller() {
        let core = json!({"kind": "Event", "source": {"component": "kubelet", "host": "n1"},
                          "reportingComponent": "ignored", "type": "Normal", "reason": "Pulled",
                          "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}});
        assert!(selects(&core, "source=kubelet"));
        assert!(selects(&core, "reportingComponent=ignored"));
        assert!(selects(&core, "type=Normal,reason=Pulled"));
        assert!(selects(
            &core,
            "involvedObject.kind=Pod,involvedObject.name=web"
        ));
        assert!(selects(
            &core,
            "involvedObject.uid=,involvedObject.fieldPath="
        ));
        let reported = json!({"kind": "Event", "source": {"component": ""},
                              "reportingComponent": "replicaset-controller"});
        assert!(selects(&reported, "source=replicaset-controller"));
        let bare = json!({"kind": "Event"});
        assert!(selects(&bare, "source=,reportingComponent=,type=,reason="));
    }

    #[test]
    fn defaulted_kinds_read_their_defaults_when_unset() {
        let secret = json!({"kind": "Secret", "metadata": {"name": "s"}});
        assert!(selects(&secret, "type=Opaque"));
        let token = json!({"kind": "Secret", "type": "kubernetes.io/service-account-token"});
        assert!(selects(&token, "type=kubernetes.io/service-account-token"));
        let service = json!({"kind": "Service", "spec": {"clusterIP": "10.96.0.10"}});
        assert!(selects(
            &service,
            "spec.type=ClusterIP,spec.clusterIP=10.96.0.10"
        ));
        let headless = json!({"kind": "Service", "spec": {"type": "ClusterIP"}});
        assert!(selects(&headless, "spec.clusterIP="));
        let namespace = json!({"kind": "Namespace", "metadata": {"name": "team-a"}});
        assert!(selects(
            &namespace,
            "status.phase=Active,metadata.name=team-a"
        ));
        let terminating = json!({"kind": "Namespace", "status": {"phase": "Terminating"}});
        assert!(selects(&terminating, "status.phase=Terminating"));
    }
}
