//! Quantities (`500m`, `1.5Gi`, `2e3`), as Kubernetes' `k8s.io/apimachinery/pkg/api/resource`
//! parses them: exact, in integer nano units, never through floating point, so a request of
//! `100m` CPU is exactly 100 millicores wherever it is added up (the API server's validation,
//! the scheduler's fit, the node agent's limits).

/// Why a string is not a Kubernetes quantity (`resource.ParseQuantity`'s errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not of the form number + suffix.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    /// The suffix is not one Kubernetes knows.
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// The parts of a quantity string, as Kubernetes' `parseQuantityString` splits them.
struct QuantityParts<'a> {
    negative: bool,
    num: &'a [u8],
    denom: &'a [u8],
    suffix: &'a [u8],
}

const SUFFIX_CHARS: &[u8] = b"eEinumkKMGTP";

fn split_quantity(s: &str) -> Result<QuantityParts<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut parts = QuantityParts {
        negative: false,
        num: b"0",
        denom: b"",
        suffix: b"",
    };
    let mut pos = 0;
    match b.first() {
        None => return Err(QuantityError::Format),
        Some(b'-') => {
            parts.negative = true;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        Some(_) => {}
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(parts);
    }
    let start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos > start {
        parts.num = &b[start..pos];
    }
    if pos >= end {
        return Ok(parts);
    }
    if b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        parts.denom = &b[start..pos];
        if pos >= end {
            return Ok(parts);
        }
    }
    let suffix_start = pos;
    while pos < end && SUFFIX_CHARS.contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'+' || b[pos] == b'-') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::Format);
    }
    parts.suffix = &b[suffix_start..];
    Ok(parts)
}

/// The suffix as (power of ten, power of two).
fn quantity_suffix(suffix: &[u8]) -> Result<(i64, u32), QuantityError> {
    let decimal = |e| Ok((e, 0));
    match suffix {
        b"" => decimal(0),
        b"n" => decimal(-9),
        b"u" => decimal(-6),
        b"m" => decimal(-3),
        b"k" => decimal(3),
        b"M" => decimal(6),
        b"G" => decimal(9),
        b"T" => decimal(12),
        b"P" => decimal(15),
        b"E" => decimal(18),
        b"Ki" => Ok((0, 10)),
        b"Mi" => Ok((0, 20)),
        b"Gi" => Ok((0, 30)),
        b"Ti" => Ok((0, 40)),
        b"Pi" => Ok((0, 50)),
        b"Ei" => Ok((0, 60)),
        [b'e' | b'E', rest @ ..] if !rest.is_empty() => std::str::from_utf8(rest)
            .ok()
            .and_then(|r| r.parse::<i32>().ok())
            .map(|e| (i64::from(e), 0))
            .ok_or(QuantityError::Suffix),
        _ => Err(QuantityError::Suffix),
    }
}

/// Parse a Kubernetes quantity (`500m`, `1.5Gi`, `1e3`) into units of 10^-9 (nano units),
/// rounded up, saturating at the `i128` range. CPU millicores are `nanos / 10^6`, bytes are
/// `nanos / 10^9`.
pub fn quantity_nanos(s: &str) -> Result<i128, QuantityError> {
    let parts = split_quantity(s)?;
    let (ten, two) = quantity_suffix(parts.suffix)?;
    let digits: Vec<u8> = parts.num.iter().chain(parts.denom).copied().collect();
    let exp10 = ten + 9 - parts.denom.len() as i64;
    let (kept, round_up) = if exp10 < 0 {
        let cut = usize::try_from(-exp10).unwrap_or(usize::MAX);
        let keep = digits.len().saturating_sub(cut);
        (&digits[..keep], digits[keep..].iter().any(|&d| d != b'0'))
    } else {
        (&digits[..], false)
    };
    let mut value: i128 = 0;
    for &d in kept {
        value = value
            .saturating_mul(10)
            .saturating_add(i128::from(d - b'0'));
    }
    if round_up {
        value = value.saturating_add(1);
    }
    let mut e = exp10;
    while e > 0 && value != 0 && value != i128::MAX {
        value = value.saturating_mul(10);
        e -= 1;
    }
    value = value.saturating_mul(1i128 << two);
    Ok(if parts.negative { -value } else { value })
}

/// Millicores of a CPU quantity (`100m` -> 100, `1.5` -> 1500), rounded up.
pub fn milli_value(s: &str) -> Result<i128, QuantityError> {
    Ok(ceil_div(quantity_nanos(s)?, 1_000_000))
}

/// The integer value of a quantity (`1Gi` -> 1073741824 bytes, `10` pods), rounded up as
/// Kubernetes' `Quantity.Value()`.
pub fn value(s: &str) -> Result<i128, QuantityError> {
    Ok(ceil_div(quantity_nanos(s)?, 1_000_000_000))
}

fn ceil_div(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d > 0 { q + 1 } else { q }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_syntax_is_kubernetes() {
        for ok in [
            "1", "0", "100m", "1.5", "1.5Gi", "512Mi", "1Ki", "2e3", "2E-3", "+1", "-1", ".5",
            "5.", "1n", "3u", "1k", "1M", "1G", "1T", "1P", "1E", "1Ei",
        ] {
            assert!(quantity_nanos(ok).is_ok(), "{ok} should be valid");
        }
        let format = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
        for bad in ["abc", "1.2.3", "12Qi", "", "1Gb", " 1", "1 ", "1,5", "１"] {
            let err = quantity_nanos(bad).expect_err("invalid");
            assert_eq!(err, QuantityError::Format, "{bad}");
            assert_eq!(err.to_string(), format, "{bad}");
        }
        for bad_suffix in ["1ki", "1Mi5", "1e", "1ee3", "1mi", "1e99999999999"] {
            assert_eq!(
                quantity_nanos(bad_suffix),
                Err(QuantityError::Suffix),
                "{bad_suffix}"
            );
        }
    }

    #[test]
    fn quantity_values_in_nano_units() {
        assert_eq!(quantity_nanos("100m"), Ok(100_000_000));
        assert_eq!(quantity_nanos("1"), Ok(1_000_000_000));
        assert_eq!(quantity_nanos("0.5"), Ok(500_000_000));
        assert_eq!(quantity_nanos("1Ki"), Ok(1024 * 1_000_000_000));
        assert_eq!(
            quantity_nanos("1.5Gi"),
            Ok(3 * (1i128 << 29) * 1_000_000_000)
        );
        assert_eq!(quantity_nanos("2e3"), Ok(2_000 * 1_000_000_000));
        assert_eq!(quantity_nanos("1n"), Ok(1));
        assert_eq!(quantity_nanos("0.1n"), Ok(1), "rounds up below a nano unit");
        assert_eq!(quantity_nanos("-2"), Ok(-2_000_000_000));
        assert_eq!(quantity_nanos("-"), Ok(0));
        assert_eq!(quantity_nanos("."), Ok(0));
        assert_eq!(quantity_nanos("1e2147483647"), Ok(i128::MAX), "saturates");
        assert_eq!(
            quantity_nanos(&format!("{}Ei", "9".repeat(100))),
            Ok(i128::MAX)
        );
        assert_eq!(quantity_nanos("1e-2147483648"), Ok(1));
        assert_eq!(quantity_nanos(&format!("0.{}1", "0".repeat(50))), Ok(1));
    }

    #[test]
    fn milli_and_whole_values_round_up() {
        assert_eq!(milli_value("100m"), Ok(100));
        assert_eq!(milli_value("1.5"), Ok(1500));
        assert_eq!(milli_value("1n"), Ok(1));
        assert_eq!(value("1Gi"), Ok(1 << 30));
        assert_eq!(value("1.5"), Ok(2));
        assert_eq!(value("-1.5"), Ok(-1));
        assert_eq!(value("110"), Ok(110));
    }
}
