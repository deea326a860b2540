//! What a fresh cluster has before anyone writes: the system namespaces and the `kubernetes`
//! Service in `default` (the API server's own ClusterIP, the first address of the range),
//! with Endpoints naming where pods reach the masters (kube-apiserver's lease endpoint
//! reconciler).

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::ApiServer;
use super::request::{FieldValidation, Target};
use super::resources;
use super::status::ApiError;
use super::update::Part;

/// How often the defaults are put back (kube-apiserver's endpoint reconciler's interval).
pub const RECONCILE_PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

/// Namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Create what is missing; existing objects are left as they are, but the `kubernetes`
/// Endpoints, which name `endpoint` (where pods reach this server). Run at start and every
/// [`RECONCILE_PERIOD`].
pub async fn ensure_defaults(api: &ApiServer, endpoint: SocketAddr) -> Result<(), ApiError> {
    let namespaces = resources::find("", "v1", "namespaces")
        .ok_or_else(|| ApiError::Internal("namespaces not served".into()))?;
    for ns in SYSTEM_NAMESPACES {
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        ignore_existing(
            api.create_object(namespaces, object, FieldValidation::Strict, false)
                .await,
        )?;
    }
    let services = resources::find("", "v1", "services")
        .ok_or_else(|| ApiError::Internal("services not served".into()))?;
    let port = endpoint.port();
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": api.service_ips.first().to_string(), "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
    });
    ignore_existing(
        api.create_object(services, service, FieldValidation::Strict, false)
            .await,
    )?;
    ensure_endpoints(api, endpoint).await
}

/// The `kubernetes` Endpoints: every live master's address and port, written when they
/// changed. As kube-apiserver's lease endpoint reconciler: each master renews a lease of its
/// own (here a Lease `kube-system/kube-apiserver-<address>-<port>`, labelled as
/// kube-apiserver's identity leases are) and names every master whose lease is live, so
/// several masters on one store agree instead of writing themselves over each other.
async fn ensure_endpoints(api: &ApiServer, endpoint: SocketAddr) -> Result<(), ApiError> {
    let resource = resources::find("", "v1", "endpoints")
        .ok_or_else(|| ApiError::Internal("endpoints not served".into()))?;
    renew_master_lease(api, endpoint).await?;
    let mut by_port: std::collections::BTreeMap<u16, std::collections::BTreeSet<String>> =
        Default::default();
    for live in live_masters(api, chrono::Utc::now())
        .into_iter()
        .chain([endpoint])
    {
        by_port
            .entry(live.port())
            .or_default()
            .insert(live.ip().to_string());
    }
    let subsets: Vec<Value> = by_port
        .into_iter()
        .map(|(port, ips)| {
            json!({
                "addresses": ips.into_iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            })
        })
        .collect();
    let object = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": subsets,
    });
    put(api, resource, object, "/subsets").await
}

/// The label of the masters' leases (kube-apiserver's identity leases carry it too).
const MASTER_LEASE_LABEL: &str = "apiserver.kubernetes.io/identity";
/// How long a master stays among the endpoints after its last renewal (kube-apiserver's
/// `--endpoint-reconciler-type=lease` keeps 15 s).
const MASTER_LEASE_SECONDS: i64 = 15;

/// Renews this master's lease, which names `endpoint`.
async fn renew_master_lease(api: &ApiServer, endpoint: SocketAddr) -> Result<(), ApiError> {
    let leases = resources::find("coordination.k8s.io", "v1", "leases")
        .ok_or_else(|| ApiError::Internal("leases not served".into()))?;
    let name: String = format!("kube-apiserver-{endpoint}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name.trim_end_matches('-'), "namespace": "kube-system",
            "labels": {MASTER_LEASE_LABEL: "kube-apiserver"}},
        "spec": {
            "holderIdentity": endpoint.to_string(),
            "leaseDurationSeconds": MASTER_LEASE_SECONDS,
            "renewTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        },
    });
    put(api, leases, lease, "/spec").await
}

/// The endpoints of the masters whose leases were renewed within their duration of `now`.
fn live_masters(api: &ApiServer, now: chrono::DateTime<chrono::Utc>) -> Vec<SocketAddr> {
    let Ok((leases, _)) = api
        .watch_cache
        .list("leases", "/registry/leases/kube-system/")
    else {
        return Vec::new();
    };
    leases
        .iter()
        .filter_map(|lease| {
            let lease = lease.parsed()?;
            lease["metadata"]["labels"][MASTER_LEASE_LABEL].as_str()?;
            let spec = &lease["spec"];
            let renewed = chrono::DateTime::parse_from_rfc3339(spec["renewTime"].as_str()?).ok()?;
            let seconds = spec["leaseDurationSeconds"].as_i64()?;
            let until = renewed.checked_add_signed(chrono::TimeDelta::try_seconds(seconds)?)?;
            if until < now {
                return None;
            }
            spec["holderIdentity"].as_str()?.parse().ok()
        })
        .collect()
}

/// Create `object`, or if it exists set its field at `pointer` (a JSON pointer of object
/// keys) to the one `object` has.
async fn put(
    api: &ApiServer,
    resource: &'static resources::Resource,
    object: Value,
    pointer: &str,
) -> Result<(), ApiError> {
    let wanted = object.pointer(pointer).cloned().unwrap_or(Value::Null);
    let target = Target {
        resource,
        namespace: object["metadata"]["namespace"].as_str().map(str::to_owned),
        name: object["metadata"]["name"].as_str().map(str::to_owned),
        subresource: None,
    };
    match api
        .create_object(resource, object, FieldValidation::Strict, false)
        .await
    {
        Err(ApiError::AlreadyExists { .. }) => {}
        other => return other.map(drop),
    }
    api.update_with(
        &target,
        Part::Main,
        FieldValidation::Strict,
        false,
        |current: &Value| {
            let mut desired = current.clone();
            let mut field = &mut desired;
            for key in pointer.split('/').filter(|k| !k.is_empty()) {
                field = &mut field[key];
            }
            *field = wanted.clone();
            Ok(desired)
        },
    )
    .await
    .map(drop)
}

fn ignore_existing<T>(result: Result<T, ApiError>) -> Result<(), ApiError> {
    match result {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(ApiError::Invalid { causes, .. })
            if causes
                .iter()
                .any(|c| c.detail.contains("already allocated")) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The `cluster-info` ConfigMap in `kube-public` (kubeadm's): a kubeconfig naming the server
/// and the cluster CA, which a joining node reads before it has any credential and trusts
/// only if the CA has the pin it was given. Written at start, so a new CA or address shows.
pub async fn ensure_cluster_info(
    api: &ApiServer,
    server_url: &str,
    ca_pem: &str,
) -> Result<(), ApiError> {
    use base64::Engine;
    let resource = resources::find("", "v1", "configmaps")
        .ok_or_else(|| ApiError::Internal("configmaps not served".into()))?;
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server_url}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\npreferences: {{}}\nusers: null\n",
        base64::engine::general_purpose::STANDARD.encode(ca_pem)
    );
    let object = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": kubeconfig},
    });
    put(api, resource, object, "/data/kubeconfig").await
}
