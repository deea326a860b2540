//! Kubernetes' back-off for restarting crashed containers (CrashLoopBackOff) and for retrying
//! failed image pulls and container creations: 10 s, doubling, at most 5 minutes.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The first back-off.
pub const INITIAL: Duration = Duration::from_secs(10);
/// The longest back-off.
pub const MAX: Duration = Duration::from_secs(300);
/// A container that ran at least this long restarts without back-off (its crash loop ended).
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// How a pod restarts its containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Always (the default).
    Always,
    /// Only after a failure (exit code other than 0).
    OnFailure,
    /// Never.
    Never,
}

impl RestartPolicy {
    /// The policy named in a pod spec (`Always` when absent or unknown).
    pub fn parse(name: Option<&str>) -> Self {
        match name {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// The `n`-th back-off (`n` >= 1): 10 s, 20 s, 40 s, ... 300 s.
pub fn nth(n: u32) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    INITIAL
        .checked_mul(1 << (n - 1).min(16))
        .unwrap_or(MAX)
        .min(MAX)
}

/// How long after it exited a container with `restart_count` earlier restarts waits before
/// the next start. The first crash restarts at once; then the back-off doubles per restart.
pub fn crash_loop_delay(
    restart_count: u32,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
) -> Duration {
    let ran_for = match (started_at, finished_at) {
        (Some(start), Some(end)) => (end - start).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    };
    if ran_for >= RESET_AFTER {
        Duration::ZERO
    } else {
        nth(restart_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_five_minutes() {
        assert_eq!(nth(0), Duration::ZERO);
        assert_eq!(nth(1), Duration::from_secs(10));
        assert_eq!(nth(2), Duration::from_secs(20));
        assert_eq!(nth(5), Duration::from_secs(160));
        assert_eq!(nth(6), MAX);
        assert_eq!(nth(60), MAX);
    }

    #[test]
    fn a_long_run_resets_the_crash_loop() {
        let start = Utc::now();
        assert_eq!(
            crash_loop_delay(0, Some(start), Some(start)),
            Duration::ZERO
        );
        assert_eq!(
            crash_loop_delay(3, Some(start), Some(start + chrono::Duration::seconds(5))),
            Duration::from_secs(40)
        );
        assert_eq!(
            crash_loop_delay(3, Some(start), Some(start + chrono::Duration::minutes(11))),
            Duration::ZERO
        );
    }

    #[test]
    fn restart_policies() {
        assert!(RestartPolicy::parse(None).restarts(0));
        assert!(!RestartPolicy::parse(Some("OnFailure")).restarts(0));
        assert!(RestartPolicy::parse(Some("OnFailure")).restarts(1));
        assert!(!RestartPolicy::parse(Some("Never")).restarts(1));
    }
}
