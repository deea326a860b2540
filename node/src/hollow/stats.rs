//! What the hollow nodes did: counters and Lease renewal latencies, and the report line
//! printed on stdout every `--hollow-report-seconds`, which `cargo xtask bench scale` reads:
//!
//! `hollow nodes=.. registered=.. renewals=.. renewals_per_s=.. renew_p50_ms=..
//! renew_p99_ms=.. renew_errors=.. status_updates=.. status_errors=.. pods_running=..
//! pods_deleted=.. pod_errors=.. pods_max_per_node=.. cpu_s=.. rss_mb=..`
//!
//! Rates and percentiles are of the last period; counts since the start.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Renewal latencies kept per report period at most (the rest are counted, not timed).
const MAX_SAMPLES: usize = 1 << 20;

/// The simulator's counters; one thread, so plain cells.
#[derive(Debug, Default)]
pub struct Stats {
    registered: Cell<u64>,
    renewals: Cell<u64>,
    renew_errors: Cell<u64>,
    status_updates: Cell<u64>,
    status_errors: Cell<u64>,
    pods_running: Cell<u64>,
    pods_deleted: Cell<u64>,
    pod_errors: Cell<u64>,
    /// Renewal latencies of this period, in microseconds.
    latencies: RefCell<Vec<u32>>,
}

impl Stats {
    pub(super) fn registered(&self) {
        bump(&self.registered);
    }

    pub(super) fn renewed(&self, took: Duration) {
        bump(&self.renewals);
        let mut latencies = self.latencies.borrow_mut();
        if latencies.len() < MAX_SAMPLES {
            latencies.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        }
    }

    /// Adds what another thread counted (the heartbeat ring's).
    pub(super) fn add(&self, tally: Tally) {
        let add = |counter: &Cell<u64>, n: u64| counter.set(counter.get().saturating_add(n));
        add(&self.renewals, tally.renewals.len() as u64);
        add(&self.renew_errors, tally.renew_errors);
        add(&self.status_updates, tally.status_updates);
        add(&self.status_errors, tally.status_errors);
        let mut latencies = self.latencies.borrow_mut();
        let room = MAX_SAMPLES.saturating_sub(latencies.len());
        latencies.extend(tally.renewals.into_iter().take(room));
    }

    pub(super) fn renew_failed(&self) {
        bump(&self.renew_errors);
    }

    pub(super) fn status_written(&self, ok: bool) {
        bump(if ok {
            &self.status_updates
        } else {
            &self.status_errors
        });
    }

    pub(super) fn pod_running(&self) {
        bump(&self.pods_running);
    }

    pub(super) fn pod_gone(&self, was_running: bool) {
        if was_running {
            self.pods_running
                .set(self.pods_running.get().saturating_sub(1));
        }
        bump(&self.pods_deleted);
    }

    pub(super) fn pod_failed(&self) {
        bump(&self.pod_errors);
    }

    /// Lease renewals so far.
    pub fn renewals(&self) -> u64 {
        self.renewals.get()
    }

    /// Pods whose status says Running now.
    pub fn pods_running(&self) -> u64 {
        self.pods_running.get()
    }

    /// This period's latencies, sorted; the period starts again.
    fn take_latencies(&self) -> Vec<u32> {
        let mut latencies = std::mem::take(&mut *self.latencies.borrow_mut());
        latencies.sort_unstable();
        latencies
    }
}

/// Heartbeat counts kept on another thread, handed to [`Stats`] now and then.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Each renewal's latency in microseconds.
    pub(super) renewals: Vec<u32>,
    pub(super) renew_errors: u64,
    pub(super) status_updates: u64,
    pub(super) status_errors: u64,
}

impl Tally {
    pub(super) fn renewed(&mut self, took: Duration) {
        if self.renewals.len() < MAX_SAMPLES {
            self.renewals
                .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        }
    }
}

fn bump(counter: &Cell<u64>) {
    counter.set(counter.get().saturating_add(1));
}

/// The `q` quantile (0..=1) of sorted `values`, in milliseconds.
fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let last = sorted.len() - 1;
    // Rounded to the nearest rank; `q` is within 0..=1, so the index is within the slice.
    let rank = ((last as f64) * q.clamp(0.0, 1.0)).round() as usize;
    f64::from(sorted[rank.min(last)]) / 1000.0
}

/// Prints a report line every `period` until the process ends; `most_pods` says how many pods
/// the busiest node holds.
pub(super) async fn report(
    stats: Rc<Stats>,
    nodes: u32,
    period: Duration,
    most_pods: impl Fn() -> usize,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last = Instant::now();
    let mut last_renewals = stats.renewals();
    loop {
        tick.tick().await;
        let elapsed = last.elapsed().as_secs_f64().max(1e-3);
        last = Instant::now();
        let renewals = stats.renewals();
        let latencies = stats.take_latencies();
        let (cpu_s, rss_mb) = own_usage();
        println!(
            "hollow nodes={nodes} registered={} renewals={renewals} renewals_per_s={:.0} renew_p50_ms={:.2} renew_p99_ms={:.2} renew_errors={} status_updates={} status_errors={} pods_running={} pods_deleted={} pod_errors={} pods_max_per_node={} cpu_s={cpu_s:.2} rss_mb={rss_mb:.1}",
            stats.registered.get(),
            renewals.saturating_sub(last_renewals) as f64 / elapsed,
            quantile_ms(&latencies, 0.5),
            quantile_ms(&latencies, 0.99),
            stats.renew_errors.get(),
            stats.status_updates.get(),
            stats.status_errors.get(),
            stats.pods_running.get(),
            stats.pods_deleted.get(),
            stats.pod_errors.get(),
            most_pods(),
        );
        last_renewals = renewals;
    }
}

/// This process's CPU seconds (all its threads) (user + system) and resident memory in MiB, from /proc.
fn own_usage() -> (f64, f64) {
    // SAFETY: getrusage writes one rusage into the valid, zeroed struct it is given.
    let cpu = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0 {
            let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            seconds(usage.ru_utime) + seconds(usage.ru_stime)
        } else {
            0.0
        }
    };
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmRSS:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
        })
        .map_or(0.0, |kib| kib / 1024.0);
    (cpu, rss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_sorted_microseconds() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(quantile_ms(&sorted, 0.5), 51.0);
        assert_eq!(quantile_ms(&sorted, 0.99), 99.0);
        assert_eq!(quantile_ms(&sorted, 1.0), 100.0);
        assert_eq!(quantile_ms(&[], 0.99), 0.0);
    }

    #[test]
    fn counters_and_the_period() {
        let stats = Stats::default();
        stats.renewed(Duration::from_millis(3));
        stats.renewed(Duration::from_millis(1));
        stats.pod_running();
        stats.pod_gone(true);
        stats.pod_gone(false);
        assert_eq!(stats.renewals(), 2);
        assert_eq!(stats.pods_running(), 0);
        assert_eq!(stats.pods_deleted.get(), 2);
        assert_eq!(stats.take_latencies(), vec![1000, 3000]);
        assert!(stats.take_latencies().is_empty());
        let mut tally = Tally::default();
        tally.renewed(Duration::from_micros(700));
        tally.renew_errors = 2;
        tally.status_updates = 3;
        stats.add(tally);
        assert_eq!(stats.renewals(), 3);
        assert_eq!(
            (stats.renew_errors.get(), stats.status_updates.get()),
            (2, 3)
        );
        assert_eq!(stats.take_latencies(), vec![700]);
    }
}
