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
}
