//! A stable hash (FNV-1a): the same input gives the same value in every build and on every
//! machine, unlike std's `DefaultHasher`. Container spec hashes and static pod uids are stored
//! in Docker labels and must survive agent upgrades and restarts.

/// FNV-1a, 64 bits, of `data` starting from `basis`.
fn fnv1a(basis: u64, data: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    data.iter().fold(basis, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

/// 64-bit hash of `data` as 16 hex digits.
pub fn hex64(data: &[u8]) -> String {
    format!("{:016x}", fnv1a(0xcbf2_9ce4_8422_2325, data))
}

/// A uid-shaped (8-4-4-4-12 hex) 128-bit hash of `data`: two FNV-1a runs with different
/// offset bases.
pub fn uid(data: &[u8]) -> String {
    let high = fnv1a(0xcbf2_9ce4_8422_2325, data);
    let low = fnv1a(0x6c62_272e_07bb_0142, data);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_shaped() {
        // FNV-1a test vector.
        assert_eq!(hex64(b"a"), "af63dc4c8601ec8c");
        let id = uid(b"pod");
        assert_eq!(id.len(), 36);
        assert_eq!(id, uid(b"pod"));
        assert_ne!(id, uid(b"pod2"));
    }
}
