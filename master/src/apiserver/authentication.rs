//! Authentication: who made a request. As kube-apiserver's authenticators do, a request is
//! made by the user of a bearer token the server issued, of a ServiceAccount token it signed
//! ([`super::service_account_tokens`]), of a bootstrap token ([`super::bootstrap_tokens`]),
//! or by the subject of a client certificate the cluster CA signed (common name = user,
//! organizations = groups); every authenticated user also belongs to `system:authenticated`.
//! Anything else gets a 401 `Status`, except the health checks, `/version` and the
//! `cluster-info` ConfigMap joining nodes discover the cluster by (kube-apiserver's
//! anonymous-auth, limited to those endpoints).

use std::collections::BTreeMap;

use axum::http::{HeaderMap, header};
use serde::Serialize;
use subtle_compare::constant_time_eq;

use super::service_account_tokens::{ISSUER, TokenIssuer, is_jwt, user_of};
use super::watch_cache::WatchCache;

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The group whose members may do anything (kube-apiserver's privileged group).
pub const MASTERS_GROUP: &str = "system:masters";
/// The group of node agents.
pub const NODES_GROUP: &str = "system:nodes";
/// The user the admin token stands for (kubeadm's admin).
pub const ADMIN_USER: &str = "kubernetes-admin";

/// A user as authentication found it (Kubernetes' `user.Info`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    /// The user name.
    pub username: String,
    /// A unique id, when the authenticator knows one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The groups.
    pub groups: Vec<String>,
    /// Extra attributes (e.g. a service account token's pod).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user in `groups` (and `system:authenticated`).
    pub fn new(username: &str, groups: &[&str]) -> Self {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.to_string());
        }
        Self {
            username: username.to_string(),
            groups,
            ..Default::default()
        }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The ServiceAccount (namespace, name) a `system:serviceaccount:<ns>:<name>` user is.
    pub fn service_account(&self) -> Option<(&str, &str)> {
        self.username
            .strip_prefix("system:serviceaccount:")?
            .split_once(':')
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains(':'))
    }
}

tokio::task_local! {
    /// The user a request is served for, while it is served (what admission checks such as
    /// RBAC's escalation prevention go by).
    static REQUESTER: UserInfo;
}

/// The user the current request is served for; `None` for the server's own writes (its
/// bootstrap objects), which are not made for any user.
pub fn requester() -> Option<UserInfo> {
    REQUESTER.try_with(Clone::clone).ok()
}

/// Serve `request` for `user`.
pub async fn serve_for<F: Future>(user: UserInfo, request: F) -> F::Output {
    REQUESTER.scope(user, request).await
}

/// The user of a verified client certificate, put into each request of its connection.
#[derive(Clone, Debug)]
pub struct CertificateUser(pub UserInfo);

/// The authenticators of the server.
#[derive(Default)]
pub struct Authenticator {
    /// Issued bearer tokens and the users they stand for.
    tokens: Vec<(String, UserInfo)>,
    /// ServiceAccount tokens: their signer, and the objects they name.
    service_accounts: Option<(TokenIssuer, WatchCache)>,
}

impl Authenticator {
    /// An authenticator that knows `tokens`.
    pub fn new(tokens: Vec<(String, UserInfo)>) -> Self {
        Self {
            tokens,
            service_accounts: None,
        }
    }

    /// Also authenticate ServiceAccount tokens `issuer` signed, naming objects in `cache`.
    pub fn with_service_accounts(mut self, issuer: TokenIssuer, cache: WatchCache) -> Self {
        self.service_accounts = Some((issuer, cache));
        self
    }

    /// The ServiceAccount token signer, if any.
    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.service_accounts.as_ref().map(|(issuer, _)| issuer)
    }

    /// The user of a bearer token (a TokenReview's question): `audiences` a ServiceAccount
    /// token must name one of.
    pub fn token_user(&self, token: &str, audiences: &[&str]) -> Result<UserInfo, String> {
        if is_jwt(token)
            && let Some((issuer, cache)) = &self.service_accounts
        {
            let claims = issuer.verify(token, audiences).map_err(|e| e.to_string())?;
            return user_of(&claims, cache).map_err(|e| e.to_string());
        }
        if let Some(user) = self.issued_token_user(token) {
            return Ok(user.clone());
        }
        match &self.service_accounts {
            Some((_, cache)) if super::bootstrap_tokens::parse(token).is_some() => {
                super::bootstrap_tokens::user_of(token, cache)
            }
            _ => Err("invalid bearer token".to_owned()),
        }
    }

    /// Who a request is from: its bearer token's user, else its client certificate's.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        certificate: Option<&CertificateUser>,
    ) -> Option<UserInfo> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Some(presented) = authorization.and_then(|a| a.strip_prefix("Bearer ")) {
            // A token that is presented and wrong fails the request, as in Kubernetes, even
            // with a good certificate.
            return self.token_user(presented.trim(), &[ISSUER]).ok();
        }
        certificate.map(|c| c.0.clone())
    }

    fn issued_token_user(&self, presented: &str) -> Option<&UserInfo> {
        self.tokens
            .iter()
            .find(|(token, _)| constant_time_eq(token.as_bytes(), presented.as_bytes()))
            .map(|(_, user)| user)
    }
}

/// The user a client certificate names: CN is the user, each O a group (Kubernetes' x509
/// authenticator). `None` when the certificate cannot be read or names no user.
pub fn certificate_user(der: &[u8]) -> Option<UserInfo> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = certificate.subject();
    let username = subject.iter_common_name().next()?.as_str().ok()?;
    if username.is_empty() {
        return None;
    }
    let groups: Vec<&str> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .collect();
    Some(UserInfo::new(username, &groups))
}

/// Paths anyone may read: liveness/readiness probes, the version, and `cluster-info`.
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz"
            | "/livez"
            | "/readyz"
            | "/version"
            | "/version/"
            | "/api/v1/namespaces/kube-public/configmaps/cluster-info"
    ) || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

mod subtle_compare {
    /// Compare without an early exit, so response timing does not leak the token.
    pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers
    }

    #[test]
    fn only_an_issued_token_authenticates_and_a_wrong_one_beats_a_certificate() {
        let admin = UserInfo::new(ADMIN_USER, &[MASTERS_GROUP]);
        let auth = Authenticator::new(vec![("s3cret".to_string(), admin.clone())]);
        let cert = CertificateUser(UserInfo::new("jane", &["dev"]));
        assert_eq!(auth.authenticate(&bearer("s3cret"), None), Some(admin));
        assert_eq!(auth.authenticate(&bearer("s3cre"), Some(&cert)), None);
        assert_eq!(
            auth.authenticate(&HeaderMap::new(), Some(&cert))
                .map(|u| u.username),
            Some("jane".to_string())
        );
        assert_eq!(auth.authenticate(&HeaderMap::new(), None), None);
        assert!(is_public("/readyz") && is_public("/version") && !is_public("/api/v1/pods"));
    }

    #[test]
    fn a_certificate_names_its_user_and_groups() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:a");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:nodes");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let user = certificate_user(cert.der()).unwrap();
        assert_eq!(user.username, "system:node:a");
        assert_eq!(user.groups, ["system:nodes", AUTHENTICATED_GROUP]);
        assert_eq!(certificate_user(b"not a certificate"), None);
    }

    #[test]
    fn service_account_users_name_their_account() {
        let sa = UserInfo::new("system:serviceaccount:default:viewer", &[]);
        assert_eq!(sa.service_account(), Some(("default", "viewer")));
        assert_eq!(UserInfo::new("jane", &[]).service_account(), None);
        assert_eq!(
            UserInfo::new("system:serviceaccount:default", &[]).service_account(),
            None
        );
    }
}
