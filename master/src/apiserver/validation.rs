//! Validation of API objects: the field errors Kubernetes reports as `422 Invalid`.
//!
//! One function per kind returns every [`FieldError`] of an object, with Kubernetes' field
//! paths and messages (`pkg/apis/core/validation`, `pkg/apis/apps/validation`); an empty list
//! means the object is valid. The `*_update` functions hold only the rules about a change
//! (immutable fields); the API server validates the new object with the kind's function too.
//!
//! Kubernetes validates after defaulting. Fields that [`super::defaults`] fills
//! (`restartPolicy`, `dnsPolicy`, port protocols, `targetPort`, ...) are also accepted unset
//! here, so the answer is the same before and after defaulting.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Endpoints, EnvVar, Event, Namespace, Node, Pod, PodSpec,
    PodTemplateSpec, Probe, ReplicationController, ResourceRequirements, Service, ServicePort,
    Taint, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use skiff_api::names::{
    NameRule, is_dns1123_label, is_dns1123_subdomain, is_env_var_name, is_port_name,
};
use skiff_api::quantity::quantity_nanos;
use skiff_api::selectors;

use super::field_error::FieldError;

// ---------------------------------------------------------------------------------------------
// Messages and checks every kind shares (name rules are skiff_api::names)
// ---------------------------------------------------------------------------------------------

const NEGATIVE_MSG: &str = "must be greater than or equal to 0";
const IMMUTABLE_MSG: &str = "field is immutable";
const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";
const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn push_all(errs: &mut Vec<FieldError>, field: &str, value: &str, msgs: Vec<String>) {
    errs.extend(
        msgs.into_iter()
            .map(|m| FieldError::invalid(field, value, m)),
    );
}

/// A name that must refer to something that does not exist (Kubernetes' `field.NotFound`).
fn not_found(field: &str, value: &str, detail: &str) -> FieldError {
    FieldError::invalid(field, value, format!("not found: {detail}"))
}

fn port_number(errs: &mut Vec<FieldError>, field: &str, port: i32) {
    if !(1..=65535).contains(&port) {
        errs.push(FieldError::invalid(field, port, PORT_RANGE_MSG));
    }
}

fn nonnegative<T: PartialOrd + Default + std::fmt::Display>(
    errs: &mut Vec<FieldError>,
    field: &str,
    value: Option<T>,
) {
    if let Some(v) = value
        && v < T::default()
    {
        errs.push(FieldError::invalid(field, v, NEGATIVE_MSG));
    }
}

/// Kubernetes' `ValidatePortNumOrName`.
fn port_num_or_name(errs: &mut Vec<FieldError>, field: &str, port: &IntOrString) {
    match port {
        IntOrString::Int(n) => port_number(errs, field, *n),
        IntOrString::String(s) => push_all(errs, field, s, is_port_name(s)),
    }
}

fn ip(errs: &mut Vec<FieldError>, field: &str, value: &str) {
    if value.parse::<IpAddr>().is_err() {
        errs.push(FieldError::invalid(field, value, IP_MSG));
    }
}

fn cidr(errs: &mut Vec<FieldError>, field: &str, value: &str) {
    if value.parse::<ipnet::IpNet>().is_err() {
        errs.push(FieldError::invalid(field, value, CIDR_MSG));
    }
}

fn supported(errs: &mut Vec<FieldError>, field: &str, value: Option<&str>, values: &[&str]) {
    if let Some(v) = value
        && !values.contains(&v)
    {
        errs.push(FieldError::not_supported(field, v, values));
    }
}

// ---------------------------------------------------------------------------------------------
// Go-style values in messages (Kubernetes prints non-string values with `%#v`)
// ---------------------------------------------------------------------------------------------

fn go_string_map(map: Option<&BTreeMap<String, String>>) -> String {
    match map {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let entries: Vec<String> = m.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
            format!("map[string]string{{{}}}", entries.join(", "))
        }
    }
}

fn go_string_slice(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

fn go_label_selector(sel: &LabelSelector) -> String {
    let exprs = match &sel.match_expressions {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(reqs) => {
            let items: Vec<String> = reqs
                .iter()
                .map(|r| {
                    let values = r
                        .values
                        .as_deref()
                        .map_or("[]string(nil)".to_string(), go_string_slice);
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{values}}}",
                        r.key, r.operator
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!(
        "&v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_string_map(sel.match_labels.as_ref())
    )
}

// ---------------------------------------------------------------------------------------------
// Quantities (parsed by skiff_api::quantity)
// ---------------------------------------------------------------------------------------------

/// Check a quantity's syntax; `field` is the path reported, e.g.
/// `spec.containers[0].resources.limits[memory]`.
pub fn quantity(q: &Quantity, field: &str) -> Option<FieldError> {
    quantity_nanos(&q.0)
        .err()
        .map(|e| FieldError::invalid(field, &q.0, e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------

/// Kubernetes' `ValidateLabels`: every key a qualified name, every value a label value.
pub fn labels(labels: Option<&BTreeMap<String, String>>, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        if let Err(msg) = selectors::validate_label_key(k) {
            errs.push(FieldError::invalid(field, k, msg));
        }
        if let Err(msg) = selectors::validate_label_value(v) {
            errs.push(FieldError::invalid(field, v, msg));
        }
    }
    errs
}

/// Kubernetes' `ValidateAnnotations`: keys are qualified names (any case), total size of keys
/// and values at most 256 KiB.
pub fn annotations(annotations: Option<&BTreeMap<String, String>>, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations.into_iter().flatten() {
        if let Err(msg) = selectors::validate_label_key(&k.to_lowercase()) {
            errs.push(FieldError::invalid(field, k, msg));
        }
        total = total.saturating_add(k.len()).saturating_add(v.len());
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// Replace a trailing `-` of a generateName so the prefix checks as a name would.
fn mask_trailing_dash(name: &str) -> String {
    match name.strip_suffix('-') {
        Some(rest) if !rest.is_empty() => format!("{rest}a"),
        _ => name.to_string(),
    }
}

/// Finalizers Kubernetes itself knows, allowed without a domain prefix.
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

fn finalizers(errs: &mut Vec<FieldError>, field: &str, names: &[String]) {
    for name in names {
        if let Err(msg) = selectors::validate_label_key(name) {
            errs.push(FieldError::invalid(field, name, msg));
        } else if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name.as_str()) {
            errs.push(FieldError::invalid(
                field,
                name,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    let has = |f: &str| names.iter().any(|n| n == f);
    if has("orphan") && has("foregroundDeletion") {
        errs.push(FieldError::invalid(
            field,
            go_string_slice(names),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

fn owner_references(errs: &mut Vec<FieldError>, refs: &[OwnerReference]) {
    let field = "metadata.ownerReferences";
    let mut controller: Option<String> = None;
    for r in refs {
        // apiVersion is `group/version` or `version`; more slashes do not parse.
        let version = match r.api_version.split('/').collect::<Vec<_>>().as_slice() {
            [v] | [_, v] => *v,
            _ => "",
        };
        if version.is_empty() {
            errs.push(FieldError::invalid(
                format!("{field}.apiVersion"),
                &r.api_version,
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(FieldError::invalid(
                format!("{field}.kind"),
                &r.kind,
                "kind must not be empty",
            ));
        }
        if r.name.is_empty() {
            errs.push(FieldError::invalid(
                format!("{field}.name"),
                &r.name,
                "name must not be empty",
            ));
        }
        if r.uid.is_empty() {
            errs.push(FieldError::invalid(
                format!("{field}.uid"),
                &r.uid,
                "uid must not be empty",
            ));
        }
        if r.controller == Some(true) {
            let this = format!("{}/{}", r.kind, r.name);
            match &controller {
                Some(first) => errs.push(FieldError::invalid(
                    field,
                    format!("{} references", refs.len()),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                    ),
                )),
                None => controller = Some(this),
            }
        }
    }
}

/// Kubernetes' `ValidateObjectMeta` under `metadata`: name (or generateName) by `name_rule`,
/// namespace required for namespaced kinds and forbidden otherwise, labels, annotations,
/// owner references and finalizers.
pub fn object_meta(meta: &ObjectMeta, namespaced: bool, name_rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = meta.name.as_deref().unwrap_or("");
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        let msgs = name_rule.check(&mask_trailing_dash(generate_name));
        push_all(&mut errs, "metadata.generateName", generate_name, msgs);
    }
    if name.is_empty() {
        if generate_name.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        push_all(&mut errs, "metadata.name", name, name_rule.check(name));
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            push_all(
                &mut errs,
                "metadata.namespace",
                namespace,
                is_dns1123_label(namespace),
            );
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    nonnegative(&mut errs, "metadata.generation", meta.generation);
    errs.extend(labels(meta.labels.as_ref(), "metadata.labels"));
    errs.extend(annotations(
        meta.annotations.as_ref(),
        "metadata.annotations",
    ));
    owner_references(
        &mut errs,
        meta.owner_references.as_deref().unwrap_or_default(),
    );
    finalizers(
        &mut errs,
        "metadata.finalizers",
        meta.finalizers.as_deref().unwrap_or_default(),
    );
    errs
}

/// Kubernetes' `ValidateObjectMetaUpdate`: name and namespace never change, nor a uid the
/// client sent (an empty one means "keep"), and the generation never goes back.
pub fn object_meta_update(old: &ObjectMeta, new: &ObjectMeta) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    for (field, o, n) in [
        ("metadata.name", s(&old.name), s(&new.name)),
        ("metadata.namespace", s(&old.namespace), s(&new.namespace)),
    ] {
        if o != n {
            errs.push(FieldError::invalid(field, n, IMMUTABLE_MSG));
        }
    }
    let new_uid = s(&new.uid);
    if !new_uid.is_empty() && new_uid != s(&old.uid) {
        errs.push(FieldError::invalid("metadata.uid", new_uid, IMMUTABLE_MSG));
    }
    if let (Some(o), Some(n)) = (old.generation, new.generation)
        && n < o
    {
        errs.push(FieldError::invalid(
            "metadata.generation",
            n,
            "must not be decremented",
        ));
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------------------------

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

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
        errs.push(FieldError::invalid(
            format!("{path}.successThreshold"),
            n,
            "must be 1",
        ));
    }
    if let Some(n) = probe.termination_grace_period_seconds
        && n <= 0
    {
        errs.push(FieldError::invalid(
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
        errs.push(FieldError::invalid(
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
pub fn pod_template(template: &PodTemplateSpec, path: &str) -> Vec<FieldError> {
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
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                n,
                format!("must be between 0 and {}, inclusive", i32::MAX),
            ));
            return errs;
        }
        (Some(o), Some(n)) if o < n => {
            errs.push(FieldError::invalid(
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

// ---------------------------------------------------------------------------------------------
// Services and endpoints
// ---------------------------------------------------------------------------------------------

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

fn service_port(
    errs: &mut Vec<FieldError>,
    port: &ServicePort,
    path: &str,
    require_name: bool,
    names: &mut HashSet<String>,
) {
    let name = port.name.as_deref().unwrap_or("");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !name.is_empty() {
        push_all(errs, &format!("{path}.name"), name, is_dns1123_label(name));
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), name));
        }
    }
    port_number(errs, &format!("{path}.port"), port.port);
    supported(
        errs,
        &format!("{path}.protocol"),
        port.protocol.as_deref(),
        PROTOCOLS,
    );
    match &port.target_port {
        // Unset (or zero) is defaulted to `port`.
        None | Some(IntOrString::Int(0)) => {}
        Some(IntOrString::String(s)) if s.is_empty() => {}
        Some(target) => port_num_or_name(errs, &format!("{path}.targetPort"), target),
    }
    if let Some(node_port) = port.node_port
        && node_port != 0
    {
        port_number(errs, &format!("{path}.nodePort"), node_port);
    }
}

/// A Service on create: DNS-1035 name, a supported type, ports (required unless the Service is
/// headless or ExternalName, named when there are several, unique), a valid selector,
/// ClusterIPs, session affinity and traffic policies.
pub fn service(svc: &Service) -> Vec<FieldError> {
    let mut errs = object_meta(&svc.metadata, true, NameRule::Dns1035Label);
    let default_spec = Default::default();
    let spec = svc.spec.as_ref().unwrap_or(&default_spec);
    let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
    supported(&mut errs, "spec.type", Some(ty), SERVICE_TYPES);
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
    let headless = cluster_ip == "None";
    let ports = spec.ports.as_deref().unwrap_or_default();

    if ty == "ExternalName" {
        let cname = spec.external_name.as_deref().unwrap_or("");
        let cname = cname.strip_suffix('.').unwrap_or(cname);
        if cname.is_empty() {
            errs.push(FieldError::required("spec.externalName", ""));
        } else {
            push_all(
                &mut errs,
                "spec.externalName",
                cname,
                is_dns1123_subdomain(cname),
            );
        }
        if !cluster_ip.is_empty() {
            errs.push(FieldError::forbidden(
                "spec.clusterIP",
                "may not be set for ExternalName services",
            ));
        }
    } else if ports.is_empty() && !headless {
        errs.push(FieldError::required("spec.ports", ""));
    }
    if headless && matches!(ty, "NodePort" | "LoadBalancer") {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            "None",
            format!("may not be set to 'None' for {ty} services"),
        ));
    }

    let mut names = HashSet::new();
    let mut seen = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        service_port(&mut errs, port, &path, ports.len() > 1, &mut names);
        if ty == "ClusterIP" && port.node_port.unwrap_or(0) != 0 {
            errs.push(FieldError::forbidden(
                format!("{path}.nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
        let key = format!(
            "{}/{}",
            port.port,
            port.protocol.as_deref().unwrap_or("TCP")
        );
        if !seen.insert(key.clone()) {
            errs.push(FieldError::duplicate(path, key));
        }
    }
    errs.extend(labels(spec.selector.as_ref(), "spec.selector"));

    // ClusterIPs: "None", empty (allocated later) or addresses.
    let cluster_ips = spec.cluster_ips.as_deref().unwrap_or_default();
    if cluster_ips.is_empty() {
        if !cluster_ip.is_empty() && !headless {
            ip(&mut errs, "spec.clusterIP", cluster_ip);
        }
    } else {
        if !cluster_ip.is_empty() && cluster_ips[0] != cluster_ip {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                go_string_slice(cluster_ips),
                "must match `clusterIP`",
            ));
        }
        for (i, addr) in cluster_ips.iter().enumerate() {
            if !(i == 0 && addr == "None") {
                ip(&mut errs, &format!("spec.clusterIPs[{i}]"), addr);
            }
        }
    }
    for (i, addr) in spec.external_ips.iter().flatten().enumerate() {
        ip(&mut errs, &format!("spec.externalIPs[{i}]"), addr);
    }
    for (i, family) in spec.ip_families.iter().flatten().enumerate() {
        supported(
            &mut errs,
            &format!("spec.ipFamilies[{i}]"),
            Some(family),
            &["IPv4", "IPv6"],
        );
    }
    supported(
        &mut errs,
        "spec.ipFamilyPolicy",
        spec.ip_family_policy.as_deref(),
        &["SingleStack", "PreferDualStack", "RequireDualStack"],
    );

    supported(
        &mut errs,
        "spec.sessionAffinity",
        spec.session_affinity.as_deref(),
        &["ClientIP", "None"],
    );
    match spec.session_affinity.as_deref() {
        Some("ClientIP") => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            if let Some(t) = timeout
                && !(1..=86400).contains(&t)
            {
                errs.push(FieldError::invalid(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    t,
                    "must be greater than 0 and less than 86400",
                ));
            }
        }
        Some("None") if spec.session_affinity_config.is_some() => {
            errs.push(FieldError::forbidden(
                "spec.sessionAffinityConfig",
                "must not be set when session affinity is None",
            ));
        }
        _ => {}
    }
    supported(
        &mut errs,
        "spec.internalTrafficPolicy",
        spec.internal_traffic_policy.as_deref(),
        &["Cluster", "Local"],
    );
    if let Some(policy) = spec.external_traffic_policy.as_deref() {
        if !matches!(ty, "NodePort" | "LoadBalancer") {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                policy,
                "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
            ));
        } else {
            supported(
                &mut errs,
                "spec.externalTrafficPolicy",
                Some(policy),
                &["Cluster", "Local"],
            );
        }
    }
    errs
}

/// The ClusterIPs a Service holds: `clusterIPs`, or `clusterIP` when that list is empty.
fn service_cluster_ips(svc: &Service) -> Vec<String> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    match spec.cluster_ips.as_deref() {
        Some(ips) if !ips.is_empty() => ips.to_vec(),
        _ => spec
            .cluster_ip
            .iter()
            .filter(|ip| !ip.is_empty())
            .cloned()
            .collect(),
    }
}

/// Kubernetes' `ValidateServiceUpdate` rules: the primary ClusterIP may not change or be unset
/// once allocated (unless the Service moves to or from ExternalName).
pub fn service_update(old: &Service, new: &Service) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    let ty = |s: &Service| {
        s.spec
            .as_ref()
            .and_then(|s| s.type_.clone())
            .unwrap_or_default()
    };
    if ty(old) == "ExternalName" || ty(new) == "ExternalName" {
        return errs;
    }
    let (old_ips, new_ips) = (service_cluster_ips(old), service_cluster_ips(new));
    if old_ips.first().is_some_and(|ip| ip == "None")
        && new_ips.first().is_some_and(|ip| ip == "None")
    {
        return errs;
    }
    match (old_ips.first(), new_ips.first()) {
        (Some(_), None) => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            go_string_slice(&new_ips),
            "primary clusterIP can not be unset",
        )),
        (Some(o), Some(n)) if o != n => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            go_string_slice(&new_ips),
            "may not change once set",
        )),
        _ => {}
    }
    if old_ips.len() == new_ips.len() {
        for (i, (o, n)) in old_ips.iter().zip(&new_ips).enumerate().skip(1) {
            if o != n {
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    go_string_slice(&new_ips),
                    "may not change once set",
                ));
            }
        }
    }
    errs
}

/// Endpoint addresses may not be special (unspecified, loopback, link-local, multicast).
fn endpoint_ip(errs: &mut Vec<FieldError>, field: &str, value: &str) {
    let Ok(addr) = value.parse::<IpAddr>() else {
        errs.push(FieldError::invalid(field, value, IP_MSG));
        return;
    };
    let problem = if addr.is_unspecified() {
        Some("may not be unspecified (0.0.0.0)")
    } else if addr.is_loopback() {
        Some("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    } else if addr.is_multicast() {
        Some("may not be in the multicast range (224.0.0.0/4, ff00::/8)")
    } else if match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    } {
        Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    } else {
        None
    };
    if let Some(msg) = problem {
        errs.push(FieldError::invalid(field, value, msg));
    }
}

/// Endpoints: DNS-1123 subdomain name; each address a usable IP (not loopback, link-local,
/// multicast or unspecified) with a valid hostname and nodeName; each port a valid number
/// and protocol, named (DNS-1123 label) when a subset has several.
pub fn endpoints(ep: &Endpoints) -> Vec<FieldError> {
    let mut errs = object_meta(&ep.metadata, true, NameRule::Dns1123Subdomain);
    for (si, subset) in ep.subsets.iter().flatten().enumerate() {
        let sp = format!("subsets[{si}]");
        let lists = [
            ("addresses", &subset.addresses),
            ("notReadyAddresses", &subset.not_ready_addresses),
        ];
        for (list, addrs) in lists {
            for (ai, addr) in addrs.iter().flatten().enumerate() {
                let ap = format!("{sp}.{list}[{ai}]");
                endpoint_ip(&mut errs, &format!("{ap}.ip"), &addr.ip);
                if let Some(h) = addr.hostname.as_deref().filter(|h| !h.is_empty()) {
                    push_all(&mut errs, &format!("{ap}.hostname"), h, is_dns1123_label(h));
                }
                if let Some(n) = addr.node_name.as_deref().filter(|n| !n.is_empty()) {
                    push_all(
                        &mut errs,
                        &format!("{ap}.nodeName"),
                        n,
                        is_dns1123_subdomain(n),
                    );
                }
            }
        }
        let ports = subset.ports.as_deref().unwrap_or_default();
        let mut names = HashSet::new();
        for (pi, port) in ports.iter().enumerate() {
            let pp = format!("{sp}.ports[{pi}]");
            let name = port.name.as_deref().unwrap_or("");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(format!("{pp}.name"), ""));
            } else if !name.is_empty() {
                push_all(
                    &mut errs,
                    &format!("{pp}.name"),
                    name,
                    is_dns1123_label(name),
                );
                if !names.insert(name) {
                    errs.push(FieldError::duplicate(format!("{pp}.name"), name));
                }
            }
            port_number(&mut errs, &format!("{pp}.port"), port.port);
            supported(
                &mut errs,
                &format!("{pp}.protocol"),
                port.protocol.as_deref(),
                PROTOCOLS,
            );
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// Controllers: ReplicationController, ReplicaSet, Deployment
// ---------------------------------------------------------------------------------------------

fn replicas_and_min_ready(
    errs: &mut Vec<FieldError>,
    replicas: Option<i32>,
    min_ready: Option<i32>,
) {
    nonnegative(errs, "spec.replicas", replicas);
    nonnegative(errs, "spec.minReadySeconds", min_ready);
}

/// The checks Kubernetes makes on a controller's template: the selector matches the template
/// labels, the pod spec is valid, `restartPolicy` is Always and there is no
/// `activeDeadlineSeconds`.
fn controller_template(
    errs: &mut Vec<FieldError>,
    template: &PodTemplateSpec,
    selector_matches: Option<bool>,
    kind: &str,
) {
    let template_labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    if selector_matches == Some(false) {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            go_string_map(template_labels),
            "`selector` does not match template `labels`",
        ));
    }
    errs.extend(pod_template(template, "spec.template"));
    let spec = template.spec.as_ref();
    let restart = spec.and_then(|s| s.restart_policy.as_deref());
    if let Some(policy) = restart
        && policy != "Always"
    {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
    if spec.is_some_and(|s| s.active_deadline_seconds.is_some()) {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// Validate an apps/v1 selector under `spec.selector`; `Some(matches)` tells whether it
/// selects `template_labels` (`None` when it is empty or does not parse).
fn apps_selector(
    errs: &mut Vec<FieldError>,
    selector: &LabelSelector,
    template_labels: Option<&BTreeMap<String, String>>,
) -> Option<bool> {
    let before = errs.len();
    errs.extend(labels(
        selector.match_labels.as_ref(),
        "spec.selector.matchLabels",
    ));
    let exprs = selector.match_expressions.as_deref().unwrap_or_default();
    for (i, req) in exprs.iter().enumerate() {
        let p = format!("spec.selector.matchExpressions[{i}]");
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                format!("{p}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                format!("{p}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::not_supported(
                format!("{p}.operator"),
                other,
                &["In", "NotIn", "Exists", "DoesNotExist"],
            )),
        }
        if let Err(msg) = selectors::validate_label_key(&req.key) {
            errs.push(FieldError::invalid(format!("{p}.key"), &req.key, msg));
        }
        for v in values {
            if let Err(msg) = selectors::validate_label_value(v) {
                errs.push(FieldError::invalid(format!("{p}.values"), v, msg));
            }
        }
    }
    let empty = selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && exprs.is_empty();
    if empty {
        errs.push(FieldError::invalid(
            "spec.selector",
            go_label_selector(selector),
            "empty selector is invalid for deployment",
        ));
        return None;
    }
    match selectors::LabelSelector::from_api(selector) {
        Ok(parsed) => Some(parsed.matches(template_labels.unwrap_or(&BTreeMap::new()))),
        Err(_) => {
            if errs.len() == before {
                errs.push(FieldError::invalid(
                    "spec.selector",
                    go_label_selector(selector),
                    "invalid label selector",
                ));
            }
            None
        }
    }
}

/// A ReplicationController: replicas >= 0, a non-empty selector that matches the template
/// labels, and a template whose pods restart Always.
pub fn replication_controller(rc: &ReplicationController) -> Vec<FieldError> {
    let mut errs = object_meta(&rc.metadata, true, NameRule::Dns1123Subdomain);
    let default_spec = Default::default();
    let spec = rc.spec.as_ref().unwrap_or(&default_spec);
    replicas_and_min_ready(&mut errs, spec.replicas, spec.min_ready_seconds);
    let selector = spec.selector.as_ref().filter(|s| !s.is_empty());
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => errs.extend(labels(Some(sel), "spec.selector")),
    }
    match &spec.template {
        None => errs.push(FieldError::required("spec.template", "")),
        Some(template) => {
            let template_labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
            let matches = selector.map(|sel| {
                sel.iter()
                    .all(|(k, v)| template_labels.and_then(|l| l.get(k)) == Some(v))
            });
            controller_template(&mut errs, template, matches, "ReplicationController");
        }
    }
    errs
}

/// ReplicationController update rules: those of the metadata (the selector may change).
pub fn replication_controller_update(
    old: &ReplicationController,
    new: &ReplicationController,
) -> Vec<FieldError> {
    object_meta_update(&old.metadata, &new.metadata)
}

/// A ReplicaSet: replicas >= 0, a required non-empty selector that matches the template
/// labels, and a template whose pods restart Always.
pub fn replica_set(rs: &ReplicaSet) -> Vec<FieldError> {
    let mut errs = object_meta(&rs.metadata, true, NameRule::Dns1123Subdomain);
    let default_spec = Default::default();
    let spec = rs.spec.as_ref().unwrap_or(&default_spec);
    replicas_and_min_ready(&mut errs, spec.replicas, spec.min_ready_seconds);
    let default_template = PodTemplateSpec::default();
    let template = spec.template.as_ref().unwrap_or(&default_template);
    let template_labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    let matches = apps_selector(&mut errs, &spec.selector, template_labels);
    controller_template(&mut errs, template, matches, "ReplicaSet");
    errs
}

fn selector_immutable(errs: &mut Vec<FieldError>, old: &LabelSelector, new: &LabelSelector) {
    // nil and empty mean the same selector.
    let norm = |s: &LabelSelector| {
        (
            s.match_labels.clone().unwrap_or_default(),
            s.match_expressions.clone().unwrap_or_default(),
        )
    };
    if norm(old) != norm(new) {
        errs.push(FieldError::invalid(
            "spec.selector",
            go_label_selector(new),
            IMMUTABLE_MSG,
        ));
    }
}

/// ReplicaSet update rules (apps/v1): metadata, and `spec.selector` is immutable.
pub fn replica_set_update(old: &ReplicaSet, new: &ReplicaSet) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    if let (Some(o), Some(n)) = (&old.spec, &new.spec) {
        selector_immutable(&mut errs, &o.selector, &n.selector);
    }
    errs
}

/// Kubernetes' `ValidatePositiveIntOrPercent`; returns the value (a percentage as its number).
fn int_or_percent(
    errs: &mut Vec<FieldError>,
    field: &str,
    value: Option<&IntOrString>,
) -> Option<(i64, bool)> {
    match value? {
        IntOrString::Int(n) => {
            if *n < 0 {
                errs.push(FieldError::invalid(field, n, NEGATIVE_MSG));
            }
            Some((i64::from(*n), false))
        }
        IntOrString::String(s) => {
            let percent = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()));
            match percent.and_then(|d| d.parse::<i64>().ok()) {
                Some(p) => Some((p, true)),
                None => {
                    errs.push(FieldError::invalid(
                        field,
                        s,
                        "must be an integer or percentage (e.g '5%')",
                    ));
                    None
                }
            }
        }
    }
}

fn deployment_strategy(errs: &mut Vec<FieldError>, strategy: Option<&DeploymentStrategy>) {
    let Some(strategy) = strategy else { return };
    match strategy.type_.as_deref() {
        None | Some("RollingUpdate") => {
            let Some(ru) = &strategy.rolling_update else {
                return;
            };
            let unavailable = int_or_percent(
                errs,
                "spec.strategy.rollingUpdate.maxUnavailable",
                ru.max_unavailable.as_ref(),
            );
            let surge = int_or_percent(
                errs,
                "spec.strategy.rollingUpdate.maxSurge",
                ru.max_surge.as_ref(),
            );
            if let (Some((0, _)), Some((0, _))) = (unavailable, surge) {
                let value = match &ru.max_unavailable {
                    Some(IntOrString::String(s)) => s.clone(),
                    _ => "0".to_string(),
                };
                errs.push(FieldError::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    value,
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            if let Some((p, true)) = unavailable
                && p > 100
            {
                errs.push(FieldError::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    format!("{p}%"),
                    "must not be greater than 100%",
                ));
            }
        }
        Some("Recreate") => {
            if strategy.rolling_update.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        Some(other) => {
            errs.push(FieldError::not_supported(
                "spec.strategy.type",
                other,
                &["Recreate", "RollingUpdate"],
            ));
        }
    }
}

/// A Deployment: replicas >= 0, a required non-empty selector that matches the template
/// labels, a template whose pods restart Always, a valid strategy and limits.
pub fn deployment(d: &Deployment) -> Vec<FieldError> {
    let mut errs = object_meta(&d.metadata, true, NameRule::Dns1123Subdomain);
    let default_spec = Default::default();
    let spec = d.spec.as_ref().unwrap_or(&default_spec);
    replicas_and_min_ready(&mut errs, spec.replicas, spec.min_ready_seconds);
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    let matches = apps_selector(&mut errs, &spec.selector, template_labels);
    controller_template(&mut errs, &spec.template, matches, "ReplicaSet");
    deployment_strategy(&mut errs, spec.strategy.as_ref());
    nonnegative(
        &mut errs,
        "spec.revisionHistoryLimit",
        spec.revision_history_limit,
    );
    if let Some(deadline) = spec.progress_deadline_seconds {
        nonnegative(&mut errs, "spec.progressDeadlineSeconds", Some(deadline));
        if deadline <= spec.min_ready_seconds.unwrap_or(0) {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

/// Deployment update rules (apps/v1): metadata, and `spec.selector` is immutable.
pub fn deployment_update(old: &Deployment, new: &Deployment) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    if let (Some(o), Some(n)) = (&old.spec, &new.spec) {
        selector_immutable(&mut errs, &o.selector, &n.selector);
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// Cluster-scoped and small kinds
// ---------------------------------------------------------------------------------------------

/// A Namespace: DNS-1123 label name, not namespaced, finalizers standard or qualified.
pub fn namespace(ns: &Namespace) -> Vec<FieldError> {
    let mut errs = object_meta(&ns.metadata, false, NameRule::Dns1123Label);
    let spec_finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_deref())
        .unwrap_or_default();
    finalizers(&mut errs, "spec.finalizers", spec_finalizers);
    errs
}

fn taints(errs: &mut Vec<FieldError>, taints: &[Taint]) {
    let mut seen = HashSet::new();
    for (i, t) in taints.iter().enumerate() {
        let p = format!("spec.taints[{i}]");
        if let Err(msg) = selectors::validate_label_key(&t.key) {
            errs.push(FieldError::invalid(format!("{p}.key"), &t.key, msg));
        }
        let value = t.value.as_deref().unwrap_or("");
        if let Err(msg) = selectors::validate_label_value(value) {
            errs.push(FieldError::invalid(format!("{p}.value"), value, msg));
        }
        if t.effect.is_empty() {
            errs.push(FieldError::required(format!("{p}.effect"), ""));
        } else {
            supported(errs, &format!("{p}.effect"), Some(&t.effect), TAINT_EFFECTS);
        }
        if !seen.insert((t.key.as_str(), t.effect.as_str())) {
            let mut dup = FieldError::duplicate(&p, format!("{}:{}", t.key, t.effect));
            dup.detail = "taints must be unique by key and effect pair".to_string();
            errs.push(dup);
        }
    }
}

fn resource_list(
    errs: &mut Vec<FieldError>,
    list: Option<&BTreeMap<String, Quantity>>,
    path: &str,
) {
    for (name, q) in list.into_iter().flatten() {
        let field = format!("{path}.{name}");
        match quantity_nanos(&q.0) {
            Err(e) => errs.push(FieldError::invalid(&field, &q.0, e.to_string())),
            Ok(v) if v < 0 => errs.push(FieldError::invalid(&field, &q.0, NEGATIVE_MSG)),
            Ok(_) => {}
        }
    }
}

/// A Node: DNS-1123 subdomain name, not namespaced; taints (qualified key, label value,
/// known effect, unique per key and effect), pod CIDRs, and status capacity/allocatable
/// quantities valid and non-negative, addresses not repeated.
pub fn node(node: &Node) -> Vec<FieldError> {
    let mut errs = object_meta(&node.metadata, false, NameRule::Dns1123Subdomain);
    if let Some(spec) = &node.spec {
        taints(&mut errs, spec.taints.as_deref().unwrap_or_default());
        if let Some(c) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty()) {
            cidr(&mut errs, "spec.podCIDR", c);
        }
        for (i, c) in spec.pod_cidrs.iter().flatten().enumerate() {
            cidr(&mut errs, &format!("spec.podCIDRs[{i}]"), c);
        }
    }
    if let Some(status) = &node.status {
        resource_list(&mut errs, status.capacity.as_ref(), "status.capacity");
        resource_list(&mut errs, status.allocatable.as_ref(), "status.allocatable");
        let mut seen = HashSet::new();
        for (i, a) in status.addresses.iter().flatten().enumerate() {
            if !seen.insert((a.type_.as_str(), a.address.as_str())) {
                errs.push(FieldError::duplicate(
                    format!("status.addresses[{i}]"),
                    format!("{}:{}", a.type_, a.address),
                ));
            }
        }
    }
    errs
}

/// A core/v1 Event, as Kubernetes checks it for the v1 API: a name usable in a path, the
/// involved object's namespace agrees with the event's, and events with `eventTime` carry
/// reportingComponent, reportingInstance, action and reason.
pub fn event(ev: &Event) -> Vec<FieldError> {
    let mut errs = object_meta(&ev.metadata, true, NameRule::PathSegment);
    let namespace = ev.metadata.namespace.as_deref().unwrap_or("");
    let involved_ns = ev.involved_object.namespace.as_deref().unwrap_or("");
    let mismatch = || {
        FieldError::invalid(
            "involvedObject.namespace",
            involved_ns,
            "does not match event.namespace",
        )
    };
    if ev.event_time.is_none() {
        let ok = if involved_ns.is_empty() {
            namespace.is_empty() || namespace == "default"
        } else {
            namespace == involved_ns
        };
        if !ok {
            errs.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            errs.push(mismatch());
        }
        let component = ev.reporting_component.as_deref().unwrap_or("");
        if component.is_empty() {
            errs.push(FieldError::required("reportingComponent", ""));
        } else if let Err(msg) = selectors::validate_label_key(component) {
            errs.push(FieldError::invalid("reportingComponent", component, msg));
        }
        let limited = [
            (
                "reportingInstance",
                ev.reporting_instance.as_deref(),
                128,
                true,
            ),
            ("action", ev.action.as_deref(), 128, true),
            ("reason", ev.reason.as_deref(), 128, true),
            ("message", ev.message.as_deref(), 1024, false),
        ];
        for (field, value, max, required) in limited {
            let value = value.unwrap_or("");
            if required && value.is_empty() {
                errs.push(FieldError::required(field, ""));
            }
            if value.len() > max {
                errs.push(FieldError::invalid(
                    field,
                    "",
                    format!("can have at most {max} characters"),
                ));
            }
        }
    }
    errs
}

/// A Lease: DNS-1123 subdomain name; `leaseDurationSeconds` > 0 and `leaseTransitions` >= 0
/// when set; `preferredHolder` only with a `strategy`.
pub fn lease(lease: &Lease) -> Vec<FieldError> {
    let mut errs = object_meta(&lease.metadata, true, NameRule::Dns1123Subdomain);
    if let Some(spec) = &lease.spec {
        if let Some(d) = spec.lease_duration_seconds
            && d <= 0
        {
            errs.push(FieldError::invalid(
                "spec.leaseDurationSeconds",
                d,
                "must be greater than 0",
            ));
        }
        nonnegative(&mut errs, "spec.leaseTransitions", spec.lease_transitions);
        let has_strategy = spec.strategy.as_deref().is_some_and(|s| !s.is_empty());
        if spec
            .preferred_holder
            .as_deref()
            .is_some_and(|h| !h.is_empty())
            && !has_strategy
        {
            errs.push(FieldError::forbidden(
                "spec.preferredHolder",
                "may only be specified if `strategy` is defined",
            ));
        }
    }
    errs
}

/// Data keys of ConfigMaps and Secrets: `[-._a-zA-Z0-9]+`, at most 253 characters.
fn config_keys<'a>(
    errs: &mut Vec<FieldError>,
    field: &str,
    keys: impl Iterator<Item = &'a String>,
) {
    for key in keys {
        let valid = !key.is_empty()
            && key.len() <= 253
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && key != "."
            && key != "..";
        if !valid {
            errs.push(FieldError::invalid(
                format!("{field}[{key}]"),
                key,
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ));
        }
    }
}

/// A ConfigMap: a valid name and data keys, no key in both `data` and `binaryData`.
pub fn config_map(cm: &k8s_openapi::api::core::v1::ConfigMap) -> Vec<FieldError> {
    let mut errs = object_meta(&cm.metadata, true, NameRule::Dns1123Subdomain);
    config_keys(&mut errs, "data", cm.data.iter().flat_map(|d| d.keys()));
    config_keys(
        &mut errs,
        "binaryData",
        cm.binary_data.iter().flat_map(|d| d.keys()),
    );
    if let (Some(data), Some(binary)) = (&cm.data, &cm.binary_data) {
        for key in data.keys().filter(|k| binary.contains_key(*k)) {
            errs.push(FieldError::invalid(
                format!("data[{key}]"),
                key,
                "duplicate of key present in binaryData",
            ));
        }
    }
    errs
}

/// A Secret: a valid name and data keys.
pub fn secret(s: &k8s_openapi::api::core::v1::Secret) -> Vec<FieldError> {
    let mut errs = object_meta(&s.metadata, true, NameRule::Dns1123Subdomain);
    config_keys(&mut errs, "data", s.data.iter().flat_map(|d| d.keys()));
    config_keys(
        &mut errs,
        "stringData",
        s.string_data.iter().flat_map(|d| d.keys()),
    );
    errs
}

/// A ServiceAccount: a valid name.
pub fn service_account(sa: &k8s_openapi::api::core::v1::ServiceAccount) -> Vec<FieldError> {
    object_meta(&sa.metadata, true, NameRule::Dns1123Subdomain)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::field_error::FieldErrorKind;
    use super::*;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("test fixture decodes")
    }

    fn pod_json() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}
        })
    }

    fn valid_pod() -> Pod {
        from(pod_json())
    }

    fn deployment_json() -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}
                }
            }
        })
    }

    fn service_json() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
        })
    }

    /// The one error on `field`, failing the test if there is none or several.
    fn only<'a>(errs: &'a [FieldError], field: &str) -> &'a FieldError {
        let on: Vec<&FieldError> = errs.iter().filter(|e| e.field == field).collect();
        assert_eq!(on.len(), 1, "expected one error on {field}, got {errs:#?}");
        on[0]
    }

    fn fields(errs: &[FieldError]) -> Vec<&str> {
        errs.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn object_meta_name_rules() {
        let meta: ObjectMeta = from(json!({"name": "My_Pod", "namespace": "default"}));
        let errs = object_meta(&meta, true, NameRule::Dns1123Subdomain);
        let e = only(&errs, "metadata.name");
        assert_eq!(e.kind, FieldErrorKind::Invalid("My_Pod".into()));
        assert!(e.to_string().starts_with(
            "metadata.name: Invalid value: \"My_Pod\": a lowercase RFC 1123 subdomain"
        ));

        let nameless: ObjectMeta = from(json!({"namespace": "default"}));
        let errs = object_meta(&nameless, true, NameRule::Dns1123Subdomain);
        assert_eq!(
            only(&errs, "metadata.name").to_string(),
            "metadata.name: Required value: name or generateName is required"
        );

        let generated: ObjectMeta = from(json!({"generateName": "web-", "namespace": "default"}));
        assert!(object_meta(&generated, true, NameRule::Dns1123Subdomain).is_empty());
        let bad_generated: ObjectMeta =
            from(json!({"generateName": "Web-", "namespace": "default"}));
        assert_eq!(
            fields(&object_meta(
                &bad_generated,
                true,
                NameRule::Dns1123Subdomain
            )),
            ["metadata.generateName"]
        );
    }

    #[test]
    fn object_meta_namespace_scope() {
        let no_ns: ObjectMeta = from(json!({"name": "web"}));
        let errs = object_meta(&no_ns, true, NameRule::Dns1123Subdomain);
        assert_eq!(
            only(&errs, "metadata.namespace").kind,
            FieldErrorKind::Required
        );
        assert!(object_meta(&no_ns, false, NameRule::Dns1123Subdomain).is_empty());

        let with_ns: ObjectMeta = from(json!({"name": "node-1", "namespace": "default"}));
        let errs = object_meta(&with_ns, false, NameRule::Dns1123Subdomain);
        assert_eq!(
            only(&errs, "metadata.namespace").to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );

        let bad_ns: ObjectMeta = from(json!({"name": "web", "namespace": "Bad_NS"}));
        assert_eq!(
            fields(&object_meta(&bad_ns, true, NameRule::Dns1123Subdomain)),
            ["metadata.namespace"]
        );
    }

    #[test]
    fn object_meta_labels_annotations_finalizers_owners() {
        let meta: ObjectMeta = from(json!({
            "name": "web", "namespace": "default",
            "labels": {"app": "web", "bad key": "x", "ok": "bad value!"},
            "annotations": {"example.com/Note": "anything at all", "bad key": "x"},
            "finalizers": ["example.com/cleanup", "kubernetes", "custom"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "", "uid": "u1"}]
        }));
        let errs = object_meta(&meta, true, NameRule::Dns1123Subdomain);
        let labels: Vec<_> = errs
            .iter()
            .filter(|e| e.field == "metadata.labels")
            .collect();
        assert_eq!(labels.len(), 2, "{errs:#?}");
        assert!(
            labels
                .iter()
                .any(|e| e.kind == FieldErrorKind::Invalid("bad key".into()))
        );
        assert!(
            labels
                .iter()
                .any(|e| e.kind == FieldErrorKind::Invalid("bad value!".into()))
        );
        assert_eq!(
            only(&errs, "metadata.annotations").kind,
            FieldErrorKind::Invalid("bad key".into())
        );
        assert_eq!(
            only(&errs, "metadata.finalizers").detail,
            "name is neither a standard finalizer name nor is it fully qualified"
        );
        assert_eq!(
            only(&errs, "metadata.ownerReferences.name").detail,
            "name must not be empty"
        );
    }

    #[test]
    fn annotations_total_size_is_limited() {
        let big = BTreeMap::from([("a".to_string(), "x".repeat(256 * 1024))]);
        let errs = annotations(Some(&big), "metadata.annotations");
        assert_eq!(
            errs,
            vec![FieldError::too_long("metadata.annotations", 262_144)]
        );
        let fits = BTreeMap::from([("a".to_string(), "x".repeat(256 * 1024 - 1))]);
        assert!(annotations(Some(&fits), "metadata.annotations").is_empty());
    }

    #[test]
    fn object_meta_update_keeps_identity() {
        let old: ObjectMeta =
            from(json!({"name": "web", "namespace": "default", "uid": "u1", "generation": 2}));
        let same_without_uid: ObjectMeta =
            from(json!({"name": "web", "namespace": "default", "generation": 2}));
        assert!(object_meta_update(&old, &same_without_uid).is_empty());
        let renamed: ObjectMeta =
            from(json!({"name": "web2", "namespace": "default", "uid": "u2", "generation": 1}));
        let errs = object_meta_update(&old, &renamed);
        assert_eq!(
            fields(&errs),
            ["metadata.name", "metadata.uid", "metadata.generation"]
        );
        assert_eq!(
            errs[0].to_string(),
            "metadata.name: Invalid value: \"web2\": field is immutable"
        );
    }

    // --- pods --------------------------------------------------------------------------------

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
        super::super::defaults::pod(&mut p);
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

    // --- services ----------------------------------------------------------------------------

    #[test]
    fn valid_services_have_no_errors() {
        let svc: Service = from(service_json());
        assert_eq!(service(&svc), vec![]);
        let mut defaulted = svc.clone();
        super::super::defaults::service(&mut defaulted);
        assert_eq!(service(&defaulted), vec![]);

        let headless: Service = from(
            json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {"clusterIP": "None", "selector": {"app": "db"}}}),
        );
        assert_eq!(service(&headless), vec![]);
        let external: Service = from(
            json!({"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "example.com."}}),
        );
        assert_eq!(service(&external), vec![]);
        let multi: Service = from(
            json!({"metadata": {"name": "multi", "namespace": "default"}, "spec": {"type": "NodePort", "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                {"name": "dns", "port": 53, "protocol": "UDP"}
            ]}}),
        );
        assert_eq!(service(&multi), vec![]);
    }

    #[test]
    fn service_name_is_dns1035() {
        let mut svc: Service = from(service_json());
        svc.metadata.name = Some("1web".into());
        let e = &service(&svc)[0];
        assert_eq!(e.field, "metadata.name");
        assert!(
            e.detail.starts_with("a DNS-1035 label must consist of"),
            "{e}"
        );
    }

    #[test]
    fn service_ports_rules() {
        let no_ports: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": {"app": "web"}}}),
        );
        assert_eq!(
            service(&no_ports),
            vec![FieldError::required("spec.ports", "")]
        );

        let svc: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"ports": [
            {"port": 0},
            {"name": "a", "port": 80, "targetPort": "Not_A_Name"},
            {"name": "a", "port": 80, "protocol": "ICMP", "nodePort": 30001}
        ], "selector": {"app": "bad value!"}, "type": "Bogus"}}),
        );
        let errs = service(&svc);
        assert_eq!(
            only(&errs, "spec.type").kind,
            FieldErrorKind::NotSupported("Bogus".into())
        );
        assert_eq!(
            only(&errs, "spec.ports[0].name").kind,
            FieldErrorKind::Required
        );
        assert_eq!(only(&errs, "spec.ports[0].port").detail, PORT_RANGE_MSG);
        assert!(errs.iter().any(|e| e.field == "spec.ports[1].targetPort"));
        assert_eq!(
            only(&errs, "spec.ports[2].name").kind,
            FieldErrorKind::Duplicate("a".into())
        );
        assert_eq!(
            only(&errs, "spec.ports[2].protocol").kind,
            FieldErrorKind::NotSupported("ICMP".into())
        );
        assert_eq!(
            only(&errs, "spec.selector").kind,
            FieldErrorKind::Invalid("bad value!".into())
        );

        let cluster_ip_node_port: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"ports": [{"port": 80, "nodePort": 30001}]}}),
        );
        assert_eq!(
            only(&service(&cluster_ip_node_port), "spec.ports[0].nodePort").kind,
            FieldErrorKind::Forbidden
        );

        let dup: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}}),
        );
        assert_eq!(
            service(&dup),
            vec![FieldError::duplicate("spec.ports[1]", "80/TCP")]
        );
    }

    #[test]
    fn service_types_and_addresses() {
        let ext: Service = from(
            json!({"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName", "clusterIP": "10.96.0.9"}}),
        );
        let errs = service(&ext);
        assert_eq!(
            only(&errs, "spec.externalName").kind,
            FieldErrorKind::Required
        );
        assert_eq!(
            only(&errs, "spec.clusterIP").kind,
            FieldErrorKind::Forbidden
        );

        let bad_ip: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.300", "ports": [{"port": 80}]}}),
        );
        assert_eq!(only(&service(&bad_ip), "spec.clusterIP").detail, IP_MSG);

        let affinity: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
                "ports": [{"port": 80}], "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}},
                "externalTrafficPolicy": "Local"
            }}),
        );
        let errs = service(&affinity);
        assert_eq!(
            fields(&errs),
            [
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                "spec.externalTrafficPolicy"
            ]
        );
    }

    #[test]
    fn service_cluster_ip_is_immutable() {
        let old: Service = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 80}]}}),
        );
        let mut same = old.clone();
        same.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 81;
        assert_eq!(service_update(&old, &same), vec![]);

        let mut changed = old.clone();
        changed.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.11".into());
        changed.spec.as_mut().unwrap().cluster_ips = Some(vec!["10.96.0.11".into()]);
        let errs = service_update(&old, &changed);
        assert_eq!(
            only(&errs, "spec.clusterIPs[0]").to_string(),
            "spec.clusterIPs[0]: Invalid value: \"[]string{\"10.96.0.11\"}\": may not change once set"
        );

        let mut unset = old.clone();
        unset.spec.as_mut().unwrap().cluster_ip = None;
        unset.spec.as_mut().unwrap().cluster_ips = None;
        assert_eq!(
            only(&service_update(&old, &unset), "spec.clusterIPs[0]").detail,
            "primary clusterIP can not be unset"
        );

        let mut to_external = unset.clone();
        to_external.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        assert_eq!(service_update(&old, &to_external), vec![]);
    }

    #[test]
    fn endpoints_rules() {
        let ep: Endpoints = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "subsets": [{
                "addresses": [{"ip": "10.244.1.5", "nodeName": "node-1"}],
                "notReadyAddresses": [{"ip": "172.17.0.3"}],
                "ports": [{"port": 8080, "protocol": "TCP"}]
            }]}),
        );
        assert_eq!(endpoints(&ep), vec![]);
        let bad: Endpoints = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "subsets": [{
                "addresses": [{"ip": "127.0.0.1"}, {"ip": "not-an-ip"}, {"ip": "169.254.1.1"}],
                "ports": [{"port": 0}, {"name": "b", "port": 1, "protocol": "XTP"}]
            }]}),
        );
        let errs = endpoints(&bad);
        assert_eq!(
            only(&errs, "subsets[0].addresses[0].ip").detail,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)"
        );
        assert_eq!(only(&errs, "subsets[0].addresses[1].ip").detail, IP_MSG);
        assert!(
            only(&errs, "subsets[0].addresses[2].ip")
                .detail
                .contains("link-local")
        );
        assert_eq!(
            only(&errs, "subsets[0].ports[0].name").kind,
            FieldErrorKind::Required
        );
        assert_eq!(
            only(&errs, "subsets[0].ports[0].port").detail,
            PORT_RANGE_MSG
        );
        assert_eq!(
            only(&errs, "subsets[0].ports[1].protocol").kind,
            FieldErrorKind::NotSupported("XTP".into())
        );
        assert_eq!(errs.len(), 6, "{errs:#?}");
    }

    // --- controllers -------------------------------------------------------------------------

    #[test]
    fn valid_controllers_have_no_errors() {
        let d: Deployment = from(deployment_json());
        assert_eq!(deployment(&d), vec![]);
        let mut defaulted = d.clone();
        super::super::defaults::deployment(&mut defaulted);
        assert_eq!(deployment(&defaulted), vec![]);

        let mut rs_json = deployment_json();
        rs_json["kind"] = json!("ReplicaSet");
        let rs: ReplicaSet = from(rs_json);
        assert_eq!(replica_set(&rs), vec![]);

        let rc: ReplicationController = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
                "replicas": 2,
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}
            }}),
        );
        assert_eq!(
            fields(&replication_controller(&rc)),
            ["spec.selector"],
            "an RC needs a selector before defaults"
        );
        let mut defaulted = rc.clone();
        super::super::defaults::replication_controller(&mut defaulted);
        assert_eq!(replication_controller(&defaulted), vec![]);
    }

    #[test]
    fn selector_must_match_template_labels() {
        let mut json = deployment_json();
        json["spec"]["template"]["metadata"]["labels"] = json!({"app": "api", "tier": "back"});
        let errs = deployment(&from(json));
        let e = only(&errs, "spec.template.metadata.labels");
        assert_eq!(
            e.to_string(),
            "spec.template.metadata.labels: Invalid value: \"map[string]string{\"app\":\"api\", \"tier\":\"back\"}\": `selector` does not match template `labels`"
        );
        assert_eq!(errs.len(), 1);

        let mut expr = deployment_json();
        expr["spec"]["selector"] = json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]});
        assert_eq!(deployment(&from(expr)), vec![]);

        let rc: ReplicationController = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
                "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}
            }}),
        );
        assert_eq!(
            fields(&replication_controller(&rc)),
            ["spec.template.metadata.labels"]
        );
    }

    #[test]
    fn replicas_must_not_be_negative() {
        let mut json = deployment_json();
        json["spec"]["replicas"] = json!(-1);
        let errs = deployment(&from(json.clone()));
        assert_eq!(
            errs,
            vec![FieldError::invalid(
                "spec.replicas",
                -1,
                "must be greater than or equal to 0"
            )]
        );
        assert_eq!(
            errs[0].to_string(),
            "spec.replicas: Invalid value: \"-1\": must be greater than or equal to 0"
        );

        json["kind"] = json!("ReplicaSet");
        assert_eq!(fields(&replica_set(&from(json))), ["spec.replicas"]);
        let rc: ReplicationController = from(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
                "replicas": -3, "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}
            }}),
        );
        assert_eq!(fields(&replication_controller(&rc)), ["spec.replicas"]);
    }

    #[test]
    fn apps_selector_is_required_and_valid() {
        let mut json = deployment_json();
        json["spec"]["selector"] = json!({});
        let errs = deployment(&from(json.clone()));
        assert_eq!(
            only(&errs, "spec.selector").detail,
            "empty selector is invalid for deployment"
        );
        assert_eq!(errs.len(), 1, "an empty selector skips the label match");

        json["spec"]["selector"] = json!({"matchExpressions": [
            {"key": "app", "operator": "In"},
            {"key": "app", "operator": "Exists", "values": ["x"]},
            {"key": "bad key", "operator": "Near"}
        ]});
        let errs = deployment(&from(json));
        assert_eq!(
            only(&errs, "spec.selector.matchExpressions[0].values").kind,
            FieldErrorKind::Required
        );
        assert_eq!(
            only(&errs, "spec.selector.matchExpressions[1].values").kind,
            FieldErrorKind::Forbidden
        );
        assert_eq!(
            only(&errs, "spec.selector.matchExpressions[2].operator").kind,
            FieldErrorKind::NotSupported("Near".into())
        );
        assert_eq!(
            only(&errs, "spec.selector.matchExpressions[2].key").kind,
            FieldErrorKind::Invalid("bad key".into())
        );
    }

    #[test]
    fn template_is_validated_under_its_path() {
        let mut json = deployment_json();
        json["spec"]["template"]["spec"] = json!({"restartPolicy": "Never", "activeDeadlineSeconds": 5, "containers": [{"name": "nginx"}]});
        json["spec"]["template"]["metadata"]["labels"]["bad key"] = json!("x");
        json["spec"]["selector"]["matchLabels"] = json!({"app": "web"});
        let errs = deployment(&from(json));
        assert_eq!(
            only(&errs, "spec.template.spec.containers[0].image").kind,
            FieldErrorKind::Required
        );
        assert_eq!(
            only(&errs, "spec.template.metadata.labels").kind,
            FieldErrorKind::Invalid("bad key".into())
        );
        assert_eq!(
            only(&errs, "spec.template.spec.restartPolicy").to_string(),
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
        );
        assert_eq!(
            only(&errs, "spec.template.spec.activeDeadlineSeconds").detail,
            "activeDeadlineSeconds in ReplicaSet is not Supported"
        );
        assert_eq!(errs.len(), 4, "{errs:#?}");
    }

    #[test]
    fn deployment_strategy_rules() {
        let with = |strategy: serde_json::Value| {
            let mut json = deployment_json();
            json["spec"]["strategy"] = strategy;
            deployment(&from(json))
        };
        assert_eq!(
            with(
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "10%"}})
            ),
            vec![]
        );
        assert_eq!(
            only(
                &with(json!({"rollingUpdate": {"maxSurge": "abc"}})),
                "spec.strategy.rollingUpdate.maxSurge"
            )
            .detail,
            "must be an integer or percentage (e.g '5%')"
        );
        assert_eq!(
            only(
                &with(json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}})),
                "spec.strategy.rollingUpdate.maxUnavailable"
            )
            .detail,
            "may not be 0 when `maxSurge` is 0"
        );
        assert_eq!(
            only(
                &with(json!({"rollingUpdate": {"maxUnavailable": "150%"}})),
                "spec.strategy.rollingUpdate.maxUnavailable"
            )
            .detail,
            "must not be greater than 100%"
        );
        assert_eq!(
            only(
                &with(json!({"type": "Recreate", "rollingUpdate": {}})),
                "spec.strategy.rollingUpdate"
            )
            .kind,
            FieldErrorKind::Forbidden
        );
        assert_eq!(
            only(&with(json!({"type": "BlueGreen"})), "spec.strategy.type").kind,
            FieldErrorKind::NotSupported("BlueGreen".into())
        );
        let mut json = deployment_json();
        json["spec"]["progressDeadlineSeconds"] = json!(10);
        json["spec"]["minReadySeconds"] = json!(10);
        assert_eq!(
            only(&deployment(&from(json)), "spec.progressDeadlineSeconds").detail,
            "must be greater than minReadySeconds"
        );
    }

    #[test]
    fn apps_selector_is_immutable() {
        let old: Deployment = from(deployment_json());
        let mut scaled = old.clone();
        scaled.spec.as_mut().unwrap().replicas = Some(10);
        assert_eq!(deployment_update(&old, &scaled), vec![]);

        let mut json = deployment_json();
        json["spec"]["selector"]["matchLabels"] = json!({"app": "web", "v": "2"});
        let changed: Deployment = from(json.clone());
        let errs = deployment_update(&old, &changed);
        assert_eq!(
            only(&errs, "spec.selector").to_string(),
            "spec.selector: Invalid value: \"&v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}\": field is immutable"
        );

        json["kind"] = json!("ReplicaSet");
        let mut old_rs = deployment_json();
        old_rs["kind"] = json!("ReplicaSet");
        assert_eq!(
            fields(&replica_set_update(&from(old_rs), &from(json))),
            ["spec.selector"]
        );
    }

    // --- other kinds -------------------------------------------------------------------------

    #[test]
    fn namespace_rules() {
        let ns: Namespace =
            from(json!({"metadata": {"name": "team-a"}, "spec": {"finalizers": ["kubernetes"]}}));
        assert_eq!(namespace(&ns), vec![]);
        let dotted: Namespace = from(json!({"metadata": {"name": "team.a"}}));
        assert_eq!(
            only(&namespace(&dotted), "metadata.name").detail,
            "must not contain dots"
        );
        let bad: Namespace = from(
            json!({"metadata": {"name": "Team_A", "namespace": "x"}, "spec": {"finalizers": ["custom"]}}),
        );
        assert_eq!(
            fields(&namespace(&bad)),
            ["metadata.name", "metadata.namespace", "spec.finalizers"]
        );
    }

    #[test]
    fn node_rules() {
        let good: Node = from(json!({
            "metadata": {"name": "node-1.example.com"},
            "spec": {"podCIDR": "10.244.1.0/24", "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}, "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}
        }));
        assert_eq!(node(&good), vec![]);
        let bad: Node = from(json!({
            "metadata": {"name": "Node_1"},
            "spec": {"podCIDR": "10.244.1.0", "taints": [
                {"key": "k", "effect": "Sometimes"},
                {"key": "k", "effect": ""},
                {"key": "k", "effect": "Sometimes"}
            ]},
            "status": {"capacity": {"cpu": "four"}, "allocatable": {"memory": "-1Gi"}}
        }));
        let errs = node(&bad);
        assert_eq!(
            only(&errs, "metadata.name").kind,
            FieldErrorKind::Invalid("Node_1".into())
        );
        assert_eq!(only(&errs, "spec.podCIDR").detail, CIDR_MSG);
        assert_eq!(
            only(&errs, "spec.taints[0].effect").kind,
            FieldErrorKind::NotSupported("Sometimes".into())
        );
        assert_eq!(
            only(&errs, "spec.taints[1].effect").kind,
            FieldErrorKind::Required
        );
        assert_eq!(
            only(&errs, "spec.taints[2]").detail,
            "taints must be unique by key and effect pair"
        );
        assert!(
            only(&errs, "status.capacity.cpu")
                .detail
                .starts_with("quantities must match")
        );
        assert_eq!(
            only(&errs, "status.allocatable.memory").detail,
            NEGATIVE_MSG
        );
    }

    #[test]
    fn event_rules() {
        let ev: Event = from(json!({
            "metadata": {"name": "web.17a9c2", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "Scheduled", "message": "assigned", "type": "Normal"
        }));
        assert_eq!(event(&ev), vec![]);
        let mut other = ev.clone();
        other.involved_object.namespace = Some("kube-system".into());
        assert_eq!(
            only(&event(&other), "involvedObject.namespace").detail,
            "does not match event.namespace"
        );

        let new_style: Event = from(json!({
            "metadata": {"name": "web.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "eventTime": "2024-01-01T00:00:00.000000Z"
        }));
        assert_eq!(
            fields(&event(&new_style)),
            [
                "reportingComponent",
                "reportingInstance",
                "action",
                "reason"
            ]
        );
    }

    #[test]
    fn lease_rules() {
        let good: Lease = from(
            json!({"metadata": {"name": "node-1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}),
        );
        assert_eq!(lease(&good), vec![]);
        let bad: Lease = from(
            json!({"metadata": {"name": "node-1", "namespace": "kube-node-lease"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1, "preferredHolder": "x"}}),
        );
        assert_eq!(
            fields(&lease(&bad)),
            [
                "spec.leaseDurationSeconds",
                "spec.leaseTransitions",
                "spec.preferredHolder"
            ]
        );
    }

    #[test]
    fn empty_objects_do_not_panic() {
        let _ = pod(&Pod::default());
        let _ = pod_update(&Pod::default(), &Pod::default());
        let _ = service(&Service::default());
        let _ = service_update(&Service::default(), &Service::default());
        let _ = deployment(&Deployment::default());
        let _ = deployment_update(&Deployment::default(), &Deployment::default());
        let _ = replica_set(&ReplicaSet::default());
        let _ = replica_set_update(&ReplicaSet::default(), &ReplicaSet::default());
        let _ = replication_controller(&ReplicationController::default());
        let _ = replication_controller_update(
            &ReplicationController::default(),
            &ReplicationController::default(),
        );
        let _ = namespace(&Namespace::default());
        let _ = node(&Node::default());
        let _ = endpoints(&Endpoints::default());
        let _ = event(&Event::default());
        let _ = lease(&Lease::default());
        assert_eq!(
            fields(&pod(&Pod::default())),
            ["metadata.name", "metadata.namespace", "spec.containers"]
        );
    }

    #[test]
    fn odd_strings_do_not_panic() {
        let odd = [
            "", "-", "+", ".", "é", "1é", "１２", "\u{0}", "e5", "1e+", "--1", "1.", "%", "/",
            "a/b/c", "💥Gi",
        ];
        for s in odd {
            let _ = quantity_nanos(s);
            let _ = is_dns1123_label(s);
            let _ = is_dns1123_subdomain(s);
            let _ = skiff_api::names::is_dns1035_label(s);
            let _ = is_port_name(s);
            let _ = is_env_var_name(s);
            let mut p = valid_pod();
            let c = &mut p.spec.as_mut().unwrap().containers[0];
            c.name = s.to_string();
            c.image = Some(s.to_string());
            c.resources = Some(from(json!({"limits": {s: s}, "requests": {s: s}})));
            let _ = pod(&p);
        }
    }
}
