//! delete and deletecollection. Pods bound to a node are deleted gracefully (the node agent
//! finishes the delete); objects with finalizers wait for them; namespaces take their
//! contents with them.
//!
//! What happens to an object's dependents (the objects whose `ownerReferences` name it) is
//! the delete's `propagationPolicy`, as in Kubernetes: `Background` deletes the object now and
//! leaves its dependents to the garbage collector; `Foreground` keeps the object (finalizer
//! `foregroundDeletion`) until the collector has deleted the dependents that block it;
//! `Orphan` keeps it (finalizer `orphan`) until the collector has removed its
//! ownerReferences from every dependent.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::field_error::FieldError;
use super::request::{self, Query, Target};
use super::resources::{RESOURCES, Resource};
use super::status::ApiError;
use super::{ApiServer, json_response, json_value};
use super::{objects, protobuf};
use crate::store::StoreError;
use skiff_api::meta::{
    FINALIZER_DELETE_DEPENDENTS, FINALIZER_ORPHAN_DEPENDENTS, PropagationPolicy,
};

/// Namespaces that can never be deleted.
const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// The policy of a delete that names none: `Orphan` for ReplicationControllers (core/v1
/// keeps that old default; kubectl always sends a policy), `Background` for everything
/// else.
pub fn default_propagation(r: &Resource) -> PropagationPolicy {
    if r.group.is_empty() && r.kind == "ReplicationController" {
        PropagationPolicy::Orphan
    } else {
        PropagationPolicy::Background
    }
}

/// The 422 of invalid `DeleteOptions`, as Kubernetes words it.
fn invalid_delete_options(cause: FieldError) -> ApiError {
    ApiError::Invalid {
        kind: "DeleteOptions".into(),
        group: "meta.k8s.io".into(),
        name: String::new(),
        causes: vec![cause],
    }
}

/// `metadata.finalizers` of a stored object.
fn finalizers_of(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A Go `strconv.ParseBool` of a query parameter.
fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(ApiError::BadRequest(format!(
            "invalid value for {name}: {other:?}"
        ))),
    }
}

/// What a client asked of a delete (`DeleteOptions` body and query parameters).
#[derive(Debug, Default)]
pub struct DeleteOptions {
    /// Seconds to wait before the object is gone (pods).
    pub grace_period: Option<i64>,
    /// Precondition: the object's uid.
    pub uid: Option<String>,
    /// Precondition: the object's resourceVersion.
    pub resource_version: Option<String>,
    /// Validate only.
    pub dry_run: bool,
    /// What happens to the object's dependents; `None`: the object's finalizers or the
    /// resource's default decide ([`PropagationPolicy::default_for`]).
    pub propagation_policy: Option<PropagationPolicy>,
}

impl DeleteOptions {
    /// The options of a request: its query parameters, overridden by the fields of a
    /// `DeleteOptions` body (JSON, YAML or protobuf, by its `media_type`).
    pub fn parse(query: &Query, body: &[u8], media_type: &str) -> Result<Self, ApiError> {
        let mut opts = DeleteOptions {
            grace_period: query.int("gracePeriodSeconds")?,
            dry_run: query.dry_run()?,
            ..Default::default()
        };
        let mut policy = query
            .get("propagationPolicy")
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        let mut orphan = match query.get("orphanDependents") {
            None | Some("") => None,
            Some(v) => Some(parse_bool("orphanDependents", v)?),
        };
        if body.iter().any(|b| !b.is_ascii_whitespace()) {
            let v: Value = if media_type == protobuf::MEDIA_TYPE {
                protobuf::decode(body).map_err(|e| e.to_string())
            } else {
                serde_json::from_slice(body).map_err(|e| e.to_string())
            }
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?;
            if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
                opts.grace_period = Some(g);
            }
            opts.uid = v["preconditions"]["uid"].as_str().map(str::to_string);
            opts.resource_version = v["preconditions"]["resourceVersion"]
                .as_str()
                .map(str::to_string);
            if v.get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| !d.is_empty())
            {
                opts.dry_run = true;
            }
            match v.get("propagationPolicy") {
                None | Some(Value::Null) => {}
                Some(Value::String(p)) => policy = Some(p.clone()),
                Some(other) => {
                    return Err(ApiError::BadRequest(format!(
                        "invalid DeleteOptions: propagationPolicy must be a string, not {other}"
                    )));
                }
            }
            match v.get("orphanDependents") {
                None | Some(Value::Null) => {}
                Some(Value::Bool(b)) => orphan = Some(*b),
                Some(other) => {
                    return Err(ApiError::BadRequest(format!(
                        "invalid DeleteOptions: orphanDependents must be a boolean, not {other}"
                    )));
                }
            }
        }
        if opts.grace_period.is_some_and(|g| g < 0) {
            opts.grace_period = Some(0);
        }
        opts.propagation_policy = propagation(policy.as_deref(), orphan)?;
        Ok(opts)
    }
}

/// The policy a delete asks for, from `propagationPolicy` and the deprecated
/// `orphanDependents` (Kubernetes' ValidateDeleteOptions: not both, and only the three
/// values).
fn propagation(
    policy: Option<&str>,
    orphan_dependents: Option<bool>,
) -> Result<Option<PropagationPolicy>, ApiError> {
    match (policy, orphan_dependents) {
        (Some(p), Some(_)) => Err(invalid_delete_options(FieldError::invalid(
            "propagationPolicy",
            p,
            "orphanDependents and deletionPropagation cannot be both set",
        ))),
        (Some(p), None) => PropagationPolicy::parse(p).map(Some).ok_or_else(|| {
            invalid_delete_options(FieldError::not_supported(
                "propagationPolicy",
                p,
                PropagationPolicy::SUPPORTED,
            ))
        }),
        (None, Some(true)) => Ok(Some(PropagationPolicy::Orphan)),
        (None, Some(false)) => Ok(Some(PropagationPolicy::Background)),
        (None, None) => Ok(None),
    }
}

/// The finalizers an object gets when its deletion starts (Kubernetes'
/// `deletionFinalizersForGarbageCollection`): the garbage-collection finalizer of the policy
/// asked for, or, when none is asked for, of the one a deletion already in progress chose, or
/// of the resource's default. `None` when they stay as they are.
pub fn deletion_finalizers(
    current: &[String],
    requested: Option<PropagationPolicy>,
    default: PropagationPolicy,
) -> Option<Vec<String>> {
    let has = |f: &str| current.iter().any(|c| c == f);
    let policy = requested.unwrap_or(if has(FINALIZER_ORPHAN_DEPENDENTS) {
        PropagationPolicy::Orphan
    } else if has(FINALIZER_DELETE_DEPENDENTS) {
        PropagationPolicy::Foreground
    } else {
        default
    });
    let mut next: Vec<String> = current
        .iter()
        .filter(|f| *f != FINALIZER_ORPHAN_DEPENDENTS && *f != FINALIZER_DELETE_DEPENDENTS)
        .cloned()
        .collect();
    match policy {
        PropagationPolicy::Orphan => next.push(FINALIZER_ORPHAN_DEPENDENTS.into()),
        PropagationPolicy::Foreground => next.push(FINALIZER_DELETE_DEPENDENTS.into()),
        PropagationPolicy::Background => {}
    }
    let same = next.len() == current.len() && next.iter().all(|f| has(f));
    (!same).then_some(next)
}

impl ApiServer {
    /// DELETE one object.
    pub(super) async fn delete(
        self: &Arc<Self>,
        target: &Target,
        query: &Query,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let opts = DeleteOptions::parse(query, body, &request::content_type(headers))?;
        let name = target.name()?.to_string();
        let object = self
            .delete_object(target.resource, target.namespace.as_deref(), &name, &opts)
            .await?;
        Ok(json_value(StatusCode::OK, &object))
    }

    /// DELETE a collection: every object the selectors match.
    pub(super) async fn delete_collection(
        self: &Arc<Self>,
        target: &Target,
        query: &Query,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let opts = DeleteOptions::parse(query, body, &request::content_type(headers))?;
        let r = target.resource;
        let labels = query.label_selector()?;
        let fields = query.field_selector(r)?;
        let listed = self
            .store
            .list(&objects::prefix(r, target.namespace.as_deref()))
            .await?;
        let mut items = Vec::new();
        for kv in listed.items {
            let object = objects::decode(&kv)?;
            if !labels.matches(&objects::labels(&object))
                || !fields.matches(|f| objects::field_value(&object, f))
            {
                continue;
            }
            let Some(name) = objects::meta_str(&object, "name").map(str::to_string) else {
                continue;
            };
            let ns = objects::meta_str(&object, "namespace").map(str::to_string);
            match self.delete_object(r, ns.as_deref(), &name, &opts).await {
                Ok(deleted) => items.push(deleted),
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let list = json!({ "apiVersion": r.api_version(), "kind": format!("{}List", r.kind), "metadata": {}, "items": items });
        Ok(json_response(
            StatusCode::OK,
            serde_json::to_vec(&list).unwrap_or_default(),
        ))
    }

    /// Delete (or start deleting) one object; returns it as it was last stored.
    pub async fn delete_object(
        &self,
        r: &'static Resource,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        if r.kind == "Namespace" && PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::Forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        let key = objects::key(r, namespace, name);
        let qualified = r.qualified();
        loop {
            let kv = self
                .store
                .get(&key)
                .await?
                .ok_or_else(|| ApiError::NotFound {
                    kind: qualified.clone(),
                    name: name.to_string(),
                })?;
            let mut object = objects::decode(&kv)?;
            if let Some(user) = crate::apiserver::authentication::requester() {
                crate::apiserver::authorization::node::admit(
                    &user,
                    r.kind,
                    "delete",
                    None,
                    &object,
                    Some(&object),
                )?;
            }
            if let Some(uid) = &opts.uid
                && objects::meta_str(&object, "uid") != Some(uid)
            {
                return Err(ApiError::Conflict {
                    kind: qualified.clone(),
                    name: name.to_string(),
                    message: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        objects::meta_str(&object, "uid").unwrap_or("")
                    ),
                });
            }
            if let Some(rv) = &opts.resource_version
                && *rv != kv.mod_revision.to_string()
            {
                return Err(ApiError::Conflict {
                    kind: qualified.clone(),
                    name: name.to_string(),
                    message: format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        kv.mod_revision
                    ),
                });
            }
            if opts.dry_run {
                return Ok(object);
            }
            // Namespaces take their contents with them, whatever the policy.
            let finalizers = (r.kind != "Namespace")
                .then(|| {
                    deletion_finalizers(
                        &finalizers_of(&object),
                        opts.propagation_policy,
                        default_propagation(r),
                    )
                })
                .flatten();
            let finalizers_changed = finalizers.is_some();
            if let Some(finalizers) = finalizers {
                let meta = object
                    .get_mut("metadata")
                    .and_then(Value::as_object_mut)
                    .ok_or_else(|| ApiError::Internal("object without metadata".into()))?;
                if finalizers.is_empty() {
                    meta.remove("finalizers");
                } else {
                    meta.insert("finalizers".into(), json!(finalizers));
                }
            }
            if let Some(grace) = self.graceful_period(r, &object, opts) {
                // Mark for deletion and let the owner (node agent or finalizer) finish it.
                let meta = object
                    .get_mut("metadata")
                    .and_then(Value::as_object_mut)
                    .ok_or_else(|| ApiError::Internal("object without metadata".into()))?;
                if !mark_deleting(meta, grace, chrono::Utc::now()) && !finalizers_changed {
                    return Ok(object);
                }
                match self
                    .store
                    .update(&key, objects::encode(&mut object)?, Some(kv.mod_revision))
                    .await
                {
                    Ok(stored) => {
                        objects::set_resource_version(&mut object, stored.mod_revision);
                        return Ok(object);
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(ApiError::from_store(e, &qualified, name)),
                }
            }
            let mut revision = kv.mod_revision;
            if r.kind == "Namespace" {
                // Terminating while its contents go: creates in it are refused meanwhile.
                object["status"]["phase"] = json!("Terminating");
                match self
                    .store
                    .update(&key, objects::encode(&mut object)?, Some(revision))
                    .await
                {
                    Ok(stored) => {
                        revision = stored.mod_revision;
                        objects::set_resource_version(&mut object, revision);
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(ApiError::from_store(e, &qualified, name)),
                }
                self.delete_namespace_contents(name).await?;
            }
            match self.store.delete(&key, Some(revision)).await {
                Ok(_) => {}
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, &qualified, name)),
            }
            if r.kind == "Service" {
                self.release_service(&object).await;
            }
            return Ok(object);
        }
    }

    /// The grace period of a delete that must wait: a pod running on a node (its agent stops
    /// the containers), or an object with finalizers (0 unless it is such a pod: the last
    /// finalizer's removal then finishes the delete). None = delete now.
    fn graceful_period(&self, r: &Resource, object: &Value, opts: &DeleteOptions) -> Option<i64> {
        let has_finalizers = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if r.kind == "Pod" {
            let bound = object["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty());
            let terminal = matches!(
                object["status"]["phase"].as_str(),
                Some("Succeeded" | "Failed")
            );
            let grace = opts
                .grace_period
                .or_else(|| object["spec"]["terminationGracePeriodSeconds"].as_i64())
                .unwrap_or(30)
                .max(0);
            let running = bound && !terminal;
            if has_finalizers {
                return Some(if running { grace } else { 0 });
            }
            return (running && grace > 0).then_some(grace);
        }
        has_finalizers.then_some(0)
    }

    /// Delete every namespaced object in namespace `ns`.
    async fn delete_namespace_contents(&self, ns: &str) -> Result<(), ApiError> {
        // As Kubernetes' namespace controller: dependents go too, at once.
        let now_opts = DeleteOptions {
            grace_period: Some(0),
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        for r in RESOURCES.iter().filter(|r| r.namespaced) {
            let listed = self.store.list(&objects::prefix(r, Some(ns))).await?;
            for kv in listed.items {
                let object = objects::decode(&kv)?;
                let Some(name) = objects::meta_str(&object, "name") else {
                    continue;
                };
                match Box::pin(self.delete_object(r, Some(ns), name, &now_opts)).await {
                    Ok(_) | Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// Marks an object's `metadata` as deleted `grace` seconds after `now`, unless a deletion
/// with a grace period no longer than that is already under way; returns whether it did.
/// Any non-negative grace is accepted, as Kubernetes accepts it; the time stops at the last
/// one Go clients read.
fn mark_deleting(
    meta: &mut serde_json::Map<String, Value>,
    grace: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let already = meta.get("deletionTimestamp").is_some_and(|t| !t.is_null());
    let shorter = meta
        .get("deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .is_none_or(|g| grace < g);
    if already && !shorter {
        return false;
    }
    let at = skiff_api::time::plus_seconds(now, grace);
    meta.insert(
        "deletionTimestamp".into(),
        json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_grace_period_marks_the_latest_time_go_clients_read() {
        let opts = parse("gracePeriodSeconds=9223372036854775807", "").expect("parsed");
        assert_eq!(opts.grace_period, Some(i64::MAX));
        let now = chrono::Utc::now();
        let mut meta = serde_json::Map::new();
        assert!(mark_deleting(&mut meta, i64::MAX, now));
        assert_eq!(meta["deletionTimestamp"], "9999-12-31T23:59:59Z");
        assert_eq!(meta["deletionGracePeriodSeconds"], i64::MAX);
        // A shorter grace period moves the deletion closer; a longer one does not.
        assert!(!mark_deleting(&mut meta, i64::MAX, now));
        assert!(mark_deleting(&mut meta, 30, now));
        assert_eq!(meta["deletionGracePeriodSeconds"], 30);
        assert!(!mark_deleting(&mut meta, 60, now));
        let at = meta["deletionTimestamp"].as_str().expect("a time");
        let at = chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339");
        assert!(at.timestamp() - now.timestamp() <= 30);
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn parse(query: &str, body: &str) -> Result<DeleteOptions, ApiError> {
        DeleteOptions::parse(
            &Query::parse(Some(query))?,
            body.as_bytes(),
            "application/json",
        )
    }

    #[test]
    fn propagation_policy_comes_from_the_query_or_the_body() {
        let policy = |q: &str, b: &str| parse(q, b).map(|o| o.propagation_policy);
        assert_eq!(policy("", "").ok(), Some(None));
        assert_eq!(
            policy("propagationPolicy=Foreground", "").ok(),
            Some(Some(PropagationPolicy::Foreground))
        );
        assert_eq!(
            policy(
                "",
                r#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Orphan"}"#
            )
            .ok(),
            Some(Some(PropagationPolicy::Orphan))
        );
        // The deprecated boolean.
        assert_eq!(
            policy("orphanDependents=true", "").ok(),
            Some(Some(PropagationPolicy::Orphan))
        );
        assert_eq!(
            policy("", r#"{"orphanDependents":false}"#).ok(),
            Some(Some(PropagationPolicy::Background))
        );
    }

    #[test]
    fn unsupported_propagation_policies_are_invalid_delete_options() {
        let err = parse("propagationPolicy=Sideways", "").expect_err("invalid");
        assert_eq!(err.code(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            err.message(),
            "DeleteOptions \"\" is invalid: propagationPolicy: Unsupported value: \"Sideways\": \
             supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
        );
        let status = err.to_status();
        assert_eq!(status["details"]["group"], "meta.k8s.io");
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "FieldValueNotSupported"
        );
        let both = parse(
            "",
            r#"{"propagationPolicy":"Orphan","orphanDependents":true}"#,
        )
        .expect_err("invalid");
        assert!(
            both.message()
                .contains("orphanDependents and deletionPropagation cannot be both set"),
            "{}",
            both.message()
        );
        assert_eq!(
            parse("", r#"{"propagationPolicy":3}"#)
                .err()
                .map(|e| e.code()),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            parse("orphanDependents=maybe", "").err().map(|e| e.code()),
            Some(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn deletion_finalizers_follow_the_policy() {
        use PropagationPolicy::{Background, Foreground, Orphan};
        let own = strings(&["example.com/hold"]);
        // Background leaves the finalizers alone.
        assert_eq!(
            deletion_finalizers(&own, Some(Background), Background),
            None
        );
        assert_eq!(deletion_finalizers(&[], None, Background), None);
        assert_eq!(
            deletion_finalizers(&own, Some(Foreground), Background),
            Some(strings(&["example.com/hold", "foregroundDeletion"]))
        );
        assert_eq!(
            deletion_finalizers(&[], Some(Orphan), Background),
            Some(strings(&["orphan"]))
        );
        // The resource's default (ReplicationControllers orphan).
        assert_eq!(
            deletion_finalizers(&[], None, Orphan),
            Some(strings(&["orphan"]))
        );
        // No policy asked for: a deletion in progress keeps its choice.
        let orphaning = strings(&["orphan"]);
        assert_eq!(deletion_finalizers(&orphaning, None, Background), None);
        // A later delete may change it.
        assert_eq!(
            deletion_finalizers(&orphaning, Some(Foreground), Background),
            Some(strings(&["foregroundDeletion"]))
        );
        assert_eq!(
            deletion_finalizers(&orphaning, Some(Background), Background),
            Some(Vec::new())
        );
    }

    #[test]
    fn replication_controllers_orphan_by_default() {
        let find = |plural| {
            RESOURCES
                .iter()
                .find(|r| r.plural == plural)
                .expect("served")
        };
        assert_eq!(
            default_propagation(find("replicationcontrollers")),
            PropagationPolicy::Orphan
        );
        for plural in ["replicasets", "deployments", "pods", "configmaps"] {
            assert_eq!(
                default_propagation(find(plural)),
                PropagationPolicy::Background,
                "{plural}"
            );
        }
    }
}
