//! Exponential back-off between failed heartbeat requests (200 ms doubling up to 7 s by
//! default, as the kubelet's lease controller).

use std::time::{Duration, Instant};

/// First wait after a failed renewal.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between failed renewals.
pub const MAX_BACKOFF: Duration = Duration::from_secs(7);

/// Exponential back-off between failed attempts.
#[derive(Clone, Debug)]
pub(super) struct Backoff {
    initial: Duration,
    max: Duration,
    current: Option<Duration>,
    retry_at: Option<Instant>,
}

impl Backoff {
    pub(super) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            current: None,
            retry_at: None,
        }
    }

    /// Records a failure at `now`; returns the wait before the next attempt.
    pub(super) fn failed(&mut self, now: Instant) -> Duration {
        let wait = match self.current {
            None => self.initial,
            Some(previous) => previous.saturating_mul(2).min(self.max),
        };
        self.current = Some(wait);
        self.retry_at = Some(now + wait);
        wait
    }

    pub(super) fn succeeded(&mut self) {
        self.current = None;
        self.retry_at = None;
    }

    /// How long an attempt at `now` still has to wait.
    pub(super) fn remaining(&self, now: Instant) -> Duration {
        self.retry_at
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let start = Instant::now();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
        assert_eq!(backoff.remaining(start), Duration::ZERO);
        let waits: Vec<_> = (0..5).map(|_| backoff.failed(start)).collect();
        assert_eq!(
            waits,
            [200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
        assert_eq!(backoff.remaining(start), Duration::from_secs(1));
        assert_eq!(
            backoff.remaining(start + Duration::from_millis(300)),
            Duration::from_millis(700)
        );
        assert_eq!(
            backoff.remaining(start + Duration::from_secs(2)),
            Duration::ZERO
        );
        backoff.succeeded();
        assert_eq!(backoff.remaining(start), Duration::ZERO);
        assert_eq!(backoff.failed(start), Duration::from_millis(200));
    }
}
