//! Bearer-token authentication. Every request but health checks and `/version` must carry a
//! token the server issued; anything else gets a 401 `Status`.

use subtle_compare::constant_time_eq;

/// Paths anyone may read: liveness/readiness probes and the version.
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/livez" | "/readyz" | "/version" | "/version/"
    ) || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

/// The user a request's `Authorization` header authenticates, if any.
pub fn authenticate<'a>(
    authorization: Option<&str>,
    tokens: &'a [(String, String)],
) -> Option<&'a str> {
    let presented = authorization?.strip_prefix("Bearer ")?.trim();
    tokens
        .iter()
        .find(|(token, _)| constant_time_eq(token.as_bytes(), presented.as_bytes()))
        .map(|(_, user)| user.as_str())
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

    #[test]
    fn only_an_issued_token_authenticates() {
        let tokens = vec![("s3cret".to_string(), "admin".to_string())];
        assert_eq!(authenticate(Some("Bearer s3cret"), &tokens), Some("admin"));
        assert_eq!(authenticate(Some("Bearer s3cre"), &tokens), None);
        assert_eq!(authenticate(Some("Basic s3cret"), &tokens), None);
        assert_eq!(authenticate(None, &tokens), None);
        assert!(is_public("/readyz") && is_public("/version") && !is_public("/api/v1/pods"));
    }
}
