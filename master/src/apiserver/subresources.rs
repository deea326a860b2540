//! Subresources with their own shape: `pods/binding` (the scheduler's decision) and
//! `*/scale` (autoscaling/v1 Scale over a controller's replicas).

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::field_error::FieldError;
use super::objects;
use super::patch::{self, PatchType};
use super::request::{self, FieldValidation, Target};
use super::status::ApiError;
use super::update::Part;
use super::{ApiServer, json_value};
use crate::store::StoreError;

impl ApiServer {
    /// POST `pods/<name>/binding`: assign the pod to a node, once.
    pub(super) async fn bind(
        self: &Arc<Self>,
        target: &Target,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let binding = request::decode_object(body, &request::content_type(headers))?;
        let name = target.name()?.to_string();
        let node = binding["target"]["name"].as_str().unwrap_or("").to_string();
        if node.is_empty() {
            return Err(ApiError::Invalid {
                kind: "Binding".into(),
                group: String::new(),
                name,
                causes: vec![FieldError::required("target.name", "")],
            });
        }
        if let Some(n) = binding["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty() && *n != name)
        {
            return Err(ApiError::BadRequest(format!(
                "the name of the binding ({n}) does not match the pod ({name})"
            )));
        }
        let key = objects::key(target.resource, target.namespace.as_deref(), &name);
        loop {
            let kv = self.current(target).await?;
            let mut pod = objects::decode(&kv)?;
            if let Some(uid) = binding["metadata"]["uid"].as_str()
                && objects::meta_str(&pod, "uid") != Some(uid)
            {
                return Err(ApiError::conflict("pods", &name));
            }
            if pod["metadata"]
                .get("deletionTimestamp")
                .is_some_and(|t| !t.is_null())
            {
                return Err(ApiError::Conflict {
                    kind: "pods".into(),
                    name: name.clone(),
                    message: format!("pod {name} is being deleted, cannot be assigned to a host"),
                });
            }
            if let Some(current) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(ApiError::Conflict {
                    kind: "pods".into(),
                    name: name.clone(),
                    message: format!("pod {name} is already assigned to node \"{current}\""),
                });
            }
            pod["spec"]["nodeName"] = json!(node);
            set_condition(
                &mut pod,
                json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": super::create::now()}),
            );
            match self
                .store
                .update(&key, objects::encode(&mut pod)?, Some(kv.mod_revision))
                .await
            {
                Ok(_) => break,
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, "pods", &name)),
            }
        }
        Ok(json_value(StatusCode::CREATED, &super::status::success()))
    }

    /// GET `*/scale`.
    pub(super) async fn get_scale(&self, target: &Target) -> Result<Response, ApiError> {
        let kv = self.current(target).await?;
        Ok(json_value(
            StatusCode::OK,
            &scale_of(&objects::decode(&kv)?),
        ))
    }

    /// PUT `*/scale`.
    pub(super) async fn replace_scale(
        self: &Arc<Self>,
        target: &Target,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let scale = request::decode_object(body, &request::content_type(headers))?;
        self.write_scale(target, |_| Ok(scale.clone())).await
    }

    /// PATCH `*/scale` (what `kubectl scale` sends).
    pub(super) async fn patch_scale(
        self: &Arc<Self>,
        target: &Target,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let patch_type = PatchType::from_headers(headers)?;
        let patch_doc = patch::parse_patch(patch_type, body)?;
        // Scale has no merge keys: a strategic merge patch of it is a merge patch.
        let patch_type = if patch_type == PatchType::Json {
            PatchType::Json
        } else {
            PatchType::Merge
        };
        self.write_scale(target, |current| {
            patch::apply(patch_type, "Scale", current, &patch_doc)
        })
        .await
    }

    async fn write_scale<F>(
        &self,
        target: &Target,
        mut desired_scale: F,
    ) -> Result<Response, ApiError>
    where
        F: FnMut(&Value) -> Result<Value, ApiError>,
    {
        let name = target.name()?.to_string();
        let (object, _) = self
            .update_with(
                target,
                Part::Main,
                FieldValidation::Ignore,
                false,
                |current| {
                    let scale = desired_scale(&scale_of(current))?;
                    let replicas = match scale["spec"].get("replicas") {
                        None | Some(Value::Null) => 0,
                        Some(v) => v.as_i64().ok_or_else(|| {
                            ApiError::BadRequest("spec.replicas must be an integer".into())
                        })?,
                    };
                    if replicas < 0 {
                        return Err(ApiError::Invalid {
                            kind: "Scale".into(),
                            group: "autoscaling".into(),
                            name: name.clone(),
                            causes: vec![FieldError::invalid(
                                "spec.replicas",
                                replicas,
                                "must be greater than or equal to 0",
                            )],
                        });
                    }
                    let mut object = current.clone();
                    object["spec"]["replicas"] = json!(replicas);
                    // The Scale's resourceVersion is the object's: it pins the write when set.
                    let pinned = scale["metadata"]["resourceVersion"].as_str().filter(|v| {
                        !v.is_empty() && Some(*v) != current["metadata"]["resourceVersion"].as_str()
                    });
                    match pinned {
                        Some(rv) => object["metadata"]["resourceVersion"] = json!(rv),
                        None => {
                            if let Some(meta) = object["metadata"].as_object_mut() {
                                meta.remove("resourceVersion");
                            }
                        }
                    }
                    Ok(object)
                },
            )
            .await?;
        Ok(json_value(StatusCode::OK, &scale_of(&object)))
    }
}

/// The autoscaling/v1 Scale view of a Deployment, ReplicaSet or ReplicationController.
fn scale_of(object: &Value) -> Value {
    let meta = &object["metadata"];
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": { "replicas": object["spec"]["replicas"].as_i64().unwrap_or(1) },
        "status": { "replicas": object["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector_string(&object["spec"]["selector"]) },
    })
}

/// A selector in its query-string form: `app=web,tier in (a,b)`.
fn selector_string(selector: &Value) -> String {
    let Some(map) = selector.as_object() else {
        return String::new();
    };
    // ReplicationController: a plain map. apps/v1: matchLabels + matchExpressions.
    let is_api_selector = map.contains_key("matchLabels") || map.contains_key("matchExpressions");
    let labels = if is_api_selector {
        selector["matchLabels"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    } else {
        map.clone()
    };
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    for e in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        });
    }
    parts.join(",")
}

/// Set (or replace) a pod condition by type.
fn set_condition(pod: &mut Value, condition: Value) {
    let conditions = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut conditions: Vec<Value> = conditions
        .into_iter()
        .filter(|c| c["type"] != condition["type"])
        .collect();
    conditions.push(condition);
    pod["status"]["conditions"] = Value::Array(conditions);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_render_in_query_form() {
        assert_eq!(selector_string(&json!({"app": "web"})), "app=web");
        assert_eq!(
            selector_string(
                &json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]})
            ),
            "app=web,tier in (a,b)"
        );
    }
}
