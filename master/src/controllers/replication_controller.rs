//! The replication manager: ReplicationControllers are kept by the ReplicaSet controller
//! ([`super::replica_set`]), which reads each one in its ReplicaSet form, as
//! kube-controller-manager's `replicationcontroller` controller runs the ReplicaSet code over
//! converted objects (`pkg/controller/replication/conversion.go`). The selector, a plain map,
//! becomes `matchLabels`; the pods it makes are owned by the ReplicationController itself, its
//! Events come from `replication-controller`, and its status (the same fields and conditions
//! as a ReplicaSet's) is written back to it.

use k8s_openapi::api::apps::v1::{
    ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::informers::{Informer, Informers};
use super::replica_set::Replicated;
use skiff_api::selectors;

impl Replicated for ReplicationController {
    const CONTROLLER: &'static str = "replicationcontroller";
    const COMPONENT: &'static str = "replication-controller";

    fn informer(informers: &mut Informers) -> &mut Informer<Self> {
        &mut informers.replication_controllers
    }

    fn selector(&self) -> Option<selectors::LabelSelector> {
        let selector = LabelSelector {
            match_labels: self.spec.as_ref()?.selector.clone(),
            match_expressions: None,
        };
        selectors::LabelSelector::from_api(&selector).ok()
    }

    fn as_replica_set(&self) -> ReplicaSet {
        let spec = self.spec.clone().unwrap_or_default();
        ReplicaSet {
            metadata: self.metadata.clone(),
            spec: Some(ReplicaSetSpec {
                replicas: spec.replicas,
                min_ready_seconds: spec.min_ready_seconds,
                selector: LabelSelector {
                    match_labels: spec.selector,
                    match_expressions: None,
                },
                template: spec.template,
            }),
            status: self.status.clone().map(|status| ReplicaSetStatus {
                replicas: status.replicas,
                fully_labeled_replicas: status.fully_labeled_replicas,
                ready_replicas: status.ready_replicas,
                available_replicas: status.available_replicas,
                observed_generation: status.observed_generation,
                conditions: status.conditions.map(|conditions| {
                    conditions
                        .into_iter()
                        .map(|c| ReplicaSetCondition {
                            type_: c.type_,
                            status: c.status,
                            last_transition_time: c.last_transition_time,
                            reason: c.reason,
                            message: c.message,
                        })
                        .collect()
                }),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_replication_controller_reads_as_a_replica_set() {
        let rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 2},
            "spec": {"replicas": 3, "minReadySeconds": 5, "selector": {"app": "web"},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "a", "image": "x"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1, "observedGeneration": 2,
                       "conditions": [{"type": "ReplicaFailure", "status": "True",
                                       "reason": "FailedCreate", "message": "refused"}]},
        }))
        .expect("rc");
        let selector = rc.selector().expect("a selector");
        let labels =
            |app: &str| std::collections::BTreeMap::from([("app".to_owned(), app.to_owned())]);
        assert!(selector.matches(&labels("web")) && !selector.matches(&labels("db")));
        let rs = rc.as_replica_set();
        assert_eq!(rs.metadata, rc.metadata);
        let spec = rs.spec.expect("spec");
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.min_ready_seconds, Some(5));
        assert_eq!(
            spec.selector.match_labels,
            Some([("app".to_owned(), "web".to_owned())].into())
        );
        assert_eq!(spec.template, rc.spec.and_then(|s| s.template));
        // The status reads back as the same JSON: what the controller writes fits both kinds.
        assert_eq!(
            serde_json::to_value(rs.status).expect("json"),
            serde_json::to_value(rc.status).expect("json")
        );
    }
}
