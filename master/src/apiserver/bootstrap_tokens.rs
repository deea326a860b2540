//! Bootstrap tokens (`<id>.<secret>`), what a node joins the cluster with, as Kubernetes'
//! bootstrap token authenticator (`plugin/pkg/auth/authenticator/token/bootstrap`) reads
//! them: a Secret `bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token` in
//! `kube-system` holds the secret half, an optional `expiration`, the usage
//! `usage-bootstrap-authentication` and `auth-extra-groups`. A token authenticates as
//! `system:bootstrap:<id>` in `system:bootstrappers` (and its extra groups) until it expires.
//! `skiff-master token create` makes one.

use base64::Engine;
use serde_json::Value;

use super::authentication::UserInfo;
use super::watch_cache::WatchCache;

/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The group every bootstrap token is in.
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// The extra group `skiff-master token create` gives its tokens (kubeadm's).
pub const DEFAULT_NODE_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

/// The (id, secret) of a token of the bootstrap form: 6 and 16 of `[a-z0-9]`.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |part: &str, len: usize| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// The user of a bootstrap token, if its Secret says it is valid now.
pub fn user_of(token: &str, cache: &WatchCache) -> Result<UserInfo, String> {
    let (id, secret) = parse(token).ok_or("not a bootstrap token")?;
    let key = format!("/registry/secrets/kube-system/bootstrap-token-{id}");
    let object = cache
        .get("secrets", &key)
        .ok()
        .flatten()
        .and_then(|o| o.parsed().cloned())
        .ok_or_else(|| format!("no bootstrap token with id {id:?}"))?;
    user_of_secret(&object, id, secret, chrono::Utc::now())
}

fn user_of_secret(
    object: &Value,
    id: &str,
    secret: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<UserInfo, String> {
    let data = |field: &str| -> String {
        object["data"][field]
            .as_str()
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    };
    let invalid = || format!("bootstrap token {id:?} is not valid");
    if object["type"] != SECRET_TYPE || object["metadata"]["deletionTimestamp"].is_string() {
        return Err(invalid());
    }
    let matches = |a: &str, b: &str| {
        a.len() == b.len()
            && a.bytes()
                .zip(b.bytes())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
    };
    if data("token-id") != id || !matches(&data("token-secret"), secret) {
        return Err(invalid());
    }
    if data("usage-bootstrap-authentication") != "true" {
        return Err(format!(
            "bootstrap token {id:?} may not be used for authentication"
        ));
    }
    let expiration = data("expiration");
    if !expiration.is_empty() {
        let expires = chrono::DateTime::parse_from_rfc3339(&expiration).map_err(|_| invalid())?;
        if expires <= now {
            return Err(format!("bootstrap token {id:?} has expired"));
        }
    }
    let extra = data("auth-extra-groups");
    let mut groups = vec![BOOTSTRAPPERS_GROUP];
    groups.extend(
        extra
            .split(',')
            .map(str::trim)
            .filter(|g| g.starts_with("system:bootstrappers:")),
    );
    Ok(UserInfo::new(&format!("system:bootstrap:{id}"), &groups))
}

/// A lifetime as kubeadm's `--ttl` takes it, a Go duration: `24h`, `30m`, `90s`, or `0` for
/// none.
pub fn parse_ttl(text: &str) -> Result<Option<chrono::Duration>, String> {
    let ttl = skiff_api::time::parse_duration(text.trim())?;
    if ttl.is_zero() {
        return Ok(None);
    }
    chrono::Duration::from_std(ttl)
        .ok()
        .filter(|ttl| *ttl >= chrono::Duration::seconds(1) && *ttl <= chrono::Duration::days(3650))
        .map(Some)
        .ok_or_else(|| format!("invalid duration {text:?}: out of range (1s to 87600h)"))
}

/// A new bootstrap token (`<id>.<secret>`), stored as its Secret through `client`, valid for
/// `ttl` (None: until deleted), for node authentication in [`DEFAULT_NODE_TOKEN_GROUP`].
pub async fn create(
    client: &kube::Client,
    ttl: Option<chrono::Duration>,
) -> Result<String, kube::Error> {
    use k8s_openapi::api::core::v1::Secret;
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut random = |len: usize| -> String {
        (0..len)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect()
    };
    let (id, secret) = (random(6), random(16));
    let mut data = serde_json::json!({
        "token-id": id,
        "token-secret": secret,
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": DEFAULT_NODE_TOKEN_GROUP,
        "description": "made by skiff-master token create",
    });
    if let Some(ttl) = ttl {
        data["expiration"] = serde_json::json!(
            (chrono::Utc::now() + ttl).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    let object: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": SECRET_TYPE,
        "stringData": data,
    }))
    .map_err(kube::Error::SerdeError)?;
    let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), "kube-system");
    api.create(&kube::api::PostParams::default(), &object)
        .await?;
    Ok(format!("{id}.{secret}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secret(expiration: &str) -> Value {
        json!({"type": SECRET_TYPE, "data": {
            "token-id": b64("abcdef"), "token-secret": b64("0123456789abcdef"),
            "expiration": b64(expiration), "usage-bootstrap-authentication": b64("true"),
            "auth-extra-groups": b64(DEFAULT_NODE_TOKEN_GROUP),
        }})
    }

    #[test]
    fn a_token_authenticates_until_it_expires() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(parse("ABCDEF.0123456789abcdef"), None);
        assert_eq!(parse("abcdef.0123456789abcde"), None);
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let user = user_of_secret(
            &secret("2026-01-02T00:00:00Z"),
            "abcdef",
            "0123456789abcdef",
            now,
        )
        .unwrap();
        assert_eq!(user.username, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [
                BOOTSTRAPPERS_GROUP,
                DEFAULT_NODE_TOKEN_GROUP,
                "system:authenticated"
            ]
        );
        assert!(
            user_of_secret(
                &secret("2025-12-31T00:00:00Z"),
                "abcdef",
                "0123456789abcdef",
                now
            )
            .unwrap_err()
            .contains("expired")
        );
        assert!(user_of_secret(&secret(""), "abcdef", "0123456789abcdee", now).is_err());
        assert_eq!(parse_ttl("0"), Ok(None));
        assert_eq!(parse_ttl("2h"), Ok(Some(chrono::Duration::hours(2))));
        assert!(parse_ttl("2").is_err() && parse_ttl("9999999999999d").is_err());
        assert!(parse_ttl("-5m").is_err() && parse_ttl("1w").is_err());
    }
}
