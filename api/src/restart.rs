//! Restarting a part that failed: the master's controllers and scheduler, the node agent's pod
//! workers. A part that panicked or stopped by itself starts again after a back-off that
//! doubles from one second to a minute, and starts over at one second once a run lasted
//! twice the longest back-off (as client-go's `flowcontrol.Backoff` forgets an entry).

use std::any::Any;
use std::time::Duration;

/// The first wait before a restart.
pub const INITIAL: Duration = Duration::from_secs(1);
/// The longest wait before a restart.
pub const MAX: Duration = Duration::from_secs(60);
/// A run at least this long was healthy: the next failure waits [`INITIAL`] again.
pub const RESET_AFTER: Duration = Duration::from_secs(120);

/// The back-off between the restarts of one part.
#[derive(Clone, Debug, Default)]
pub struct RestartBackoff {
    failures: u32,
}

impl RestartBackoff {
    /// Records a failure after a run of `ran_for`; returns how long to wait before the next
    /// start.
    pub fn failed(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= RESET_AFTER {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        INITIAL
            .checked_mul(1 << (self.failures - 1).min(16))
            .unwrap_or(MAX)
            .min(MAX)
    }

    /// The failures counted since the back-off last started over.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// The message of a panic's payload (`panic!("...")` carries a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| String::from("a panic without a message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_to_a_minute_and_starts_over_after_a_healthy_run() {
        let mut backoff = RestartBackoff::default();
        let short = Duration::from_millis(10);
        let waits: Vec<u64> = (0..9).map(|_| backoff.failed(short).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff.failures(), 9);
        assert_eq!(backoff.failed(RESET_AFTER), INITIAL);
        assert_eq!(backoff.failures(), 1);
        for _ in 0..100 {
            assert!(backoff.failed(short) <= MAX);
        }
    }

    #[test]
    fn panic_messages_are_read_from_both_payloads() {
        let text = std::panic::catch_unwind(|| panic!("plain")).expect_err("panics");
        assert_eq!(panic_message(&*text), "plain");
        let formatted = std::panic::catch_unwind(|| panic!("with {}", 2)).expect_err("panics");
        assert_eq!(panic_message(&*formatted), "with 2");
    }
}
