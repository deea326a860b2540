//! Defaulting: the values Kubernetes fills into an object the client left unset, so a
//! stored object reads as it would from a real cluster (`kubectl get -o yaml`).
//!
//! These are `SetDefaults_*` of `pkg/apis/core/v1/defaults.go` and `pkg/apis/apps/v1/defaults.go`,
//! plus the few values Kubernetes sets on create in the registry or in admission plugins and
//! that users see on every object: a Pod's status phase and QoS class, priority and service
//! account; a Namespace's `kubernetes` finalizer and phase; a Service's IP families.
//! Every function only fills what is unset, so applying it again changes nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, RollingUpdateDaemonSet,
    RollingUpdateDeployment, RollingUpdateStatefulSetStrategy, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, Endpoints, EnvVar, Event, HTTPGetAction,
    LifecycleHandler, LoadBalancerStatus, Namespace, NamespaceSpec, NamespaceStatus, Node, Pod,
    PodSecurityContext, PodSpec, PodStatus, PodTemplate, PodTemplateSpec, Probe,
    ReplicationController, ResourceQuota, ResourceRequirements, Service, ServiceStatus, Toleration,
    Volume,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Kubernetes' `DefaultTerminationGracePeriodSeconds`.
pub const TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// Kubernetes' default scheduler name.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// Mode of files in secret, configMap, downwardAPI and projected volumes (0644).
const VOLUME_DEFAULT_MODE: i32 = 0o644;
/// `sessionAffinityConfig.clientIP.timeoutSeconds` default: 3 hours.
const CLIENT_IP_AFFINITY_SECONDS: i32 = 10_800;

fn set<T>(field: &mut Option<T>, value: impl FnOnce() -> T) {
    if field.is_none() {
        *field = Some(value());
    }
}

fn set_str(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.to_string());
    }
}

// ---------------------------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------------------------

/// The pull policy Kubernetes gives an image: `Always` for `:latest` or no tag (and no
/// digest), `IfNotPresent` otherwise.
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.is_empty() {
        return "IfNotPresent";
    }
    let (name, has_digest) = match image.split_once('@') {
        Some((name, _)) => (name, true),
        None => (image, false),
    };
    // The tag follows the last ':' of the last path component (a registry port is earlier).
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':').map(|(_, tag)| tag) {
        Some("latest") => "Always",
        Some(_) => "IfNotPresent",
        None if has_digest => "IfNotPresent",
        None => "Always",
    }
}

fn http_get(action: &mut HTTPGetAction) {
    set_str(&mut action.path, "/");
    set_str(&mut action.scheme, "HTTP");
}

fn probe(p: &mut Probe) {
    set(&mut p.timeout_seconds, || 1);
    set(&mut p.period_seconds, || 10);
    set(&mut p.success_threshold, || 1);
    set(&mut p.failure_threshold, || 3);
    if let Some(action) = &mut p.http_get {
        http_get(action);
    }
}

fn lifecycle_handler(h: &mut LifecycleHandler) {
    if let Some(action) = &mut h.http_get {
        http_get(action);
    }
}

fn container_ports(ports: &mut [ContainerPort]) {
    for port in ports {
        set_str(&mut port.protocol, "TCP");
    }
}

fn env(vars: &mut [EnvVar]) {
    for var in vars {
        if let Some(field_ref) = var.value_from.as_mut().and_then(|f| f.field_ref.as_mut()) {
            set_str(&mut field_ref.api_version, "v1");
        }
    }
}

/// Container defaults (`SetDefaults_Container` and what it nests): pull policy from the image
/// tag, termination message path and policy, port protocols, `resources: {}`, probe timings.
pub fn container(c: &mut Container) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        c.image_pull_policy = Some(image_pull_policy(c.image.as_deref().unwrap_or("")).to_string());
    }
    set_str(&mut c.termination_message_path, "/dev/termination-log");
    set_str(&mut c.termination_message_policy, "File");
    container_ports(c.ports.as_deref_mut().unwrap_or_default());
    env(c.env.as_deref_mut().unwrap_or_default());
    set(&mut c.resources, ResourceRequirements::default);
    for p in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        probe(p);
    }
    if let Some(lifecycle) = &mut c.lifecycle {
        for h in [&mut lifecycle.post_start, &mut lifecycle.pre_stop]
            .into_iter()
            .flatten()
        {
            lifecycle_handler(h);
        }
    }
}

fn volume(v: &mut Volume) {
    let has_source = v.aws_elastic_block_store.is_some()
        || v.azure_disk.is_some()
        || v.azure_file.is_some()
        || v.cephfs.is_some()
        || v.cinder.is_some()
        || v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.fc.is_some()
        || v.flex_volume.is_some()
        || v.flocker.is_some()
        || v.gce_persistent_disk.is_some()
        || v.git_repo.is_some()
        || v.glusterfs.is_some()
        || v.host_path.is_some()
        || v.image.is_some()
        || v.iscsi.is_some()
        || v.nfs.is_some()
        || v.persistent_volume_claim.is_some()
        || v.photon_persistent_disk.is_some()
        || v.portworx_volume.is_some()
        || v.projected.is_some()
        || v.quobyte.is_some()
        || v.rbd.is_some()
        || v.scale_io.is_some()
        || v.secret.is_some()
        || v.storageos.is_some()
        || v.vsphere_volume.is_some();
    if !has_source {
        v.empty_dir = Some(EmptyDirVolumeSource::default());
    }
    if let Some(s) = &mut v.secret {
        set(&mut s.default_mode, || VOLUME_DEFAULT_MODE);
    }
    if let Some(s) = &mut v.config_map {
        set(&mut s.default_mode, || VOLUME_DEFAULT_MODE);
    }
    if let Some(s) = &mut v.downward_api {
        set(&mut s.default_mode, || VOLUME_DEFAULT_MODE);
    }
    if let Some(s) = &mut v.projected {
        set(&mut s.default_mode, || VOLUME_DEFAULT_MODE);
    }
    if let Some(s) = &mut v.host_path {
        set(&mut s.type_, String::new);
    }
}

/// Pod spec defaults, shared by Pods and every controller's template (`SetDefaults_PodSpec`):
/// `dnsPolicy: ClusterFirst`, `restartPolicy: Always`, `securityContext: {}`,
/// `terminationGracePeriodSeconds: 30`, `schedulerName: default-scheduler`, volume and
/// container defaults.
pub fn pod_spec(spec: &mut PodSpec) {
    set_str(&mut spec.dns_policy, "ClusterFirst");
    set_str(&mut spec.restart_policy, "Always");
    set(&mut spec.security_context, PodSecurityContext::default);
    set(&mut spec.termination_grace_period_seconds, || {
        TERMINATION_GRACE_PERIOD_SECONDS
    });
    set_str(&mut spec.scheduler_name, DEFAULT_SCHEDULER_NAME);
    for v in spec.volumes.iter_mut().flatten() {
        volume(v);
    }
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(&mut spec.containers)
    {
        container(c);
    }
}

/// A controller's pod template: the pod spec defaults (an absent spec becomes an empty one,
/// as Kubernetes' template spec is never nil).
pub fn pod_template_spec(template: &mut PodTemplateSpec) {
    pod_spec(template.spec.get_or_insert_with(PodSpec::default));
}

/// PodTemplate defaults: the pod spec defaults in its template.
pub fn pod_template(template: &mut PodTemplate) {
    if let Some(template) = &mut template.template {
        pod_template_spec(template);
    }
}

/// ResourceQuotas have no defaults.
pub fn resource_quota(_quota: &mut ResourceQuota) {}

/// Requests default to limits for every resource a container limits but does not request.
fn requests_from_limits(c: &mut Container) {
    let Some(res) = &mut c.resources else { return };
    let Some(limits) = &res.limits else { return };
    let requests = res.requests.get_or_insert_with(BTreeMap::new);
    for (name, q) in limits {
        requests.entry(name.clone()).or_insert_with(|| q.clone());
    }
}

/// Pod defaults: the pod spec defaults, requests from limits, `enableServiceLinks: true`,
/// host ports equal to container ports under `hostNetwork`, the service account `default`,
/// `priority: 0` with `preemptionPolicy: PreemptLowerPriority`, and `status.phase: Pending`
/// with the computed `status.qosClass`.
pub fn pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    pod_spec(spec);
    let host_network = spec.host_network == Some(true);
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(&mut spec.containers)
    {
        requests_from_limits(c);
        if host_network {
            for port in c.ports.iter_mut().flatten() {
                if port.host_port.unwrap_or(0) == 0 {
                    port.host_port = Some(port.container_port);
                }
            }
        }
    }
    set(&mut spec.enable_service_links, || true);
    // The ServiceAccount admission plugin; `serviceAccount` is the deprecated alias.
    if spec
        .service_account_name
        .as_deref()
        .is_none_or(str::is_empty)
    {
        let name = spec.service_account.clone().filter(|s| !s.is_empty());
        spec.service_account_name = Some(name.unwrap_or_else(|| "default".to_string()));
    }
    set(&mut spec.service_account, || {
        spec.service_account_name.clone().unwrap_or_default()
    });
    // The Priority admission plugin, without PriorityClasses.
    if spec
        .priority_class_name
        .as_deref()
        .is_none_or(str::is_empty)
    {
        set(&mut spec.priority, || 0);
    }
    set_str(&mut spec.preemption_policy, "PreemptLowerPriority");
    // The DefaultTolerationSeconds admission plugin: a pod stays 300 s on a node that turned
    // not-ready or unreachable before the node lifecycle controller evicts it.
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
        let tolerated = tolerations.iter().any(|t| {
            t.key.as_deref() == Some(key)
                && t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "NoExecute")
        });
        if !tolerated {
            tolerations.push(Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".to_string()),
                effect: Some("NoExecute".to_string()),
                toleration_seconds: Some(300),
                value: None,
            });
        }
    }
    let qos = skiff_api::pod::qos_class(spec);
    let status = pod.status.get_or_insert_with(PodStatus::default);
    set_str(&mut status.phase, "Pending");
    status.qos_class = Some(qos.to_string());
}

// ---------------------------------------------------------------------------------------------
// Services and endpoints
// ---------------------------------------------------------------------------------------------

/// Service defaults (`SetDefaults_Service` and the registry's IP family defaults):
/// `type: ClusterIP`, `sessionAffinity: None`, port protocol TCP and `targetPort` = `port`,
/// `internalTrafficPolicy: Cluster`, `externalTrafficPolicy: Cluster` for NodePort and
/// LoadBalancer, `ipFamilies: [IPv4]` with `ipFamilyPolicy: SingleStack` (not for
/// ExternalName), and `status.loadBalancer: {}`.
pub fn service(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(Default::default);
    set_str(&mut spec.session_affinity, "None");
    match spec.session_affinity.as_deref() {
        Some("None") => spec.session_affinity_config = None,
        Some("ClientIP") => {
            let config = spec
                .session_affinity_config
                .get_or_insert_with(Default::default);
            let client_ip = config.client_ip.get_or_insert_with(Default::default);
            set(&mut client_ip.timeout_seconds, || {
                CLIENT_IP_AFFINITY_SECONDS
            });
        }
        _ => {}
    }
    set_str(&mut spec.type_, "ClusterIP");
    let ty = spec.type_.clone().unwrap_or_default();
    for port in spec.ports.iter_mut().flatten() {
        set_str(&mut port.protocol, "TCP");
        let unset = match &port.target_port {
            None | Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    let external = matches!(ty.as_str(), "NodePort" | "LoadBalancer");
    if external {
        set_str(&mut spec.external_traffic_policy, "Cluster");
    }
    if external || ty == "ClusterIP" {
        set_str(&mut spec.internal_traffic_policy, "Cluster");
    }
    if ty == "LoadBalancer" {
        set(&mut spec.allocate_load_balancer_node_ports, || true);
    }
    if ty != "ExternalName" {
        if spec.ip_families.as_ref().is_none_or(Vec::is_empty) {
            spec.ip_families = Some(vec!["IPv4".to_string()]);
        }
        set_str(&mut spec.ip_family_policy, "SingleStack");
        // clusterIPs mirrors clusterIP (its first element), as Kubernetes normalizes them.
        let cluster_ip = spec.cluster_ip.clone().filter(|ip| !ip.is_empty());
        match (
            &cluster_ip,
            spec.cluster_ips.as_ref().is_none_or(Vec::is_empty),
        ) {
            (Some(ip), true) => spec.cluster_ips = Some(vec![ip.clone()]),
            (None, false) => {
                spec.cluster_ip = spec
                    .cluster_ips
                    .as_ref()
                    .and_then(|ips| ips.first().cloned())
            }
            _ => {}
        }
    }
    let status = svc.status.get_or_insert_with(ServiceStatus::default);
    set(&mut status.load_balancer, LoadBalancerStatus::default);
}

/// Before a Service replaces a stored one: keep what the cluster allocated and the client
/// left out (ClusterIPs, node ports, health check port), as Kubernetes'
/// `patchAllocatedValues`, so `kubectl replace` of a manifest without `clusterIP` works.
pub fn service_update(old: &Service, new: &mut Service) {
    let (Some(old_spec), Some(new_spec)) = (&old.spec, &mut new.spec) else {
        return;
    };
    let is_external_name = |t: &Option<String>| t.as_deref() == Some("ExternalName");
    if is_external_name(&old_spec.type_) || is_external_name(&new_spec.type_) {
        return;
    }
    if new_spec.cluster_ip.as_deref().is_none_or(str::is_empty) {
        new_spec.cluster_ip.clone_from(&old_spec.cluster_ip);
    }
    if new_spec.cluster_ips.as_ref().is_none_or(Vec::is_empty) {
        new_spec.cluster_ips.clone_from(&old_spec.cluster_ips);
    }
    let needs_node_ports =
        |t: &Option<String>| matches!(t.as_deref(), Some("NodePort" | "LoadBalancer"));
    if needs_node_ports(&old_spec.type_) && needs_node_ports(&new_spec.type_) {
        for port in new_spec.ports.iter_mut().flatten() {
            if port.node_port.unwrap_or(0) != 0 {
                continue;
            }
            let same = old_spec.ports.iter().flatten().find(|o| {
                o.port == port.port
                    && o.protocol.as_deref().unwrap_or("TCP")
                        == port.protocol.as_deref().unwrap_or("TCP")
            });
            if let Some(o) = same {
                port.node_port = o.node_port;
            }
        }
        if new_spec.health_check_node_port.unwrap_or(0) == 0 {
            new_spec.health_check_node_port = old_spec.health_check_node_port;
        }
    }
}

/// Endpoints defaults: each port's protocol TCP.
pub fn endpoints(ep: &mut Endpoints) {
    for subset in ep.subsets.iter_mut().flatten() {
        for port in subset.ports.iter_mut().flatten() {
            set_str(&mut port.protocol, "TCP");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Controllers
// ---------------------------------------------------------------------------------------------

/// ReplicationController defaults: `replicas: 1`, the selector and the controller's labels
/// default to the template labels, and the template gets the pod spec defaults.
pub fn replication_controller(rc: &mut ReplicationController) {
    let spec = rc.spec.get_or_insert_with(Default::default);
    if let Some(template) = &mut spec.template {
        if let Some(template_labels) = template.metadata.as_ref().and_then(|m| m.labels.clone()) {
            if spec.selector.as_ref().is_none_or(BTreeMap::is_empty) {
                spec.selector = Some(template_labels.clone());
            }
            if rc.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
                rc.metadata.labels = Some(template_labels);
            }
        }
        pod_template_spec(template);
    }
    set(&mut spec.replicas, || 1);
}

/// ReplicaSet defaults: `replicas: 1` and the pod spec defaults in the template.
pub fn replica_set(rs: &mut ReplicaSet) {
    let spec = rs.spec.get_or_insert_with(Default::default);
    set(&mut spec.replicas, || 1);
    if let Some(template) = &mut spec.template {
        pod_template_spec(template);
    }
}

/// The label a Job's generated selector matches: its uid.
pub const JOB_CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label with a Job's name on its pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// Job defaults (Kubernetes' `SetDefaults_Job` and the Job strategy's selector generation):
/// unless `manualSelector`, a selector on the Job's uid and the labels that match it (and the
/// Job's name) on the template, the legacy `controller-uid` and `job-name` ones too;
/// `completions` and `parallelism` 1 when neither is set, else `parallelism` 1;
/// `backoffLimit: 6`, `completionMode: NonIndexed`, `suspend: false`,
/// `podReplacementPolicy: TerminatingOrFailed`, and the pod spec defaults in the template.
pub fn job(job: &mut Job) {
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let spec = job.spec.get_or_insert_with(Default::default);
    if spec.manual_selector != Some(true) && !uid.is_empty() {
        let labels = spec
            .template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default);
        for (key, value) in [
            (JOB_CONTROLLER_UID_LABEL, &uid),
            ("controller-uid", &uid),
            (JOB_NAME_LABEL, &name),
            ("job-name", &name),
        ] {
            labels
                .entry(key.to_owned())
                .or_insert_with(|| value.clone());
        }
        spec.selector
            .get_or_insert_with(LabelSelector::default)
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(JOB_CONTROLLER_UID_LABEL.to_owned(), uid.clone());
    }
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    set(&mut spec.parallelism, || 1);
    set(&mut spec.backoff_limit, || 6);
    set_str(&mut spec.completion_mode, "NonIndexed");
    set(&mut spec.suspend, || false);
    if spec.pod_failure_policy.is_none() {
        set_str(&mut spec.pod_replacement_policy, "TerminatingOrFailed");
    }
    pod_template_spec(&mut spec.template);
}

/// CronJob defaults (`SetDefaults_CronJob`): `concurrencyPolicy: Allow`, `suspend: false`,
/// 3 successful and 1 failed Job kept, and the pod spec defaults in the job template.
pub fn cron_job(cron_job: &mut CronJob) {
    let spec = cron_job.spec.get_or_insert_with(Default::default);
    set_str(&mut spec.concurrency_policy, "Allow");
    set(&mut spec.suspend, || false);
    set(&mut spec.successful_jobs_history_limit, || 3);
    set(&mut spec.failed_jobs_history_limit, || 1);
    if let Some(job_spec) = spec.job_template.spec.as_mut() {
        pod_template_spec(&mut job_spec.template);
    }
}

/// PodDisruptionBudgets have no defaults.
pub fn pod_disruption_budget(_pdb: &mut PodDisruptionBudget) {}

/// EndpointSlice defaults (`SetDefaults_EndpointPort`): each port's name `""` and protocol
/// `TCP` when unset.
pub fn endpoint_slice(slice: &mut EndpointSlice) {
    for port in slice.ports.iter_mut().flatten() {
        set(&mut port.name, String::new);
        set(&mut port.protocol, || String::from("TCP"));
    }
}

/// Deployment defaults: `replicas: 1`, strategy RollingUpdate with `maxUnavailable` and
/// `maxSurge` 25%, `revisionHistoryLimit: 10`, `progressDeadlineSeconds: 600`, and the pod
/// spec defaults in the template.
pub fn deployment(d: &mut Deployment) {
    let spec = d.spec.get_or_insert_with(Default::default);
    set(&mut spec.replicas, || 1);
    let strategy = spec.strategy.get_or_insert_with(Default::default);
    set_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        set(&mut ru.max_unavailable, || {
            IntOrString::String("25%".to_string())
        });
        set(&mut ru.max_surge, || IntOrString::String("25%".to_string()));
    }
    set(&mut spec.revision_history_limit, || 10);
    set(&mut spec.progress_deadline_seconds, || 600);
    pod_template_spec(&mut spec.template);
}

/// DaemonSet defaults (`SetDefaults_DaemonSet`): update strategy RollingUpdate with
/// `maxUnavailable: 1` and `maxSurge: 0`, `revisionHistoryLimit: 10`, and the pod spec
/// defaults in the template.
pub fn daemon_set(ds: &mut DaemonSet) {
    let spec = ds.spec.get_or_insert_with(Default::default);
    let strategy = spec.update_strategy.get_or_insert_with(Default::default);
    set_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDaemonSet::default);
        set(&mut ru.max_unavailable, || IntOrString::Int(1));
        set(&mut ru.max_surge, || IntOrString::Int(0));
    }
    set(&mut spec.revision_history_limit, || 10);
    pod_template_spec(&mut spec.template);
}

/// StatefulSet defaults (`SetDefaults_StatefulSet`): `replicas: 1`, `podManagementPolicy:
/// OrderedReady`, update strategy RollingUpdate (with `partition: 0` when it has a
/// rollingUpdate, which an unset type gets), `revisionHistoryLimit:
/// 10`, claims retained when deleted or scaled, and the pod spec defaults in the template.
pub fn stateful_set(sts: &mut StatefulSet) {
    let spec = sts.spec.get_or_insert_with(Default::default);
    set(&mut spec.replicas, || 1);
    set_str(&mut spec.pod_management_policy, "OrderedReady");
    let strategy = spec.update_strategy.get_or_insert_with(Default::default);
    // An explicit RollingUpdate keeps its rollingUpdate absent (kubectl's rollout status reads
    // the difference); an unset type gets both.
    if strategy.type_.is_none() {
        strategy.type_ = Some("RollingUpdate".to_owned());
        strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateStatefulSetStrategy::default);
    }
    if strategy.type_.as_deref() == Some("RollingUpdate")
        && let Some(ru) = &mut strategy.rolling_update
    {
        set(&mut ru.partition, || 0);
        // Behind the MaxUnavailableStatefulSet gate (alpha, off), dropped as Kubernetes drops it.
        ru.max_unavailable = None;
    }
    set(&mut spec.revision_history_limit, || 10);
    let retention = spec
        .persistent_volume_claim_retention_policy
        .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
    set_str(&mut retention.when_deleted, "Retain");
    set_str(&mut retention.when_scaled, "Retain");
    pod_template_spec(&mut spec.template);
}

/// ControllerRevisions have no defaults.
pub fn controller_revision(_revision: &mut ControllerRevision) {}

// ---------------------------------------------------------------------------------------------
// Cluster-scoped and small kinds
// ---------------------------------------------------------------------------------------------

/// Namespace defaults: the `kubernetes.io/metadata.name` label, `status.phase: Active`, and
/// the `kubernetes` finalizer when `spec.finalizers` is absent (an explicit empty list is
/// kept, so finalization can remove it).
pub fn namespace(ns: &mut Namespace) {
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata.labels.get_or_insert_with(BTreeMap::new).insert(
            skiff_api::well_known::LABEL_NAMESPACE_NAME.to_string(),
            name,
        );
    }
    let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
    set(&mut spec.finalizers, || vec!["kubernetes".to_string()]);
    let status = ns.status.get_or_insert_with(NamespaceStatus::default);
    set_str(&mut status.phase, "Active");
}

/// Node defaults: `status.allocatable` defaults to `status.capacity`.
pub fn node(node: &mut Node) {
    // podCIDR and podCIDRs name the same range (v1 conversion keeps them in step).
    if let Some(spec) = &mut node.spec {
        let single = spec.pod_cidr.clone().filter(|c| !c.is_empty());
        let list_empty = spec.pod_cidrs.as_ref().is_none_or(Vec::is_empty);
        match (single, list_empty) {
            (Some(cidr), true) => spec.pod_cidrs = Some(vec![cidr]),
            (None, false) => {
                spec.pod_cidr = spec.pod_cidrs.as_ref().and_then(|l| l.first().cloned())
            }
            _ => {}
        }
    }
    if let Some(status) = &mut node.status
        && status.allocatable.is_none()
    {
        status.allocatable.clone_from(&status.capacity);
    }
}

/// Event defaults: Kubernetes defines none for core/v1 Events.
pub fn event(_event: &mut Event) {}

/// Lease defaults: Kubernetes defines none.
pub fn lease(_lease: &mut Lease) {}

/// ConfigMaps have no defaults.
pub fn config_map(_cm: &mut k8s_openapi::api::core::v1::ConfigMap) {}

/// Secrets default to type `Opaque`; `stringData` is merged into `data` (write-only field).
pub fn secret(s: &mut k8s_openapi::api::core::v1::Secret) {
    if s.type_.as_deref().is_none_or(str::is_empty) {
        s.type_ = Some("Opaque".to_string());
    }
    if let Some(strings) = s.string_data.take() {
        let data = s.data.get_or_insert_with(Default::default);
        for (k, v) in strings {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
    }
}

/// ServiceAccounts have no defaults.
pub fn service_account(_sa: &mut k8s_openapi::api::core::v1::ServiceAccount) {}

/// Roles and ClusterRoles have no defaults.
pub fn no_rbac_defaults<T>(_role: &mut T) {}

/// A binding's User and Group subjects are of the RBAC group (Kubernetes'
/// `SetDefaults_Subject`).
fn subjects(subjects: Option<&mut Vec<k8s_openapi::api::rbac::v1::Subject>>) {
    for subject in subjects.into_iter().flatten() {
        if subject.api_group.as_deref().unwrap_or("").is_empty()
            && matches!(subject.kind.as_str(), "User" | "Group")
        {
            subject.api_group = Some("rbac.authorization.k8s.io".to_owned());
        }
    }
}

/// RoleBinding defaults: its subjects'.
pub fn role_binding(binding: &mut k8s_openapi::api::rbac::v1::RoleBinding) {
    subjects(binding.subjects.as_mut());
}

/// ClusterRoleBinding defaults: its subjects'.
pub fn cluster_role_binding(binding: &mut k8s_openapi::api::rbac::v1::ClusterRoleBinding) {
    subjects(binding.subjects.as_mut());
}

/// CertificateSigningRequests have no defaults.
pub fn certificate_signing_request(
    _csr: &mut k8s_openapi::api::certificates::v1::CertificateSigningRequest,
) {
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::validation;
    use super::*;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("test fixture decodes")
    }

    fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).expect("encodes")
    }

    fn defaulted_pod(spec: serde_json::Value) -> Pod {
        let mut p: Pod =
            from(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}));
        pod(&mut p);
        p
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("docker.io/library/nginx", "Always"),
            ("localhost:5000/nginx", "Always"),
            ("localhost:5000/nginx:1.0", "IfNotPresent"),
            ("nginx@sha256:0123abcd", "IfNotPresent"),
            ("nginx:latest@sha256:0123abcd", "Always"),
            ("", "IfNotPresent"),
        ] {
            assert_eq!(image_pull_policy(image), policy, "{image}");
        }
    }

    #[test]
    fn pod_gets_kubernetes_defaults() {
        let p = defaulted_pod(json!({
            "initContainers": [{"name": "init", "image": "busybox:1.36"}],
            "containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]
        }));
        let v = to_json(&p);
        let spec = &v["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
        assert_eq!(spec["priority"], 0);
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["serviceAccount"], "default");
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["resources"], json!({}));
        let init = &spec["initContainers"][0];
        assert_eq!(init["imagePullPolicy"], "IfNotPresent");
        assert_eq!(init["terminationMessagePolicy"], "File");
        assert_eq!(
            v["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
    }

    #[test]
    fn pod_defaults_keep_what_the_client_set() {
        let p = defaulted_pod(json!({
            "restartPolicy": "Never",
            "dnsPolicy": "Default",
            "terminationGracePeriodSeconds": 5,
            "enableServiceLinks": false,
            "serviceAccountName": "robot",
            "containers": [{"name": "a", "image": "a", "imagePullPolicy": "Never", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]
        }));
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.dns_policy.as_deref(), Some("Default"));
        assert_eq!(spec.termination_grace_period_seconds, Some(5));
        assert_eq!(spec.enable_service_links, Some(false));
        assert_eq!(spec.service_account_name.as_deref(), Some("robot"));
        assert_eq!(spec.service_account.as_deref(), Some("robot"));
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("Never"));
        assert_eq!(
            c.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("UDP")
        );
    }

    #[test]
    fn defaults_are_idempotent() {
        let once = defaulted_pod(
            json!({"containers": [{"name": "a", "image": "a:1", "resources": {"limits": {"cpu": "1"}}}]}),
        );
        let mut twice = once.clone();
        pod(&mut twice);
        assert_eq!(once, twice);

        let mut d: Deployment = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "a"}]}}
            }}),
        );
        deployment(&mut d);
        let once = d.clone();
        deployment(&mut d);
        assert_eq!(once, d);

        let mut s: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}}),
        );
        service(&mut s);
        let once = s.clone();
        service(&mut s);
        assert_eq!(once, s);
    }

    #[test]
    fn requests_default_to_limits_and_qos_class() {
        let guaranteed = defaulted_pod(
            json!({"containers": [{"name": "a", "image": "a", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}]}),
        );
        let res = guaranteed.spec.as_ref().unwrap().containers[0]
            .resources
            .as_ref()
            .unwrap();
        assert_eq!(res.requests, res.limits);
        assert_eq!(
            guaranteed.status.as_ref().unwrap().qos_class.as_deref(),
            Some("Guaranteed")
        );

        let qos = |spec: serde_json::Value| defaulted_pod(spec).status.unwrap().qos_class.unwrap();
        assert_eq!(
            qos(json!({"containers": [{"name": "a", "image": "a"}]})),
            "BestEffort"
        );
        assert_eq!(
            qos(
                json!({"containers": [{"name": "a", "image": "a", "resources": {"requests": {"cpu": "100m"}}}]})
            ),
            "Burstable"
        );
        assert_eq!(
            qos(
                json!({"containers": [{"name": "a", "image": "a", "resources": {"limits": {"cpu": "1"}}}]})
            ),
            "Burstable"
        );
        assert_eq!(
            qos(
                json!({"containers": [{"name": "a", "image": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}}]})
            ),
            "Burstable"
        );
        assert_eq!(
            qos(json!({"containers": [
                {"name": "a", "image": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
                {"name": "b", "image": "b"}
            ]})),
            "Burstable",
            "every container must be limited for Guaranteed"
        );
        assert_eq!(
            qos(
                json!({"containers": [{"name": "a", "image": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1024Mi"}}}]})
            ),
            "Guaranteed",
            "equal quantities in different units"
        );
        assert_eq!(
            qos(
                json!({"containers": [{"name": "a", "image": "a", "resources": {"requests": {"cpu": "0", "example.com/gpu": "1"}}}]})
            ),
            "BestEffort",
            "zero and non-cpu/memory resources do not count"
        );
    }

    #[test]
    fn host_network_ports_default_host_port() {
        let p = defaulted_pod(
            json!({"hostNetwork": true, "containers": [{"name": "a", "image": "a", "ports": [{"containerPort": 8080}]}]}),
        );
        assert_eq!(
            p.spec.unwrap().containers[0].ports.as_ref().unwrap()[0].host_port,
            Some(8080)
        );
    }

    #[test]
    fn volume_probe_and_env_defaults() {
        let p = defaulted_pod(json!({
            "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "host", "hostPath": {"path": "/var"}}],
            "containers": [{"name": "a", "image": "a",
                "livenessProbe": {"httpGet": {"port": 80}},
                "env": [{"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]
        }));
        let v = to_json(&p);
        assert_eq!(v["spec"]["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(v["spec"]["volumes"][1]["configMap"]["defaultMode"], 420);
        assert_eq!(v["spec"]["volumes"][2]["hostPath"]["type"], "");
        let c = &v["spec"]["containers"][0];
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    }

    #[test]
    fn service_defaults() {
        let mut s: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
                "selector": {"app": "web"},
                "ports": [{"port": 80}, {"name": "named", "port": 81, "targetPort": "http"}, {"name": "udp", "port": 53, "protocol": "UDP"}]
            }}),
        );
        service(&mut s);
        let v = to_json(&s);
        let spec = &v["spec"];
        assert_eq!(spec["type"], "ClusterIP");
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert!(spec.get("externalTrafficPolicy").is_none());
        assert_eq!(
            spec["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(spec["ports"][1]["targetPort"], "http");
        assert_eq!(spec["ports"][2]["protocol"], "UDP");
        assert_eq!(v["status"], json!({"loadBalancer": {}}));

        let mut np: Service = from(
            json!({"spec": {"type": "NodePort", "sessionAffinity": "ClientIP", "clusterIP": "10.96.0.20", "ports": [{"port": 80}]}}),
        );
        service(&mut np);
        let spec = np.spec.unwrap();
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(
            spec.session_affinity_config
                .unwrap()
                .client_ip
                .unwrap()
                .timeout_seconds,
            Some(10_800)
        );
        assert_eq!(spec.cluster_ips, Some(vec!["10.96.0.20".to_string()]));

        let mut ext: Service =
            from(json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}));
        service(&mut ext);
        let spec = ext.spec.unwrap();
        assert_eq!(spec.ip_families, None);
        assert_eq!(spec.ip_family_policy, None);
        assert_eq!(spec.internal_traffic_policy, None);
    }

    #[test]
    fn service_update_keeps_allocated_values() {
        let old: Service = from(
            json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}}),
        );
        let mut new: Service =
            from(json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}}));
        service_update(&old, &mut new);
        service(&mut new);
        let spec = new.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.20"));
        assert_eq!(spec.cluster_ips, Some(vec!["10.96.0.20".to_string()]));
        let ports = spec.ports.as_ref().unwrap();
        assert_eq!(
            (ports[0].node_port, ports[1].node_port),
            (Some(30080), None)
        );
        assert_eq!(validation::service_update(&old, &new), vec![]);
    }

    #[test]
    fn deployment_defaults() {
        let mut d: Deployment = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}
            }}),
        );
        deployment(&mut d);
        let v = to_json(&d);
        let spec = &v["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let template = &spec["template"]["spec"];
        assert_eq!(template["restartPolicy"], "Always");
        assert_eq!(template["dnsPolicy"], "ClusterFirst");
        assert_eq!(template["schedulerName"], "default-scheduler");
        assert_eq!(template["terminationGracePeriodSeconds"], 30);
        assert_eq!(template["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(template["containers"][0]["resources"], json!({}));
        assert!(
            template.get("enableServiceLinks").is_none(),
            "pod-only defaults stay off templates"
        );
        assert!(template.get("priority").is_none());
        assert_eq!(validation::deployment(&d), vec![]);

        let mut recreate: Deployment = from(
            json!({"spec": {"selector": {}, "template": {}, "strategy": {"type": "Recreate"}}}),
        );
        deployment(&mut recreate);
        assert_eq!(
            recreate.spec.unwrap().strategy.unwrap().rolling_update,
            None
        );
    }

    #[test]
    fn replica_set_defaults() {
        let mut rs: ReplicaSet = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}
            }}),
        );
        replica_set(&mut rs);
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1));
        let template_spec = spec.template.as_ref().unwrap().spec.as_ref().unwrap();
        assert_eq!(template_spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(
            template_spec.containers[0].image_pull_policy.as_deref(),
            Some("Always")
        );
        assert_eq!(validation::replica_set(&rs), vec![]);
    }

    #[test]
    fn replication_controller_defaults_from_template() {
        let mut rc: ReplicationController = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}
            }}),
        );
        rc.metadata.namespace = Some("default".into());
        replication_controller(&mut rc);
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let spec = rc.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.selector.as_ref(), Some(&labels));
        assert_eq!(rc.metadata.labels.as_ref(), Some(&labels));
        assert_eq!(
            spec.template
                .as_ref()
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .dns_policy
                .as_deref(),
            Some("ClusterFirst")
        );
        assert_eq!(validation::replication_controller(&rc), vec![]);

        let mut own: ReplicationController =
            from(json!({"metadata": {"labels": {"team": "a"}}, "spec": {
                "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web", "v": "1"}}}
            }}));
        replication_controller(&mut own);
        assert_eq!(
            own.spec.unwrap().selector.unwrap().len(),
            1,
            "a set selector is kept"
        );
        assert_eq!(
            own.metadata.labels.unwrap().get("team").map(String::as_str),
            Some("a")
        );
    }

    #[test]
    fn namespace_defaults() {
        let mut ns: Namespace = from(json!({"metadata": {"name": "team-a"}}));
        namespace(&mut ns);
        let v = to_json(&ns);
        assert_eq!(v["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(v["status"], json!({"phase": "Active"}));
        assert_eq!(
            v["metadata"]["labels"],
            json!({"kubernetes.io/metadata.name": "team-a"})
        );
        assert_eq!(validation::namespace(&ns), vec![]);

        let mut finalized: Namespace = from(
            json!({"metadata": {"name": "team-a"}, "spec": {"finalizers": []}, "status": {"phase": "Terminating"}}),
        );
        namespace(&mut finalized);
        assert_eq!(finalized.spec.unwrap().finalizers, Some(vec![]));
        assert_eq!(
            finalized.status.unwrap().phase.as_deref(),
            Some("Terminating")
        );
    }

    #[test]
    fn node_endpoints_event_lease_defaults() {
        let mut n: Node = from(
            json!({"metadata": {"name": "node-1"}, "status": {"capacity": {"cpu": "2", "memory": "4Gi"}}}),
        );
        node(&mut n);
        let status = n.status.as_ref().unwrap();
        assert_eq!(status.allocatable, status.capacity);

        let mut ep: Endpoints = from(
            json!({"subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 80}]}]}),
        );
        endpoints(&mut ep);
        assert_eq!(to_json(&ep)["subsets"][0]["ports"][0]["protocol"], "TCP");

        let mut ev = Event::default();
        event(&mut ev);
        assert_eq!(ev, Event::default());
        let mut l = Lease::default();
        lease(&mut l);
        assert_eq!(l, Lease::default());
    }

    #[test]
    fn empty_objects_do_not_panic() {
        pod(&mut Pod::default());
        service(&mut Service::default());
        service_update(&Service::default(), &mut Service::default());
        deployment(&mut Deployment::default());
        replica_set(&mut ReplicaSet::default());
        replication_controller(&mut ReplicationController::default());
        namespace(&mut Namespace::default());
        node(&mut Node::default());
        endpoints(&mut Endpoints::default());
    }
}
