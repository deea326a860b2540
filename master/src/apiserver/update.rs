//! update: PUT of a whole object or of its status, and the read-modify-write loop that
//! update, patch and the subresources share (Kubernetes' GuaranteedUpdate).

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::create::{
    admit_error, check_namespace, default_type, field_validation, metadata_mut, tracks_generation,
};
use super::objects;
use super::request::{self, FieldValidation, Query, Target};
use super::status::ApiError;
use super::{ApiServer, json_response, json_value, with_warnings};
use crate::store::{Revision, StoreError};

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Everything but `status` (when the resource has a status subresource).
    Main,
    /// Only `status`.
    Status,
    /// Only `status.conditions` (a CertificateSigningRequest's `approval` subresource).
    Approval,
}

impl Part {
    /// The part a subresource writes.
    pub fn of(subresource: Option<&str>) -> Self {
        match subresource {
            Some("status") => Part::Status,
            Some("approval") => Part::Approval,
            _ => Part::Main,
        }
    }
}

/// How many times a write without a client precondition is retried on a conflict.
const MAX_RETRIES: usize = 16;

/// Kinds that PUT may create (Kubernetes' AllowCreateOnUpdate).
fn creates_on_update(kind: &str) -> bool {
    matches!(kind, "Endpoints" | "Event" | "Lease")
}

/// Server-owned metadata that a client write never changes.
const SERVER_FIELDS: &[&str] = &[
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "managedFields",
];

impl ApiServer {
    /// PUT an object or its status.
    pub(super) async fn replace(
        self: &Arc<Self>,
        target: &Target,
        query: &Query,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let mut desired = request::decode_object(body, &request::content_type(headers))?;
        default_type(target.resource, &mut desired)?;
        check_namespace(target, &mut desired)?;
        let name = target.name()?;
        let body_name = desired
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if body_name != name {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let part = Part::of(target.subresource.as_deref());
        let fv = query.field_validation()?;
        let dry_run = query.dry_run()?;
        let result = self
            .update_with(target, part, fv, dry_run, |_| Ok(desired.clone()))
            .await;
        match result {
            Err(ApiError::NotFound { .. })
                if creates_on_update(target.resource.kind) && part == Part::Main =>
            {
                if let Some(meta) = desired.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("resourceVersion");
                }
                let (json, warnings) = self
                    .create_object(target.resource, desired, fv, dry_run)
                    .await?;
                Ok(with_warnings(
                    json_response(StatusCode::CREATED, json),
                    &warnings,
                ))
            }
            other => {
                let (object, warnings) = other?;
                Ok(with_warnings(
                    json_value(StatusCode::OK, &object),
                    &warnings,
                ))
            }
        }
    }

    /// Read the object, let `mutate` produce the desired one, admit it and write it with a
    /// compare on the revision read; on a conflict, retry unless the client pinned a
    /// resourceVersion. Returns the stored object and warnings.
    pub async fn update_with<F>(
        &self,
        target: &Target,
        part: Part,
        fv: FieldValidation,
        dry_run: bool,
        mut mutate: F,
    ) -> Result<(Value, Vec<String>), ApiError>
    where
        F: FnMut(&Value) -> Result<Value, ApiError>,
    {
        let r = target.resource;
        let name = target.name()?.to_string();
        let key = objects::key(r, target.namespace.as_deref(), &name);
        let qualified = r.qualified();
        for _ in 0..MAX_RETRIES {
            let kv = self
                .store
                .get(&key)
                .await?
                .ok_or_else(|| ApiError::NotFound {
                    kind: qualified.clone(),
                    name: name.clone(),
                })?;
            let current = objects::decode(&kv)?;
            let mut desired = mutate(&current)?;
            let pinned = client_revision(&desired)?;
            if let Some(rv) = pinned
                && rv != kv.mod_revision
            {
                return Err(ApiError::conflict(&qualified, &name));
            }
            let mut stored_current = current;
            if let Some(meta) = stored_current
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
            {
                meta.remove("resourceVersion");
            }
            merge_server_fields(r.has_status(), part, &stored_current, &mut desired)?;
            let admitted = r
                .schema
                .admit(desired, Some(&stored_current))
                .map_err(|e| admit_error(r, &name, e))?;
            let warnings = field_validation(fv, &admitted.unknown_fields)?;
            let mut object = admitted.object;
            self.confirm_rbac_write(r, &object, Some(&stored_current))?;
            if let Some(user) = crate::apiserver::authentication::requester() {
                let part_written = (part == Part::Status).then_some("status");
                crate::apiserver::authorization::node::admit(
                    &user,
                    r.kind,
                    "update",
                    part_written,
                    &object,
                    Some(&stored_current),
                )?;
            }
            if part == Part::Approval {
                self.confirm_csr_approval(&object, &stored_current)?;
            }
            if tracks_generation(r) && object.get("spec") != stored_current.get("spec") {
                let generation = stored_current["metadata"]["generation"]
                    .as_i64()
                    .unwrap_or(0)
                    + 1;
                metadata_mut(&mut object)?.insert("generation".into(), json!(generation));
            }
            if object != stored_current
                && part == Part::Main
                && let Some(ns) = target.namespace.as_deref()
            {
                self.admit_to_quota(r, ns, &name, &object, Some(&stored_current), dry_run)
                    .await?;
            }
            if object == stored_current || dry_run {
                let mut object = if dry_run { object } else { stored_current };
                objects::set_resource_version(&mut object, kv.mod_revision);
                return Ok((object, warnings));
            }
            let finished = finishes_delete(r.kind, &object);
            let written = if finished {
                self.store.delete(&key, Some(kv.mod_revision)).await
            } else {
                self.store
                    .update(&key, objects::encode(&mut object)?, Some(kv.mod_revision))
                    .await
            };
            match written {
                Ok(stored) => {
                    objects::set_resource_version(&mut object, stored.mod_revision);
                    return Ok((object, warnings));
                }
                Err(StoreError::Conflict { .. }) if pinned.is_none() => continue,
                Err(e) => return Err(ApiError::from_store(e, &qualified, &name)),
            }
        }
        Err(ApiError::conflict(&qualified, &name))
    }
}

/// Whether a write finishes a delete that waited for finalizers: the object is marked for
/// deletion and has no finalizer left. A pod finishes so only once its grace period is over
/// (`deletionGracePeriodSeconds: 0`, as for one never bound to a node): before that its node
/// agent is still stopping it and deletes it itself (Kubernetes' shouldDeleteDuringUpdate).
fn finishes_delete(kind: &str, object: &Value) -> bool {
    let meta = &object["metadata"];
    meta.get("deletionTimestamp").is_some_and(|t| !t.is_null())
        && meta["finalizers"].as_array().is_none_or(|f| f.is_empty())
        && (kind != "Pod" || meta["deletionGracePeriodSeconds"].as_i64() == Some(0))
}

/// The resourceVersion a client put in its object, if any (400 when it is not a number).
fn client_revision(object: &Value) -> Result<Option<Revision>, ApiError> {
    match object
        .get("metadata")
        .and_then(|m| m.get("resourceVersion"))
        .and_then(Value::as_str)
    {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::BadRequest(format!(
                "metadata.resourceVersion: Invalid value: {v:?}: must be a number"
            ))
        }),
    }
}

/// Keep what the client may not change in this write: server-set metadata always, the status
/// on a main write, everything but the status on a status write.
fn merge_server_fields(
    has_status: bool,
    part: Part,
    current: &Value,
    desired: &mut Value,
) -> Result<(), ApiError> {
    if part == Part::Approval {
        let conditions = desired.pointer_mut("/status/conditions").map(Value::take);
        *desired = current.clone();
        match conditions {
            Some(conditions) => desired["status"]["conditions"] = conditions,
            None => {
                if let Some(status) = desired.get_mut("status").and_then(Value::as_object_mut) {
                    status.remove("conditions");
                }
            }
        }
        return Ok(());
    }
    if part == Part::Status {
        let status = desired.as_object_mut().and_then(|o| o.remove("status"));
        *desired = current.clone();
        if let Some(obj) = desired.as_object_mut() {
            match status {
                Some(s) => obj.insert("status".into(), s),
                None => obj.remove("status"),
            };
        }
        return Ok(());
    }
    let current_meta = current.get("metadata").and_then(Value::as_object);
    let meta = metadata_mut(desired)?;
    meta.remove("resourceVersion");
    for field in SERVER_FIELDS {
        match current_meta.and_then(|m| m.get(*field)) {
            Some(v) => meta.insert(field.to_string(), v.clone()),
            None => meta.remove(*field),
        };
    }
    if has_status && let Some(obj) = desired.as_object_mut() {
        match current.get("status") {
            Some(s) => obj.insert("status".into(), s.clone()),
            None => obj.remove("status"),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_the_last_finalizer_finishes_a_delete() {
        let marked = |finalizers: Value, grace: i64| {
            json!({"metadata": {
                "name": "x",
                "deletionTimestamp": "2025-01-01T00:00:00Z",
                "deletionGracePeriodSeconds": grace,
                "finalizers": finalizers,
            }})
        };
        assert!(finishes_delete("ConfigMap", &marked(json!([]), 0)));
        assert!(finishes_delete("ConfigMap", &marked(Value::Null, 0)));
        assert!(!finishes_delete("ConfigMap", &marked(json!(["orphan"]), 0)));
        assert!(!finishes_delete(
            "ConfigMap",
            &json!({"metadata": {"name": "x"}})
        ));
        // A pod still in its grace period is finished by its node agent.
        assert!(finishes_delete("Pod", &marked(json!([]), 0)));
        assert!(!finishes_delete("Pod", &marked(json!([]), 30)));
    }
}
