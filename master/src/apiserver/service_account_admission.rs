//! ServiceAccount admission for pods, as kube-apiserver's `ServiceAccount` admission plugin
//! (`plugin/pkg/admission/serviceaccount`): a pod runs as its `serviceAccountName` (defaulted
//! to `default`), which must exist, and unless the pod or its ServiceAccount turns
//! `automountServiceAccountToken` off, gets the projected `kube-api-access-<suffix>` volume
//! (a bound token the node agent requests and rotates, the cluster CA from the
//! `kube-root-ca.crt` ConfigMap, and its namespace) mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container.
//!
//! Where skiff differs: a pod of a namespace whose `default` ServiceAccount is not made yet
//! (the serviceaccount controller is off or behind) is admitted without the volume, where
//! Kubernetes refuses it; a missing ServiceAccount named explicitly is refused as there.
//! Mirror pods are left alone, as there.

use serde_json::{Value, json};

use super::ApiServer;
use super::status::ApiError;

/// Where the token, CA and namespace appear in containers.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The token lifetime the volume asks for (kube-apiserver's 1 h plus the 7 s it uses to spot
/// the kubelet's requests).
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

impl ApiServer {
    /// Admit `pod` (being created in `namespace`): check its ServiceAccount and add the API
    /// access volume.
    pub(super) fn admit_service_account(
        &self,
        namespace: &str,
        pod: &mut Value,
    ) -> Result<(), ApiError> {
        if pod["metadata"]["annotations"][MIRROR_ANNOTATION].is_string() {
            return Ok(());
        }
        let name = pod["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let account = pod["spec"]["serviceAccountName"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_owned();
        let key = format!("/registry/serviceaccounts/{namespace}/{account}");
        let found = self
            .watch_cache
            .get("serviceaccounts", &key)
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .and_then(|o| o.parsed().cloned());
        let Some(service_account) = found else {
            if account == "default" {
                return Ok(());
            }
            return Err(ApiError::Forbidden(format!(
                "pods \"{name}\" is forbidden: error looking up service account {namespace}/{account}: serviceaccount \"{account}\" not found"
            )));
        };
        let automount = pod["spec"]["automountServiceAccountToken"]
            .as_bool()
            .or_else(|| service_account["automountServiceAccountToken"].as_bool())
            .unwrap_or(true);
        if automount {
            add_api_access(pod, &skiff_api::names::random_suffix(5));
        }
        Ok(())
    }
}

/// Add the `kube-api-access-<suffix>` volume and mount it in every container that has no
/// mount at [`MOUNT_PATH`] yet.
fn add_api_access(pod: &mut Value, suffix: &str) {
    let volume_name = format!("kube-api-access-{suffix}");
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        // `get_mut`, not indexing: indexing would insert `"initContainers": null`.
        let Some(containers) = pod["spec"].get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers {
            let has_mount = container["volumeMounts"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["mountPath"] == MOUNT_PATH));
            if has_mount {
                continue;
            }
            let mount = json!({"name": volume_name, "readOnly": true, "mountPath": MOUNT_PATH});
            match container["volumeMounts"].as_array_mut() {
                Some(mounts) => mounts.push(mount),
                None => container["volumeMounts"] = json!([mount]),
            }
            mounted = true;
        }
    }
    if !mounted {
        return;
    }
    let volume = json!({
        "name": volume_name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    });
    match pod["spec"]["volumes"].as_array_mut() {
        Some(volumes) => volumes.push(volume),
        None => pod["spec"]["volumes"] = json!([volume]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_without_init_containers_gets_no_null_for_them() {
        let mut pod = json!({"spec": {"containers": [{"name": "app"}]}});
        add_api_access(&mut pod, "abcde");
        assert!(pod["spec"].get("initContainers").is_none(), "{pod}");
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"][0]["name"],
            "kube-api-access-abcde"
        );
    }

    #[test]
    fn every_container_without_its_own_mount_gets_the_api_access_volume() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "init"}],
            "containers": [
                {"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "own", "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }});
        add_api_access(&mut pod, "abcde");
        let spec = &pod["spec"];
        assert_eq!(spec["volumes"][1]["name"], "kube-api-access-abcde");
        assert_eq!(
            spec["volumes"][1]["projected"]["sources"][0]["serviceAccountToken"]["path"],
            "token"
        );
        assert_eq!(
            spec["initContainers"][0]["volumeMounts"][0]["mountPath"],
            MOUNT_PATH
        );
        assert_eq!(
            spec["containers"][0]["volumeMounts"][1]["name"],
            "kube-api-access-abcde"
        );
        assert_eq!(spec["containers"][0]["volumeMounts"][1]["readOnly"], true);
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn no_volume_when_every_container_has_its_own_mount() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "own", "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]}
        ]}});
        add_api_access(&mut pod, "abcde");
        assert!(pod["spec"]["volumes"].is_null());
    }
}
