//! Pods and pod templates: containers, volumes, ports, env, probes, resources,
//! tolerations, and the few spec fields an update may change.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Pod, PodSpec, PodTemplate, PodTemplateSpec, Probe,
    ProjectedVolumeSource, ResourceRequirements, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use skiff_api::names::{NameRule, is_dns1123_label, is_env_var_name, is_port_name};
use skiff_api::quantity::quantity_nanos;
use skiff_api::selectors;

use crate::apiserver::field_error::FieldError;

use super::metadata::{annotations, labels, object_meta, object_meta_update};
use super::{
    NEGATIVE_MSG, ip, nonnegative, not_found, port_num_or_name, port_number, push_all, supported,
};

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
pub(super) const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
pub(super) const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Whether a container is one of `containers` or of `initContainers` (sidecar or not).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ContainerKind {
    Regular,
    Init,
    Sidecar,
}

/// What the containers of one pod spec share while they are checked.
struct PodContext<'a> {
    path: &'a str,
    volumes: BTreeSet<&'a str>,
    names: HashSet<&'a str>,
    host_network: bool,
}

/// Every source field of a volume that is set (exactly one is allowed; none means emptyDir).
fn volume_sources(v: &Volume) -> Vec<&'static str> {
    [
        (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
        (v.azure_disk.is_some(), "azureDisk"),
        (v.azure_file.is_some(), "azureFile"),
        (v.cephfs.is_some(), "cephfs"),
        (v.cinder.is_some(), "cinder"),
        (v.config_map.is_some(), "configMap"),
        (v.csi.is_some(), "csi"),
        (v.downward_api.is_some(), "downwardAPI"),
        (v.empty_dir.is_some(), "emptyDir"),
        (v.ephemeral.is_some(), "ephemeral"),
        (v.fc.is_some(), "fc"),
        (v.flex_volume.is_some(), "flexVolume"),
        (v.flocker.is_some(), "flocker"),
        (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
        (v.git_repo.is_some(), "gitRepo"),
        (v.glusterfs.is_some(), "glusterfs"),
        (v.host_path.is_some(), "hostPath"),
        (v.image.is_some(), "image"),
        (v.iscsi.is_some(), "iscsi"),
        (v.nfs.is_some(), "nfs"),
        (v.persistent_volume_claim.is_some(), "persistentVolumeClaim"),
        (v.photon_persistent_disk.is_some(), "photonPersistentDisk"),
        (v.portworx_volume.is_some(), "portworxVolume"),
        (v.projected.is_some(), "projected"),
        (v.quobyte.is_some(), "quobyte"),
        (v.rbd.is_some(), "rbd"),
        (v.scale_io.is_some(), "scaleIO"),
        (v.secret.is_some(), "secret"),
        (v.storageos.is_some(), "storageos"),
        (v.vsphere_volume.is_some(), "vsphereVolume"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect()
}

/// Check the volumes; returns the names that mounts may refer to.
fn volumes<'a>(errs: &mut Vec<FieldError>, vols: &'a [Volume], path: &str) -> BTreeSet<&'a str> {
    let mut names = BTreeSet::new();
    for (i, v) in vols.iter().enumerate() {
        let p = format!("{path}.volumes[{i}]");
        let mut el = Vec::new();
        let sources = volume_sources(v);
        if let Some(second) = sources.get(1) {
            el.push(FieldError::forbidden(
                format!("{p}.{second}"),
                "may not specify more than 1 volume type",
            ));
        }
        if let Some(hp) = &v.host_path
            && hp.path.is_empty()
        {
            el.push(FieldError::required(format!("{p}.hostPath.path"), ""));
        }
        if let Some(cm) = &v.config_map
            && cm.name.is_empty()
        {
            el.push(FieldError::required(format!("{p}.configMap.name"), ""));
        }
        if let Some(secret) = &v.secret
            && secret.secret_name.as_deref().unwrap_or("").is_empty()
        {
            el.push(FieldError::required(format!("{p}.secret.secretName"), ""));
        }
        if let Some(pvc) = &v.persistent_volume_claim
            && pvc.claim_name.is_empty()
        {
            el.push(FieldError::required(
                format!("{p}.persistentVolumeClaim.claimName"),
                "",
            ));
        }
        if let Some(projected) = &v.projected {
            projected_tokens(&mut el, projected, &format!("{p}.projected"));
        }
        let name_path = format!("{p}.name");
        if v.name.is_empty() {
            el.push(FieldError::required(&name_path, ""));
        } else {
            push_all(&mut el, &name_path, &v.name, is_dns1123_label(&v.name));
        }
        if names.contains(v.name.as_str()) {
            el.push(FieldError::duplicate(&name_path, &v.name));
        }
        if el.is_empty() {
            names.insert(v.name.as_str());
        }
        errs.extend(el);
    }
    names
}

/// The lifetimes of a projected volume's ServiceAccount tokens: from 10 minutes to 2^32
/// seconds, as Kubernetes' `validateProjectionSources` (the node agent refreshes a token at
/// 80% of it).
fn projected_tokens(errs: &mut Vec<FieldError>, projected: &ProjectedVolumeSource, path: &str) {
    for (i, source) in projected.sources.iter().flatten().enumerate() {
        let Some(seconds) = source
            .service_account_token
            .as_ref()
            .and_then(|t| t.expiration_seconds)
        else {
            continue;
        };
        let path = format!("{path}.sources[{i}].serviceAccountToken.expirationSeconds");
        if seconds < 10 * 60 {
            errs.push(FieldError::invalid_unquoted(
                &path,
                seconds,
                "may not specify a duration less than 10 minutes",
            ));
        }
        if seconds > 1 << 32 {
            errs.push(FieldError::invalid_unquoted(
                &path,
                seconds,
                "may not specify a duration larger than 2^32 seconds",
            ));
        }
    }
}

fn container_ports(
    errs: &mut Vec<FieldError>,
    ports: &[ContainerPort],
    path: &str,
    host_network: bool,
) {
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = format!("{path}.ports[{i}]");
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = is_port_name(name);
            if !msgs.is_empty() {
                push_all(errs, &format!("{p}.name"), name, msgs);
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(format!("{p}.name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(format!("{p}.containerPort"), ""));
        } else {
            port_number(errs, &format!("{p}.containerPort"), port.container_port);
        }
        let host_port = port.host_port.unwrap_or(0);
        if host_port != 0 {
            port_number(errs, &format!("{p}.hostPort"), host_port);
            if host_network && host_port != port.container_port {
                errs.push(FieldError::invalid(
                    format!("{p}.hostPort"),
                    host_port,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
        supported(
            errs,
            &format!("{p}.protocol"),
            port.protocol.as_deref(),
            PROTOCOLS,
        );
    }
}

fn env(errs: &mut Vec<FieldError>, vars: &[EnvVar], path: &str) {
    for (i, var) in vars.iter().enumerate() {
        let p = format!("{path}.env[{i}]");
        if var.name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        } else {
            push_all(
                errs,
                &format!("{p}.name"),
                &var.name,
                is_env_var_name(&var.name),
            );
        }
        let Some(from) = &var.value_from else {
            continue;
        };
        let sources = [
            from.field_ref.is_some(),
            from.resource_field_ref.is_some(),
            from.config_map_key_ref.is_some(),
            from.secret_key_ref.is_some(),
        ]
        .into_iter()
        .filter(|s| *s)
        .count();
        let from_path = format!("{p}.valueFrom");
        if sources == 0 {
            errs.push(FieldError::invalid(
                &from_path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !var.value.as_deref().unwrap_or("").is_empty() {
            errs.push(FieldError::invalid(
                &from_path,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                &from_path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn volume_mounts(
    errs: &mut Vec<FieldError>,
    mounts: &[VolumeMount],
    path: &str,
    ctx: &PodContext<'_>,
) {
    let mut mount_points = HashSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = format!("{path}.volumeMounts[{i}]");
        if m.name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        } else if !ctx.volumes.contains(m.name.as_str()) {
            let detail = format!("no volume of that name in {}.volumes", ctx.path);
            errs.push(not_found(&format!("{p}.name"), &m.name, &detail));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(format!("{p}.mountPath"), ""));
        } else if !mount_points.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                format!("{p}.mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            let field = format!("{p}.subPath");
            if sub.starts_with('/') {
                errs.push(FieldError::invalid(&field, sub, "must be a relative path"));
            }
            if sub.split('/').any(|part| part == "..") {
                errs.push(FieldError::invalid(&field, sub, "must not contain '..'"));
            }
        }
        supported(
            errs,
            &format!("{p}.mountPropagation"),
            m.mount_propagation.as_deref(),
            &["None", "HostToContainer", "Bidirectional"],
        );
    }
}

fn probe(errs: &mut Vec<FieldError>, probe: &Probe, path: &str, success_must_be_one: bool) {
    let handlers: Vec<&str> = [
        (probe.exec.is_some(), "exec"),
        (probe.http_get.is_some(), "httpGet"),
        (probe.tcp_socket.is_some(), "tcpSocket"),
        (probe.grpc.is_some(), "grpc"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    match handlers.as_slice() {
        [] => errs.push(FieldError::required(path, "must specify a handler type")),
        [_] => {}
        [_, second, ..] => errs.push(FieldError::forbidden(
            format!("{path}.{second}"),
            "may not specify more than 1 handler type",
        )),
    }
    if let Some(http) = &probe.http_get {
        port_num_or_name(errs, &format!("{path}.httpGet.port"), &http.port);
        supported(
            errs,
            &format!("{path}.httpGet.scheme"),
            http.scheme.as_deref(),
            &["HTTP", "HTTPS"],
        );
    }
    if let Some(tcp) = &probe.tcp_socket {
        port_num_or_name(errs, &format!("{path}.tcpSocket.port"), &tcp.port);
    }
    if let Some(grpc) = &probe.grpc {
        port_number(errs, &format!("{path}.grpc.port"), grpc.port);
    }
    for (name, value) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        nonnegative(errs, &format!("{path}.{name}"), value);
    }
    if success_must_be_one
        && let Some(n) = probe.success_threshold
        && n != 1
    {
        errs.push(FieldError::invalid_unquoted(
            format!("{path}.successThreshold"),
            n,
            "must be 1",
        ));
    }
    if let Some(n) = probe.termination_grace_period_seconds
        && n <= 0
    {
        errs.push(FieldError::invalid_unquoted(
            format!("{path}.terminationGracePeriodSeconds"),
            n,
            "must be greater than 0",
        ));
    }
}

/// Resource names a container may request without a domain.
fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

/// Kubernetes-owned resource names (no domain, or a `kubernetes.io` domain).
fn is_native_resource(name: &str) -> bool {
    match name.split_once('/') {
        None => true,
        Some((domain, _)) => domain == "kubernetes.io" || domain.ends_with(".kubernetes.io"),
    }
}

/// Requests of these may differ from (be below) their limits.
fn is_overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !name.starts_with("hugepages-")
}

/// Check the names and quantities of one resource list; returns the valid values (nano units).
fn resource_values<'a>(
    errs: &mut Vec<FieldError>,
    map: &'a BTreeMap<String, Quantity>,
    base: &str,
) -> BTreeMap<&'a str, i128> {
    let mut values = BTreeMap::new();
    for (name, q) in map {
        let field = format!("{base}[{name}]");
        if name.contains('/') {
            if let Err(msg) = selectors::validate_label_key(name) {
                errs.push(FieldError::invalid(&field, name, msg));
            }
        } else if !is_standard_container_resource(name) {
            errs.push(FieldError::invalid(
                &field,
                name,
                "must be a standard resource for containers",
            ));
        }
        match quantity_nanos(&q.0) {
            Err(e) => errs.push(FieldError::invalid(&field, &q.0, e.to_string())),
            Ok(v) if v < 0 => errs.push(FieldError::invalid(&field, &q.0, NEGATIVE_MSG)),
            Ok(v) => {
                if !is_native_resource(name) && v % 1_000_000_000 != 0 {
                    errs.push(FieldError::invalid(&field, &q.0, "must be an integer"));
                }
                values.insert(name.as_str(), v);
            }
        }
    }
    values
}

/// Kubernetes' `ValidateContainerResourceRequirements` under `{path}.resources`.
fn resources(errs: &mut Vec<FieldError>, res: &ResourceRequirements, path: &str) {
    let lim_path = format!("{path}.resources.limits");
    let req_path = format!("{path}.resources.requests");
    let empty = BTreeMap::new();
    let limits = res.limits.as_ref().unwrap_or(&empty);
    let requests = res.requests.as_ref().unwrap_or(&empty);
    let limit_values = resource_values(errs, limits, &lim_path);
    let request_values = resource_values(errs, requests, &req_path);
    for (name, req) in &request_values {
        let Some(q) = requests.get(*name) else {
            continue;
        };
        match (limit_values.get(name), limits.get(*name)) {
            (Some(lim), Some(lim_q)) => {
                if !is_overcommit_allowed(name) && req != lim {
                    errs.push(FieldError::invalid(
                        &req_path,
                        &q.0,
                        format!("must be equal to {name} limit of {}", lim_q.0),
                    ));
                } else if req > lim {
                    errs.push(FieldError::invalid(
                        &req_path,
                        &q.0,
                        format!("must be less than or equal to {name} limit of {}", lim_q.0),
                    ));
                }
            }
            (None, None) if !is_overcommit_allowed(name) => {
                errs.push(FieldError::required(
                    &lim_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            _ => {}
        }
    }
}

fn container<'a>(
    errs: &mut Vec<FieldError>,
    c: &'a Container,
    path: &str,
    kind: ContainerKind,
    ctx: &mut PodContext<'a>,
) {
    let name_path = format!("{path}.name");
    if c.name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else {
        let msgs = is_dns1123_label(&c.name);
        if !msgs.is_empty() {
            push_all(errs, &name_path, &c.name, msgs);
        } else if !ctx.names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(&name_path, &c.name));
        }
    }
    if c.image.as_deref().unwrap_or("").is_empty() {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    }
    supported(
        errs,
        &format!("{path}.imagePullPolicy"),
        c.image_pull_policy.as_deref(),
        PULL_POLICIES,
    );
    supported(
        errs,
        &format!("{path}.terminationMessagePolicy"),
        c.termination_message_policy.as_deref(),
        &["File", "FallbackToLogsOnError"],
    );
    match (kind, c.restart_policy.as_deref()) {
        (ContainerKind::Regular, Some(_)) => errs.push(FieldError::forbidden(
            format!("{path}.restartPolicy"),
            "may not be set for non-init containers",
        )),
        (_, policy) => supported(errs, &format!("{path}.restartPolicy"), policy, &["Always"]),
    }
    container_ports(
        errs,
        c.ports.as_deref().unwrap_or_default(),
        path,
        ctx.host_network,
    );
    env(errs, c.env.as_deref().unwrap_or_default(), path);
    volume_mounts(
        errs,
        c.volume_mounts.as_deref().unwrap_or_default(),
        path,
        ctx,
    );
    if let Some(res) = &c.resources {
        resources(errs, res, path);
    }
    let probes = [
        ("livenessProbe", &c.liveness_probe, true),
        ("readinessProbe", &c.readiness_probe, false),
        ("startupProbe", &c.startup_probe, true),
    ];
    for (name, p, success_must_be_one) in probes {
        let Some(p) = p else { continue };
        if kind == ContainerKind::Init {
            errs.push(FieldError::forbidden(
                format!("{path}.{name}"),
                "may not be set for init containers without restartPolicy=Always",
            ));
        } else {
            probe(errs, p, &format!("{path}.{name}"), success_must_be_one);
        }
    }
    if kind == ContainerKind::Init && c.lifecycle.is_some() {
        errs.push(FieldError::forbidden(
            format!("{path}.lifecycle"),
            "may not be set for init containers without restartPolicy=Always",
        ));
    }
}

fn tolerations(errs: &mut Vec<FieldError>, tols: &[Toleration], path: &str) {
    for (i, t) in tols.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let key = t.key.as_deref().unwrap_or("");
        let operator = t.operator.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        if !key.is_empty()
            && let Err(msg) = selectors::validate_label_key(key)
        {
            errs.push(FieldError::invalid(format!("{p}.key"), key, msg));
        }
        if key.is_empty() && operator != "Exists" {
            errs.push(FieldError::invalid(
                format!("{p}.operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                format!("{p}.effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match operator {
            "" | "Equal" => {
                if let Err(msg) = selectors::validate_label_value(value) {
                    errs.push(FieldError::invalid(format!("{p}.operator"), value, msg));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{p}.operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{p}.operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            supported(errs, &format!("{p}.effect"), Some(effect), TAINT_EFFECTS);
        }
    }
}

/// Host ports must not collide within the pod (same IP, protocol and port).
fn host_port_conflicts(errs: &mut Vec<FieldError>, containers: &[Container], path: &str) {
    let mut seen = HashSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in c.ports.iter().flatten().enumerate() {
            let host_port = port.host_port.unwrap_or(0);
            if host_port == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{host_port}",
                port.host_ip.as_deref().unwrap_or(""),
                port.protocol.as_deref().unwrap_or("TCP")
            );
            if !seen.insert(key.clone()) {
                errs.push(FieldError::duplicate(
                    format!("{path}.containers[{ci}].ports[{pi}].hostPort"),
                    key,
                ));
            }
        }
    }
}

/// Kubernetes' `ValidatePodSpec` with every field under `path` (`spec` for a Pod,
/// `spec.template.spec` for a controller's template).
pub fn pod_spec(spec: &PodSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let vols = volumes(&mut errs, spec.volumes.as_deref().unwrap_or_default(), path);
    let mut ctx = PodContext {
        path,
        volumes: vols,
        names: HashSet::new(),
        host_network: spec.host_network == Some(true),
    };
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let kind = if c.restart_policy.as_deref() == Some("Always") {
            ContainerKind::Sidecar
        } else {
            ContainerKind::Init
        };
        container(
            &mut errs,
            c,
            &format!("{path}.initContainers[{i}]"),
            kind,
            &mut ctx,
        );
    }
    if spec.containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        container(
            &mut errs,
            c,
            &format!("{path}.containers[{i}]"),
            ContainerKind::Regular,
            &mut ctx,
        );
    }
    host_port_conflicts(&mut errs, &spec.containers, path);
    supported(
        &mut errs,
        &format!("{path}.restartPolicy"),
        spec.restart_policy.as_deref(),
        RESTART_POLICIES,
    );
    supported(
        &mut errs,
        &format!("{path}.dnsPolicy"),
        spec.dns_policy.as_deref(),
        DNS_POLICIES,
    );
    if spec.dns_policy.as_deref() == Some("None") && spec.dns_config.is_none() {
        errs.push(FieldError::required(
            format!("{path}.dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }
    if let Some(cfg) = &spec.dns_config {
        for (i, ns) in cfg.nameservers.iter().flatten().enumerate() {
            ip(&mut errs, &format!("{path}.dnsConfig.nameservers[{i}]"), ns);
        }
    }
    errs.extend(labels(
        spec.node_selector.as_ref(),
        &format!("{path}.nodeSelector"),
    ));
    let names = [
        (
            "serviceAccountName",
            &spec.service_account_name,
            NameRule::Dns1123Subdomain,
        ),
        ("nodeName", &spec.node_name, NameRule::Dns1123Subdomain),
        ("hostname", &spec.hostname, NameRule::Dns1123Label),
        ("subdomain", &spec.subdomain, NameRule::Dns1123Label),
        (
            "priorityClassName",
            &spec.priority_class_name,
            NameRule::Dns1123Subdomain,
        ),
    ];
    for (field, value, rule) in names {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            push_all(&mut errs, &format!("{path}.{field}"), v, rule.check(v));
        }
    }
    nonnegative(
        &mut errs,
        &format!("{path}.terminationGracePeriodSeconds"),
        spec.termination_grace_period_seconds,
    );
    if let Some(n) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&n)
    {
        errs.push(FieldError::invalid_unquoted(
            format!("{path}.activeDeadlineSeconds"),
            n,
            format!("must be between 1 and {}, inclusive", i32::MAX),
        ));
    }
    tolerations(
        &mut errs,
        spec.tolerations.as_deref().unwrap_or_default(),
        &format!("{path}.tolerations"),
    );
    supported(
        &mut errs,
        &format!("{path}.preemptionPolicy"),
        spec.preemption_policy.as_deref(),
        &["Never", "PreemptLowerPriority"],
    );
    errs
}

/// Kubernetes' `ValidatePodTemplateSpec` under `path` (`spec.template`): template labels and
/// annotations, and the pod spec under `{path}.spec`.
pub fn pod_template_spec(template: &PodTemplateSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(meta) = &template.metadata {
        errs.extend(labels(
            meta.labels.as_ref(),
            &format!("{path}.metadata.labels"),
        ));
        errs.extend(annotations(
            meta.annotations.as_ref(),
            &format!("{path}.metadata.annotations"),
        ));
    }
    let spec_path = format!("{path}.spec");
    match &template.spec {
        Some(spec) => errs.extend(pod_spec(spec, &spec_path)),
        None => errs.extend(pod_spec(&PodSpec::default(), &spec_path)),
    }
    errs
}

/// A PodTemplate (`ValidatePodTemplate`): metadata (DNS-1123 subdomain name, namespaced) and
/// its template under `template`, checked as a controller's template is (any restart policy).
pub fn pod_template(template: &PodTemplate) -> Vec<FieldError> {
    let mut errs = object_meta(&template.metadata, true, NameRule::Dns1123Subdomain);
    let default_template = PodTemplateSpec::default();
    errs.extend(pod_template_spec(
        template.template.as_ref().unwrap_or(&default_template),
        "template",
    ));
    errs
}

/// A PodTemplate update (`ValidatePodTemplateUpdate`): the metadata rules; the template may
/// change.
pub fn pod_template_update(old: &PodTemplate, new: &PodTemplate) -> Vec<FieldError> {
    object_meta_update(&old.metadata, &new.metadata)
}

/// A Pod on create: metadata (DNS-1123 subdomain name, namespaced) and its spec.
pub fn pod(pod: &Pod) -> Vec<FieldError> {
    let mut errs = object_meta(&pod.metadata, true, NameRule::Dns1123Subdomain);
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    errs.extend(pod_spec(spec, "spec"));
    // Templates may leave whitespace for later tools; a pod that runs may not.
    let lists = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("containers", &spec.containers),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            let image = c.image.as_deref().unwrap_or("");
            if image.trim() != image {
                errs.push(FieldError::invalid(
                    format!("spec.{list}[{i}].image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    errs
}

/// The pod spec fields an update may change, as Kubernetes lists them.
const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Kubernetes' `validateOnlyAddedTolerations`: existing tolerations stay, except that their
/// `tolerationSeconds` may change.
fn only_added_tolerations(errs: &mut Vec<FieldError>, old: &[Toleration], new: &[Toleration]) {
    let kept = old.iter().all(|o| {
        new.iter().any(|n| {
            let mut o = o.clone();
            o.toleration_seconds = n.toleration_seconds;
            o == *n
        })
    });
    if !kept {
        errs.push(FieldError::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
}

/// Paths (JSON style) where two values differ, for the pod update message.
fn diff_paths(old: &serde_json::Value, new: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for k in keys {
                let null = Value::Null;
                let (ov, nv) = (o.get(k).unwrap_or(&null), n.get(k).unwrap_or(&null));
                diff_paths(ov, nv, &format!("{path}.{k}"), out);
            }
        }
        (Value::Array(o), Value::Array(n)) if o.len() == n.len() => {
            for (i, (ov, nv)) in o.iter().zip(n).enumerate() {
                diff_paths(ov, nv, &format!("{path}[{i}]"), out);
            }
        }
        _ if old != new => out.push(path.to_string()),
        _ => {}
    }
}

/// Kubernetes' `ValidatePodUpdate` rules: only container images, `activeDeadlineSeconds`
/// (set or lowered), added tolerations and a negative grace period raised to 1 may change;
/// anything else is `spec: Forbidden: pod updates may not change fields other than ...`.
pub fn pod_update(old: &Pod, new: &Pod) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    let default_spec = PodSpec::default();
    let old_spec = old.spec.as_ref().unwrap_or(&default_spec);
    let new_spec = new.spec.as_ref().unwrap_or(&default_spec);

    match (
        old_spec.active_deadline_seconds,
        new_spec.active_deadline_seconds,
    ) {
        (_, Some(n)) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(FieldError::invalid_unquoted(
                "spec.activeDeadlineSeconds",
                n,
                format!("must be between 0 and {}, inclusive", i32::MAX),
            ));
            return errs;
        }
        (Some(o), Some(n)) if o < n => {
            errs.push(FieldError::invalid_unquoted(
                "spec.activeDeadlineSeconds",
                n,
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (Some(_), None) => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                "nil",
                "must not update from a positive integer to nil value",
            ));
        }
        _ => {}
    }
    let same_count = old_spec.containers.len() == new_spec.containers.len()
        && old_spec.init_containers.as_ref().map_or(0, Vec::len)
            == new_spec.init_containers.as_ref().map_or(0, Vec::len);
    if !same_count {
        errs.push(FieldError::forbidden(
            "spec.containers",
            "pod updates may not add or remove containers",
        ));
        return errs;
    }
    only_added_tolerations(
        &mut errs,
        old_spec.tolerations.as_deref().unwrap_or_default(),
        new_spec.tolerations.as_deref().unwrap_or_default(),
    );

    // Put back every field that may change; what still differs may not.
    let mut munged = new_spec.clone();
    for (m, o) in munged.containers.iter_mut().zip(&old_spec.containers) {
        m.image.clone_from(&o.image);
    }
    for (m, o) in munged
        .init_containers
        .iter_mut()
        .flatten()
        .zip(old_spec.init_containers.iter().flatten())
    {
        m.image.clone_from(&o.image);
    }
    munged.active_deadline_seconds = old_spec.active_deadline_seconds;
    munged.tolerations.clone_from(&old_spec.tolerations);
    if let (Some(o), Some(1)) = (
        old_spec.termination_grace_period_seconds,
        new_spec.termination_grace_period_seconds,
    ) && o < 0
    {
        munged.termination_grace_period_seconds = Some(o);
    }
    if munged != *old_spec {
        let mut changed = Vec::new();
        if let (Ok(o), Ok(n)) = (
            serde_json::to_value(old_spec),
            serde_json::to_value(&munged),
        ) {
            diff_paths(&o, &n, "spec", &mut changed);
        }
        let mut detail =
            format!("pod updates may not change fields other than {UPDATABLE_POD_FIELDS}");
        if !changed.is_empty() {
            let _ = write!(detail, "\n  changed: {}", changed.join(", "));
        }
        errs.push(FieldError::forbidden("spec", detail));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::PORT_RANGE_MSG;
    use super::super::tests::{fields, from, only, valid_pod};
    use super::*;
    use crate::apiserver::field_error::FieldErrorKind;

    #[test]
    fn pod_templates_validate_their_template_under_template() {
        let valid: PodTemplate = from(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"restartPolicy": "Never",
                                  "containers": [{"name": "nginx", "image": "nginx"}]}}
        }));
        assert_eq!(pod_template(&valid), [], "any restart policy, no selector");
        let empty: PodTemplate =
            from(json!({"metadata": {"name": "Bad_Name", "namespace": "default"}}));
        assert_eq!(
            fields(&pod_template(&empty)),
            ["metadata.name", "template.spec.containers"]
        );
    }

    #[test]
    fn valid_pod_has_no_errors() {
        assert_eq!(pod(&valid_pod()), vec![]);
    }

    #[test]
    fn valid_pod_after_defaults_has_no_errors() {
        let mut p: Pod = from(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "hostNetwork": true,
                "volumes": [{"name": "data"}, {"name": "cfg", "configMap": {"name": "cfg"}}],
                "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
                "containers": [{
                    "name": "app", "image": "app:1",
                    "ports": [{"containerPort": 8080, "name": "http"}],
                    "env": [{"name": "MODE", "value": "prod"}, {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/app"}],
                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                    "livenessProbe": {"httpGet": {"port": "http"}},
                    "readinessProbe": {"tcpSocket": {"port": 8080}}
                }],
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
                "nodeSelector": {"kubernetes.io/os": "linux"}
            }
        }));
        crate::apiserver::defaults::pod(&mut p);
        assert_eq!(pod(&p), vec![]);
    }

    #[test]
    fn missing_image_is_required() {
        let mut p = valid_pod();
        p.spec.as_mut().unwrap().containers[0].image = None;
        let errs = pod(&p);
        assert_eq!(
            errs,
            vec![FieldError::required("spec.containers[0].image", "")]
        );
        assert_eq!(
            errs[0].to_string(),
            "spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn bad_pod_name() {
        let mut p = valid_pod();
        p.metadata.name = Some("My_Pod".into());
        assert_eq!(fields(&pod(&p)), ["metadata.name"]);
    }

    #[test]
    fn containers_are_required_named_and_unique() {
        let mut p = valid_pod();
        p.spec.as_mut().unwrap().containers.clear();
        assert_eq!(pod(&p), vec![FieldError::required("spec.containers", "")]);

        let p: Pod = from(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "initContainers": [{"name": "app", "image": "busybox"}],
                "containers": [{"name": "app", "image": "a"}, {"name": "app", "image": "b"}, {"name": "", "image": "c"}, {"name": "Bad_Name", "image": "d"}]
            }
        }));
        let errs = pod(&p);
        assert_eq!(
            errs[0],
            FieldError::duplicate("spec.containers[0].name", "app")
        );
        assert_eq!(
            errs[1],
            FieldError::duplicate("spec.containers[1].name", "app")
        );
        assert_eq!(
            errs[1].to_string(),
            "spec.containers[1].name: Duplicate value: \"app\""
        );
        assert_eq!(
            only(&errs, "spec.containers[2].name").kind,
            FieldErrorKind::Required
        );
        assert_eq!(
            only(&errs, "spec.containers[3].name").kind,
            FieldErrorKind::Invalid("Bad_Name".into())
        );
    }

    #[test]
    fn container_ports() {
        let p: Pod = from(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "a", "image": "a", "ports": [
                {"containerPort": 0},
                {"containerPort": 70000, "name": "http"},
                {"containerPort": 80, "name": "http", "protocol": "HTTP"},
                {"containerPort": 81, "hostPort": 8080},
                {"containerPort": 82, "hostPort": 8080}
            ]}]}
        }));
        let errs = pod(&p);
        assert_eq!(
            only(&errs, "spec.containers[0].ports[0].containerPort").kind,
            FieldErrorKind::Required
        );
        assert_eq!(
            only(&errs, "spec.containers[0].ports[1].containerPort").to_string(),
            "spec.containers[0].ports[1].containerPort: Invalid value: \"70000\": must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            only(&errs, "spec.containers[0].ports[2].name").kind,
            FieldErrorKind::Duplicate("http".into())
        );
        assert_eq!(
            only(&errs, "spec.containers[0].ports[2].protocol").to_string(),
            "spec.containers[0].ports[2].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
        );
        assert_eq!(
            only(&errs, "spec.containers[0].ports[4].hostPort").kind,
            FieldErrorKind::Duplicate("/TCP/8080".into())
        );
        assert_eq!(errs.len(), 5, "{errs:#?}");
    }

    #[test]
    fn host_network_host_port_must_match() {
        let p: Pod = from(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"hostNetwork": true, "containers": [{"name": "a", "image": "a", "ports": [{"containerPort": 80, "hostPort": 81}]}]}
        }));
        assert_eq!(
            only(&pod(&p), "spec.containers[0].ports[0].hostPort").detail,
            "must match `containerPort` when `hostNetwork` is true"
        );
    }

    #[test]
    fn resources_quantities_and_limits() {
        let p: Pod = from(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [
                {"name": "a", "image": "a", "resources": {"limits": {"memory": "12Qi", "cpu": "-1"}, "requests": {"memory": "1Gi"}}},
                {"name": "b", "image": "b", "resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}}},
                {"name": "c", "image": "c", "resources": {"requests": {"gpu": "1", "example.com/dongle": "1.5"}}}
            ]}
        }));
        let errs = pod(&p);
        let e = only(&errs, "spec.containers[0].resources.limits[memory]");
        assert_eq!(e.kind, FieldErrorKind::Invalid("12Qi".into()));
        assert!(
            e.detail
                .starts_with("quantities must match the regular expression")
        );
        assert_eq!(
            only(&errs, "spec.containers[0].resources.limits[cpu]").detail,
            "must be greater than or equal to 0"
        );
        assert_eq!(
            only(&errs, "spec.containers[1].resources.requests").to_string(),
            "spec.containers[1].resources.requests: Invalid value: \"1\": must be less than or equal to cpu limit of 500m"
        );
        assert_eq!(
            only(&errs, "spec.containers[2].resources.requests[gpu]").detail,
            "must be a standard resource for containers"
        );
        let dongle: Vec<_> = errs
            .iter()
            .filter(|e| e.field == "spec.containers[2].resources.requests[example.com/dongle]")
            .collect();
        assert_eq!(dongle.len(), 1);
        assert_eq!(dongle[0].detail, "must be an integer");
        assert_eq!(
            only(&errs, "spec.containers[2].resources.limits").detail,
            "Limit must be set for non overcommitable resources"
        );
        assert_eq!(errs.len(), 6, "{errs:#?}");
    }

    #[test]
    fn volumes_and_mounts() {
        let p: Pod = from(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "volumes": [
                    {"name": "data", "emptyDir": {}},
                    {"name": "data", "emptyDir": {}},
                    {"name": "both", "emptyDir": {}, "hostPath": {"path": "/x"}},
                    {"name": "Bad_Vol", "emptyDir": {}}
                ],
                "containers": [{"name": "a", "image": "a", "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "missing", "mountPath": "/data"},
                    {"name": "data", "mountPath": "", "subPath": "../x"}
                ]}]
            }
        }));
        let errs = pod(&p);
        assert_eq!(
            only(&errs, "spec.volumes[1].name").kind,
            FieldErrorKind::Duplicate("data".into())
        );
        assert_eq!(
            only(&errs, "spec.volumes[2].hostPath").detail,
            "may not specify more than 1 volume type"
        );
        assert_eq!(
            only(&errs, "spec.volumes[3].name").kind,
            FieldErrorKind::Invalid("Bad_Vol".into())
        );
        let missing = only(&errs, "spec.containers[0].volumeMounts[1].name");
        assert_eq!(missing.kind, FieldErrorKind::Invalid("missing".into()));
        assert!(missing.detail.contains("spec.volumes"));
        assert_eq!(
            only(&errs, "spec.containers[0].volumeMounts[1].mountPath").detail,
            "must be unique"
        );
        assert_eq!(
            only(&errs, "spec.containers[0].volumeMounts[2].mountPath").kind,
            FieldErrorKind::Required
        );
        assert_eq!(
            only(&errs, "spec.containers[0].volumeMounts[2].subPath").detail,
            "must not contain '..'"
        );
        assert_eq!(errs.len(), 7, "{errs:#?}");
    }

    #[test]
    fn projected_token_lifetimes_are_bounded_as_kubernetes_bounds_them() {
        let token = |seconds: i64| json!({"serviceAccountToken": {"path": "t", "expirationSeconds": seconds}});
        let p: Pod = from(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "volumes": [{"name": "tokens", "projected": {"sources": [
                    token(3600), token(599), token(i64::MAX), token(1 << 32)
                ]}}],
                "containers": [{"name": "a", "image": "a"}]
            }
        }));
        let errs = pod(&p);
        let path = |i: usize| {
            format!("spec.volumes[0].projected.sources[{i}].serviceAccountToken.expirationSeconds")
        };
        assert_eq!(
            only(&errs, &path(1)).detail,
            "may not specify a duration less than 10 minutes"
        );
        assert_eq!(
            only(&errs, &path(2)).to_string(),
            format!(
                "{}: Invalid value: {}: may not specify a duration larger than 2^32 seconds",
                path(2),
                i64::MAX
            )
        );
        assert_eq!(errs.len(), 2, "{errs:#?}");
    }

    #[test]
    fn env_vars() {
        let p: Pod = from(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "a", "image": "a", "env": [
                {"name": "GOOD_1", "value": "x"},
                {"name": "1BAD"},
                {"name": ""},
                {"name": "BOTH", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NONE", "valueFrom": {}}
            ]}]}
        }));
        let errs = pod(&p);
        assert!(
            only(&errs, "spec.containers[0].env[1].name")
                .detail
                .starts_with("a valid environment variable name")
        );
        assert_eq!(
            only(&errs, "spec.containers[0].env[2].name").kind,
            FieldErrorKind::Required
        );
        assert_eq!(
            only(&errs, "spec.containers[0].env[3].valueFrom").detail,
            "may not be specified when `value` is not empty"
        );
        assert!(
            only(&errs, "spec.containers[0].env[4].valueFrom")
                .detail
                .starts_with("must specify one of")
        );
        assert_eq!(errs.len(), 4, "{errs:#?}");
    }

    #[test]
    fn pod_level_fields() {
        let p: Pod = from(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "restartPolicy": "Sometimes",
                "dnsPolicy": "Nope",
                "terminationGracePeriodSeconds": -1,
                "activeDeadlineSeconds": 0,
                "nodeName": "Node_1",
                "nodeSelector": {"disk": "fast ssd"},
                "tolerations": [
                    {"operator": "Equal", "value": "x"},
                    {"key": "k", "operator": "Exists", "value": "v"},
                    {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 10},
                    {"key": "k", "operator": "Maybe"}
                ],
                "containers": [{"name": "a", "image": " a", "restartPolicy": "Always", "imagePullPolicy": "Sometimes"}]
            }
        }));
        let errs = pod(&p);
        assert_eq!(
            only(&errs, "spec.restartPolicy").to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
        assert_eq!(
            only(&errs, "spec.dnsPolicy").kind,
            FieldErrorKind::NotSupported("Nope".into())
        );
        assert_eq!(
            only(&errs, "spec.terminationGracePeriodSeconds").detail,
            "must be greater than or equal to 0"
        );
        assert_eq!(
            only(&errs, "spec.activeDeadlineSeconds").detail,
            "must be between 1 and 2147483647, inclusive"
        );
        assert_eq!(
            only(&errs, "spec.nodeName").kind,
            FieldErrorKind::Invalid("Node_1".into())
        );
        assert_eq!(
            only(&errs, "spec.nodeSelector").kind,
            FieldErrorKind::Invalid("fast ssd".into())
        );
        assert!(
            only(&errs, "spec.tolerations[0].operator")
                .detail
                .starts_with("operator must be Exists when `key` is empty")
        );
        assert_eq!(
            only(&errs, "spec.tolerations[1].operator").detail,
            "value must be empty when `operator` is 'Exists'"
        );
        assert_eq!(
            only(&errs, "spec.tolerations[2].effect").detail,
            "effect must be 'NoExecute' when `tolerationSeconds` is set"
        );
        assert_eq!(
            only(&errs, "spec.tolerations[3].operator").kind,
            FieldErrorKind::NotSupported("Maybe".into())
        );
        assert_eq!(
            only(&errs, "spec.containers[0].restartPolicy").kind,
            FieldErrorKind::Forbidden
        );
        assert_eq!(
            only(&errs, "spec.containers[0].imagePullPolicy").kind,
            FieldErrorKind::NotSupported("Sometimes".into())
        );
        assert_eq!(
            only(&errs, "spec.containers[0].image").detail,
            "must not have leading or trailing whitespace"
        );
        assert_eq!(errs.len(), 13, "{errs:#?}");
    }

    #[test]
    fn dns_policy_none_needs_config() {
        let mut p = valid_pod();
        p.spec.as_mut().unwrap().dns_policy = Some("None".into());
        assert_eq!(fields(&pod(&p)), ["spec.dnsConfig"]);
    }

    #[test]
    fn probes_and_init_containers() {
        let p: Pod = from(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "initContainers": [
                    {"name": "init", "image": "i", "readinessProbe": {"exec": {"command": ["true"]}}},
                    {"name": "sidecar", "image": "s", "restartPolicy": "Always", "readinessProbe": {"exec": {"command": ["true"]}}},
                    {"name": "weird", "image": "w", "restartPolicy": "Never"}
                ],
                "containers": [{"name": "a", "image": "a",
                    "livenessProbe": {"successThreshold": 2, "exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
                    "readinessProbe": {"httpGet": {"port": 0}, "periodSeconds": -1}}]
            }
        }));
        let errs = pod(&p);
        assert_eq!(
            only(&errs, "spec.initContainers[0].readinessProbe").kind,
            FieldErrorKind::Forbidden
        );
        assert_eq!(
            only(&errs, "spec.initContainers[2].restartPolicy").kind,
            FieldErrorKind::NotSupported("Never".into())
        );
        assert_eq!(
            only(&errs, "spec.containers[0].livenessProbe.tcpSocket").detail,
            "may not specify more than 1 handler type"
        );
        assert_eq!(
            only(&errs, "spec.containers[0].livenessProbe.successThreshold").detail,
            "must be 1"
        );
        assert_eq!(
            only(&errs, "spec.containers[0].readinessProbe.httpGet.port").detail,
            PORT_RANGE_MSG
        );
        assert_eq!(
            only(&errs, "spec.containers[0].readinessProbe.periodSeconds").detail,
            NEGATIVE_MSG
        );
        assert_eq!(errs.len(), 6, "{errs:#?}");
    }

    #[test]
    fn pod_update_allows_image_deadline_and_added_tolerations() {
        let mut old = valid_pod();
        old.spec.as_mut().unwrap().active_deadline_seconds = Some(100);
        let mut new = old.clone();
        let spec = new.spec.as_mut().unwrap();
        spec.containers[0].image = Some("nginx:1.26".into());
        spec.active_deadline_seconds = Some(50);
        spec.tolerations = Some(vec![from(json!({"key": "k", "operator": "Exists"}))]);
        new.metadata.labels = Some(BTreeMap::from([("app".into(), "other".into())]));
        assert_eq!(pod_update(&old, &new), vec![]);
    }

    #[test]
    fn pod_update_forbids_other_spec_changes() {
        let old = valid_pod();
        let mut new = old.clone();
        new.spec.as_mut().unwrap().containers[0]
            .ports
            .as_mut()
            .unwrap()[0]
            .container_port = 8080;
        new.spec.as_mut().unwrap().node_name = Some("node-1".into());
        let errs = pod_update(&old, &new);
        let e = only(&errs, "spec");
        assert_eq!(e.kind, FieldErrorKind::Forbidden);
        assert!(
            e.to_string().starts_with(
                "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
            ),
            "{e}"
        );
        assert!(
            e.detail
                .contains("spec.containers[0].ports[0].containerPort"),
            "{e}"
        );
        assert!(e.detail.contains("spec.nodeName"), "{e}");
    }

    #[test]
    fn pod_update_deadline_tolerations_and_container_count() {
        let mut old = valid_pod();
        old.spec.as_mut().unwrap().active_deadline_seconds = Some(100);
        old.spec.as_mut().unwrap().tolerations =
            Some(vec![from(json!({"key": "k", "operator": "Exists"}))]);

        let mut longer = old.clone();
        longer.spec.as_mut().unwrap().active_deadline_seconds = Some(200);
        assert_eq!(
            only(&pod_update(&old, &longer), "spec.activeDeadlineSeconds").detail,
            "must be less than or equal to previous value"
        );

        let mut unset = old.clone();
        unset.spec.as_mut().unwrap().active_deadline_seconds = None;
        assert!(fields(&pod_update(&old, &unset)).contains(&"spec.activeDeadlineSeconds"));

        let mut dropped = old.clone();
        dropped.spec.as_mut().unwrap().tolerations = None;
        assert_eq!(
            only(&pod_update(&old, &dropped), "spec.tolerations").detail,
            "existing toleration can not be modified except its tolerationSeconds"
        );

        let mut more = old.clone();
        let extra = more.spec.as_ref().unwrap().containers[0].clone();
        more.spec.as_mut().unwrap().containers.push(extra);
        assert_eq!(
            only(&pod_update(&old, &more), "spec.containers").detail,
            "pod updates may not add or remove containers"
        );

        let mut negative = old.clone();
        negative
            .spec
            .as_mut()
            .unwrap()
            .termination_grace_period_seconds = Some(-5);
        let mut raised = negative.clone();
        raised
            .spec
            .as_mut()
            .unwrap()
            .termination_grace_period_seconds = Some(1);
        assert_eq!(pod_update(&negative, &raised), vec![]);
    }
}
