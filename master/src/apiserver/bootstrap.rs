//! What a fresh cluster has before anyone writes: the system namespaces and the `kubernetes`
//! Service in `default` (the API server's own ClusterIP, the first address of the range).

use serde_json::json;

use super::ApiServer;
use super::request::FieldValidation;
use super::resources;
use super::status::ApiError;

/// Namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Create what is missing; existing objects are left as they are.
pub async fn ensure_defaults(api: &ApiServer) -> Result<(), ApiError> {
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
    let port: u16 = api
        .advertise_address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(6443);
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": api.service_ips.first().to_string(), "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
    });
    ignore_existing(
        api.create_object(services, service, FieldValidation::Strict, false)
            .await,
    )?;
    Ok(())
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
