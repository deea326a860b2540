//! Stable hashes (FNV-1a, as Kubernetes' `pkg/util/hash`): the same input gives the same value
//! in every build and on every machine, unlike std's `DefaultHasher`. They name things that
//! outlive a process: a Deployment's `pod-template-hash`, the container spec hashes and
//! static pod uids the node agent keeps in Docker labels.

use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::names;

/// FNV-1a, 32 bits.
pub fn fnv1a32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// FNV-1a, 64 bits, starting from `basis`.
fn fnv1a64(basis: u64, data: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    data.iter().fold(basis, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

/// The FNV-1a 64-bit offset basis.
const BASIS_64: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit hash of `data` as 16 hex digits.
pub fn hex64(data: &[u8]) -> String {
    format!("{:016x}", fnv1a64(BASIS_64, data))
}

/// A uid-shaped (8-4-4-4-12 hex) 128-bit hash of `data`: two FNV-1a runs with different
/// offset bases.
pub fn uid(data: &[u8]) -> String {
    let high = fnv1a64(BASIS_64, data);
    let low = fnv1a64(0x6c62_272e_07bb_0142, data);
    let hex = format!("{high:016x}{low:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The `pod-template-hash` of a template (Kubernetes' `controller.ComputeHash`): FNV-1a
/// (32 bits) of the template and the collision count, its decimal digits mapped onto the
/// name alphabet.
pub fn pod_template_hash(template: &PodTemplateSpec, collisions: Option<i32>) -> String {
    // k8s-openapi serialises fields in a fixed order and maps sorted: a stable input.
    let mut data = serde_json::to_vec(template).unwrap_or_default();
    if let Some(count) = collisions {
        data.extend_from_slice(&count.to_le_bytes());
    }
    names::safe_encode(&fnv1a32(&data).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_shaped() {
        // FNV-1a test vectors.
        assert_eq!(hex64(b"a"), "af63dc4c8601ec8c");
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        let id = uid(b"pod");
        assert_eq!(id.len(), 36);
        assert_eq!(id, uid(b"pod"));
        assert_ne!(id, uid(b"pod2"));
    }

    #[test]
    fn pod_template_hash_follows_the_template_and_collisions() {
        let template = |image: &str| -> PodTemplateSpec {
            serde_json::from_value(serde_json::json!({
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            }))
            .expect("template")
        };
        let hash = pod_template_hash(&template("web:1"), None);
        assert_eq!(hash, pod_template_hash(&template("web:1"), None));
        assert_ne!(hash, pod_template_hash(&template("web:2"), None));
        assert_ne!(hash, pod_template_hash(&template("web:1"), Some(1)));
        assert!(
            hash.bytes().all(|b| names::NAME_ALPHABET.contains(&b)),
            "{hash}"
        );
    }
}
