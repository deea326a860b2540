//! create: POST to a collection. Server-set fields, defaults, validation, quota, ClusterIP
//! allocation, then a create-if-absent in the store.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::allocator::AllocateError;
use super::authentication::requester;
use super::authorization::node;
use super::field_error::FieldError;
use super::objects;
use super::request::{self, FieldValidation, Query, Target};
use super::resources::{AdmitError, Resource};
use super::status::ApiError;
use super::{ApiServer, json_response, with_warnings};
use crate::store::StoreError;

/// Kinds whose `metadata.generation` counts spec changes.
pub fn tracks_generation(r: &Resource) -> bool {
    matches!(
        r.kind,
        "Deployment"
            | "ReplicaSet"
            | "ReplicationController"
            | "DaemonSet"
            | "StatefulSet"
            | "Job"
            | "PodDisruptionBudget"
    )
}

/// Kinds whose status a client cannot set on create (it belongs to controllers and agents).
fn resets_status_on_create(r: &Resource) -> bool {
    matches!(
        r.kind,
        "Pod"
            | "Deployment"
            | "ReplicaSet"
            | "ReplicationController"
            | "DaemonSet"
            | "Job"
            | "CronJob"
            | "PodDisruptionBudget"
            | "Service"
            | "Namespace"
            | "ResourceQuota"
    )
}

/// Names a create with `generateName` tries before it reports the last one taken
/// (kube-apiserver's `maxNameGenerationCreateAttempts`).
const GENERATE_NAME_ATTEMPTS: u32 = 8;

/// Longest `generateName` prefix kept, so a generated name fits 63 characters
/// (Kubernetes' `maxGeneratedNameLength`).
const GENERATE_NAME_PREFIX_MAX: usize = 58;

/// The names of one create with `metadata.generateName`: the prefix and 5 random characters,
/// generated again while the one tried is taken (kube-apiserver's RetryGenerateName), since
/// 5 random characters collide often among a million pods.
struct GeneratedNames {
    prefix: String,
    tried: u32,
}

impl GeneratedNames {
    fn new(prefix: &str) -> Self {
        let mut end = prefix.len().min(GENERATE_NAME_PREFIX_MAX);
        while !prefix.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            prefix: prefix[..end].to_owned(),
            tried: 0,
        }
    }

    /// The next name to try, or `None` once every attempt is spent.
    fn next_name(&mut self) -> Option<String> {
        if self.tried >= GENERATE_NAME_ATTEMPTS {
            return None;
        }
        self.tried += 1;
        Some(format!(
            "{}{}",
            self.prefix,
            skiff_api::names::random_suffix(5)
        ))
    }
}

/// RFC 3339 "now", as Kubernetes writes timestamps.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Fill the body's `apiVersion`/`kind` from the path when the client left them out (the
/// official Python client does), as kube-apiserver's decoder does with the endpoint's
/// group, version and kind as the default; refuse (400) a body that names another type.
pub fn default_type(r: &Resource, object: &mut Value) -> Result<(), ApiError> {
    let obj = object
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("the object must be a JSON object".into()))?;
    for (field, expected) in [
        ("apiVersion", r.api_version()),
        ("kind", r.kind.to_string()),
    ] {
        match obj.get(field) {
            None | Some(Value::Null) => {
                obj.insert(field.into(), Value::String(expected));
            }
            Some(Value::String(s)) if s.is_empty() => {
                obj.insert(field.into(), Value::String(expected));
            }
            Some(Value::String(_)) => {}
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "{field} must be a string, not {other}"
                )));
            }
        }
    }
    check_type(r, object)
}

/// Check that the body's `apiVersion`/`kind` are there and match the path (400 otherwise):
/// server-side apply configurations must name their type, as in Kubernetes.
pub fn check_type(r: &Resource, object: &Value) -> Result<(), ApiError> {
    let api_version = object.get("apiVersion").and_then(Value::as_str);
    let kind = object.get("kind").and_then(Value::as_str);
    let Some(kind) = kind.filter(|k| !k.is_empty()) else {
        return Err(ApiError::BadRequest(format!(
            "Object 'Kind' is missing in '{}'",
            truncate(object)
        )));
    };
    let Some(api_version) = api_version.filter(|v| !v.is_empty()) else {
        return Err(ApiError::BadRequest(format!(
            "Object 'apiVersion' is missing in '{}'",
            truncate(object)
        )));
    };
    if kind != r.kind || api_version != r.api_version() {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({}), or the kind ({kind}) does not match the expected kind ({})",
            r.api_version(),
            r.kind
        )));
    }
    Ok(())
}

fn truncate(object: &Value) -> String {
    let s = object.to_string();
    if s.len() > 200 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(200).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

/// The request namespace must agree with the body's, if the body has one.
pub fn check_namespace(target: &Target, object: &mut Value) -> Result<(), ApiError> {
    let meta = metadata_mut(object)?;
    if target.resource.namespaced {
        let ns = target.namespace.clone().ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{} must be created in a namespace",
                target.resource.plural
            ))
        })?;
        match meta.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            _ => {
                meta.insert("namespace".into(), Value::String(ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

/// `metadata` as a map, created when absent (400 when it is not an object).
pub fn metadata_mut(object: &mut Value) -> Result<&mut serde_json::Map<String, Value>, ApiError> {
    let obj = object
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("the object must be a JSON object".into()))?;
    obj.entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("metadata must be an object".into()))
}

/// Turn an admission failure into the API error Kubernetes gives.
pub fn admit_error(r: &Resource, name: &str, err: AdmitError) -> ApiError {
    match err {
        AdmitError::Decode(msg) => ApiError::BadRequest(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: {msg}",
            kind = r.kind,
            v = r.version
        )),
        AdmitError::Invalid(causes) => ApiError::Invalid {
            kind: r.kind.to_string(),
            group: r.group.to_string(),
            name: name.to_string(),
            causes,
        },
    }
}

/// Apply the `fieldValidation` directive to the unknown fields of a request.
pub fn field_validation(fv: FieldValidation, unknown: &[String]) -> Result<Vec<String>, ApiError> {
    let msgs: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match fv {
        _ if msgs.is_empty() => Ok(Vec::new()),
        FieldValidation::Strict => Err(ApiError::BadRequest(format!(
            "strict decoding error: {}",
            msgs.join(", ")
        ))),
        FieldValidation::Warn => Ok(msgs),
        FieldValidation::Ignore => Ok(Vec::new()),
    }
}

impl ApiServer {
    /// POST to a collection.
    pub(super) async fn create(
        self: &Arc<Self>,
        target: &Target,
        query: &Query,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let mut object = request::decode_object(body, &request::content_type(headers))?;
        default_type(target.resource, &mut object)?;
        check_namespace(target, &mut object)?;
        let (json, warnings) = self
            .create_object(
                target.resource,
                object,
                query.field_validation()?,
                query.dry_run()?,
            )
            .await?;
        Ok(with_warnings(
            json_response(StatusCode::CREATED, json),
            &warnings,
        ))
    }

    /// Create an object whose type and namespace are already checked. Returns the stored
    /// object's JSON (with its resourceVersion) and any warnings.
    pub async fn create_object(
        &self,
        r: &'static Resource,
        mut object: Value,
        fv: FieldValidation,
        dry_run: bool,
    ) -> Result<(Vec<u8>, Vec<String>), ApiError> {
        let meta = metadata_mut(&mut object)?;
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
        {
            return Err(ApiError::BadRequest(
                "resourceVersion should not be set on objects to be created".into(),
            ));
        }
        let has_name = meta
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let mut generated = meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|_| !has_name)
            .map(GeneratedNames::new);
        if let Some(name) = generated.as_mut().and_then(GeneratedNames::next_name) {
            meta.insert("name".into(), Value::String(name));
        }
        meta.insert(
            "uid".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        meta.insert("creationTimestamp".into(), Value::String(now()));
        for field in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(field);
        }
        if tracks_generation(r) {
            meta.insert("generation".into(), json!(1));
        }
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        if resets_status_on_create(r)
            && let Some(obj) = object.as_object_mut()
        {
            obj.remove("status");
        }

        if r.kind == "CertificateSigningRequest" {
            self.admit_csr_create(&mut object);
        }
        let admitted = r
            .schema
            .admit(object, None)
            .map_err(|e| admit_error(r, &name, e))?;
        let mut warnings = field_validation(fv, &admitted.unknown_fields)?;
        let mut object = admitted.object;
        self.confirm_rbac_write(r, &object, None)?;
        if let Some(user) = requester() {
            node::admit(&user, r.kind, "create", None, &object, None)?;
        }
        if let Some(ns) = &namespace {
            if r.kind == "Pod" {
                self.admit_service_account(ns, &mut object)?;
            }
            warnings.extend(self.admit_pod_security(r.kind, ns, &name, &mut object)?);
        }

        if let Some(ns) = &namespace {
            self.require_namespace(ns).await?;
            self.admit_to_quota(r, ns, &name, &object, None, dry_run)
                .await?;
        }
        if dry_run {
            return Ok((serde_json::to_vec(&object).unwrap_or_default(), warnings));
        }
        if r.kind == "Service" {
            self.allocate_service(&name, &mut object).await?;
        }
        let mut key = objects::key(r, namespace.as_deref(), &name);
        // A Service whose create fails gives back what it was allocated.
        let service = (r.kind == "Service").then(|| object.clone());
        let mut encoded = objects::encode(&mut object)?;
        let stored = loop {
            let e = match self.store.create(&key, encoded.clone()).await {
                Ok(kv) => break kv,
                Err(e) => e,
            };
            let retry = match (&e, generated.as_mut()) {
                (StoreError::AlreadyExists(_), Some(names)) => names.next_name(),
                _ => None,
            };
            let Some(retry) = retry else {
                if let Some(service) = &service {
                    self.release_service(service).await;
                }
                return Err(ApiError::from_store(e, &r.qualified(), &name));
            };
            name = retry;
            metadata_mut(&mut object)?.insert("name".into(), Value::String(name.clone()));
            key = objects::key(r, namespace.as_deref(), &name);
            encoded = objects::encode(&mut object)?;
        };
        Ok((
            objects::splice_resource_version(&encoded, stored.mod_revision),
            warnings,
        ))
    }

    /// 404 unless the namespace exists; 403 while it is terminating (kube-apiserver's
    /// NamespaceLifecycle admission), so that no controller refills a namespace whose
    /// contents are being deleted.
    pub(super) async fn require_namespace(&self, ns: &str) -> Result<(), ApiError> {
        let key = format!("/registry/namespaces/{ns}");
        let Some(kv) = self.store.get(&key).await? else {
            return Err(ApiError::NotFound {
                kind: "namespaces".into(),
                name: ns.to_string(),
            });
        };
        let namespace = objects::decode(&kv)?;
        let deleted = namespace["metadata"]["deletionTimestamp"].is_string();
        if deleted || namespace["status"]["phase"] == "Terminating" {
            return Err(ApiError::Forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )));
        }
        Ok(())
    }

    /// Give a new Service its ClusterIP (unless headless or ExternalName) and NodePorts (for
    /// NodePort and LoadBalancer Services). On failure nothing stays allocated.
    async fn allocate_service(&self, name: &str, service: &mut Value) -> Result<(), ApiError> {
        let invalid = |field: &str, value: String, err: AllocateError| match err {
            AllocateError::Store(s) => ApiError::from(s),
            other => ApiError::Invalid {
                kind: "Service".into(),
                group: String::new(),
                name: name.to_string(),
                causes: vec![FieldError::invalid(field, value, other.to_string())],
            },
        };
        let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let service_type = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if service_type == "ExternalName" {
            return Ok(());
        }
        let requested = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if requested.as_deref() == Some("None") {
            spec.insert("clusterIPs".into(), json!(["None"]));
        } else {
            let ip = self
                .service_ips
                .allocate(requested.as_deref())
                .await
                .map_err(|e| {
                    invalid(
                        "spec.clusterIPs",
                        format!("[]string{{{:?}}}", requested.clone().unwrap_or_default()),
                        e,
                    )
                })?;
            spec.insert("clusterIP".into(), Value::String(ip.to_string()));
            spec.insert("clusterIPs".into(), json!([ip.to_string()]));
        }
        if matches!(service_type.as_str(), "NodePort" | "LoadBalancer") {
            let ports = spec
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .map(std::mem::take)
                .unwrap_or_default();
            let mut done = Vec::with_capacity(ports.len());
            let mut failure = None;
            for (i, mut port) in ports.into_iter().enumerate() {
                if failure.is_none() {
                    let requested = port
                        .get("nodePort")
                        .and_then(Value::as_u64)
                        .filter(|p| *p != 0)
                        .map(|p| p as u32);
                    match self.node_ports.allocate(requested).await {
                        Ok(p) => port["nodePort"] = json!(p),
                        Err(e) => {
                            failure = Some(invalid(
                                &format!("spec.ports[{i}].nodePort"),
                                requested.unwrap_or(0).to_string(),
                                e,
                            ))
                        }
                    }
                }
                done.push(port);
            }
            spec.insert("ports".into(), Value::Array(done));
            if let Some(err) = failure {
                self.release_service(service).await;
                return Err(err);
            }
        }
        Ok(())
    }

    /// Give back what a Service holds: its ClusterIP and NodePorts (best effort).
    pub(super) async fn release_service(&self, service: &Value) {
        if let Some(ip) = service["spec"]["clusterIP"].as_str() {
            let _ = self.service_ips.release(ip).await;
        }
        for port in service["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(p) = port["nodePort"].as_u64().filter(|p| *p != 0) {
                let _ = self.node_ports.release(p as u32).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_name_is_tried_again_until_the_attempts_are_spent() {
        let mut names = GeneratedNames::new("web-");
        let tried: Vec<String> = std::iter::from_fn(|| names.next_name()).collect();
        assert_eq!(tried.len(), GENERATE_NAME_ATTEMPTS as usize);
        for name in &tried {
            assert!(
                name.starts_with("web-") && name.len() == "web-".len() + 5,
                "{name}"
            );
        }
        let distinct: std::collections::HashSet<&String> = tried.iter().collect();
        assert!(distinct.len() > 1, "every attempt generated {tried:?}");
        assert_eq!(names.next_name(), None);
    }

    #[test]
    fn a_long_prefix_is_cut_so_the_generated_name_fits_63_characters() {
        let prefix = "p".repeat(80);
        let name = GeneratedNames::new(&prefix).next_name().unwrap();
        assert_eq!(name.len(), 63);
        assert!(name.starts_with(&"p".repeat(GENERATE_NAME_PREFIX_MAX)));
    }
}
