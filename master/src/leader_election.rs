//! Leader election on a Lease, as client-go's `leaderelection` package does it for
//! kube-scheduler and kube-controller-manager (`--leader-elect`): of several masters on one
//! etcd, one at a time runs the scheduler and the controllers, while every one serves the API.
//!
//! A candidate takes the Lease (`kube-system/<name>`) when nobody holds it or when the
//! holder's record has not changed for the lease's duration, measured on the candidate's own
//! clock from when it saw the record change (never from the record's `renewTime`, so clocks
//! that disagree do not matter). The leader renews every retry period; when no renewal has
//! succeeded for the renew deadline (shorter than the lease's duration) it stops leading at
//! once, before anyone else may take over. On a clean shutdown it gives the Lease up, so the
//! next master need not wait.

use std::time::{Duration, Instant};

use chrono::Utc;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use rand::Rng;
use tracing::{info, warn};

/// The namespace of the election Leases.
pub const NAMESPACE: &str = "kube-system";

/// The timings of an election (kube-controller-manager's `--leader-elect-*` flags).
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// How long a record that does not change keeps others out (`15s`).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading (`10s`).
    pub renew_deadline: Duration,
    /// Between tries to take or renew the Lease (`2s`).
    pub retry_period: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl Timings {
    /// Refuses timings under which two leaders could overlap, as client-go does.
    pub fn check(&self) -> Result<(), String> {
        if self.lease_duration <= self.renew_deadline {
            return Err(String::from(
                "--leader-elect-lease-duration must be longer than --leader-elect-renew-deadline",
            ));
        }
        // client-go's JitterFactor (1.2) on the retry period must fit in the deadline.
        if self.renew_deadline.as_secs_f64() <= 1.2 * self.retry_period.as_secs_f64() {
            return Err(String::from(
                "--leader-elect-renew-deadline must be longer than 1.2 times --leader-elect-retry-period",
            ));
        }
        if self.retry_period.is_zero() {
            return Err(String::from(
                "--leader-elect-retry-period must be more than 0",
            ));
        }
        Ok(())
    }
}

/// What a candidate remembers of the record it last saw.
#[derive(Clone, Debug, Default, PartialEq)]
struct Observed {
    /// The record's holder and lease duration, as read.
    spec: Option<LeaseSpec>,
    /// When this candidate saw the record change.
    at: Option<Instant>,
}

/// What to write to the Lease, if anything, given the record read (`None`: no Lease yet).
#[derive(Debug, PartialEq)]
enum Decision {
    /// Someone else holds a lease that is still valid.
    Wait,
    /// Write this spec (take, or renew).
    Write(LeaseSpec),
}

/// One candidate for leading `name`.
pub struct Elector {
    leases: Api<Lease>,
    name: String,
    identity: String,
    timings: Timings,
    observed: Observed,
}

impl Elector {
    /// A candidate for Lease `kube-system/<name>` with identity `<hostname>_<uuid>`, as
    /// client-go names candidates.
    pub fn new(client: kube::Client, name: &str, timings: Timings) -> Elector {
        let host = skiff_api::host::hostname();
        Elector {
            leases: Api::namespaced(client, NAMESPACE),
            name: name.to_owned(),
            identity: format!("{host}_{}", uuid::Uuid::new_v4()),
            timings,
            observed: Observed::default(),
        }
    }

    /// This candidate's identity (the Lease's `holderIdentity` while it leads).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this candidate leads (retrying every retry period, jittered).
    pub async fn acquire(&mut self) {
        info!(lease = %self.name, identity = %self.identity, "waiting to lead");
        loop {
            if self.try_acquire_or_renew().await {
                info!(lease = %self.name, identity = %self.identity, "leading");
                return;
            }
            let jitter = rand::rng().random_range(0.0..0.2);
            tokio::time::sleep(self.timings.retry_period.mul_f64(1.0 + jitter)).await;
        }
    }

    /// Renews every retry period while leading; returns when a renewal has not succeeded
    /// for the renew deadline (the lead is lost: stop leading now).
    pub async fn keep(&mut self) {
        let mut last_renewal = Instant::now();
        loop {
            tokio::time::sleep(self.timings.retry_period).await;
            let deadline = last_renewal + self.timings.renew_deadline;
            // A renewal counts from when it was asked for: others count from after that.
            let asked = Instant::now();
            let attempt = tokio::time::timeout_at(deadline.into(), self.try_acquire_or_renew());
            match attempt.await {
                Ok(true) => last_renewal = asked,
                Ok(false) if Instant::now() < deadline && self.leading() => {}
                _ => {
                    warn!(lease = %self.name, identity = %self.identity, "lost the lead");
                    return;
                }
            }
        }
    }

    /// Gives the Lease up if this candidate holds it (on a clean shutdown).
    pub async fn release(&mut self) {
        if !self.leading() {
            return;
        }
        let Ok(Some(mut lease)) = self.leases.get_opt(&self.name).await else {
            return;
        };
        let now = MicroTime(Utc::now());
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        match self
            .leases
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!(lease = %self.name, "gave the lead up"),
            Err(e) => warn!(lease = %self.name, error = %e, "giving the lead up"),
        }
    }

    /// Whether the last record seen names this candidate.
    fn leading(&self) -> bool {
        self.observed
            .spec
            .as_ref()
            .and_then(|spec| spec.holder_identity.as_deref())
            == Some(self.identity.as_str())
    }

    /// One try, as client-go's `tryAcquireOrRenew`: true when this candidate holds the Lease
    /// now.
    async fn try_acquire_or_renew(&mut self) -> bool {
        let now = Instant::now();
        let current = match self.leases.get_opt(&self.name).await {
            Ok(lease) => lease,
            Err(e) => {
                warn!(lease = %self.name, error = %e, "reading the election Lease");
                return false;
            }
        };
        let Some(mut lease) = current else {
            let spec = self.record(None);
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(NAMESPACE.to_owned()),
                    ..Default::default()
                },
                spec: Some(spec.clone()),
            };
            return match self.leases.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.observed = Observed {
                        spec: Some(spec),
                        at: Some(now),
                    };
                    true
                }
                Err(_) => false,
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if self.observed.spec.as_ref() != Some(&spec) {
            self.observed = Observed {
                spec: Some(spec.clone()),
                at: Some(now),
            };
        }
        match decide(
            &self.identity,
            &self.observed,
            now,
            self.record(Some(&spec)),
        ) {
            Decision::Wait => false,
            Decision::Write(next) => {
                lease.spec = Some(next.clone());
                match self
                    .leases
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => {
                        self.observed = Observed {
                            spec: Some(next),
                            at: Some(now),
                        };
                        true
                    }
                    Err(_) => false,
                }
            }
        }
    }

    /// The record this candidate writes now, carrying over what `current` says.
    fn record(&self, current: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(Utc::now());
        let seconds = i32::try_from(self.timings.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let holds = current
            .and_then(|spec| spec.holder_identity.as_deref())
            .is_some_and(|holder| holder == self.identity);
        let transitions = current.and_then(|spec| spec.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if holds {
                current.and_then(|spec| spec.acquire_time.clone())
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(if holds || current.is_none() {
                transitions
            } else {
                transitions.saturating_add(1)
            }),
            ..Default::default()
        }
    }
}

/// Whether `identity` may write `next` over the record it observed (at `observed.at`).
fn decide(identity: &str, observed: &Observed, now: Instant, next: LeaseSpec) -> Decision {
    let Some(spec) = &observed.spec else {
        return Decision::Write(next);
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == identity {
        return Decision::Write(next);
    }
    let duration = Duration::from_secs(
        spec.lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0),
    );
    let valid = observed
        .at
        .and_then(|at| at.checked_add(duration))
        .is_none_or(|until| now < until);
    if valid {
        Decision::Wait
    } else {
        Decision::Write(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(seconds),
            ..Default::default()
        }
    }

    #[test]
    fn another_holder_keeps_the_lease_for_its_duration_from_when_it_was_seen() {
        let seen = Instant::now();
        let observed = Observed {
            spec: Some(held_by("other", 15)),
            at: Some(seen),
        };
        let next = held_by("me", 15);
        assert_eq!(
            decide(
                "me",
                &observed,
                seen + Duration::from_secs(14),
                next.clone()
            ),
            Decision::Wait
        );
        assert_eq!(
            decide(
                "me",
                &observed,
                seen + Duration::from_secs(15),
                next.clone()
            ),
            Decision::Write(next)
        );
    }

    #[test]
    fn a_free_or_own_lease_is_written_at_once() {
        let now = Instant::now();
        let next = held_by("me", 15);
        for spec in [None, Some(held_by("", 1)), Some(held_by("me", 15))] {
            let observed = Observed {
                spec,
                at: Some(now),
            };
            assert_eq!(
                decide("me", &observed, now, next.clone()),
                Decision::Write(next.clone())
            );
        }
    }

    #[test]
    fn a_huge_or_negative_duration_from_the_record_does_not_overflow() {
        let now = Instant::now();
        let next = held_by("me", 15);
        let forever = Observed {
            spec: Some(held_by("other", i32::MAX)),
            at: Some(now),
        };
        assert_eq!(decide("me", &forever, now, next.clone()), Decision::Wait);
        let negative = Observed {
            spec: Some(held_by("other", -5)),
            at: Some(now),
        };
        assert_eq!(
            decide("me", &negative, now, next.clone()),
            Decision::Write(next)
        );
    }

    #[test]
    fn timings_that_could_overlap_two_leaders_are_refused() {
        assert!(Timings::default().check().is_ok());
        let secs = Duration::from_secs;
        let bad = [
            (secs(10), secs(10), secs(2)),
            (secs(15), secs(2), secs(2)),
            (secs(15), secs(10), secs(0)),
        ];
        for (lease_duration, renew_deadline, retry_period) in bad {
            let timings = Timings {
                lease_duration,
                renew_deadline,
                retry_period,
            };
            assert!(timings.check().is_err(), "{timings:?}");
        }
    }
}
