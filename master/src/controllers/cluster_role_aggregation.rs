//! The clusterrole-aggregation controller: a ClusterRole with an `aggregationRule` gets the
//! rules of every ClusterRole its selectors pick (so `admin`, `edit` and `view` grow with the
//! `aggregate-to-*` roles a user or an operator adds).
//!
//! As kube-controller-manager's `clusterroleaggregation` controller: any ClusterRole change
//! reconciles every aggregated role; the picked roles are taken in name order, their rules
//! appended unless already present, and the result written when it differs.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use serde_json::json;
use skiff_api::selectors::LabelSelector;
use tracing::{info, warn};

use super::informers::{Informers, synced};

/// What a reconcile can fail with (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// The controller on the shared informers; it runs until `shutdown` resolves.
pub fn run(
    client: kube::Client,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let roles = informers.cluster_roles.reader();
    let changes = informers.cluster_roles.subscribe();
    let any_change = informers.cluster_roles.subscribe();
    let context = Arc::new(Context {
        client,
        roles: roles.clone(),
    });
    async move {
        info!("clusterrole-aggregation controller started");
        let results = Controller::for_shared_stream(changes, roles)
            .reconcile_all_on(futures::StreamExt::map(any_change, |_| ()))
            .run(reconcile, error_policy, context);
        super::drive("clusterrole-aggregation", results, shutdown).await;
    }
}

struct Context {
    client: kube::Client,
    roles: Store<ClusterRole>,
}

fn error_policy(role: Arc<ClusterRole>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(role = %role.name_any(), "aggregating rules: {err}");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(role: Arc<ClusterRole>, ctx: Arc<Context>) -> Result<Action, Error> {
    if role.aggregation_rule.is_none() || !synced(&ctx.roles).await {
        return Ok(Action::await_change());
    }
    let all: Vec<Arc<ClusterRole>> = ctx.roles.state();
    let Some(rules) = aggregated_rules(&role, &all) else {
        return Ok(Action::await_change());
    };
    if role.rules.clone().unwrap_or_default() == rules {
        return Ok(Action::await_change());
    }
    let api: Api<ClusterRole> = Api::all(ctx.client.clone());
    let patch = json!({"rules": rules});
    api.patch(
        &role.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    info!(role = %role.name_any(), rules = rules.len(), "aggregated rules");
    Ok(Action::await_change())
}

/// The rules `role` aggregates from `all` (None: its rule does not parse).
fn aggregated_rules(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Option<Vec<PolicyRule>> {
    let selectors = role
        .aggregation_rule
        .as_ref()?
        .cluster_role_selectors
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(LabelSelector::from_api)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let mut picked: Vec<&Arc<ClusterRole>> = all
        .iter()
        .filter(|other| other.name_any() != role.name_any())
        .filter(|other| selectors.iter().any(|s| s.matches(other.labels())))
        .collect();
    picked.sort_by_key(|r| r.name_any());
    let mut rules: Vec<PolicyRule> = Vec::new();
    for rule in picked.iter().flat_map(|r| r.rules.iter().flatten()) {
        if !rules.contains(rule) {
            rules.push(rule.clone());
        }
    }
    Some(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(value: serde_json::Value) -> Arc<ClusterRole> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    #[test]
    fn an_aggregated_role_takes_the_picked_roles_rules_once_in_name_order() {
        let view = role(
            json!({"metadata": {"name": "view"}, "aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]}}),
        );
        let pods = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]});
        let widgets =
            json!({"verbs": ["list"], "apiGroups": ["example.com"], "resources": ["widgets"]});
        let all = vec![
            view.clone(),
            role(
                json!({"metadata": {"name": "z-widgets", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                "rules": [widgets, pods]}),
            ),
            role(
                json!({"metadata": {"name": "a-pods", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                "rules": [pods]}),
            ),
            role(
                json!({"metadata": {"name": "other"}, "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}),
            ),
        ];
        let rules = aggregated_rules(&view, &all).unwrap();
        let resources: Vec<_> = rules
            .iter()
            .map(|r| r.resources.clone().unwrap()[0].clone())
            .collect();
        assert_eq!(resources, ["pods", "widgets"]);
    }
}
