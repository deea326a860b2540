//! Taints and tolerations (Kubernetes' `Toleration.ToleratesTaint`): one rule for the
//! scheduler's filter, the node lifecycle controller's evictions and the DaemonSet controller.

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// Whether `toleration` tolerates `taint`, as Kubernetes decides it: the effect matches (or
/// the toleration names none), the key matches (or the toleration names none), and the value
/// is equal (operator `Equal`, the default) or anything (operator `Exists`); an unknown
/// operator tolerates nothing.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Toleration {
            key: opt(key),
            operator: opt(operator),
            value: opt(value),
            effect: opt(effect),
            toleration_seconds: None,
        }
    }

    #[test]
    fn tolerations_match_as_in_kubernetes() {
        let gpu = taint("gpu", Some("true"), "NoSchedule");
        assert!(tolerates(
            &toleration("gpu", "Equal", "true", "NoSchedule"),
            &gpu
        ));
        assert!(
            tolerates(&toleration("gpu", "", "true", ""), &gpu),
            "Equal is the default; no effect matches all"
        );
        assert!(tolerates(
            &toleration("gpu", "Exists", "", "NoSchedule"),
            &gpu
        ));
        assert!(
            tolerates(&toleration("", "Exists", "", ""), &gpu),
            "empty key with Exists tolerates everything"
        );
        assert!(
            !tolerates(&toleration("", "Equal", "", ""), &gpu),
            "the value still counts"
        );
        assert!(
            !tolerates(&toleration("gpu", "Above", "true", ""), &gpu),
            "unknown operator"
        );
        assert!(!tolerates(&toleration("gpu", "Equal", "false", ""), &gpu));
        assert!(!tolerates(
            &toleration("gpu", "Exists", "", "NoExecute"),
            &gpu
        ));
        assert!(!tolerates(&toleration("other", "Exists", "", ""), &gpu));
        let bare = taint("dedicated", None, "NoExecute");
        assert!(
            tolerates(&toleration("dedicated", "Equal", "", "NoExecute"), &bare),
            "no value equals empty"
        );
        assert!(tolerated(
            &[
                toleration("x", "Exists", "", ""),
                toleration("dedicated", "Exists", "", "")
            ],
            &bare
        ));
        assert!(!tolerated(&[], &bare));
    }
}
