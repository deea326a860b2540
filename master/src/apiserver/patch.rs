//! patch: JSON patch, JSON merge patch, strategic merge patch and server-side apply.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::create::{check_namespace, check_type};
use super::request::{self, Query, Target};
use super::status::ApiError;
use super::strategic_merge;
use super::update::Part;
use super::{ApiServer, json_response, json_value, with_warnings};

/// The patch formats Kubernetes accepts, by Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 (`application/json-patch+json`).
    Json,
    /// RFC 7386 (`application/merge-patch+json`).
    Merge,
    /// Kubernetes' strategic merge patch (`application/strategic-merge-patch+json`).
    Strategic,
    /// Server-side apply (`application/apply-patch+yaml`).
    Apply,
}

impl PatchType {
    /// The patch type of a request, or 415.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        match request::content_type(headers).as_str() {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml"
            | "application/apply-patch+json"
            | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format ({other:?}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
            ))),
        }
    }
}

/// Parse a patch body: JSON for every type, YAML too for apply.
pub fn parse_patch(kind: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    let parsed: Result<Value, String> = match kind {
        PatchType::Apply => serde_yaml::from_slice(body).map_err(|e| e.to_string()),
        _ => serde_json::from_slice(body).map_err(|e| e.to_string()),
    };
    parsed.map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))
}

/// The most operations a JSON patch may have (kube-apiserver's `maxJSONPatchOperations`).
const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;
/// The most bytes the `copy` operations of one JSON patch may copy in all (kube-apiserver's
/// `JSONPatchMaxCopyBytes`): without it a few operations copying a field onto itself double
/// the object again and again.
const MAX_JSON_PATCH_COPY_BYTES: usize = request::MAX_BODY_BYTES;

/// `current` with the JSON patch `ops` applied, as kube-apiserver applies one: at most
/// [`MAX_JSON_PATCH_OPERATIONS`] operations (413 beyond), copies of at most
/// [`MAX_JSON_PATCH_COPY_BYTES`] in all and a result no larger than a request body may be
/// (422 and 413), an operation that cannot apply a 422.
fn json_patch_within_limits(
    kind: &str,
    current: &Value,
    ops: &json_patch::Patch,
) -> Result<Value, ApiError> {
    if ops.0.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(ApiError::TooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.0.len()
        )));
    }
    let invalid = |message: String| ApiError::Invalid {
        kind: kind.into(),
        group: String::new(),
        name: String::new(),
        causes: vec![super::field_error::FieldError::invalid(
            "", "patch", message,
        )],
    };
    let mut doc = current.clone();
    let mut copied = 0usize;
    for op in &ops.0 {
        if let json_patch::PatchOperation::Copy(copy) = op
            && let Some(value) = doc.pointer(copy.from.as_str())
        {
            copied = copied.saturating_add(serde_json::to_vec(value).map_or(0, |v| v.len()));
            if copied > MAX_JSON_PATCH_COPY_BYTES {
                return Err(invalid(format!(
                    "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_JSON_PATCH_COPY_BYTES}"
                )));
            }
        }
        json_patch::patch(&mut doc, std::slice::from_ref(op))
            .map_err(|e| invalid(e.to_string()))?;
    }
    let size = serde_json::to_vec(&doc).map_or(0, |v| v.len());
    if size > request::MAX_BODY_BYTES {
        return Err(ApiError::TooLarge(format!(
            "limit is {}",
            request::MAX_BODY_BYTES
        )));
    }
    Ok(doc)
}

/// Apply a parsed patch of `kind` (the object's Kind, for strategic merge) to `current`.
pub fn apply(
    patch_type: PatchType,
    kind: &str,
    current: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    match patch_type {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON patch: {e}")))?;
            json_patch_within_limits(kind, current, &ops)
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::BadRequest(
                    "a merge patch must be a JSON object".into(),
                ));
            }
            let mut doc = current.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        PatchType::Strategic | PatchType::Apply => {
            strategic_merge::apply_patch(kind, current, patch)
                .map_err(|e| ApiError::BadRequest(format!("invalid strategic merge patch: {e}")))
        }
    }
}

impl ApiServer {
    /// PATCH an object or its status.
    pub(super) async fn patch(
        self: &Arc<Self>,
        target: &Target,
        query: &Query,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let r = target.resource;
        let patch_type = PatchType::from_headers(headers)?;
        let patch = parse_patch(patch_type, body)?;
        let fv = query.field_validation()?;
        let dry_run = query.dry_run()?;
        let part = Part::of(target.subresource.as_deref());
        if patch_type == PatchType::Apply {
            if query.get("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::BadRequest(
                    "PATCH /apply requires fieldManager to be set".into(),
                ));
            }
            check_type(r, &patch)?;
        }
        let result = self
            .update_with(target, part, fv, dry_run, |current| {
                let mut patched = apply(patch_type, r.kind, current, &patch)?;
                // A patch that leaves resourceVersion alone does not pin it: drop the copy
                // taken from the current object so a concurrent write leads to a retry.
                let untouched = patched
                    .get("metadata")
                    .and_then(|m| m.get("resourceVersion"))
                    == current
                        .get("metadata")
                        .and_then(|m| m.get("resourceVersion"));
                if untouched
                    && let Some(meta) = patched.get_mut("metadata").and_then(Value::as_object_mut)
                {
                    meta.remove("resourceVersion");
                }
                Ok(patched)
            })
            .await;
        match result {
            Err(ApiError::NotFound { .. })
                if patch_type == PatchType::Apply && part == Part::Main =>
            {
                let mut object = patch.clone();
                check_namespace(target, &mut object)?;
                let body_name = object["metadata"]["name"].as_str().unwrap_or("");
                if body_name != target.name()? {
                    return Err(ApiError::BadRequest(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({})",
                        target.name()?
                    )));
                }
                let (json, warnings) = self.create_object(r, object, fv, dry_run).await?;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_json_patch_may_not_double_the_object_again_and_again() {
        // Each copy doubles `data.a` (it copies the object holding the last copy into itself).
        let current = json!({"metadata": {"name": "a"}, "data": {"a": "x".repeat(1000)}});
        let ops: Vec<Value> = (0..40)
            .map(|i| json!({"op": "copy", "from": "/data", "path": format!("/data/c{i}")}))
            .collect();
        let err = apply(PatchType::Json, "ConfigMap", &current, &Value::Array(ops))
            .expect_err("a patch that copies more than 3 MiB");
        assert_eq!(err.code().as_u16(), 422);
        assert!(
            err.message()
                .contains("the accumulated size increase of copy is"),
            "{}",
            err.message()
        );
        // A few copies are fine.
        let ops = json!([{"op": "copy", "from": "/data/a", "path": "/data/b"}]);
        let patched = apply(PatchType::Json, "ConfigMap", &current, &ops).expect("patched");
        assert_eq!(patched["data"]["b"], current["data"]["a"]);
    }

    #[test]
    fn a_json_patch_has_at_most_ten_thousand_operations() {
        let current = json!({"metadata": {"name": "a"}});
        let ops: Vec<Value> = (0..10_001)
            .map(|_| json!({"op": "test", "path": "/metadata/name", "value": "a"}))
            .collect();
        let err = apply(PatchType::Json, "ConfigMap", &current, &Value::Array(ops))
            .expect_err("too many operations");
        assert_eq!(err.code().as_u16(), 413);
        assert_eq!(
            err.message(),
            "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
    }

    #[test]
    fn json_and_merge_patches_apply() {
        let current =
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1}});
        let merged = apply(
            PatchType::Merge,
            "Deployment",
            &current,
            &json!({"spec": {"replicas": 3}, "metadata": {"labels": {"x": null}}}),
        )
        .unwrap();
        assert_eq!(merged["spec"]["replicas"], 3);
        assert!(merged["metadata"]["labels"].get("x").is_none());
        let patched = apply(
            PatchType::Json,
            "Deployment",
            &current,
            &json!([{"op": "replace", "path": "/spec/replicas", "value": 5}]),
        )
        .unwrap();
        assert_eq!(patched["spec"]["replicas"], 5);
        assert!(
            apply(
                PatchType::Json,
                "Deployment",
                &current,
                &json!([{"op": "remove", "path": "/spec/nope"}])
            )
            .is_err()
        );
    }
}
