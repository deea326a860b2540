//! Keeps the master's clients of the API server running: a controller or the scheduler that
//! panics, fails or stops by itself is started again after a back-off
//! ([`skiff_api::restart`]: one second doubling to a minute), with an error line naming it
//! and `skiff_controller_restarts_total{controller="..."}` counting it on `/metrics`.
//!
//! kube-controller-manager stops the whole process when a controller fails (its supervisor is
//! the kubelet or systemd that restarts it); here the controllers share the API server's
//! process, so each is restarted on its own, and the others and the API server go on.

use std::sync::LazyLock;
use std::time::Instant;

use futures::FutureExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use skiff_api::restart::{RestartBackoff, panic_message};
use tracing::error;

/// The label of [`restarts`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    /// The component's name as `--controllers` names it (`replicaset`, `nodelifecycle`),
    /// or `scheduler`.
    pub controller: String,
}

/// The restarts of every supervised component, by name. One family for the process (as
/// component-base's legacy registry is), which the API server's `/metrics` exposes.
pub fn restarts() -> &'static Family<ControllerLabel, Counter> {
    static RESTARTS: LazyLock<Family<ControllerLabel, Counter>> = LazyLock::new(Family::default);
    &RESTARTS
}

/// How a component's run ended when it returned.
pub trait Outcome {
    /// What went wrong; `None` when it returned without saying.
    fn failure(self) -> Option<String>;
}

impl Outcome for () {
    fn failure(self) -> Option<String> {
        None
    }
}

impl<E: std::fmt::Display> Outcome for Result<(), E> {
    fn failure(self) -> Option<String> {
        self.err().map(|e| e.to_string())
    }
}

/// Runs the component `start` makes until `shutdown` resolves, making and starting a new one
/// after a back-off whenever it panics or ends before `shutdown` (the components end at
/// `shutdown` themselves). The first one is made now, so that it asks the shared informers
/// for what it reads before they start.
pub fn supervise<F, Fut>(
    name: &'static str,
    mut start: F,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Outcome + Send,
{
    let first = start();
    async move {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut next = Some(first);
        let mut backoff = RestartBackoff::default();
        loop {
            let component = next.take().unwrap_or_else(&mut start);
            let started = Instant::now();
            let mut task = tokio::spawn(component);
            let ended = tokio::select! {
                ended = &mut task => ended,
                // At once, not when the component next looks: a master that lost the lead
                // must not act as a second leader.
                () = &mut shutdown => return task.abort(),
            };
            // It ended because the shutdown came, and saw it first.
            if (&mut shutdown).now_or_never().is_some() {
                return;
            }
            let why = match ended {
                Ok(outcome) => outcome
                    .failure()
                    .unwrap_or_else(|| String::from("it stopped by itself")),
                Err(err) if err.is_panic() => {
                    format!("panicked: {}", panic_message(&*err.into_panic()))
                }
                Err(err) => err.to_string(),
            };
            let wait = backoff.failed(started.elapsed());
            restarts()
                .get_or_create(&ControllerLabel {
                    controller: name.to_owned(),
                })
                .inc();
            error!(
                controller = name,
                failures = backoff.failures(),
                "{name} failed ({why}); restarting it in {wait:?}"
            );
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use tokio::sync::{oneshot, watch};

    use super::*;

    fn count(name: &str) -> u64 {
        restarts()
            .get_or_create(&ControllerLabel {
                controller: name.to_owned(),
            })
            .get()
    }

    async fn stopped(mut rx: watch::Receiver<()>) {
        while rx.changed().await.is_ok() {}
    }

    #[tokio::test]
    async fn a_component_that_panics_is_restarted_after_a_backoff_and_counted() {
        let starts = Arc::new(AtomicU32::new(0));
        let (stop_tx, stop_rx) = watch::channel(());
        let (second_tx, second_rx) = oneshot::channel();
        let mut second_tx = Some(second_tx);
        let supervised = {
            let starts = starts.clone();
            let component_stop = stop_rx.clone();
            supervise(
                "test-panics-once",
                move || {
                    let n = starts.fetch_add(1, Ordering::SeqCst);
                    let started = second_tx.take_if(|_| n == 1);
                    let shutdown = stopped(component_stop.clone());
                    async move {
                        assert!(n > 0, "the first run panics");
                        if let Some(started) = started {
                            let _ = started.send(Instant::now());
                        }
                        shutdown.await;
                    }
                },
                stopped(stop_rx),
            )
        };
        // Made at once, before anything runs.
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        let begun = Instant::now();
        let supervisor = tokio::spawn(supervised);
        let restarted_at = second_rx.await.expect("started again");
        assert!(restarted_at - begun >= skiff_api::restart::INITIAL);
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        assert_eq!(count("test-panics-once"), 1);
        let metrics = crate::apiserver::metrics::Metrics::new().render();
        assert!(
            metrics
                .lines()
                .any(|l| l == r#"skiff_controller_restarts_total{controller="test-panics-once"} 1"#),
            "{metrics}"
        );
        // The shutdown ends the component and the supervisor, without another restart.
        drop(stop_tx);
        supervisor.await.expect("the supervisor ends");
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        assert_eq!(count("test-panics-once"), 1);
    }

    #[tokio::test]
    async fn a_component_that_fails_or_stops_by_itself_is_restarted_with_a_growing_backoff() {
        let starts = Arc::new(AtomicU32::new(0));
        let (stop_tx, stop_rx) = watch::channel(());
        let supervisor = {
            let starts = starts.clone();
            tokio::spawn(supervise(
                "test-fails",
                move || {
                    let n = starts.fetch_add(1, Ordering::SeqCst);
                    async move {
                        match n % 2 {
                            0 => Err("the watch broke"),
                            _ => Ok(()),
                        }
                    }
                },
                stopped(stop_rx),
            ))
        };
        // Starts at 0, 1 and 3 s (waits of 1 and 2 s), each ending at once; the next comes
        // at 7 s.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert_eq!(count("test-fails"), 3);
        drop(stop_tx);
        supervisor.await.expect("the supervisor ends");
        assert_eq!(starts.load(Ordering::SeqCst), 3);
    }
}
