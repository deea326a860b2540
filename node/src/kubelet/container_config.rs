//! A pod spec's container translated into what the runtime creates: command and args (with
//! `$(VAR)` expansion), environment (values, `fieldRef`, `resourceFieldRef`, ConfigMap and
//! Secret keys, `envFrom`), volume mounts, resource limits and the security context.
//!
//! Anything that cannot be resolved (a missing ConfigMap key, an unknown field path, a volume
//! that does not exist) is an error message that the pod's status shows as
//! `CreateContainerConfigError`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVarSource, Pod, SeccompProfile, Secret};
use kube::api::Api;

use super::volumes::HostVolume;
use crate::runtime::{ContainerSpec, PodRef, Seccomp};
use skiff_api::quantity;

/// What a container's configuration is made from.
pub struct ConfigInputs<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// The pod as the runtime names it.
    pub pod_ref: &'a PodRef,
    /// The container.
    pub container: &'a Container,
    /// Whether it is an init container.
    pub init: bool,
    /// Its restart count.
    pub attempt: u32,
    /// [`container_hash`] of it.
    pub spec_hash: &'a str,
    /// The sandbox it joins.
    pub sandbox_id: &'a str,
    /// The pod's IP.
    pub pod_ip: &'a str,
    /// The node's IP.
    pub host_ip: &'a str,
    /// The node's CPUs (a missing CPU limit in the downward API).
    pub node_cpus: u64,
    /// The node's memory in bytes (a missing memory limit in the downward API).
    pub node_memory_bytes: u64,
    /// The pod's volumes on the host, by volume name.
    pub volumes: &'a HashMap<String, HostVolume>,
    /// The pod's resolv.conf on the host (`None`: the runtime's).
    pub resolv_conf: Option<&'a Path>,
    /// The pod's hosts file on the host.
    pub etc_hosts: Option<&'a Path>,
    /// Where `Localhost` seccomp profiles are (the kubelet's `<root-dir>/seccomp`).
    pub seccomp_dir: &'a Path,
}

/// Hash of a container's spec: a new hash means the container must be recreated.
pub fn container_hash(container: &Container) -> String {
    skiff_api::hash::hex64(&serde_json::to_vec(container).unwrap_or_default())
}

/// The runtime's container spec (ConfigMaps and Secrets read through `client`).
pub async fn build(
    client: &kube::Client,
    inputs: &ConfigInputs<'_>,
) -> Result<ContainerSpec, String> {
    let container = inputs.container;
    let pod = inputs.pod;
    let pod_spec = pod.spec.clone().unwrap_or_default();
    let env = environment(client, inputs).await?;
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    let expand_all = |list: &Option<Vec<String>>| {
        list.as_ref()
            .map(|l| l.iter().map(|s| expand(s, &vars)).collect())
    };
    let command: Option<Vec<String>> =
        expand_all(&container.command).filter(|c: &Vec<String>| !c.is_empty());
    let args: Option<Vec<String>> = expand_all(&container.args);
    // `command` replaces the image's ENTRYPOINT (and with it its CMD); `args` replace CMD.
    let cmd = match (&command, args) {
        (Some(_), args) => Some(args.unwrap_or_default()),
        (None, Some(args)) if !args.is_empty() => Some(args),
        (None, _) => None,
    };

    let mut binds = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let host = inputs.volumes.get(&mount.name).ok_or_else(|| {
            format!("volume mount {} refers to a volume the pod does not have (or that is not supported)", mount.name)
        })?;
        let mut source = host.path.clone();
        if let Some(sub) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if sub.split('/').any(|part| part == "..") || sub.starts_with('/') {
                return Err(format!(
                    "subPath {sub:?} must be a relative path without '..'"
                ));
            }
            source = source.join(sub);
            if !source.exists() {
                std::fs::create_dir_all(&source)
                    .map_err(|err| format!("creating subPath {}: {err}", source.display()))?;
            }
        }
        let mut bind = format!("{}:{}", source.display(), mount.mount_path);
        if host.read_only || mount.read_only.unwrap_or(false) {
            bind.push_str(":ro");
        }
        binds.push(bind);
    }

    if let Some(resolv_conf) = inputs.resolv_conf {
        binds.push(format!("{}:/etc/resolv.conf", resolv_conf.display()));
    }
    // As the kubelet: a container that mounts its own /etc/hosts keeps it.
    if let Some(etc_hosts) = inputs.etc_hosts
        && !container
            .volume_mounts
            .iter()
            .flatten()
            .any(|mount| mount.mount_path.trim_end_matches('/') == "/etc/hosts")
    {
        binds.push(format!("{}:/etc/hosts", etc_hosts.display()));
    }

    let resources = container.resources.clone().unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    let requests = resources.requests.unwrap_or_default();
    let security = container.security_context.clone().unwrap_or_default();
    let pod_security = pod_spec.security_context.clone().unwrap_or_default();
    let run_as_user = security.run_as_user.or(pod_security.run_as_user);
    let run_as_group = security.run_as_group.or(pod_security.run_as_group);
    let user = match (run_as_user, run_as_group) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(g)) => Some(format!("0:{g}")),
        (None, None) => None,
    };
    let capabilities = security.capabilities.clone().unwrap_or_default();
    let seccomp = seccomp(
        security
            .seccomp_profile
            .as_ref()
            .or(pod_security.seccomp_profile.as_ref()),
        inputs.seccomp_dir,
    )?;
    Ok(ContainerSpec {
        pod: Some(inputs.pod_ref.clone()),
        init: inputs.init,
        name: container.name.clone(),
        attempt: inputs.attempt,
        spec_hash: inputs.spec_hash.to_owned(),
        sandbox_id: inputs.sandbox_id.to_owned(),
        image: container.image.clone().unwrap_or_default(),
        entrypoint: command,
        cmd,
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        working_dir: container.working_dir.clone().filter(|w| !w.is_empty()),
        binds,
        memory_limit: limits
            .get("memory")
            .and_then(|q| whole(quantity::value(&q.0))),
        cpu_limit_millis: limits
            .get("cpu")
            .and_then(|q| whole(quantity::milli_value(&q.0))),
        cpu_request_millis: requests
            .get("cpu")
            .or_else(|| limits.get("cpu"))
            .and_then(|q| whole(quantity::milli_value(&q.0))),
        user,
        privileged: security.privileged.unwrap_or(false),
        cap_add: capabilities.add.unwrap_or_default(),
        cap_drop: capabilities.drop.unwrap_or_default(),
        read_only_root: security.read_only_root_filesystem.unwrap_or(false),
        seccomp,
        tty: container.tty.unwrap_or(false),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        share_pid: pod_spec.share_process_namespace.unwrap_or(false),
        grace_seconds: pod_spec.termination_grace_period_seconds.unwrap_or(30),
    })
}

/// The filter a `seccompProfile` (the container's, else the pod's) asks for: none without one,
/// as the kubelet; a `Localhost` profile is read from `dir`.
pub fn seccomp(profile: Option<&SeccompProfile>, dir: &Path) -> Result<Seccomp, String> {
    let Some(profile) = profile else {
        return Ok(Seccomp::Unconfined);
    };
    match profile.type_.as_str() {
        "Unconfined" => Ok(Seccomp::Unconfined),
        "RuntimeDefault" => Ok(Seccomp::RuntimeDefault),
        "Localhost" => {
            let name = profile.localhost_profile.as_deref().unwrap_or_default();
            let relative = Path::new(name);
            if name.is_empty()
                || relative.is_absolute()
                || relative
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(format!(
                    "seccomp profile {name:?} is not a path within the node's seccomp directory"
                ));
            }
            let path = dir.join(relative);
            std::fs::read_to_string(&path)
                .map(Seccomp::Localhost)
                .map_err(|err| format!("cannot load seccomp profile {}: {err}", path.display()))
        }
        other => Err(format!("unknown seccomp profile type {other:?}")),
    }
}

/// The container's environment in order: `envFrom` first, then `env` (later wins), each value
/// expanded against the variables before it.
async fn environment(
    client: &kube::Client,
    inputs: &ConfigInputs<'_>,
) -> Result<Vec<(String, String)>, String> {
    let container = inputs.container;
    let namespace = &inputs.pod_ref.namespace;
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| match env
        .iter_mut()
        .find(|(n, _)| *n == name)
    {
        Some(slot) => slot.1 = value,
        None => env.push((name, value)),
    };
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let (data, optional) = if let Some(cm) = &source.config_map_ref {
            let data = config_map(client, namespace, &cm.name).await?;
            (data, cm.optional.unwrap_or(false))
        } else if let Some(secret) = &source.secret_ref {
            let data = secret_data(client, namespace, &secret.name).await?;
            (data, secret.optional.unwrap_or(false))
        } else {
            continue;
        };
        match data {
            Some(data) => {
                for (key, value) in data {
                    set(&mut env, format!("{prefix}{key}"), value);
                }
            }
            None if optional => {}
            None => {
                return Err(String::from(
                    "envFrom refers to a ConfigMap or Secret that does not exist",
                ));
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            Some(source) => match value_from(client, inputs, source).await? {
                Some(value) => value,
                None => continue,
            },
            None => {
                let vars: HashMap<String, String> = env.iter().cloned().collect();
                expand(var.value.as_deref().unwrap_or(""), &vars)
            }
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

/// The value of one `valueFrom`; `None` for an optional key that is missing.
async fn value_from(
    client: &kube::Client,
    inputs: &ConfigInputs<'_>,
    source: &EnvVarSource,
) -> Result<Option<String>, String> {
    let pod = inputs.pod;
    let namespace = &inputs.pod_ref.namespace;
    if let Some(field) = &source.field_ref {
        return field_value(pod, inputs.pod_ip, inputs.host_ip, &field.field_path).map(Some);
    }
    if let Some(resource) = &source.resource_field_ref {
        let container = match resource.container_name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == name))
                .ok_or_else(|| format!("resourceFieldRef: no container {name}"))?,
            None => inputs.container,
        };
        return resource_value(
            (inputs.node_cpus, inputs.node_memory_bytes),
            container,
            &resource.resource,
            resource.divisor.as_ref(),
        )
        .map(Some);
    }
    if let Some(key_ref) = &source.config_map_key_ref {
        let optional = key_ref.optional.unwrap_or(false);
        let data = config_map(client, namespace, &key_ref.name).await?;
        return match data.and_then(|d| d.get(&key_ref.key).cloned()) {
            Some(value) => Ok(Some(value)),
            None if optional => Ok(None),
            None => Err(format!(
                "couldn't find key {} in ConfigMap {namespace}/{}",
                key_ref.key, key_ref.name
            )),
        };
    }
    if let Some(key_ref) = &source.secret_key_ref {
        let optional = key_ref.optional.unwrap_or(false);
        let data = secret_data(client, namespace, &key_ref.name).await?;
        return match data.and_then(|d| d.get(&key_ref.key).cloned()) {
            Some(value) => Ok(Some(value)),
            None if optional => Ok(None),
            None => Err(format!(
                "couldn't find key {} in Secret {namespace}/{}",
                key_ref.key, key_ref.name
            )),
        };
    }
    Err(String::from("valueFrom has no source"))
}

/// A `fieldRef` path's value (the downward API).
pub fn field_value(pod: &Pod, pod_ip: &str, host_ip: &str, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let from_map = |map: &Option<BTreeMap<String, String>>, rest: &str| {
        let key = rest
            .strip_prefix("['")
            .and_then(|r| r.strip_suffix("']"))
            .ok_or_else(|| format!("unsupported fieldRef {path}"))?;
        Ok(map
            .as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default())
    };
    match path {
        "metadata.name" => Ok(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => Ok(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => Ok(meta.uid.clone().unwrap_or_default()),
        "spec.nodeName" => Ok(spec.node_name.unwrap_or_default()),
        "spec.serviceAccountName" => Ok(spec.service_account_name.unwrap_or_default()),
        "status.podIP" | "status.podIPs" => Ok(pod_ip.to_owned()),
        "status.hostIP" | "status.hostIPs" => Ok(host_ip.to_owned()),
        _ => {
            if let Some(rest) = path.strip_prefix("metadata.labels") {
                from_map(&meta.labels, rest)
            } else if let Some(rest) = path.strip_prefix("metadata.annotations") {
                from_map(&meta.annotations, rest)
            } else {
                Err(format!("unsupported fieldRef {path}"))
            }
        }
    }
}

/// A `resourceFieldRef` value: the container's limit or request (a missing limit is the
/// node's capacity, `node` = (CPUs, memory bytes)) divided by the divisor, rounded up.
pub(super) fn resource_value(
    node: (u64, u64),
    container: &Container,
    resource: &str,
    divisor: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
) -> Result<String, String> {
    let resources = container.resources.clone().unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    let requests = resources.requests.unwrap_or_default();
    // Exact, in nano units, as Kubernetes divides (rounding up) without floating point.
    const NANOS: i128 = 1_000_000_000;
    let nanos = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
        quantity::quantity_nanos(&q.0).ok()
    };
    let node_value = |name: &str| match name {
        "cpu" => i128::from(node.0).saturating_mul(NANOS),
        "memory" => i128::from(node.1).saturating_mul(NANOS),
        _ => 0,
    };
    let value = match resource.split_once('.') {
        Some(("limits", name)) => limits
            .get(name)
            .and_then(nanos)
            .unwrap_or_else(|| node_value(name)),
        Some(("requests", name)) => requests.get(name).and_then(nanos).unwrap_or(0),
        _ => return Err(format!("unsupported resourceFieldRef {resource}")),
    };
    let divisor = divisor.and_then(nanos).filter(|d| *d > 0).unwrap_or(NANOS);
    let quotient = value / divisor + i128::from(value % divisor > 0);
    Ok(quotient.to_string())
}

/// A parsed quantity as an `i64`, saturating (Docker's limits are `i64`).
fn whole(value: Result<i128, quantity::QuantityError>) -> Option<i64> {
    value
        .ok()
        .map(|v| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX }))
}

async fn config_map(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(found) => Ok(found.map(|cm| cm.data.unwrap_or_default())),
        Err(err) => Err(format!("reading ConfigMap {namespace}/{name}: {err}")),
    }
}

async fn secret_data(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(found) => Ok(found.map(|secret| {
            let mut data: BTreeMap<String, String> = secret.string_data.unwrap_or_default();
            for (key, value) in secret.data.unwrap_or_default() {
                data.insert(key, String::from_utf8_lossy(&value.0).into_owned());
            }
            data
        })),
        Err(err) => Err(format!("reading Secret {namespace}/{name}: {err}")),
    }
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, an undefined reference is
/// kept as written, `$$` is a literal `$`.
pub fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match vars.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_kubernetes() {
        let vars = HashMap::from([(String::from("A"), String::from("x"))]);
        assert_eq!(expand("$(A)-$(B)", &vars), "x-$(B)");
        assert_eq!(expand("$$(A) $", &vars), "$(A) $");
        assert_eq!(expand("no vars", &vars), "no vars");
        assert_eq!(expand("$(A", &vars), "$(A");
    }

    #[test]
    fn downward_api_fields() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u", "labels": {"app": "a"}},
            "spec": {"nodeName": "n1", "containers": []},
        }))
        .expect("pod");
        let get = |path| field_value(&pod, "10.244.0.5", "192.168.1.2", path);
        assert_eq!(get("metadata.name").as_deref(), Ok("web"));
        assert_eq!(get("metadata.namespace").as_deref(), Ok("ns"));
        assert_eq!(get("status.podIP").as_deref(), Ok("10.244.0.5"));
        assert_eq!(get("spec.nodeName").as_deref(), Ok("n1"));
        assert_eq!(get("metadata.labels['app']").as_deref(), Ok("a"));
        assert!(get("spec.bogus").is_err());
    }

    #[test]
    fn resource_field_refs_divide_exactly_and_round_up() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "a",
            "resources": {"limits": {"cpu": "250m", "memory": "64Mi"},
                          "requests": {"cpu": "100m"}},
        }))
        .expect("container");
        let node = (4, 8 << 30);
        let q = |s: &str| k8s_openapi::apimachinery::pkg::api::resource::Quantity(s.to_owned());
        let value = |field: &str, divisor: Option<&str>| {
            resource_value(node, &c, field, divisor.map(q).as_ref())
        };
        assert_eq!(
            value("limits.cpu", None).as_deref(),
            Ok("1"),
            "0.25 core rounds up"
        );
        assert_eq!(value("limits.cpu", Some("1m")).as_deref(), Ok("250"));
        assert_eq!(value("requests.cpu", Some("1m")).as_deref(), Ok("100"));
        assert_eq!(value("limits.memory", Some("1Mi")).as_deref(), Ok("64"));
        assert_eq!(value("limits.memory", None).as_deref(), Ok("67108864"));
        assert_eq!(value("requests.memory", None).as_deref(), Ok("0"));
        // No limit: the node's capacity.
        let bare: Container = serde_json::from_value(serde_json::json!({"name": "b"})).expect("c");
        let unlimited = resource_value(node, &bare, "limits.cpu", None);
        assert_eq!(unlimited.as_deref(), Ok("4"));
        assert!(value("spec.cpu", None).is_err());
        // A zero divisor is ignored rather than divided by.
        assert_eq!(value("limits.cpu", Some("0")).as_deref(), Ok("1"));
    }

    #[test]
    fn spec_hash_changes_with_the_spec() {
        let a: Container =
            serde_json::from_value(serde_json::json!({"name": "a", "image": "i:1"})).expect("c");
        let b: Container =
            serde_json::from_value(serde_json::json!({"name": "a", "image": "i:2"})).expect("c");
        assert_eq!(container_hash(&a), container_hash(&a.clone()));
        assert_ne!(container_hash(&a), container_hash(&b));
    }

    #[test]
    fn seccomp_is_unconfined_unless_the_pod_asks_and_localhost_stays_in_its_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("profiles")).unwrap();
        std::fs::write(
            dir.path().join("profiles/audit.json"),
            r#"{"defaultAction":"SCMP_ACT_LOG"}"#,
        )
        .unwrap();
        let profile = |type_: &str, name: Option<&str>| SeccompProfile {
            type_: type_.to_owned(),
            localhost_profile: name.map(str::to_owned),
        };
        assert_eq!(seccomp(None, dir.path()), Ok(Seccomp::Unconfined));
        assert_eq!(
            seccomp(Some(&profile("RuntimeDefault", None)), dir.path()),
            Ok(Seccomp::RuntimeDefault)
        );
        assert_eq!(
            seccomp(
                Some(&profile("Localhost", Some("profiles/audit.json"))),
                dir.path()
            ),
            Ok(Seccomp::Localhost(String::from(
                r#"{"defaultAction":"SCMP_ACT_LOG"}"#
            )))
        );
        for bad in ["../etc/passwd", "/etc/passwd", "", "profiles/missing.json"] {
            let err = seccomp(Some(&profile("Localhost", Some(bad))), dir.path()).unwrap_err();
            assert!(err.contains("seccomp profile"), "{bad}: {err}");
        }
        assert!(seccomp(Some(&profile("Strict", None)), dir.path()).is_err());
    }
}
