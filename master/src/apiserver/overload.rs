//! Overload protection, as kube-apiserver's max-in-flight filter does it and, in the spirit of
//! API Priority and Fairness, with seats kept for the cluster's own clients:
//!
//! - at most `--max-requests-inflight` read-only and `--max-mutating-requests-inflight`
//!   mutating requests are served at a time (0: no limit); one more gets 429 `Too many
//!   requests, please try again later.` with `Retry-After: 1`, which kubectl and client-go
//!   retry. Long-running requests (watches, logs, exec, attach, port-forward, proxy) are not
//!   counted: they are bounded apart (a cap on open watches per user);
//! - who is served first: members of `system:masters` are exempt (as APF's `exempt` level);
//!   the system's clients (nodes, the kube-system service accounts, the `system:kube-*`
//!   components) may take every seat; everyone else only the seats beyond a third of each
//!   limit, so a flood of user requests leaves heartbeats and controllers room;
//! - a request that is not long-running gets 504 after `--request-timeout` (60 s), or the
//!   shorter `?timeout=` it asks for; its handler still finishes (what it stored stays
//!   stored), as kube-apiserver's timeout filter lets it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::authentication::UserInfo;
use super::authorization::request_info::Attributes;
use super::status::ApiError;

/// The share of each limit kept for the system's clients: a third, about what APF's
/// `system`, `node-high` and `leader-election` levels hold of the default configuration.
const RESERVED_DIVISOR: usize = 3;

/// The limits (the master's flags).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `--max-requests-inflight` (0: no limit).
    pub max_requests_inflight: usize,
    /// `--max-mutating-requests-inflight` (0: no limit).
    pub max_mutating_requests_inflight: usize,
    /// `--max-watches-per-user` (0: no limit).
    pub max_watches_per_user: usize,
    /// `--request-timeout`.
    pub request_timeout: Duration,
}

impl Default for Limits {
    /// kube-apiserver's defaults (400, 200, 60 s); 1,000 watches per user.
    fn default() -> Self {
        Limits {
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            max_watches_per_user: 1000,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Who a request is served for, as far as seats go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Never limited (`system:masters`).
    Exempt,
    /// May take every seat: nodes, kube-system service accounts, `system:kube-*` users.
    System,
    /// May take the shared seats only.
    Workload,
}

impl Priority {
    /// The priority of `user`.
    pub fn of(user: &UserInfo) -> Priority {
        let member = |group: &str| user.groups.iter().any(|g| g == group);
        if member("system:masters") {
            Priority::Exempt
        } else if member("system:nodes")
            || member("system:serviceaccounts:kube-system")
            || user.username.starts_with("system:kube-")
            || user.username == "system:apiserver"
        {
            Priority::System
        } else {
            Priority::Workload
        }
    }
}

/// Whether a request runs for long (and is not counted in flight), as kube-apiserver's
/// `LongRunningFunc`: watches, proxying, and the `exec`, `attach`, `portforward`, `proxy`
/// and `log` subresources.
pub fn is_long_running(attributes: &Attributes) -> bool {
    matches!(attributes.verb.as_str(), "watch" | "proxy")
        || matches!(
            attributes.subresource.as_str(),
            "exec" | "attach" | "portforward" | "proxy" | "log"
        )
}

/// Whether a request changes something (counted against the mutating limit).
pub fn is_mutating(attributes: &Attributes) -> bool {
    matches!(
        attributes.verb.as_str(),
        "create" | "update" | "patch" | "delete" | "deletecollection" | "post" | "put"
    )
}

/// The seats of one limit.
#[derive(Debug)]
struct Pool {
    /// Seats anyone may take.
    shared: Arc<Semaphore>,
    /// Seats only the system's clients may take.
    reserved: Arc<Semaphore>,
}

impl Pool {
    /// A pool of `limit` seats (None: no limit).
    fn new(limit: usize) -> Option<Pool> {
        (limit > 0).then(|| {
            let reserved = limit / RESERVED_DIVISOR;
            Pool {
                shared: Arc::new(Semaphore::new(limit - reserved)),
                reserved: Arc::new(Semaphore::new(reserved)),
            }
        })
    }

    fn take(&self, priority: Priority) -> Option<OwnedSemaphorePermit> {
        self.shared.clone().try_acquire_owned().ok().or_else(|| {
            (priority == Priority::System)
                .then(|| self.reserved.clone().try_acquire_owned().ok())
                .flatten()
        })
    }
}

/// A seat held while a request is served.
#[derive(Debug)]
pub struct Seat {
    _permit: Option<OwnedSemaphorePermit>,
}

/// An open watch of a user, counted until dropped.
#[derive(Debug)]
pub struct WatchSeat {
    watches: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl Drop for WatchSeat {
    fn drop(&mut self) {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = watches.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                watches.remove(&self.user);
            }
        }
    }
}

/// The in-flight limits of the server.
#[derive(Debug)]
pub struct InFlight {
    limits: Limits,
    readonly: Option<Pool>,
    mutating: Option<Pool>,
    watches: Arc<Mutex<HashMap<String, usize>>>,
}

impl InFlight {
    /// Seats for `limits`.
    pub fn new(limits: Limits) -> InFlight {
        InFlight {
            limits,
            readonly: Pool::new(limits.max_requests_inflight),
            mutating: Pool::new(limits.max_mutating_requests_inflight),
            watches: Arc::default(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A seat for a request of `user` doing `attributes`, or 429.
    pub fn admit(&self, user: &UserInfo, attributes: &Attributes) -> Result<Seat, ApiError> {
        let priority = Priority::of(user);
        if priority == Priority::Exempt || is_long_running(attributes) {
            return Ok(Seat { _permit: None });
        }
        let pool = if is_mutating(attributes) {
            &self.mutating
        } else {
            &self.readonly
        };
        let Some(pool) = pool else {
            return Ok(Seat { _permit: None });
        };
        match pool.take(priority) {
            Some(permit) => Ok(Seat {
                _permit: Some(permit),
            }),
            None => Err(too_many_requests(
                "Too many requests, please try again later.",
            )),
        }
    }

    /// A watch of `user`, or 429 when the user has `--max-watches-per-user` open.
    pub fn watch(&self, user: &str) -> Result<WatchSeat, ApiError> {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let count = watches.entry(user.to_owned()).or_default();
        if self.limits.max_watches_per_user > 0 && *count >= self.limits.max_watches_per_user {
            return Err(too_many_requests(&format!(
                "Too many watches: {user} has {count} open, the limit is {}; please try again later.",
                self.limits.max_watches_per_user
            )));
        }
        *count += 1;
        Ok(WatchSeat {
            watches: self.watches.clone(),
            user: user.to_owned(),
        })
    }

    /// How long a request that is not long-running may take: `--request-timeout`, or the
    /// shorter `timeout` the request asks for (`30s`, `1m`; Go's duration syntax).
    pub fn timeout(&self, asked: Option<&str>) -> Duration {
        asked
            .and_then(|text| skiff_api::time::parse_duration(text).ok())
            .filter(|d| !d.is_zero())
            .map_or(self.limits.request_timeout, |d| {
                d.min(self.limits.request_timeout)
            })
    }
}

fn too_many_requests(message: &str) -> ApiError {
    ApiError::TooManyRequests {
        message: message.to_owned(),
        retry_after: 1,
        cause: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            username: name.to_owned(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    fn request(verb: &str, subresource: &str) -> Attributes {
        Attributes::resource(verb, "", "pods", subresource, "default", "")
    }

    #[test]
    fn users_take_the_shared_seats_and_the_system_the_rest() {
        let limits = Limits {
            max_requests_inflight: 3,
            max_mutating_requests_inflight: 1,
            ..Limits::default()
        };
        let seats = InFlight::new(limits);
        let jane = user("jane", &["system:authenticated"]);
        let node = user("system:node:n1", &["system:nodes", "system:authenticated"]);
        let admin = user("kubernetes-admin", &["system:masters"]);
        let list = request("list", "");
        // 3 read-only seats, one kept for the system: jane gets two.
        let first = seats.admit(&jane, &list).expect("a seat");
        let _second = seats.admit(&jane, &list).expect("a seat");
        let refused = seats.admit(&jane, &list).expect_err("no seat");
        assert_eq!(refused.code().as_u16(), 429);
        assert_eq!(
            refused.message(),
            "Too many requests, please try again later."
        );
        // The node gets the kept one, then nothing; the admin is never counted.
        let _node = seats.admit(&node, &list).expect("the reserved seat");
        assert!(seats.admit(&node, &list).is_err());
        assert!(seats.admit(&admin, &list).is_ok());
        // Watches and logs are not counted; a freed seat is free again.
        assert!(seats.admit(&jane, &request("watch", "")).is_ok());
        assert!(seats.admit(&jane, &request("get", "log")).is_ok());
        drop(first);
        assert!(seats.admit(&jane, &list).is_ok());
        // Mutating requests have their own limit (1 seat: shared, none kept).
        let _create = seats.admit(&jane, &request("create", "")).expect("a seat");
        assert!(seats.admit(&jane, &request("delete", "")).is_err());
        // ... apart from the read-only one, where a seat is free.
        assert!(seats.admit(&jane, &list).is_ok());
    }

    #[test]
    fn no_limit_means_none() {
        let seats = InFlight::new(Limits {
            max_requests_inflight: 0,
            max_mutating_requests_inflight: 0,
            max_watches_per_user: 0,
            ..Limits::default()
        });
        let jane = user("jane", &[]);
        let held: Vec<Seat> = (0..1000)
            .map(|_| seats.admit(&jane, &request("list", "")).expect("a seat"))
            .collect();
        assert_eq!(held.len(), 1000);
        let watches: Vec<WatchSeat> = (0..1000)
            .map(|_| seats.watch("jane").expect("a watch"))
            .collect();
        assert_eq!(watches.len(), 1000);
    }

    #[test]
    fn watches_are_capped_per_user_and_freed_when_they_end() {
        let seats = InFlight::new(Limits {
            max_watches_per_user: 2,
            ..Limits::default()
        });
        let a = seats.watch("jane").expect("first");
        let _b = seats.watch("jane").expect("second");
        let refused = seats.watch("jane").expect_err("third");
        assert_eq!(refused.code().as_u16(), 429);
        assert!(
            seats.watch("joe").is_ok(),
            "another user has watches of their own"
        );
        drop(a);
        assert!(seats.watch("jane").is_ok());
    }

    #[test]
    fn a_request_may_ask_for_a_shorter_timeout_only() {
        let seats = InFlight::new(Limits::default());
        assert_eq!(seats.timeout(None), Duration::from_secs(60));
        assert_eq!(seats.timeout(Some("30s")), Duration::from_secs(30));
        assert_eq!(seats.timeout(Some("1m30s")), Duration::from_secs(60));
        assert_eq!(seats.timeout(Some("250ms")), Duration::from_millis(250));
        assert_eq!(seats.timeout(Some("0s")), Duration::from_secs(60));
        assert_eq!(seats.timeout(Some("soon")), Duration::from_secs(60));
        assert_eq!(seats.timeout(Some("1.5s")), Duration::from_millis(1500));
        assert_eq!(
            seats.timeout(Some("99999999999999999999h")),
            Duration::from_secs(60)
        );
    }
}
