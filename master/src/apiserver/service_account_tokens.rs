//! ServiceAccount tokens: signed (ES256), audience-bound, expiring JWTs, as Kubernetes'
//! `pkg/serviceaccount` makes and checks them. A token names its ServiceAccount and, when it
//! was requested for one, the pod (and its node) it is bound to; it authenticates as
//! `system:serviceaccount:<namespace>:<name>` in the groups `system:serviceaccounts` and
//! `system:serviceaccounts:<namespace>` while the signature, issuer, audience and expiry
//! hold and the ServiceAccount (and pod) it names still exist with the same uid.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::authentication::UserInfo;
use super::field_error::FieldError;
use super::request::{self, Target};
use super::status::ApiError;
use super::watch_cache::WatchCache;

/// The issuer and default audience of the tokens (kubeadm's `--service-account-issuer`).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A reference to an object in the claims.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectClaim {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// The `kubernetes.io` claims.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: ObjectClaim,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectClaim>,
    /// The node that pod is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectClaim>,
    /// The Secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectClaim>,
}

/// A token's claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// What Kubernetes adds.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// Why a token does not authenticate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The JWT is malformed, badly signed, expired or for another issuer or audience.
    #[error("invalid bearer token: {0}")]
    Invalid(String),
    /// An object the token names is gone or was replaced.
    #[error("{0}")]
    Stale(String),
}

/// Signs and verifies tokens.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenIssuer {
    /// An issuer with the PEM key pair (PKCS#8 private key, SPKI public key).
    pub fn new(private_pem: &str, public_pem: &str) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Self {
            encoding: EncodingKey::from_ec_pem(private_pem.as_bytes())?,
            decoding: DecodingKey::from_ec_pem(public_pem.as_bytes())?,
        })
    }

    /// A signed token of `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.encoding)
    }

    /// The claims of `token` if its signature, issuer, expiry and an audience among
    /// `audiences` hold.
    pub fn verify(&self, token: &str, audiences: &[&str]) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(audiences);
        validation.validate_nbf = true;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

/// Whether a bearer token looks like a JWT (three base64url parts), not an issued token.
pub fn is_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

/// The uid of the object at `key` in `plural`, if it exists (and is not being deleted, for
/// a pod).
fn live_uid(cache: &WatchCache, plural: &str, key: &str) -> Option<String> {
    let object = cache.get(plural, key).ok()??;
    let value: &Value = object.parsed()?;
    if plural == "pods" && value["metadata"]["deletionTimestamp"].is_string() {
        return None;
    }
    value["metadata"]["uid"].as_str().map(str::to_owned)
}

/// The user a verified token stands for, if what it names still exists.
pub fn user_of(claims: &Claims, cache: &WatchCache) -> Result<UserInfo, TokenError> {
    let k = &claims.kubernetes;
    let (namespace, name) = (&k.namespace, &k.serviceaccount.name);
    let stale = |what: &str| TokenError::Stale(format!("{what} no longer exists"));
    let sa_key = format!("/registry/serviceaccounts/{namespace}/{name}");
    match live_uid(cache, "serviceaccounts", &sa_key) {
        Some(uid) if uid == k.serviceaccount.uid => {}
        _ => return Err(stale(&format!("serviceaccount {namespace}/{name}"))),
    }
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(pod) = &k.pod {
        let key = format!("/registry/pods/{namespace}/{}", pod.name);
        if live_uid(cache, "pods", &key).as_deref() != Some(pod.uid.as_str()) {
            return Err(stale(&format!("pod {namespace}/{}", pod.name)));
        }
        extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec![pod.name.clone()],
        );
        extra.insert(
            "authentication.kubernetes.io/pod-uid".into(),
            vec![pod.uid.clone()],
        );
    }
    if let Some(node) = &k.node {
        extra.insert(
            "authentication.kubernetes.io/node-name".into(),
            vec![node.name.clone()],
        );
        extra.insert(
            "authentication.kubernetes.io/node-uid".into(),
            vec![node.uid.clone()],
        );
    }
    extra.insert(
        "authentication.kubernetes.io/credential-id".into(),
        vec![format!("JTI={}", claims.jti)],
    );
    let mut user = UserInfo::new(
        &claims.sub,
        &[
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{namespace}"),
        ],
    );
    user.uid = k.serviceaccount.uid.clone();
    user.extra = extra;
    Ok(user)
}

/// TokenRequest's shortest and longest `expirationSeconds`, and its default.
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;
const DEFAULT_EXPIRATION: i64 = 3600;

impl super::ApiServer {
    /// POST `serviceaccounts/<name>/token` (TokenRequest, `kubectl create token`): a token
    /// for the ServiceAccount, for the audiences asked (the API server's by default), bound
    /// to a pod or Secret when asked, as Kubernetes' `registry/core/serviceaccount/storage`
    /// issues it.
    pub(super) async fn token_request(
        &self,
        target: &Target,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let mut review = request::decode_object(body, &request::content_type(headers))?;
        let namespace = target.namespace.clone().unwrap_or_default();
        let name = target.name()?.to_owned();
        let invalid = |causes: Vec<FieldError>| ApiError::Invalid {
            kind: "TokenRequest".into(),
            group: "authentication.k8s.io".into(),
            name: name.clone(),
            causes,
        };
        let spec = &review["spec"];
        let expiration = match &spec["expirationSeconds"] {
            Value::Null => DEFAULT_EXPIRATION,
            v => v.as_i64().ok_or_else(|| {
                ApiError::BadRequest("spec.expirationSeconds must be an integer".into())
            })?,
        };
        let mut causes = Vec::new();
        if expiration < MIN_EXPIRATION {
            causes.push(FieldError::invalid_unquoted(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration less than 10 minutes",
            ));
        }
        if expiration > MAX_EXPIRATION {
            causes.push(FieldError::invalid_unquoted(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration larger than 2^32 seconds",
            ));
        }
        let bound = &spec["boundObjectRef"];
        let bound_kind = bound["kind"].as_str().unwrap_or("");
        if !bound.is_null() && !matches!(bound_kind, "Pod" | "Secret") {
            causes.push(FieldError::not_supported(
                "spec.boundObjectRef.kind",
                bound_kind,
                &["Pod", "Secret"],
            ));
        }
        if !causes.is_empty() {
            return Err(invalid(causes));
        }
        let audiences: Vec<String> = match spec["audiences"].as_array() {
            Some(list) if !list.is_empty() => list
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            _ => vec![ISSUER.to_owned()],
        };
        let uid_of = |plural: &str, key: String| -> Result<Option<Value>, ApiError> {
            Ok(self
                .watch_cache
                .get(plural, &key)
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .and_then(|o| o.parsed().cloned()))
        };
        let service_account = uid_of(
            "serviceaccounts",
            format!("/registry/serviceaccounts/{namespace}/{name}"),
        )?
        .ok_or_else(|| ApiError::NotFound {
            kind: "serviceaccounts".into(),
            name: name.clone(),
        })?;
        let uid = |o: &Value| o["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        let mut kubernetes = KubernetesClaims {
            namespace: namespace.clone(),
            serviceaccount: ObjectClaim {
                name: name.clone(),
                uid: uid(&service_account),
            },
            ..Default::default()
        };
        if !bound.is_null() {
            let bound_name = bound["name"].as_str().unwrap_or("").to_owned();
            let plural = if bound_kind == "Pod" {
                "pods"
            } else {
                "secrets"
            };
            let object = uid_of(
                plural,
                format!("/registry/{plural}/{namespace}/{bound_name}"),
            )?
            .ok_or_else(|| ApiError::NotFound {
                kind: plural.into(),
                name: bound_name.clone(),
            })?;
            if let Some(asked) = bound["uid"].as_str().filter(|u| !u.is_empty())
                && asked != uid(&object)
            {
                return Err(ApiError::Conflict {
                    kind: plural.into(),
                    name: bound_name.clone(),
                    message: format!(
                        "the UID in the bound object reference ({asked}) does not match the UID in record. The object might have been deleted and then recreated"
                    ),
                });
            }
            let claim = ObjectClaim {
                name: bound_name,
                uid: uid(&object),
            };
            if bound_kind == "Pod" {
                if let Some(node) = object["spec"]["nodeName"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                {
                    let node_object = uid_of("nodes", format!("/registry/nodes/{node}"))?;
                    kubernetes.node = Some(ObjectClaim {
                        name: node.to_owned(),
                        uid: node_object.as_ref().map(uid).unwrap_or_default(),
                    });
                }
                kubernetes.pod = Some(claim);
            } else {
                kubernetes.secret = Some(claim);
            }
        }
        let issuer = self
            .authenticator
            .token_issuer()
            .ok_or_else(|| ApiError::Internal("no ServiceAccount token signing key".into()))?;
        let now = chrono::Utc::now();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: format!("system:serviceaccount:{namespace}:{name}"),
            aud: audiences.clone(),
            exp: now.timestamp() + expiration,
            iat: now.timestamp(),
            nbf: now.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes,
        };
        let token = issuer
            .sign(&claims)
            .map_err(|e| ApiError::Internal(format!("signing the token: {e}")))?;
        let expires = chrono::DateTime::from_timestamp(claims.exp, 0)
            .unwrap_or(now)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        review["apiVersion"] = json!("authentication.k8s.io/v1");
        review["kind"] = json!("TokenRequest");
        review["metadata"] =
            json!({"name": name, "namespace": namespace, "creationTimestamp": null});
        review["spec"]["audiences"] = json!(audiences);
        review["spec"]["expirationSeconds"] = json!(expiration);
        review["status"] = json!({"token": token, "expirationTimestamp": expires});
        Ok(super::json_value(StatusCode::CREATED, &review))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_issuer() -> TokenIssuer {
        let key = rcgen::KeyPair::generate().unwrap();
        TokenIssuer::new(&key.serialize_pem(), &key.public_key_pem()).unwrap()
    }

    fn claims(exp_in: i64, aud: &str) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            iss: ISSUER.into(),
            sub: "system:serviceaccount:default:robot".into(),
            aud: vec![aud.into()],
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: "id".into(),
            kubernetes: KubernetesClaims {
                namespace: "default".into(),
                serviceaccount: ObjectClaim {
                    name: "robot".into(),
                    uid: "u1".into(),
                },
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_token_verifies_only_with_its_key_audience_and_time() {
        let issuer = new_issuer();
        let token = issuer.sign(&claims(600, ISSUER)).unwrap();
        assert!(is_jwt(&token));
        assert_eq!(
            issuer.verify(&token, &[ISSUER]).unwrap().sub,
            "system:serviceaccount:default:robot"
        );
        assert!(matches!(
            issuer.verify(&token, &["vault"]),
            Err(TokenError::Invalid(_))
        ));
        let expired = issuer.sign(&claims(-3600, ISSUER)).unwrap();
        assert!(matches!(
            issuer.verify(&expired, &[ISSUER]),
            Err(TokenError::Invalid(_))
        ));
        let other = new_issuer().sign(&claims(600, ISSUER)).unwrap();
        assert!(matches!(
            issuer.verify(&other, &[ISSUER]),
            Err(TokenError::Invalid(_))
        ));
        let mut forged: Vec<&str> = token.split('.').collect();
        let payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&Claims {
                sub: "system:serviceaccount:kube-system:admin".into(),
                ..claims(600, ISSUER)
            })
            .unwrap(),
        );
        forged[1] = &payload;
        assert!(issuer.verify(&forged.join("."), &[ISSUER]).is_err());
        assert!(issuer.verify("eyJ.not.a-token", &[ISSUER]).is_err());
    }
}
