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
    /// Larger than [`ParsedQuantity`] holds exactly (Kubernetes would carry it as an arbitrary
    /// precision decimal; nothing a cluster counts comes near).
    #[error("must be no more than 1e27 in magnitude")]
    OutOfRange,
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

/// How a quantity is written (Kubernetes' `resource.Format`): the suffixes of its canonical
/// form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Powers of ten as exponents: `1e3`, `5e-3`.
    DecimalExponent,
    /// Powers of two: `1Ki`, `1536Mi`.
    BinarySI,
    /// Powers of ten as SI suffixes: `500m`, `2k`, `3`.
    DecimalSI,
}

/// One unit in nano units.
const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// The largest magnitude a [`ParsedQuantity`] holds: 10^27 units (10^36 nano units), far
/// beyond anything a cluster counts, and small enough that a sum of a hundred of them stays
/// exact in `i128`.
const MAX_NANOS: i128 = 1_000_000_000_000_000_000_000_000_000_000_000_000;

/// A quantity as Kubernetes' `resource.Quantity` holds it once parsed: its exact value and the
/// format it was written in. Its text ([`std::fmt::Display`]) is Kubernetes' canonical form,
/// which keeps the format where it can: `1536Mi` stays `1536Mi`, `1.5` is `1500m`, `1000m` is
/// `1`, `2e3` is `2e3`, and a binary quantity below 1024 or not whole is written in decimal.
///
/// Quantities compare by value (`Quantity.Cmp`), whatever their format.
#[derive(Clone, Copy, Debug)]
pub struct ParsedQuantity {
    nanos: i128,
    format: Format,
}

impl ParsedQuantity {
    /// Parses a quantity as `resource.ParseQuantity` does (rounding up below a nano unit);
    /// [`QuantityError::OutOfRange`] above 10^27 in magnitude.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let parts = split_quantity(s)?;
        let format = match parts.suffix {
            [b'e' | b'E', _, ..] => Format::DecimalExponent,
            [_, b'i'] => Format::BinarySI,
            _ => Format::DecimalSI,
        };
        let nanos = quantity_nanos(s)?;
        if !(-MAX_NANOS..=MAX_NANOS).contains(&nanos) {
            return Err(QuantityError::OutOfRange);
        }
        // A binary quantity below one is written in decimal (ParseQuantity does the same).
        let format = if format == Format::BinarySI && nanos.abs() < NANOS_PER_UNIT {
            Format::DecimalSI
        } else {
            format
        };
        Ok(Self { nanos, format })
    }

    /// A count of things (`resource.NewQuantity(n, DecimalSI)`): pods, services, objects.
    pub fn from_count(n: u64) -> Self {
        Self {
            nanos: i128::from(n).saturating_mul(NANOS_PER_UNIT),
            format: Format::DecimalSI,
        }
    }

    /// Zero, written `0`.
    pub fn zero() -> Self {
        Self {
            nanos: 0,
            format: Format::DecimalSI,
        }
    }

    /// The value in nano units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Adds `other` (`Quantity.Add`): a zero quantity takes the other's format. Saturates far
    /// beyond any parsed value instead of overflowing.
    pub fn add(&mut self, other: &Self) {
        if self.nanos == 0 {
            self.format = other.format;
        }
        self.nanos = self.nanos.saturating_add(other.nanos);
    }

    /// Subtracts `other` (`Quantity.Sub`), as [`ParsedQuantity::add`] adds.
    pub fn sub(&mut self, other: &Self) {
        if self.nanos == 0 {
            self.format = other.format;
        }
        self.nanos = self.nanos.saturating_sub(other.nanos);
    }
}

impl PartialEq for ParsedQuantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for ParsedQuantity {}

impl PartialOrd for ParsedQuantity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ParsedQuantity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl std::str::FromStr for ParsedQuantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl std::fmt::Display for ParsedQuantity {
    /// Kubernetes' canonical form (`Quantity.CanonicalizeBytes`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let whole = self.nanos % NANOS_PER_UNIT == 0;
        let binary = self.format == Format::BinarySI
            && whole
            && self.nanos.unsigned_abs() >= (1024 * NANOS_PER_UNIT).unsigned_abs();
        if binary {
            // The largest power of 1024 that divides the value, up to Ei.
            const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
            let mut mantissa = self.nanos / NANOS_PER_UNIT;
            let mut power = 0;
            while power + 1 < SUFFIXES.len() && mantissa % 1024 == 0 {
                mantissa /= 1024;
                power += 1;
            }
            return write!(f, "{mantissa}{}", SUFFIXES[power]);
        }
        // The decimal mantissa without trailing zeros, its exponent lowered to a multiple of 3.
        let mut mantissa = self.nanos;
        let mut exponent: i32 = -9;
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exponent += 1;
        }
        let lower = exponent.rem_euclid(3);
        mantissa *= 10i128.pow(lower.unsigned_abs());
        exponent -= lower;
        if self.format == Format::DecimalExponent {
            return match exponent {
                0 => write!(f, "{mantissa}"),
                e => write!(f, "{mantissa}e{e}"),
            };
        }
        // SI suffixes end at E (10^18); larger values keep it with a larger mantissa.
        while exponent > 18 {
            mantissa *= 1000;
            exponent -= 3;
        }
        let suffix = match exponent {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            _ => "",
        };
        write!(f, "{mantissa}{suffix}")
    }
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
    #[test]
    fn parsed_quantities_print_in_kubernetes_canonical_form() {
        let canonical = |s: &str| ParsedQuantity::parse(s).expect(s).to_string();
        for (input, expected) in [
            ("0", "0"),
            ("0Gi", "0"),
            ("1", "1"),
            ("1000m", "1"),
            ("1.5", "1500m"),
            ("0.5", "500m"),
            ("100m", "100m"),
            ("1000", "1k"),
            ("1500000", "1500k"),
            ("1n", "1n"),
            ("0.1n", "1n"),
            ("1Ki", "1Ki"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("1.5Gi", "1536Mi"),
            ("1000Ki", "1000Ki"),
            ("512", "512"),
            ("0.5Gi", "512Mi"),
            ("0.5Ki", "512"),
            ("0.1Ki", "102400m"),
            ("2e3", "2e3"),
            ("1.5e3", "1500"),
            ("1e-3", "1e-3"),
            ("5E6", "5e6"),
            ("1E", "1E"),
            ("1000E", "1000E"),
            ("-1.5", "-1500m"),
            ("-2Gi", "-2Gi"),
            ("1M", "1M"),
            ("2G", "2G"),
        ] {
            assert_eq!(canonical(input), expected, "{input}");
        }
    }

    #[test]
    fn parsed_quantities_add_compare_and_keep_the_first_format() {
        let q = |s: &str| ParsedQuantity::parse(s).expect(s);
        let mut sum = ParsedQuantity::zero();
        sum.add(&q("128Mi"));
        sum.add(&q("128Mi"));
        assert_eq!(
            sum.to_string(),
            "256Mi",
            "zero takes the first term's format"
        );
        sum.add(&q("100M"));
        assert_eq!(
            sum.to_string(),
            "368435456",
            "binary but not a power of 1024"
        );
        let mut cpu = q("100m");
        cpu.add(&q("0.9"));
        assert_eq!(cpu.to_string(), "1");
        cpu.sub(&q("1"));
        assert!(cpu.is_zero());
        assert_eq!(q("1Gi"), q("1073741824"), "equal by value");
        assert!(q("1Gi") > q("1G"));
        assert!(q("999m") < q("1"));
        assert_eq!(ParsedQuantity::from_count(3).to_string(), "3");
        assert!(q("-1").is_negative());
    }

    #[test]
    fn absurd_quantities_are_refused_and_sums_never_overflow() {
        assert_eq!(
            ParsedQuantity::parse("1e28"),
            Err(QuantityError::OutOfRange)
        );
        assert_eq!(
            ParsedQuantity::parse(&"9".repeat(60)),
            Err(QuantityError::OutOfRange)
        );
        assert_eq!(
            ParsedQuantity::parse("-1e30"),
            Err(QuantityError::OutOfRange)
        );
        let largest = ParsedQuantity::parse("1e27").expect("the largest");
        let mut sum = ParsedQuantity::zero();
        for _ in 0..1000 {
            sum.add(&largest);
        }
        assert!(sum > largest, "saturates instead of wrapping");
        let _ = sum.to_string();
        let mut low = ParsedQuantity::parse("-1e27").expect("the smallest");
        for _ in 0..1000 {
            low.sub(&largest);
        }
        assert!(low.is_negative());
        let _ = low.to_string();
    }
}
