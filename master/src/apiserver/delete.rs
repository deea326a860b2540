//! delete and deletecollection. Pods bound to a node are deleted gracefully (the node agent
//! finishes the delete); objects with finalizers wait for them; namespaces take their
//! contents with them.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::objects;
use super::request::{Query, Target};
use super::resources::{RESOURCES, Resource};
use super::status::ApiError;
use super::{ApiServer, json_response, json_value};
use crate::store::StoreError;

/// Namespaces that can never be deleted.
const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

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
}

impl DeleteOptions {
    fn parse(query: &Query, body: &[u8]) -> Result<Self, ApiError> {
        let mut opts = DeleteOptions {
            grace_period: query.int("gracePeriodSeconds")?,
            dry_run: query.dry_run()?,
            ..Default::default()
        };
        if body.iter().any(|b| !b.is_ascii_whitespace()) {
            let v: Value = serde_json::from_slice(body)
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
        }
        if opts.grace_period.is_some_and(|g| g < 0) {
            opts.grace_period = Some(0);
        }
        Ok(opts)
    }
}

impl ApiServer {
    /// DELETE one object.
    pub(super) async fn delete(
        self: &Arc<Self>,
        target: &Target,
        query: &Query,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let opts = DeleteOptions::parse(query, body)?;
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
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let opts = DeleteOptions::parse(query, body)?;
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
            if let Some(grace) = self.graceful_period(r, &object, opts) {
                // Mark for deletion and let the owner (node agent or finalizer) finish it.
                let meta = object
                    .get_mut("metadata")
                    .and_then(Value::as_object_mut)
                    .ok_or_else(|| ApiError::Internal("object without metadata".into()))?;
                let already = meta.get("deletionTimestamp").is_some_and(|t| !t.is_null());
                let shorter = meta
                    .get("deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .is_none_or(|g| grace < g);
                if already && !shorter {
                    return Ok(object);
                }
                let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
                meta.insert(
                    "deletionTimestamp".into(),
                    json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                );
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
                match self
                    .store
                    .update(
                        &key,
                        objects::encode(object.clone())?,
                        Some(kv.mod_revision),
                    )
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
            if r.kind == "Namespace" {
                self.delete_namespace_contents(name).await?;
            }
            match self.store.delete(&key, Some(kv.mod_revision)).await {
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
    /// the containers), or an object with finalizers. None = delete now.
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
            if has_finalizers {
                return Some(grace);
            }
            return (bound && !terminal && grace > 0).then_some(grace);
        }
        has_finalizers.then_some(0)
    }

    /// Delete every namespaced object in namespace `ns`.
    async fn delete_namespace_contents(&self, ns: &str) -> Result<(), ApiError> {
        let now_opts = DeleteOptions {
            grace_period: Some(0),
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
