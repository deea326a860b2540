//! `pods/<name>/eviction` (policy/v1 Eviction): a pod's deletion that honours the
//! PodDisruptionBudget selecting it, as kube-apiserver's eviction REST does. A pod that is
//! not running (pending, finished, or being deleted) goes at once. A running pod goes only if
//! its budget allows one more disruption: the budget's `disruptionsAllowed` is decremented and
//! the pod noted in `disruptedPods` (a compare-and-swap on the budget, so two evictions never
//! spend one disruption twice) before the pod is deleted; otherwise the answer is 429, as
//! Kubernetes words it, and `kubectl drain` retries. More than one budget for a pod is a 500.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{Value, json};

use skiff_api::selectors::LabelSelector;

use super::delete::DeleteOptions;
use super::objects;
use super::request::{self, Query, Target};
use super::resources;
use super::status::ApiError;
use super::{ApiServer, json_value};
use crate::store::StoreError;

/// Kubernetes' answer when a budget allows no disruption.
const VIOLATES_BUDGET: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

impl ApiServer {
    /// POST `pods/<name>/eviction`.
    pub(super) async fn evict(
        self: &Arc<Self>,
        target: &Target,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let eviction = request::decode_object(body, &request::content_type(headers))?;
        let name = target.name()?.to_string();
        if let Some(other) = eviction["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty() && *n != name)
        {
            return Err(ApiError::BadRequest(format!(
                "name in URL does not match name in Eviction object: {other} != {name}"
            )));
        }
        let options = match eviction.get("deleteOptions").filter(|o| !o.is_null()) {
            Some(options) => DeleteOptions::parse(
                &Query::default(),
                &serde_json::to_vec(options).unwrap_or_default(),
                "application/json",
            )?,
            None => DeleteOptions::parse(&Query::default(), &[], "application/json")?,
        };
        let namespace = target.namespace.clone().unwrap_or_default();
        let pod_key = objects::key(target.resource, Some(&namespace), &name);
        let pod = self
            .store
            .get(&pod_key)
            .await?
            .ok_or_else(|| ApiError::NotFound {
                kind: String::from("pods"),
                name: name.clone(),
            })
            .and_then(|kv| objects::decode(&kv))?;
        if let Some(user) = crate::apiserver::authentication::requester() {
            crate::apiserver::authorization::node::admit(
                &user,
                "Pod",
                "create",
                Some("eviction"),
                &pod,
                Some(&pod),
            )?;
        }
        let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
        let running = phase == "Running"
            && pod["metadata"]
                .get("deletionTimestamp")
                .is_none_or(Value::is_null);
        if running {
            self.spend_disruption(&namespace, &name, &objects::labels(&pod))
                .await?;
        }
        self.delete_object(target.resource, Some(&namespace), &name, &options)
            .await?;
        Ok(json_value(StatusCode::CREATED, &super::status::success()))
    }

    /// Takes one disruption from the budget selecting the pod, if there is one; fails with 429
    /// when it has none to give.
    async fn spend_disruption(
        &self,
        namespace: &str,
        pod: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let pdbs = resources::find("policy", "v1", "poddisruptionbudgets")
            .ok_or_else(|| ApiError::Internal(String::from("poddisruptionbudgets not served")))?;
        let listed = self
            .store
            .list(&objects::prefix(pdbs, Some(namespace)))
            .await?;
        let mut matching = Vec::new();
        for kv in &listed.items {
            let Ok(budget) = serde_json::from_value::<PodDisruptionBudget>(objects::decode(kv)?)
            else {
                continue;
            };
            // policy/v1: an empty selector selects every pod of the namespace, none none.
            let selects = budget
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| LabelSelector::from_api(s).ok())
                .is_some_and(|s| s.matches(labels));
            if selects {
                matching.push(budget.metadata.name.clone().unwrap_or_default());
            }
        }
        let budget = match matching.as_slice() {
            [] => return Ok(()),
            [one] => one.clone(),
            _ => {
                return Err(ApiError::Internal(String::from(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                )));
            }
        };
        let key = objects::key(pdbs, Some(namespace), &budget);
        loop {
            let Some(kv) = self.store.get(&key).await? else {
                // Deleted meanwhile: nothing guards the pod any more.
                return Ok(());
            };
            let mut object = objects::decode(&kv)?;
            let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
            let status = &object["status"];
            if status["observedGeneration"].as_i64().unwrap_or(0) < generation {
                return Err(ApiError::TooManyRequests {
                    message: String::from(VIOLATES_BUDGET),
                    retry_after: 10,
                    cause: Some((
                        String::from("DisruptionBudget"),
                        format!(
                            "The disruption budget {budget} is still being processed by the server."
                        ),
                    )),
                });
            }
            let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
            if allowed <= 0 {
                return Err(ApiError::TooManyRequests {
                    message: String::from(VIOLATES_BUDGET),
                    retry_after: 0,
                    cause: Some((
                        String::from("DisruptionBudget"),
                        format!(
                            "The disruption budget {budget} needs {} healthy pods and has {} currently",
                            status["desiredHealthy"].as_i64().unwrap_or(0),
                            status["currentHealthy"].as_i64().unwrap_or(0)
                        ),
                    )),
                });
            }
            object["status"]["disruptionsAllowed"] = json!(allowed - 1);
            if !object["status"]["disruptedPods"].is_object() {
                object["status"]["disruptedPods"] = json!({});
            }
            object["status"]["disruptedPods"][pod] = json!(super::create::now());
            if allowed == 1 {
                set_disruption_allowed(&mut object, false);
            }
            match self
                .store
                .update(&key, objects::encode(&mut object)?, Some(kv.mod_revision))
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => {
                    return Err(ApiError::from_store(
                        e,
                        "poddisruptionbudgets.policy",
                        &budget,
                    ));
                }
            }
        }
    }
}

/// Sets the budget's `DisruptionAllowed` condition (`SufficientPods` / `InsufficientPods`).
fn set_disruption_allowed(pdb: &mut Value, allowed: bool) {
    let (status, reason) = if allowed {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let condition = json!({
        "type": "DisruptionAllowed",
        "status": status,
        "reason": reason,
        "message": "",
        "lastTransitionTime": super::create::now(),
        "observedGeneration": pdb["metadata"]["generation"],
    });
    let conditions = &mut pdb["status"]["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    if let Some(list) = conditions.as_array_mut() {
        match list.iter_mut().find(|c| c["type"] == "DisruptionAllowed") {
            Some(existing) if existing["status"] == status => {}
            Some(existing) => *existing = condition,
            None => list.push(condition),
        }
    }
}
