//! Time arithmetic on numbers that come from objects (`terminationGracePeriodSeconds`,
//! DeleteOptions' `gracePeriodSeconds`, `tolerationSeconds`, `progressDeadlineSeconds`, ...):
//! it saturates instead of panicking or wrapping.
//!
//! Kubernetes accepts any non-negative int64 in most of these fields and computes with Go's
//! `time.Duration`, which silently wraps past about 292 years. Here a time plus seconds stops
//! at [`latest`], the last time a Go client parses (`metav1.Time` is RFC 3339 with a four-digit
//! year), so a stored `deletionTimestamp` always reads back; and seconds become a
//! [`std::time::Duration`] of at most Go's longest `time.Duration`, so adding one to an
//! `Instant` cannot overflow.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// 9999-12-31T23:59:59Z in Unix seconds.
const LATEST_SECONDS: i64 = 253_402_300_799;
/// 0000-01-01T00:00:00Z in Unix seconds.
const EARLIEST_SECONDS: i64 = -62_167_219_200;
/// Go's longest `time.Duration` (`math.MaxInt64` nanoseconds), in whole seconds.
const LONGEST_SECONDS: u64 = i64::MAX.unsigned_abs() / 1_000_000_000;

/// The latest time a Go client parses: 9999-12-31T23:59:59Z.
pub fn latest() -> DateTime<Utc> {
    DateTime::from_timestamp(LATEST_SECONDS, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The earliest time a Go client parses: 0000-01-01T00:00:00Z.
pub fn earliest() -> DateTime<Utc> {
    DateTime::from_timestamp(EARLIEST_SECONDS, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `seconds` after `at` (before it when negative), kept between [`earliest`] and [`latest`].
pub fn plus_seconds(at: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    let bound = if seconds < 0 { earliest() } else { latest() };
    TimeDelta::try_seconds(seconds)
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(bound)
        .clamp(earliest(), latest())
}

/// A number of seconds as a [`Duration`]: zero when negative, at most Go's longest
/// `time.Duration` (about 292 years).
pub fn seconds(seconds: i64) -> Duration {
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0).min(LONGEST_SECONDS))
}

/// Parses Go's duration syntax (`time.ParseDuration`), as Kubernetes' flags and `?timeout=`
/// take it: `0`, or numbers with units `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`, one after
/// another (`1h30m`, `1.5s`). Negative durations and those past Go's longest are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration {text:?}: {why}");
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.starts_with('-') {
        return Err(invalid("negative"));
    }
    if rest.is_empty() {
        return Err(invalid("empty"));
    }
    // Nanoseconds; Go refuses more than i64::MAX of them.
    let limit = u128::from(i64::MAX.unsigned_abs());
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let whole_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (whole, after) = rest.split_at(whole_end);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(after) => {
                let end = after
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(after.len());
                after.split_at(end)
            }
            None => ("", after),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid("a number is missing"));
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(invalid("a unit (ns, us, ms, s, m, h) is missing")),
            other => return Err(invalid(&format!("unknown unit {other:?}"))),
        };
        let too_long = || invalid("longer than 2562047h");
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| too_long())?
        };
        // The fraction's digits past nanosecond precision of the largest unit do not count.
        let mut part = whole.checked_mul(unit_nanos).ok_or_else(too_long)?;
        let mut scale = unit_nanos;
        for digit in fraction.bytes().take(13) {
            scale /= 10;
            part += u128::from(digit - b'0') * scale;
        }
        total = total
            .checked_add(part)
            .filter(|t| *t <= limit)
            .ok_or_else(too_long)?;
        rest = after;
    }
    let nanos = u64::try_from(total).map_err(|_| invalid("longer than 2562047h"))?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_time_plus_seconds_stops_at_the_times_go_parses() {
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(plus_seconds(now, 30), at("2026-01-01T00:00:30Z"));
        assert_eq!(plus_seconds(now, -30), at("2025-12-31T23:59:30Z"));
        assert_eq!(latest(), at("9999-12-31T23:59:59Z"));
        assert_eq!(earliest(), at("0000-01-01T00:00:00Z"));
        // Past what chrono's TimeDelta holds, past what DateTime holds, past year 9999.
        for huge in [i64::MAX, i64::MAX / 1000, 1 << 40, 300_000_000_000] {
            assert_eq!(plus_seconds(now, huge), latest(), "{huge}");
            assert_eq!(plus_seconds(now, -huge), earliest(), "-{huge}");
        }
        assert_eq!(plus_seconds(now, i64::MIN), earliest());
        // What a Go client reads back.
        assert_eq!(
            plus_seconds(now, i64::MAX).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "9999-12-31T23:59:59Z"
        );
    }

    #[test]
    fn seconds_become_a_duration_that_an_instant_can_take() {
        assert_eq!(seconds(30), Duration::from_secs(30));
        assert_eq!(seconds(-5), Duration::ZERO);
        assert_eq!(seconds(i64::MIN), Duration::ZERO);
        let longest = seconds(i64::MAX);
        assert_eq!(longest, Duration::from_secs(9_223_372_036));
        // The sums that panicked with a huge grace period.
        assert!(std::time::Instant::now().checked_add(longest).is_some());
        assert!(tokio::time::Instant::now().checked_add(longest).is_some());
        assert!(std::time::SystemTime::now().checked_add(longest).is_some());
    }

    #[test]
    fn durations_parse_as_go_parses_them() {
        let ok = |text: &str, nanos: u64| {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_nanos(nanos)),
                "{text}"
            )
        };
        ok("0", 0);
        ok("40s", 40_000_000_000);
        ok("+5m", 300_000_000_000);
        ok("1h30m", 5_400_000_000_000);
        ok("1.5h", 5_400_000_000_000);
        ok(".5s", 500_000_000);
        ok("1.s", 1_000_000_000);
        ok("300ms", 300_000_000);
        ok("2us", 2_000);
        ok("2µs", 2_000);
        ok("7ns", 7);
        ok("1.0000000001s", 1_000_000_000);
        ok("2562047h47m16.854775807s", i64::MAX.unsigned_abs());
        for bad in [
            "",
            "5",
            "-5s",
            "1d",
            "1w",
            "s",
            ".s",
            "1.5",
            "1h-5m",
            "2562047h47m16.854775808s",
            "99999999999999999999999999999999999999999h",
            "1e3s",
            " 5s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
    }
}
