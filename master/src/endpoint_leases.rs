//! Endpoints that several masters share, as kube-apiserver's lease endpoint reconciler keeps
//! the `kubernetes` Service's: each master renews a Lease of its own in kube-system naming
//! where it serves, and writes the Endpoints of every master whose Lease is live, so masters
//! on one store agree instead of writing themselves over each other. The `kubernetes`
//! Endpoints (the API server's) and the `kube-dns` Endpoints (the cluster DNS of each master)
//! are kept this way.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

/// How long an endpoint stays listed after its Lease's last renewal (renewed every 10 s).
pub const LEASE_SECONDS: i32 = 15;

/// The namespace of the Leases.
pub const NAMESPACE: &str = "kube-system";

/// The Lease `<prefix>-<address>-<port>` naming `endpoint`, with `label`, renewed `now`.
pub fn lease(prefix: &str, label: (&str, &str), endpoint: SocketAddr, now: DateTime<Utc>) -> Lease {
    let name: String = format!("{prefix}-{endpoint}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    Lease {
        metadata: ObjectMeta {
            name: Some(name.trim_end_matches('-').to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            labels: Some([(label.0.to_owned(), label.1.to_owned())].into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(endpoint.to_string()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

/// The endpoints of the Leases among `leases` that were renewed within their duration of
/// `now`, by port (a port's subset of the Endpoints), with `own` always among them.
pub fn live<'a>(
    leases: impl IntoIterator<Item = &'a Lease>,
    own: SocketAddr,
    now: DateTime<Utc>,
) -> BTreeMap<u16, BTreeSet<IpAddr>> {
    let mut by_port: BTreeMap<u16, BTreeSet<IpAddr>> = BTreeMap::new();
    let live = leases.into_iter().filter_map(|lease| {
        if expired_for(lease, now)? > TimeDelta::zero() {
            return None;
        }
        lease
            .spec
            .as_ref()?
            .holder_identity
            .as_deref()?
            .parse::<SocketAddr>()
            .ok()
    });
    for endpoint in live.chain([own]) {
        by_port
            .entry(endpoint.port())
            .or_default()
            .insert(endpoint.ip());
    }
    by_port
}

/// How long after it expired a Lease of a master that is gone is deleted: masters restarted
/// on other ports (a cluster DNS on a free port) would otherwise leave one behind each time.
pub const DELETE_AFTER: TimeDelta = TimeDelta::seconds(60);

/// The Leases among `leases` that expired more than [`DELETE_AFTER`] before `now`.
pub fn abandoned<'a>(
    leases: impl IntoIterator<Item = &'a Lease>,
    now: DateTime<Utc>,
) -> Vec<&'a Lease> {
    leases
        .into_iter()
        .filter(|lease| expired_for(lease, now).is_some_and(|late| late > DELETE_AFTER))
        .collect()
}

/// How long ago `lease` expired (negative: how long it still lasts); `None` when it names no
/// renewal or duration, or the sum overflows.
fn expired_for(lease: &Lease, now: DateTime<Utc>) -> Option<TimeDelta> {
    let spec = lease.spec.as_ref()?;
    let renewed = spec.renew_time.as_ref()?.0;
    let seconds = TimeDelta::try_seconds(spec.lease_duration_seconds?.into())?;
    Some(now.signed_duration_since(renewed.checked_add_signed(seconds)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_leases_are_listed_by_port_and_expired_or_foreign_ones_are_not() {
        let now = Utc::now();
        let at = |endpoint: &str, seconds_ago: i64| {
            lease(
                "kube-apiserver",
                ("apiserver.kubernetes.io/identity", "kube-apiserver"),
                endpoint.parse().expect("endpoint"),
                now - TimeDelta::seconds(seconds_ago),
            )
        };
        let mut garbage = at("10.0.0.9:6443", 0);
        garbage.spec.as_mut().expect("spec").holder_identity = Some(String::from("not an address"));
        let mut huge = at("10.0.0.8:6443", 0);
        huge.spec.as_mut().expect("spec").lease_duration_seconds = Some(i32::MAX);
        let leases = [
            at("10.0.0.1:6443", 5),
            at("10.0.0.2:6443", 16),
            at("10.0.0.3:6444", 0),
            garbage,
            huge,
        ];
        let own: SocketAddr = "10.0.0.4:6443".parse().expect("own");
        let live = live(&leases, own, now);
        let ips = |list: &[&str]| -> BTreeSet<IpAddr> {
            list.iter().map(|ip| ip.parse().expect("ip")).collect()
        };
        assert_eq!(
            live,
            BTreeMap::from([
                (6443, ips(&["10.0.0.1", "10.0.0.4", "10.0.0.8"])),
                (6444, ips(&["10.0.0.3"])),
            ])
        );
        assert_eq!(
            leases[0].metadata.name.as_deref(),
            Some("kube-apiserver-10-0-0-1-6443")
        );
        // Expired 1 s and 75 s ago: only the second is deleted.
        let gone = [at("10.0.0.5:6443", 16), at("10.0.0.6:6443", 90)];
        let names: Vec<_> = abandoned(leases.iter().chain(&gone), now)
            .into_iter()
            .filter_map(|lease| lease.metadata.name.as_deref())
            .collect();
        assert_eq!(names, ["kube-apiserver-10-0-0-6-6443"]);
    }
}
