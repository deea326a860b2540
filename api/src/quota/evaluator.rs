//! What quota counts of each resource type: Kubernetes' `quota.Evaluator`s for pods
//! (`pkg/quota/v1/evaluator/core/pods.go`) and services (`services.go`), and the object count
//! evaluator (`generic.NewObjectCountEvaluator`) for every other resource, which knows
//! `count/<resource>[.<group>]` and, for the kinds quota counted before that form existed,
//! the legacy names `configmaps`, `secrets`, `replicationcontrollers`, `resourcequotas` and
//! `persistentvolumeclaims`.
//!
//! A pod uses `count/pods` while it is stored, and `pods` and its compute resources (`cpu` /
//! `requests.cpu`, `limits.cpu`, `memory`, ..., summed over its containers as the scheduler
//! sums them) until it finishes (phase `Succeeded` or `Failed`) or its deletion's grace period
//! is over. Scopes (`Terminating`, `BestEffort`, `PriorityClass`, ...) select pods; a quota
//! with scopes counts nothing else.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    PodAffinityTerm, ResourceQuota, ScopedResourceSelectorRequirement, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{QuotaError, ResourceList, add, parse};
use crate::pod::{CachedContainer, CachedPod};
use crate::quantity::ParsedQuantity;
use crate::selectors::validate_label_key;

/// The object whose usage is measured: pods and services by their content, any other kind by
/// its existence.
#[derive(Clone, Copy, Debug)]
pub enum Object<'a> {
    /// A pod.
    Pod(&'a CachedPod),
    /// A service.
    Service(&'a Service),
    /// An object of any other kind.
    Other,
}

/// How quota measures the objects of one resource type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Evaluator {
    /// API group (empty for core).
    group: String,
    /// Plural resource name.
    resource: String,
}

/// The names the pod evaluator charges (`podResources`).
const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

/// Prefixes of pod resource names (huge pages of any size).
const POD_RESOURCE_PREFIXES: &[&str] = &["hugepages-", "requests.hugepages-"];

/// The names the service evaluator charges.
const SERVICE_RESOURCES: &[&str] = &[
    "count/services",
    "services",
    "services.loadbalancers",
    "services.nodeports",
];

/// Resources a quota on which makes every pod state its own request (or limit): a mistake
/// Kubernetes keeps for compatibility (`validationSet`).
const MUST_BE_SPECIFIED: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// The scopes that select pods by their priority class (`PriorityClass`).
const PRIORITY_CLASS: &str = "PriorityClass";

impl Evaluator {
    /// The evaluator of the resource `resource` (plural) of API group `group`.
    pub fn new(group: &str, resource: &str) -> Self {
        Self {
            group: group.to_owned(),
            resource: resource.to_owned(),
        }
    }

    /// The evaluator that charges the quota resource `name` (`pods`, `requests.cpu`,
    /// `count/deployments.apps`, `configmaps`), if any does.
    pub fn for_resource_name(name: &str) -> Option<Self> {
        if let Some(counted) = name.strip_prefix("count/") {
            let (resource, group) = counted.split_once('.').unwrap_or((counted, ""));
            return (!resource.is_empty()).then(|| Self::new(group, resource));
        }
        let pods = Self::new("", "pods");
        if !pods.matching_resources([name]).is_empty() {
            return Some(pods);
        }
        let services = Self::new("", "services");
        if !services.matching_resources([name]).is_empty() {
            return Some(services);
        }
        legacy_resource(name).map(|resource| Self::new("", resource))
    }

    /// The API group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The plural resource name.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// `count/<resource>` (core) or `count/<resource>.<group>`
    /// (`generic.ObjectCountQuotaResourceNameFor`).
    pub fn object_count_name(&self) -> String {
        if self.group.is_empty() {
            format!("count/{}", self.resource)
        } else {
            format!("count/{}.{}", self.resource, self.group)
        }
    }

    fn is_core(&self, resource: &str) -> bool {
        self.group.is_empty() && self.resource == resource
    }

    /// Whether an update can change the usage (services: the type and ports may change; the
    /// other kinds are charged on create only).
    pub fn handles_update(&self) -> bool {
        self.is_core("services")
    }

    /// The names among `names` that this evaluator charges, sorted (`MatchingResources`).
    pub fn matching_resources<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let count = self.object_count_name();
        let legacy = legacy_name(self);
        let matched: BTreeSet<&str> = names
            .into_iter()
            .filter(|name| {
                if self.is_core("pods") {
                    POD_RESOURCES.contains(name)
                        || POD_RESOURCE_PREFIXES.iter().any(|p| name.starts_with(p))
                        || is_extended_resource_name_for_quota(name)
                } else if self.is_core("services") {
                    SERVICE_RESOURCES.contains(name)
                } else {
                    *name == count || Some(*name) == legacy
                }
            })
            .collect();
        matched.into_iter().map(str::to_owned).collect()
    }

    /// Whether `quota` applies to `object`: it limits a resource this evaluator charges (in
    /// `status.hard`) and every one of its scopes selects the object (`generic.Matches`).
    pub fn matches(&self, quota: &ResourceQuota, object: Object<'_>) -> bool {
        let hard = quota.status.as_ref().and_then(|s| s.hard.as_ref());
        let limits_any = !self
            .matching_resources(hard.into_iter().flatten().map(|(name, _)| name.as_str()))
            .is_empty();
        limits_any && self.matches_scopes(&scope_selectors(quota), object)
    }

    /// Whether every scope selector selects `object`; only pods have scopes, so a scoped quota
    /// selects nothing else (`MatchesNoScopeFunc`).
    pub fn matches_scopes(
        &self,
        selectors: &[ScopedResourceSelectorRequirement],
        object: Object<'_>,
    ) -> bool {
        selectors.iter().all(|selector| match object {
            Object::Pod(pod) if self.is_core("pods") => pod_matches_scope(selector, pod),
            _ => false,
        })
    }

    /// Checks what a quota on `required` (the resources it limits that this evaluator
    /// charges) demands of the object beyond its usage: every container of a pod must state
    /// the cpu and memory requests and limits such a quota limits. The error is Kubernetes'
    /// (`must specify limits.cpu for: app; requests.memory for: app,sidecar`).
    pub fn constraints(&self, required: &[String], object: Object<'_>) -> Result<(), String> {
        let Object::Pod(pod) = object else {
            return Ok(());
        };
        if !self.is_core("pods") {
            return Ok(());
        }
        let required: BTreeSet<&str> = required
            .iter()
            .map(String::as_str)
            .filter(|name| MUST_BE_SPECIFIED.contains(name))
            .collect();
        let mut missing: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let spec = pod.spec.as_ref();
        let containers = spec.into_iter().flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        });
        for container in containers {
            let stated = container_compute_names(container);
            for name in &required {
                if !stated.contains(*name) {
                    missing
                        .entry(name)
                        .or_default()
                        .insert(container.name.as_str());
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = missing
            .iter()
            .map(|(name, containers)| {
                let containers: Vec<&str> = containers.iter().copied().collect();
                format!("{name} for: {}", containers.join(","))
            })
            .collect();
        Err(format!("must specify {}", parts.join("; ")))
    }

    /// What `object` uses (`Usage`), as of `now` (a pod whose deletion's grace period is over
    /// no longer uses compute resources).
    pub fn usage(
        &self,
        object: Object<'_>,
        now: DateTime<Utc>,
    ) -> Result<ResourceList, QuotaError> {
        if self.is_core("pods") {
            return match object {
                Object::Pod(pod) => pod_usage(pod, now),
                _ => Ok(count(&["count/pods"])),
            };
        }
        if self.is_core("services") {
            return Ok(match object {
                Object::Service(service) => service_usage(service),
                _ => count(&["count/services", "services"]),
            });
        }
        let name = self.object_count_name();
        let mut names = vec![name.as_str()];
        names.extend(legacy_name(self));
        Ok(count(&names))
    }

    /// The usage of `objects` (those of one namespace) for a quota with `selectors` (its
    /// scopes) on the resources `names` (which this evaluator charges): each of them starts at
    /// zero, and every object the scopes select adds its usage (`generic.CalculateUsageStats`).
    pub fn usage_stats<'a>(
        &self,
        names: &[String],
        selectors: &[ScopedResourceSelectorRequirement],
        objects: impl IntoIterator<Item = Object<'a>>,
        now: DateTime<Utc>,
    ) -> Result<ResourceList, QuotaError> {
        let mut used: ResourceList = names
            .iter()
            .map(|name| (name.clone(), ParsedQuantity::zero()))
            .collect();
        for object in objects {
            if self.matches_scopes(selectors, object) {
                used = add(&used, &self.usage(object, now)?);
            }
        }
        Ok(super::mask(&used, names.iter().map(String::as_str)))
    }
}

/// A quota's scopes as selector requirements: each of `spec.scopes` as `Exists`, then
/// `spec.scopeSelector.matchExpressions` (`getScopeSelectorsFromQuota`).
pub fn scope_selectors(quota: &ResourceQuota) -> Vec<ScopedResourceSelectorRequirement> {
    let spec = quota.spec.as_ref();
    let scopes = spec
        .and_then(|s| s.scopes.as_ref())
        .into_iter()
        .flatten()
        .map(|scope| ScopedResourceSelectorRequirement {
            scope_name: scope.clone(),
            operator: "Exists".to_owned(),
            values: None,
        });
    let expressions = spec
        .and_then(|s| s.scope_selector.as_ref())
        .and_then(|s| s.match_expressions.as_ref())
        .into_iter()
        .flatten()
        .cloned();
    scopes.chain(expressions).collect()
}

/// The legacy quota name of a core resource counted before `count/` existed.
fn legacy_name(evaluator: &Evaluator) -> Option<&'static str> {
    if !evaluator.group.is_empty() {
        return None;
    }
    legacy_resource(&evaluator.resource)
}

fn legacy_resource(name: &str) -> Option<&'static str> {
    [
        "configmaps",
        "secrets",
        "replicationcontrollers",
        "resourcequotas",
        "persistentvolumeclaims",
    ]
    .into_iter()
    .find(|legacy| *legacy == name)
}

/// One of each of `names`.
fn count(names: &[&str]) -> ResourceList {
    names
        .iter()
        .map(|name| ((*name).to_owned(), ParsedQuantity::from_count(1)))
        .collect()
}

/// Kubernetes-owned resource names: no domain, or a `kubernetes.io` one (`IsNativeResource`).
fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// A resource of a device plugin or other extension (`example.com/gpu`), which quota knows as
/// `requests.example.com/gpu` (`IsExtendedResourceName`).
fn is_extended_resource_name(name: &str) -> bool {
    !is_native_resource(name)
        && !name.starts_with("requests.")
        && validate_label_key(&format!("requests.{name}")).is_ok()
}

/// `requests.example.com/gpu`: a quota on an extended resource (`isExtendedResourceNameForQuota`).
fn is_extended_resource_name_for_quota(name: &str) -> bool {
    !is_native_resource(name) && name.starts_with("requests.")
}

/// Whether the pod still uses its compute resources and a `pods` slot: it has not finished,
/// and its deletion's grace period (if it is being deleted) is not over (`QuotaV1Pod`).
pub fn pod_is_charged(pod: &CachedPod, now: DateTime<Utc>) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    if let (Some(deleted), Some(grace)) = (
        &pod.metadata.deletion_timestamp,
        pod.metadata.deletion_grace_period_seconds,
    ) && now > crate::time::plus_seconds(deleted.0, grace)
    {
        return false;
    }
    true
}

/// A pod's usage (`PodUsageFunc`).
fn pod_usage(pod: &CachedPod, now: DateTime<Utc>) -> Result<ResourceList, QuotaError> {
    let stored = count(&["count/pods"]);
    if !pod_is_charged(pod, now) {
        return Ok(stored);
    }
    let Some(spec) = &pod.spec else {
        return Ok(add(&stored, &count(&["pods"])));
    };
    let requests = pod_resources(
        &spec.containers,
        spec.init_containers.as_deref().unwrap_or_default(),
        |c| c.resources.as_ref().and_then(|r| r.requests.as_ref()),
    )?;
    let mut limits = pod_resources(
        &spec.containers,
        spec.init_containers.as_deref().unwrap_or_default(),
        |c| c.resources.as_ref().and_then(|r| r.limits.as_ref()),
    )?;
    let overhead = parse(spec.overhead.as_ref())?;
    let requests = add(&requests, &overhead);
    // Overhead adds to the limits the pod has, and sets none it lacks.
    for (name, q) in &overhead {
        if let Some(limit) = limits.get_mut(name) {
            limit.add(q);
        }
    }
    Ok(add(&stored, &compute_usage(&requests, &limits)))
}

/// The sum of the containers' amounts and of the restartable init containers' (sidecars),
/// raised to what any other init container needs beside the sidecars started before it
/// (`AggregateContainerRequests` / `AggregateContainerLimits`).
fn pod_resources<'a>(
    containers: &'a [CachedContainer],
    init_containers: &'a [CachedContainer],
    of: impl Fn(&'a CachedContainer) -> Option<&'a BTreeMap<String, Quantity>>,
) -> Result<ResourceList, QuotaError> {
    let mut total = ResourceList::new();
    for container in containers {
        total = add(&total, &parse(of(container))?);
    }
    let mut sidecars = ResourceList::new();
    let mut init_peak = ResourceList::new();
    for container in init_containers {
        let own = parse(of(container))?;
        let needs = if container.restart_policy.as_deref() == Some("Always") {
            total = add(&total, &own);
            sidecars = add(&sidecars, &own);
            sidecars.clone()
        } else {
            add(&own, &sidecars)
        };
        raise(&mut init_peak, &needs);
    }
    raise(&mut total, &init_peak);
    Ok(total)
}

/// Raises each amount of `list` to at least the one in `to` (`maxResourceList`).
fn raise(list: &mut ResourceList, to: &ResourceList) {
    for (name, q) in to {
        match list.get_mut(name) {
            Some(current) if *current >= *q => {}
            Some(current) => *current = *q,
            None => {
                list.insert(name.clone(), *q);
            }
        }
    }
}

/// The quota names requests and limits charge (`podComputeUsageHelper`): `pods`, cpu and
/// memory and ephemeral storage as `<name>` and `requests.<name>` (requests) and
/// `limits.<name>` (limits), huge pages as themselves and `requests.hugepages-*`, and
/// extended resources as `requests.<name>`.
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut usage = count(&["pods"]);
    for name in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(name) {
            usage.insert(name.to_owned(), *q);
            usage.insert(format!("requests.{name}"), *q);
        }
        if let Some(q) = limits.get(name) {
            usage.insert(format!("limits.{name}"), *q);
        }
    }
    for (name, q) in requests {
        if name.starts_with("hugepages-") {
            usage.insert(name.clone(), *q);
            usage.insert(format!("requests.{name}"), *q);
        }
        if is_extended_resource_name(name) {
            usage.insert(format!("requests.{name}"), *q);
        }
    }
    usage
}

/// The quota names one container's requests and limits state (for
/// [`Evaluator::constraints`]); quantities need not parse to be stated.
fn container_compute_names(container: &CachedContainer) -> BTreeSet<String> {
    let resources = container.resources.as_ref();
    let stated = |list: Option<&BTreeMap<String, Quantity>>| -> ResourceList {
        list.into_iter()
            .flatten()
            .map(|(name, _)| (name.clone(), ParsedQuantity::zero()))
            .collect()
    };
    let requests = stated(resources.and_then(|r| r.requests.as_ref()));
    let limits = stated(resources.and_then(|r| r.limits.as_ref()));
    compute_usage(&requests, &limits).into_keys().collect()
}

/// Whether a pod's `activeDeadlineSeconds` bounds its life (the `Terminating` scope).
fn is_terminating(pod: &CachedPod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .is_some_and(|d| d >= 0)
}

fn is_best_effort(pod: &CachedPod) -> bool {
    let class = pod
        .status
        .as_ref()
        .and_then(|s| s.qos_class.as_deref())
        .filter(|c| !c.is_empty());
    match class {
        Some(class) => class == "BestEffort",
        None => pod
            .spec
            .as_ref()
            .is_none_or(|spec| crate::pod::qos_class(spec) == "BestEffort"),
    }
}

/// Whether a pod affinity term looks at other namespaces (`CrossNamespacePodAffinity`).
fn is_cross_namespace(term: &PodAffinityTerm) -> bool {
    term.namespaces.as_ref().is_some_and(|n| !n.is_empty()) || term.namespace_selector.is_some()
}

fn uses_cross_namespace_pod_affinity(pod: &CachedPod) -> bool {
    let Some(affinity) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return false;
    };
    let affinity_terms = affinity.pod_affinity.as_ref().map(|a| {
        (
            a.required_during_scheduling_ignored_during_execution
                .as_ref(),
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    });
    let anti_affinity_terms = affinity.pod_anti_affinity.as_ref().map(|a| {
        (
            a.required_during_scheduling_ignored_during_execution
                .as_ref(),
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    });
    [affinity_terms, anti_affinity_terms]
        .into_iter()
        .flatten()
        .any(|(required, preferred)| {
            required.into_iter().flatten().any(is_cross_namespace)
                || preferred
                    .into_iter()
                    .flatten()
                    .any(|w| is_cross_namespace(&w.pod_affinity_term))
        })
}

/// Whether one scope selector selects a pod (`podMatchesScopeFunc`).
fn pod_matches_scope(selector: &ScopedResourceSelectorRequirement, pod: &CachedPod) -> bool {
    match selector.scope_name.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "CrossNamespacePodAffinity" => uses_cross_namespace_pod_affinity(pod),
        PRIORITY_CLASS => {
            let class = pod
                .spec
                .as_ref()
                .and_then(|s| s.priority_class_name.as_deref())
                .filter(|c| !c.is_empty());
            let values = selector.values.as_deref().unwrap_or_default();
            match selector.operator.as_str() {
                "Exists" => class.is_some(),
                "DoesNotExist" => class.is_none(),
                "In" => class.is_some_and(|c| values.iter().any(|v| v == c)),
                "NotIn" => class.is_none_or(|c| values.iter().all(|v| v != c)),
                _ => false,
            }
        }
        _ => false,
    }
}

/// A service's usage: one service, and its node ports and load balancer by type.
fn service_usage(service: &Service) -> ResourceList {
    let mut usage = count(&["count/services", "services"]);
    let spec = service.spec.as_ref();
    let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
    let node_ports = match spec.and_then(|s| s.type_.as_deref()) {
        Some("NodePort") => ports.len(),
        Some("LoadBalancer") => {
            usage.insert(
                "services.loadbalancers".to_owned(),
                ParsedQuantity::from_count(1),
            );
            // Without allocated node ports, only the ports that name one count.
            if spec.and_then(|s| s.allocate_load_balancer_node_ports) == Some(false) {
                ports
                    .iter()
                    .filter(|p| p.node_port.unwrap_or(0) != 0)
                    .count()
            } else {
                ports.len()
            }
        }
        _ => 0,
    };
    usage
        .entry("services.loadbalancers".to_owned())
        .or_insert_with(ParsedQuantity::zero);
    usage.insert(
        "services.nodeports".to_owned(),
        ParsedQuantity::from_count(u64::try_from(node_ports).unwrap_or(u64::MAX)),
    );
    usage
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::pretty_print;
    use super::*;

    fn pod(value: serde_json::Value) -> CachedPod {
        serde_json::from_value(value).expect("pod")
    }

    fn quota(value: serde_json::Value) -> ResourceQuota {
        serde_json::from_value(value).expect("quota")
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    fn usage(evaluator: &Evaluator, object: Object<'_>) -> String {
        pretty_print(&evaluator.usage(object, now()).expect("usage"))
    }

    fn pods() -> Evaluator {
        Evaluator::new("", "pods")
    }

    fn web() -> CachedPod {
        pod(json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [
                {"name": "app", "resources": {
                    "requests": {"cpu": "250m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"}}},
                {"name": "log", "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}}},
            ]},
            "status": {"phase": "Running"},
        }))
    }

    #[test]
    fn a_pod_uses_its_summed_requests_and_limits() {
        assert_eq!(
            usage(&pods(), Object::Pod(&web())),
            "count/pods=1,cpu=500m,limits.cpu=500m,limits.memory=256Mi,memory=256Mi,pods=1,\
             requests.cpu=500m,requests.memory=256Mi"
        );
        let bare = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}));
        assert_eq!(usage(&pods(), Object::Pod(&bare)), "count/pods=1,pods=1");
    }

    #[test]
    fn init_containers_raise_and_sidecars_add() {
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [
                    {"name": "sidecar", "restartPolicy": "Always",
                     "resources": {"requests": {"cpu": "100m"}}},
                    {"name": "migrate", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}},
                ],
                "containers": [{"name": "app", "resources": {"requests": {"cpu": "1"}}}],
                "overhead": {"cpu": "10m"},
            },
        }));
        let used = pods().usage(Object::Pod(&p), now()).expect("usage");
        // The migration runs beside the sidecar: 2.1 cpus, more than app + sidecar (1.1).
        assert_eq!(used["requests.cpu"].to_string(), "2110m");
        assert_eq!(used["requests.memory"].to_string(), "1Gi");
    }

    #[test]
    fn finished_and_long_deleted_pods_use_only_their_count() {
        for phase in ["Succeeded", "Failed"] {
            let mut finished = web();
            finished.status.as_mut().unwrap().phase = Some(phase.into());
            assert_eq!(
                usage(&pods(), Object::Pod(&finished)),
                "count/pods=1",
                "{phase}"
            );
        }
        let mut deleted = web();
        deleted.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                now() - chrono::Duration::seconds(31),
            ));
        deleted.metadata.deletion_grace_period_seconds = Some(30);
        assert_eq!(usage(&pods(), Object::Pod(&deleted)), "count/pods=1");
        deleted.metadata.deletion_grace_period_seconds = Some(60);
        assert!(usage(&pods(), Object::Pod(&deleted)).contains("pods=1,requests.cpu"));
        // A grace period past the end of time: still charged, no overflow.
        deleted.metadata.deletion_grace_period_seconds = Some(i64::MAX);
        assert!(usage(&pods(), Object::Pod(&deleted)).contains("pods=1,requests.cpu"));
    }

    #[test]
    fn services_count_node_ports_and_load_balancers() {
        let services = Evaluator::new("", "services");
        let service = |spec: serde_json::Value| -> Service {
            serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": spec})).expect("svc")
        };
        let ports = json!([{"port": 80}, {"port": 443}]);
        assert_eq!(
            usage(
                &services,
                Object::Service(&service(json!({"ports": ports})))
            ),
            "count/services=1,services=1,services.loadbalancers=0,services.nodeports=0"
        );
        assert_eq!(
            usage(
                &services,
                Object::Service(&service(json!({"type": "NodePort", "ports": ports})))
            ),
            "count/services=1,services=1,services.loadbalancers=0,services.nodeports=2"
        );
        assert_eq!(
            usage(
                &services,
                Object::Service(&service(json!({"type": "LoadBalancer", "ports": ports,
                    "allocateLoadBalancerNodePorts": false})))
            ),
            "count/services=1,services=1,services.loadbalancers=1,services.nodeports=0"
        );
    }

    #[test]
    fn other_kinds_count_by_count_name_and_legacy_name() {
        assert_eq!(
            usage(&Evaluator::new("", "configmaps"), Object::Other),
            "configmaps=1,count/configmaps=1"
        );
        assert_eq!(
            usage(&Evaluator::new("apps", "deployments"), Object::Other),
            "count/deployments.apps=1"
        );
        assert_eq!(
            Evaluator::new("apps", "deployments").matching_resources([
                "count/deployments.apps",
                "deployments",
                "pods"
            ]),
            ["count/deployments.apps"]
        );
    }

    #[test]
    fn quota_names_find_their_evaluator() {
        let find = |name: &str| Evaluator::for_resource_name(name).map(|e| e.object_count_name());
        assert_eq!(find("pods").as_deref(), Some("count/pods"));
        assert_eq!(find("requests.cpu").as_deref(), Some("count/pods"));
        assert_eq!(
            find("requests.hugepages-2Mi").as_deref(),
            Some("count/pods")
        );
        assert_eq!(
            find("requests.example.com/gpu").as_deref(),
            Some("count/pods")
        );
        assert_eq!(
            find("services.nodeports").as_deref(),
            Some("count/services")
        );
        assert_eq!(find("secrets").as_deref(), Some("count/secrets"));
        assert_eq!(
            find("count/leases.coordination.k8s.io").as_deref(),
            Some("count/leases.coordination.k8s.io")
        );
        assert_eq!(find("count/pods").as_deref(), Some("count/pods"));
        assert_eq!(find("storage"), None);
        assert_eq!(find("count/"), None);
    }

    #[test]
    fn quotas_match_by_status_hard_and_scopes() {
        let cpu_quota = quota(json!({"metadata": {"name": "q"},
            "status": {"hard": {"requests.cpu": "1"}}}));
        assert!(pods().matches(&cpu_quota, Object::Pod(&web())));
        assert!(!Evaluator::new("", "secrets").matches(&cpu_quota, Object::Other));
        // Before the controller has set status.hard, nothing is limited.
        let new = quota(json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}}));
        assert!(!pods().matches(&new, Object::Pod(&web())));

        let best_effort = quota(json!({"metadata": {"name": "q"},
            "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]},
            "status": {"hard": {"pods": "1"}}}));
        assert!(!pods().matches(&best_effort, Object::Pod(&web())));
        let bare = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}));
        assert!(pods().matches(&best_effort, Object::Pod(&bare)));
        let secrets_scoped = quota(json!({"metadata": {"name": "q"},
            "spec": {"scopes": ["NotTerminating"]}, "status": {"hard": {"secrets": "1"}}}));
        assert!(!Evaluator::new("", "secrets").matches(&secrets_scoped, Object::Other));

        let priority = |operator: &str, values: serde_json::Value| {
            quota(json!({"metadata": {"name": "q"},
                "spec": {"scopeSelector": {"matchExpressions": [
                    {"scopeName": "PriorityClass", "operator": operator, "values": values}]}},
                "status": {"hard": {"pods": "1"}}}))
        };
        let mut high = bare.clone();
        high.spec.as_mut().unwrap().priority_class_name = Some("high".into());
        assert!(pods().matches(&priority("In", json!(["high"])), Object::Pod(&high)));
        assert!(!pods().matches(&priority("In", json!(["high"])), Object::Pod(&bare)));
        assert!(pods().matches(&priority("NotIn", json!(["high"])), Object::Pod(&bare)));
        assert!(pods().matches(&priority("Exists", json!(null)), Object::Pod(&high)));
        assert!(pods().matches(&priority("DoesNotExist", json!(null)), Object::Pod(&bare)));
    }

    #[test]
    fn cpu_and_memory_quotas_need_every_container_to_state_them() {
        let required = [
            "limits.cpu".to_owned(),
            "requests.memory".to_owned(),
            "pods".to_owned(),
        ];
        let err = pods()
            .constraints(&required, Object::Pod(&web()))
            .expect_err("the log container has no cpu limit");
        assert_eq!(err, "must specify limits.cpu for: log");
        let bare = pod(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "b"}, {"name": "a"}]}}));
        assert_eq!(
            pods().constraints(&required, Object::Pod(&bare)),
            Err("must specify limits.cpu for: a,b; requests.memory for: a,b".into())
        );
        assert_eq!(
            pods().constraints(&["pods".to_owned()], Object::Pod(&bare)),
            Ok(())
        );
    }

    #[test]
    fn usage_stats_start_at_zero_and_sum_the_selected_objects() {
        let names = vec!["pods".to_owned(), "requests.cpu".to_owned()];
        let mut done = web();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let listed = [web(), web(), done];
        let used = pods()
            .usage_stats(&names, &[], listed.iter().map(Object::Pod), now())
            .expect("stats");
        assert_eq!(pretty_print(&used), "pods=2,requests.cpu=1");
        let none = pods().usage_stats(&names, &[], [], now()).expect("stats");
        assert_eq!(pretty_print(&none), "pods=0,requests.cpu=0");
        let counted = Evaluator::new("", "secrets")
            .usage_stats(
                &["secrets".to_owned()],
                &[],
                [Object::Other, Object::Other],
                now(),
            )
            .expect("stats");
        assert_eq!(pretty_print(&counted), "secrets=2");
    }
}
