//! Kubernetes resource quantities (`500m`, `2`, `128Mi`, `1G`, `1e3`) as numbers.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The value of a quantity, or `None` if it is not one.
pub fn parse(quantity: &Quantity) -> Option<f64> {
    parse_str(quantity.0.trim())
}

fn parse_str(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "Pi" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "Ei" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        exponent if exponent.starts_with(['e', 'E']) => 10f64.powi(exponent[1..].parse().ok()?),
        _ => return None,
    };
    let value = number * factor;
    value.is_finite().then_some(value)
}

/// CPU in millicores, rounded up (`250m` -> 250, `1` -> 1000).
pub fn millicores(quantity: &Quantity) -> Option<i64> {
    parse(quantity).map(|cores| (cores * 1000.0).ceil() as i64)
}

/// Bytes, rounded up.
pub fn bytes(quantity: &Quantity) -> Option<i64> {
    parse(quantity).map(|b| b.ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity(s.to_owned())
    }

    #[test]
    fn parses_kubernetes_quantities() {
        assert_eq!(millicores(&q("250m")), Some(250));
        assert_eq!(millicores(&q("1.5")), Some(1500));
        assert_eq!(millicores(&q("2")), Some(2000));
        assert_eq!(bytes(&q("128Mi")), Some(128 * 1024 * 1024));
        assert_eq!(bytes(&q("1G")), Some(1_000_000_000));
        assert_eq!(bytes(&q("1e3")), Some(1000));
        assert_eq!(bytes(&q("12Qi")), None);
        assert_eq!(bytes(&q("")), None);
    }
}
