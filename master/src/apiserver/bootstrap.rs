//! What a fresh cluster has before anyone writes: the system namespaces and the `kubernetes`
//! Service in `default` (the API server's own ClusterIP, the first address of the range),
//! with Endpoints naming where pods reach the masters (kube-apiserver's lease endpoint
//! reconciler).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::coordination::v1::Lease;
use serde_json::{Value, json};

use super::ApiServer;
use super::objects;
use super::request::{FieldValidation, Target};
use super::resources;
use super::status::ApiError;
use super::update::Part;
use crate::endpoint_leases;

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

/// The `kubernetes` Endpoints: every live master's address and port ([`endpoint_leases`]: a
/// Lease `kube-system/kube-apiserver-<address>-<port>` each), written when they changed.
async fn ensure_endpoints(api: &ApiServer, endpoint: SocketAddr) -> Result<(), ApiError> {
    let resource = resources::find("", "v1", "endpoints")
        .ok_or_else(|| ApiError::Internal("endpoints not served".into()))?;
    let subsets: Vec<Value> = live_masters(api, endpoint)
        .await?
        .into_iter()
        .map(|(port, ips)| {
            json!({
                "addresses": ips.into_iter().map(|ip| json!({"ip": ip.to_string()})).collect::<Vec<_>>(),
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

/// The label of the masters' Leases (kube-apiserver's identity Leases carry it too).
const MASTER_LEASE_LABEL: (&str, &str) = ("apiserver.kubernetes.io/identity", "kube-apiserver");

/// Renews this master's Lease, which names `endpoint`, and returns the live masters by port.
async fn live_masters(
    api: &ApiServer,
    endpoint: SocketAddr,
) -> Result<BTreeMap<u16, BTreeSet<IpAddr>>, ApiError> {
    let resource = resources::find("coordination.k8s.io", "v1", "leases")
        .ok_or_else(|| ApiError::Internal("leases not served".into()))?;
    let now = chrono::Utc::now();
    let lease = endpoint_leases::lease("kube-apiserver", MASTER_LEASE_LABEL, endpoint, now);
    let lease = serde_json::to_value(&lease)
        .map_err(|e| ApiError::Internal(format!("encoding a Lease: {e}")))?;
    put(api, resource, lease, "/spec").await?;
    let prefix = objects::prefix(resource, Some(endpoint_leases::NAMESPACE));
    let leases: Vec<Lease> = match api.watch_cache.list(resource.plural, &prefix) {
        Ok((cached, _)) => cached
            .iter()
            .filter_map(|object| serde_json::from_value(object.parsed()?.clone()).ok())
            .filter(|lease: &Lease| {
                lease
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(MASTER_LEASE_LABEL.0))
                    == Some(&MASTER_LEASE_LABEL.1.to_owned())
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(endpoint_leases::live(&leases, endpoint, now))
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
