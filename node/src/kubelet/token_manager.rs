//! ServiceAccount tokens for pods' projected volumes, as the kubelet's token manager
//! (`pkg/kubelet/token`): each (pod, ServiceAccount, audience, lifetime) gets a token bound to
//! the pod through the TokenRequest API, kept until 80% of its lifetime has passed (or 24 h,
//! whichever is sooner), then requested again, so the file in the pod is always fresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Api;
use kube::api::PostParams;

/// The longest a token is kept before it is requested again.
const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Clone)]
struct Cached {
    token: String,
    refresh_at: Instant,
}

/// The tokens requested so far; cheap to clone.
#[derive(Clone, Default)]
pub struct TokenManager {
    tokens: Arc<Mutex<HashMap<String, Cached>>>,
}

impl TokenManager {
    /// A token of the pod's ServiceAccount for `audience` (empty: the API server's) that
    /// lives `expiration_seconds`, bound to the pod.
    pub async fn token(
        &self,
        client: &kube::Client,
        pod: &Pod,
        audience: &str,
        expiration_seconds: i64,
    ) -> Result<String, String> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| String::from("default"));
        let key = format!("{uid}/{account}/{audience}/{expiration_seconds}");
        if let Some(cached) = self
            .lock()
            .get(&key)
            .filter(|c| Instant::now() < c.refresh_at)
        {
            return Ok(cached.token.clone());
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: if audience.is_empty() {
                    Vec::new()
                } else {
                    vec![audience.to_owned()]
                },
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some(String::from("v1")),
                    kind: Some(String::from("Pod")),
                    name: Some(name),
                    uid: Some(uid),
                }),
            },
            ..Default::default()
        };
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
        let issued = api
            .create_token_request(&account, &PostParams::default(), &request)
            .await
            .map_err(|e| {
                format!("requesting a token of serviceaccount {namespace}/{account}: {e}")
            })?;
        let token = issued
            .status
            .map(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("the API server issued no token for {namespace}/{account}"))?;
        // At 80% of its life (divided first: the lifetime comes from a pod spec).
        let lifetime = skiff_api::time::seconds(expiration_seconds);
        let refresh_at = Instant::now() + (lifetime / 5 * 4).min(MAX_AGE);
        self.lock().insert(
            key,
            Cached {
                token: token.clone(),
                refresh_at,
            },
        );
        Ok(token)
    }

    /// Forget the tokens of a pod that is gone.
    pub fn forget_pod(&self, pod_uid: &str) {
        let prefix = format!("{pod_uid}/");
        self.lock().retain(|key, _| !key.starts_with(&prefix));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
