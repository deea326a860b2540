//! Names and identifiers, as Kubernetes' `k8s.io/apimachinery/pkg/util/validation` checks
//! them (DNS-1123 labels and subdomains, DNS-1035 labels, port and environment variable
//! names), and the alphabet of generated names (`k8s.io/apimachinery/pkg/util/rand`).
//!
//! Each check returns Kubernetes' messages for a value, empty when it is valid, so the API
//! server reports exactly what kube-apiserver reports.

use std::fmt::Write as _;

use rand::Rng;

/// Which syntax an object's `metadata.name` must follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS-1123 subdomain (`my-app.v1`): Pods, Deployments, Nodes and most kinds.
    Dns1123Subdomain,
    /// A DNS-1123 label (`my-app`, `123-abc`): Namespaces.
    Dns1123Label,
    /// A DNS-1035 label, which starts with a letter (`my-app`): Services.
    Dns1035Label,
    /// Anything usable as one URL path segment: kinds with no stricter rule (Events).
    PathSegment,
}

impl NameRule {
    /// The messages for `name` under this rule; empty when it is valid.
    pub fn check(self, name: &str) -> Vec<String> {
        match self {
            Self::Dns1123Subdomain => is_dns1123_subdomain(name),
            Self::Dns1123Label => is_dns1123_label(name),
            Self::Dns1035Label => is_dns1035_label(name),
            Self::PathSegment => is_path_segment_name(name),
        }
    }
}

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const ENV_VAR_NAME_FMT: &str = "[-._a-zA-Z][-._a-zA-Z0-9]*";
const ENV_VAR_NAME_MSG: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit";

/// Kubernetes' `RegexError`: the message, examples and the regular expression.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        let _ = write!(out, "'{e}', ");
    }
    let _ = write!(out, "regex used for validation is '{fmt}')");
    out
}

fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, or with `first_alpha` the DNS-1035 form `[a-z](...)`.
fn matches_label(s: &str, first_alpha: bool) -> bool {
    let b = s.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    let first_ok = if first_alpha {
        first.is_ascii_lowercase()
    } else {
        is_lower_alnum(first)
    };
    first_ok && is_lower_alnum(last) && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn matches_subdomain(s: &str) -> bool {
    s.split('.').all(|part| matches_label(part, false))
}

/// Kubernetes' `IsDNS1123Label`: the messages for `value`, empty when valid.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches_label(value, false) {
        if matches_subdomain(value) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Kubernetes' `IsDNS1123Subdomain`: the messages for `value`, empty when valid.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !matches_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Kubernetes' `IsDNS1035Label`: the messages for `value`, empty when valid.
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches_label(value, true) {
        errs.push(regex_error(
            DNS1035_LABEL_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Kubernetes' `ValidatePathSegmentName`: the name must fit in one URL path segment.
pub fn is_path_segment_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value == "." || value == ".." {
        errs.push(format!("may not be '{value}'"));
    }
    for bad in ["/", "%"] {
        if value.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// Kubernetes' `IsValidPortName` (an IANA service name): the messages, empty when valid.
pub fn is_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push(max_len_error(15));
    }
    if port.is_empty() || !port.bytes().all(|c| is_lower_alnum(c) || c == b'-') {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// Kubernetes' `IsEnvVarName`: the messages for an environment variable name.
pub fn is_env_var_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let ok_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_');
    let valid = match value.as_bytes().first() {
        Some(first) => !first.is_ascii_digit() && value.bytes().all(ok_char),
        None => false,
    };
    if !valid {
        errs.push(regex_error(
            ENV_VAR_NAME_MSG,
            ENV_VAR_NAME_FMT,
            &["my.env-name", "MY_ENV.NAME", "MyEnvName1"],
        ));
    }
    if value == "." || value == ".." {
        errs.push(format!("must not be '{value}'"));
    } else if value.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// The characters of generated names: no vowels (no words), no look-alikes (`0`/`o`,
/// `1`/`l`), as Kubernetes' `util/rand`.
pub const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `len` random characters of [`NAME_ALPHABET`]: the suffix `metadata.generateName` gets
/// (five characters in Kubernetes).
pub fn random_suffix(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())]))
        .collect()
}

/// Kubernetes' `rand.SafeEncodeString`: every byte of `s` mapped onto [`NAME_ALPHABET`], so
/// a hash's decimal digits become characters that are safe in names.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(NAME_ALPHABET[usize::from(b) % NAME_ALPHABET.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules_use_kubernetes_messages() {
        assert!(is_dns1123_subdomain("my-app.v1").is_empty());
        assert_eq!(
            is_dns1123_subdomain("My_Pod"),
            vec![
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ]
        );
        assert_eq!(
            is_dns1123_label("-x"),
            vec![
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
        assert_eq!(
            is_dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert!(is_dns1123_label("123-abc").is_empty());
        assert!(is_dns1035_label("abc-123").is_empty());
        assert_eq!(is_dns1035_label("1abc").len(), 1);
        assert_eq!(
            is_dns1123_subdomain(&"a".repeat(254)),
            vec!["must be no more than 253 characters"]
        );
        assert!(!is_dns1123_subdomain("").is_empty());
        assert!(!is_dns1123_subdomain("a..b").is_empty());
        assert_eq!(is_path_segment_name("a/b"), vec!["may not contain '/'"]);
        assert!(is_path_segment_name("web.17a9c2").is_empty());
    }

    #[test]
    fn port_and_env_names() {
        assert!(is_port_name("http").is_empty());
        assert!(is_port_name("http-2").is_empty());
        assert_eq!(
            is_port_name("1234"),
            vec!["must contain at least one letter (a-z)"]
        );
        assert!(is_port_name("a--b").contains(&"must not contain consecutive hyphens".to_string()));
        assert!(is_port_name("-ab").contains(&"must not begin or end with a hyphen".to_string()));
        assert!(
            is_port_name("this-is-too-long-x")
                .contains(&"must be no more than 15 characters".to_string())
        );
        assert!(
            is_port_name("HTTP")
                .iter()
                .any(|m| m.starts_with("must contain only"))
        );
        assert!(is_env_var_name("MY_VAR.name-1").is_empty());
        assert!(is_env_var_name("_x").is_empty());
        assert_eq!(is_env_var_name("1BAD").len(), 1);
        assert_eq!(is_env_var_name("A=B").len(), 1);
        assert_eq!(is_env_var_name(".."), vec!["must not be '..'"]);
        assert_eq!(is_env_var_name("..x"), vec!["must not start with '..'"]);
    }

    #[test]
    fn generated_names_use_the_safe_alphabet() {
        let suffix = random_suffix(5);
        assert_eq!(suffix.len(), 5);
        assert!(
            suffix.bytes().all(|b| NAME_ALPHABET.contains(&b)),
            "{suffix}"
        );
        // Digits map as Kubernetes maps them: '0' is byte 48, 48 % 27 = 21 -> '4'.
        assert_eq!(safe_encode("0"), "4");
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }
}
