//! Pod Security Admission: the Pod Security Standards (`privileged`, `baseline`,
//! `restricted`) a namespace asks for with its `pod-security.kubernetes.io/enforce`, `warn`
//! and `audit` labels, checked as Kubernetes' `k8s.io/pod-security-admission` checks them
//! (its `policy/check_*.go`, the `latest` version), with its messages. `enforce` refuses a
//! pod that violates the level (403); `warn` lets it in with a warning kubectl prints, and
//! also warns about the pod templates of workload objects; `audit` is recorded as the
//! `pod-security.kubernetes.io/audit-violations` annotation on the pod (skiff keeps no audit
//! log).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, SecurityContext};
use serde_json::Value;

use super::ApiServer;
use super::field_error::FieldError;
use super::status::ApiError;

const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// A Pod Security Standard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Anything goes.
    Privileged,
    /// Known privilege escalations are refused.
    Baseline,
    /// Hardened pods only.
    Restricted,
}

impl Level {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "privileged" => Some(Self::Privileged),
            "baseline" => Some(Self::Baseline),
            "restricted" => Some(Self::Restricted),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Privileged => "privileged",
            Self::Baseline => "baseline",
            Self::Restricted => "restricted",
        }
    }
}

/// A namespace's policy: the level of each mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Pods that violate it are refused.
    pub enforce: Option<Level>,
    /// Pods (and templates) that violate it are admitted with a warning.
    pub warn: Option<Level>,
    /// Pods that violate it are admitted and annotated.
    pub audit: Option<Level>,
}

impl Policy {
    /// The policy of a namespace's labels (a label that does not parse counts as
    /// `restricted`, as Kubernetes does for namespaces labelled before validation).
    pub fn of(labels: &BTreeMap<String, String>) -> Self {
        let level = |mode: &str| {
            labels
                .get(&format!("{LABEL_PREFIX}{mode}"))
                .map(|v| Level::parse(v).unwrap_or(Level::Restricted))
        };
        Self {
            enforce: level("enforce"),
            warn: level("warn"),
            audit: level("audit"),
        }
    }
}

/// The errors of a namespace's Pod Security labels (levels and versions that do not parse).
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for mode in ["enforce", "warn", "audit"] {
        let key = format!("{LABEL_PREFIX}{mode}");
        if let Some(value) = labels.get(&key)
            && Level::parse(value).is_none()
        {
            errs.push(FieldError::invalid(
                format!("metadata.labels[{key}]"),
                value,
                "must be one of privileged, baseline, restricted",
            ));
        }
        let key = format!("{LABEL_PREFIX}{mode}-version");
        if let Some(value) = labels.get(&key)
            && !is_version(value)
        {
            errs.push(FieldError::invalid(
                format!("metadata.labels[{key}]"),
                value,
                "must be \"latest\" or of the form \"v1.x\"",
            ));
        }
    }
    errs
}

fn is_version(value: &str) -> bool {
    value == "latest"
        || value
            .strip_prefix("v1.")
            .is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()))
}

/// How a level's violations read in messages: `"restricted:latest"`.
pub fn describe(level: Level) -> String {
    format!("\"{}:latest\"", level.name())
}

/// What `spec` violates of `level`, as Kubernetes words each check's failure.
pub fn violations(level: Level, spec: &PodSpec) -> Vec<String> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let mut out = Vec::new();
    let containers: Vec<&Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .collect();
    let pod_sc = spec.security_context.as_ref();
    let sc = |c: &Container| c.security_context.clone().unwrap_or_default();
    let quoted = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let plural = |names: &[&str]| {
        if names.len() == 1 {
            "container"
        } else {
            "containers"
        }
    };
    let failing = |check: &dyn Fn(&SecurityContext) -> bool| -> Vec<&str> {
        containers
            .iter()
            .filter(|c| check(&sc(c)))
            .map(|c| c.name.as_str())
            .collect()
    };

    // Baseline.
    let hosts: Vec<String> = [
        ("hostNetwork", spec.host_network),
        ("hostPID", spec.host_pid),
        ("hostIPC", spec.host_ipc),
    ]
    .iter()
    .filter(|(_, on)| *on == Some(true))
    .map(|(name, _)| format!("{name}=true"))
    .collect();
    if !hosts.is_empty() {
        out.push(format!("host namespaces ({})", hosts.join(", ")));
    }
    let privileged = failing(&|s| s.privileged == Some(true));
    if !privileged.is_empty() {
        out.push(format!(
            "privileged ({} {} must not set securityContext.privileged=true)",
            plural(&privileged),
            quoted(&privileged)
        ));
    }
    const BASELINE_CAPABILITIES: &[&str] = &[
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ];
    let mut added = Vec::new();
    for c in &containers {
        let caps: Vec<String> = sc(c)
            .capabilities
            .and_then(|caps| caps.add)
            .unwrap_or_default()
            .into_iter()
            .filter(|cap| !BASELINE_CAPABILITIES.contains(&cap.as_str()))
            .collect();
        if !caps.is_empty() {
            let caps: Vec<String> = caps.iter().map(|c| format!("{c:?}")).collect();
            added.push(format!(
                "container {:?} must not include {} in securityContext.capabilities.add",
                c.name,
                caps.join(", ")
            ));
        }
    }
    if !added.is_empty() {
        out.push(format!("non-default capabilities ({})", added.join("; ")));
    }
    let host_paths: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.host_path.is_some())
        .map(|v| v.name.as_str())
        .collect();
    if !host_paths.is_empty() {
        let noun = if host_paths.len() == 1 {
            "volume"
        } else {
            "volumes"
        };
        out.push(format!("hostPath volumes ({noun} {})", quoted(&host_paths)));
    }
    let mut ports = Vec::new();
    for c in &containers {
        let used: Vec<String> = c
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.host_port.filter(|h| *h != 0))
            .map(|h| h.to_string())
            .collect();
        if !used.is_empty() {
            let noun = if used.len() == 1 {
                "hostPort"
            } else {
                "hostPorts"
            };
            ports.push(format!(
                "container {:?} uses {noun} {}",
                c.name,
                used.join(", ")
            ));
        }
    }
    if !ports.is_empty() {
        out.push(format!("hostPort ({})", ports.join("; ")));
    }
    let proc_mount = failing(&|s| s.proc_mount.as_deref().is_some_and(|m| m != "Default"));
    if !proc_mount.is_empty() {
        out.push(format!(
            "procMount ({} {} must not set securityContext.procMount to \"Unmasked\")",
            plural(&proc_mount),
            quoted(&proc_mount)
        ));
    }
    let unconfined = |t: Option<&str>| t == Some("Unconfined");
    let pod_seccomp = pod_sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str());
    let mut seccomp = Vec::new();
    if unconfined(pod_seccomp) {
        seccomp.push(
            "pod must not set securityContext.seccompProfile.type to \"Unconfined\"".to_owned(),
        );
    }
    let unconfined_containers =
        failing(&|s| unconfined(s.seccomp_profile.as_ref().map(|p| p.type_.as_str())));
    if !unconfined_containers.is_empty() {
        seccomp.push(format!(
            "{} {} must not set securityContext.seccompProfile.type to \"Unconfined\"",
            plural(&unconfined_containers),
            quoted(&unconfined_containers)
        ));
    }
    if level == Level::Baseline && !seccomp.is_empty() {
        out.push(format!("seccompProfile ({})", seccomp.join("; ")));
    }
    const SAFE_SYSCTLS: &[&str] = &[
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    ];
    let sysctls: Vec<&str> = pod_sc
        .and_then(|s| s.sysctls.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .collect();
    if !sysctls.is_empty() {
        out.push(format!("forbidden sysctls ({})", sysctls.join(", ")));
    }
    if level == Level::Baseline {
        return out;
    }

    // Restricted.
    const RESTRICTED_VOLUMES: &[&str] = &[
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    let mut volume_types = Vec::new();
    for volume in spec.volumes.iter().flatten() {
        let value = serde_json::to_value(volume).unwrap_or_default();
        if let Some(kind) = value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .find(|k| *k != "name" && !RESTRICTED_VOLUMES.contains(k))
        {
            volume_types.push(format!(
                "volume {:?} uses restricted volume type {kind:?}",
                volume.name
            ));
        }
    }
    if !volume_types.is_empty() {
        out.push(format!(
            "restricted volume types ({})",
            volume_types.join("; ")
        ));
    }
    let escalating = failing(&|s| s.allow_privilege_escalation != Some(false));
    if !escalating.is_empty() {
        out.push(format!(
            "allowPrivilegeEscalation != false ({} {} must set securityContext.allowPrivilegeEscalation=false)",
            plural(&escalating),
            quoted(&escalating)
        ));
    }
    let mut drop_all = Vec::new();
    let mut add_more = Vec::new();
    for c in &containers {
        let caps = sc(c).capabilities.unwrap_or_default();
        if !caps.drop.iter().flatten().any(|d| d == "ALL") {
            drop_all.push(c.name.as_str());
        }
        let extra: Vec<String> = caps
            .add
            .iter()
            .flatten()
            .filter(|a| *a != "NET_BIND_SERVICE")
            .map(|a| format!("{a:?}"))
            .collect();
        if !extra.is_empty() {
            add_more.push(format!(
                "container {:?} must not include {} in securityContext.capabilities.add",
                c.name,
                extra.join(", ")
            ));
        }
    }
    let mut capabilities = Vec::new();
    if !drop_all.is_empty() {
        capabilities.push(format!(
            "{} {} must set securityContext.capabilities.drop=[\"ALL\"]",
            plural(&drop_all),
            quoted(&drop_all)
        ));
    }
    capabilities.extend(add_more);
    if !capabilities.is_empty() {
        out.push(format!(
            "unrestricted capabilities ({})",
            capabilities.join("; ")
        ));
    }
    let pod_non_root = pod_sc.and_then(|s| s.run_as_non_root);
    let not_non_root = failing(&|s| s.run_as_non_root.or(pod_non_root) != Some(true));
    if pod_non_root == Some(false) || !not_non_root.is_empty() {
        out.push(format!(
            "runAsNonRoot != true (pod or {} {} must set securityContext.runAsNonRoot=true)",
            plural(&not_non_root),
            quoted(&not_non_root)
        ));
    }
    let root = failing(&|s| s.run_as_user == Some(0));
    if pod_sc.and_then(|s| s.run_as_user) == Some(0) {
        out.push("runAsUser=0 (pod must not set runAsUser=0)".to_owned());
    }
    if !root.is_empty() {
        out.push(format!(
            "runAsUser=0 ({} {} must not set runAsUser=0)",
            plural(&root),
            quoted(&root)
        ));
    }
    let confined = |t: Option<&str>| matches!(t, Some("RuntimeDefault" | "Localhost"));
    if !seccomp.is_empty() {
        out.push(format!("seccompProfile ({})", seccomp.join("; ")));
    } else {
        let unset = failing(&|s| {
            !confined(s.seccomp_profile.as_ref().map(|p| p.type_.as_str()))
                && !confined(pod_seccomp)
        });
        if !unset.is_empty() {
            out.push(format!(
                "seccompProfile (pod or {} {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
                plural(&unset),
                quoted(&unset)
            ));
        }
    }
    out
}

/// The annotation `audit` violations are recorded in.
const AUDIT_ANNOTATION: &str = "pod-security.kubernetes.io/audit-violations";

/// Where a kind keeps its pod spec, if it has one.
fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "PodTemplate" => Some("/template/spec"),
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => Some("/spec/template/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

impl ApiServer {
    /// Pod Security admission of `object` (of `kind`, named `name`) created in `namespace`:
    /// 403 when a pod violates the namespace's `enforce` level; the warnings of its `warn`
    /// level (for pods and pod templates); a pod's `audit` violations as an annotation.
    pub(super) fn admit_pod_security(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        object: &mut Value,
    ) -> Result<Vec<String>, ApiError> {
        let Some(pointer) = pod_spec_pointer(kind) else {
            return Ok(Vec::new());
        };
        let labels = self
            .watch_cache
            .get("namespaces", &format!("/registry/namespaces/{namespace}"))
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .and_then(|o| o.parsed().cloned())
            .and_then(|ns| serde_json::from_value(ns["metadata"]["labels"].clone()).ok())
            .unwrap_or_default();
        let policy = Policy::of(&labels);
        if policy == Policy::default() {
            return Ok(Vec::new());
        }
        let spec: PodSpec = object
            .pointer(pointer)
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .unwrap_or_default();
        // "PodSecurity \"restricted:latest\": <violations>", when the spec violates it.
        let violated = |level: Level| {
            let found = violations(level, &spec);
            (!found.is_empty())
                .then(|| format!("PodSecurity {}: {}", describe(level), found.join(", ")))
        };
        let is_pod = kind == "Pod";
        if is_pod && let Some(violated) = policy.enforce.and_then(violated) {
            return Err(ApiError::Forbidden(format!(
                "pods \"{name}\" is forbidden: violates {violated}"
            )));
        }
        let mut warnings = Vec::new();
        if let Some(violated) = policy.warn.and_then(violated) {
            warnings.push(format!("would violate {violated}"));
        }
        if is_pod && let Some(violated) = policy.audit.and_then(violated) {
            object["metadata"]["annotations"][AUDIT_ANNOTATION] =
                Value::String(format!("would violate {violated}"));
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: Value) -> PodSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_plain_pod_is_baseline_but_not_restricted() {
        let plain = spec(json!({"containers": [{"name": "c", "image": "x"}]}));
        assert!(violations(Level::Baseline, &plain).is_empty());
        assert_eq!(
            violations(Level::Restricted, &plain),
            [
                "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false)",
                "unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"])",
                "runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true)",
                "seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
            ]
        );
        let hardened = spec(json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "x", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "v", "emptyDir": {}}],
        }));
        assert!(violations(Level::Restricted, &hardened).is_empty());
    }

    #[test]
    fn privileged_pods_break_baseline() {
        let bad = spec(json!({
            "hostNetwork": true,
            "containers": [
                {"name": "a", "image": "x", "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN"]}},
                 "ports": [{"containerPort": 80, "hostPort": 8080}]},
            ],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        }));
        assert_eq!(
            violations(Level::Baseline, &bad),
            [
                "host namespaces (hostNetwork=true)",
                "privileged (container \"a\" must not set securityContext.privileged=true)",
                "non-default capabilities (container \"a\" must not include \"NET_ADMIN\" in securityContext.capabilities.add)",
                "hostPath volumes (volume \"root\")",
                "hostPort (container \"a\" uses hostPort 8080)",
            ]
        );
    }

    #[test]
    fn labels_name_levels_and_versions() {
        let labels: BTreeMap<String, String> = [
            ("pod-security.kubernetes.io/enforce", "restricted"),
            ("pod-security.kubernetes.io/warn", "baseline"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let policy = Policy::of(&labels);
        assert_eq!(policy.enforce, Some(Level::Restricted));
        assert_eq!(policy.warn, Some(Level::Baseline));
        assert_eq!(policy.audit, None);
        let bad: BTreeMap<String, String> = [
            ("pod-security.kubernetes.io/enforce", "strict"),
            ("pod-security.kubernetes.io/warn-version", "v2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(validate_labels(&bad).len(), 2);
    }
}
