//! The disruption controller: keeps each PodDisruptionBudget's `status`, which the eviction
//! subresource reads, as kube-controller-manager's `disruption` controller does:
//! `currentHealthy` (selected pods that are Ready, not being deleted and not just evicted),
//! `desiredHealthy` (from `minAvailable`, or `expectedPods` less `maxUnavailable`;
//! percentages rounded up), `disruptionsAllowed`, `expectedPods`, `disruptedPods` (evictions
//! not yet seen as deletions, forgotten after 2 minutes), `observedGeneration` and the
//! `DisruptionAllowed` condition.
//!
//! Kubernetes counts `expectedPods` from the scale of the pods' controllers when a budget
//! uses a percentage or `maxUnavailable`; here it is the number of selected pods not being
//! deleted, which is the same while the controllers are at their scale.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::{Value, json};
use tracing::{info, warn};

use skiff_api::pod::{CachedPod, is_ready};
use skiff_api::selectors::LabelSelector;

use super::informers::{Index, Informers};

/// How long an eviction waits in `disruptedPods` for its pod's deletion to show.
const DELETION_TIMEOUT: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

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
    let budgets = informers.pod_disruption_budgets.reader();
    let changes = informers.pod_disruption_budgets.subscribe();
    let pods = informers.pods.reader();
    let pod_changes = informers.pods.subscribe();
    let budget_cache = budgets.clone();
    let context = Arc::new(Context {
        client,
        pods,
        pod_index: informers.pods.index(),
    });
    async move {
        info!("disruption controller started");
        let results = Controller::for_shared_stream(changes, budgets)
            // A pod's change concerns the budgets of its namespace that select it.
            .watches_shared_stream(pod_changes, move |pod: Arc<CachedPod>| {
                budget_cache
                    .state()
                    .into_iter()
                    .filter(|b| b.namespace() == pod.namespace() && selects(b, &pod))
                    .map(|b| ObjectRef::from_obj(b.as_ref()))
                    .collect::<Vec<_>>()
            })
            .run(reconcile, error_policy, context);
        super::drive("disruption", results, shutdown).await;
    }
}

struct Context {
    client: kube::Client,
    pods: Store<CachedPod>,
    /// The pods by namespace: a reconcile reads its budget's namespace only.
    pod_index: Index<CachedPod>,
}

fn error_policy(_budget: Arc<PodDisruptionBudget>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!("syncing a pod disruption budget: {err}");
    Action::requeue(Duration::from_secs(5))
}

/// Whether the budget selects the pod (policy/v1: an empty selector selects every pod of the
/// namespace, no selector none).
fn selects(budget: &PodDisruptionBudget, pod: &CachedPod) -> bool {
    budget
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| LabelSelector::from_api(s).ok())
        .is_some_and(|s| s.matches(pod.labels()))
}

async fn reconcile(budget: Arc<PodDisruptionBudget>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !super::informers::synced(&ctx.pods).await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let now = Utc::now();
    let namespace = budget.namespace().unwrap_or_default();
    let pods: Vec<Arc<CachedPod>> = ctx
        .pod_index
        .in_namespace(&namespace)
        .into_iter()
        .filter(|p| selects(&budget, p))
        .collect();
    let old = budget.status.clone().unwrap_or_default();
    let status = compute(&budget, &pods, &old, now);
    if budget.status.as_ref() != Some(&status) {
        let mut patch = serde_json::to_value(&status).unwrap_or_default();
        // A merge patch keeps map entries it leaves out: forgotten evictions are nulls.
        let forgotten: Vec<String> = old
            .disrupted_pods
            .iter()
            .flatten()
            .map(|(pod, _)| pod.clone())
            .filter(|pod| {
                !status
                    .disrupted_pods
                    .as_ref()
                    .is_some_and(|d| d.contains_key(pod))
            })
            .collect();
        if !forgotten.is_empty() {
            let map = patch["disruptedPods"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let mut map: serde_json::Map<String, Value> = map;
            for pod in forgotten {
                map.insert(pod, Value::Null);
            }
            patch["disruptedPods"] = Value::Object(map);
        }
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &namespace);
        api.patch_status(
            &budget.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": patch })),
        )
        .await?;
    }
    // Evictions waiting in disruptedPods expire by time alone.
    Ok(
        if status
            .disrupted_pods
            .as_ref()
            .is_some_and(|d| !d.is_empty())
        {
            Action::requeue(Duration::from_secs(15))
        } else {
            Action::await_change()
        },
    )
}

/// The budget's status over its selected `pods`.
fn compute(
    budget: &PodDisruptionBudget,
    pods: &[Arc<CachedPod>],
    old: &PodDisruptionBudgetStatus,
    now: DateTime<Utc>,
) -> PodDisruptionBudgetStatus {
    let spec = budget.spec.clone().unwrap_or_default();
    let live: Vec<&Arc<CachedPod>> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    // Evictions whose pod is still there, not being deleted, and not too old.
    let disrupted: BTreeMap<String, Time> = old
        .disrupted_pods
        .iter()
        .flatten()
        .filter(|(name, at)| {
            now.signed_duration_since(at.0) < DELETION_TIMEOUT
                && live
                    .iter()
                    .any(|p| p.metadata.name.as_deref() == Some(name.as_str()))
        })
        .map(|(name, at)| (name.clone(), at.clone()))
        .collect();
    let expected = count(live.len());
    let current_healthy = count(
        live.iter()
            .filter(|p| is_ready(p) && !disrupted.contains_key(&p.name_any()))
            .count(),
    );
    let desired_healthy = match (&spec.min_available, &spec.max_unavailable) {
        (Some(min), _) => scaled(min, expected),
        (None, Some(max)) => expected.saturating_sub(scaled(max, expected)).max(0),
        (None, None) => 0,
    };
    let allowed = if expected <= 0 {
        0
    } else {
        current_healthy.saturating_sub(desired_healthy).max(0)
    };
    let generation = budget.metadata.generation;
    let (state, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let previous = old
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed");
    let condition = Condition {
        type_: String::from("DisruptionAllowed"),
        status: state.to_owned(),
        reason: reason.to_owned(),
        message: String::new(),
        observed_generation: generation,
        last_transition_time: match previous {
            Some(p) if p.status == state => p.last_transition_time.clone(),
            _ => Time(now),
        },
    };
    PodDisruptionBudgetStatus {
        observed_generation: generation,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        disruptions_allowed: allowed,
        current_healthy,
        desired_healthy,
        expected_pods: expected,
        conditions: Some(vec![condition]),
    }
}

/// A count or a percentage of `total`, rounded up.
fn scaled(value: &IntOrString, total: i32) -> i32 {
    match value {
        IntOrString::Int(n) => (*n).max(0),
        IntOrString::String(text) => {
            let percent: i64 = text
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .unwrap_or(0)
                .clamp(0, 100);
            let scaled = (percent * i64::from(total.max(0)) + 99) / 100;
            i32::try_from(scaled).unwrap_or(i32::MAX)
        }
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool) -> Arc<CachedPod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "labels": {"app": "a"}},
                "status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
            }))
            .expect("pod"),
        )
    }

    fn budget(spec: Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "b", "namespace": "default", "generation": 2},
            "spec": spec,
        }))
        .expect("budget")
    }

    #[test]
    fn disruptions_allowed_follow_min_available_and_max_unavailable() {
        let pods = [pod("p1", true), pod("p2", true), pod("p3", false)];
        let now = Utc::now();
        let old = PodDisruptionBudgetStatus::default();
        let status = compute(&budget(json!({"minAvailable": 1})), &pods, &old, now);
        assert_eq!(
            (
                status.expected_pods,
                status.current_healthy,
                status.desired_healthy
            ),
            (3, 2, 1)
        );
        assert_eq!(status.disruptions_allowed, 1);
        assert_eq!(status.observed_generation, Some(2));
        let status = compute(&budget(json!({"maxUnavailable": "34%"})), &pods, &old, now);
        // 34% of 3 rounds up to 2 unavailable: 1 must stay healthy.
        assert_eq!((status.desired_healthy, status.disruptions_allowed), (1, 1));
        let status = compute(&budget(json!({"minAvailable": "100%"})), &pods, &old, now);
        assert_eq!(status.disruptions_allowed, 0);
        let conditions = status.conditions.unwrap_or_default();
        assert_eq!(conditions[0].reason, "InsufficientPods");
    }

    #[test]
    fn an_evicted_pod_is_not_healthy_until_its_eviction_expires() {
        let pods = [pod("p1", true), pod("p2", true)];
        let now = Utc::now();
        let old = PodDisruptionBudgetStatus {
            disrupted_pods: Some(BTreeMap::from([
                (String::from("p1"), Time(now)),
                (String::from("gone"), Time(now)),
                (
                    String::from("p2"),
                    Time(now - chrono::TimeDelta::minutes(3)),
                ),
            ])),
            ..PodDisruptionBudgetStatus::default()
        };
        let status = compute(&budget(json!({"minAvailable": 1})), &pods, &old, now);
        assert_eq!(status.current_healthy, 1);
        assert_eq!(
            status
                .disrupted_pods
                .map(|d| d.into_keys().collect::<Vec<_>>()),
            Some(vec![String::from("p1")])
        );
    }
}
