//! The route that keeps the Service CIDR on this machine, installed before anything else the
//! proxy does and never taken away without another in its place: a packet to a Service
//! address no rule translates must not follow the default route off the machine.
//!
//! - eBPF mode: `unreachable <cidr>` ([`keep_local`]). A connect the socket programs translate
//!   never looks it up; any other packet to a Service address fails at once (EHOSTUNREACH).
//!   Left in place when the agent stops.
//! - iptables mode: nat `OUTPUT` DNAT comes after the route lookup, so an `unreachable` route
//!   would fail every connect. The CIDR is routed to a device of skiff's own instead
//!   ([`route_to_service_device`]): the veth `skiff-svc0` (169.254.96.1), whose peer is in
//!   the network namespace `skiff-svc`, where nothing answers and an `unreachable` default
//!   route turns a stray packet into an ICMP error at once. The kernel here has no `dummy`
//!   link type. One device serves every agent and Service CIDR on the machine;
//!   [`remove_service_device`] (the last iptables agent's cleanup) puts `unreachable` routes
//!   in the device's routes' place before deleting it.

use std::net::Ipv4Addr;
use std::process::Command;

use ipnet::Ipv4Net;

/// The host side of the Service device.
pub const SERVICE_DEVICE: &str = "skiff-svc0";
/// Its peer, inside [`SERVICE_NETNS`].
const SERVICE_PEER: &str = "skiff-svc1";
/// The network namespace the peer lives in.
const SERVICE_NETNS: &str = "skiff-svc";
/// The host side's address, the source of the host's packets routed to the device (a
/// link-local one: never routed anywhere else).
pub const SERVICE_DEVICE_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 96, 1);
/// The peer's address, the source of its ICMP errors.
const SERVICE_PEER_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 96, 2);

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("running ip: {0}")]
    Spawn(std::io::Error),
    #[error("ip {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
}

/// `ip route replace unreachable <cidr>`: idempotent, so every agent on a machine may run it.
pub fn keep_local(cidr: Ipv4Net) -> Result<(), RouteError> {
    ip(&["route", "replace", "unreachable", &cidr.to_string()])
}

/// Routes `cidr` to the Service device (made first if missing): `ip route replace <cidr> dev
/// skiff-svc0 src 169.254.96.1`. The replace is atomic: an earlier `unreachable` route (or
/// this one) is there until the new one is.
pub fn route_to_service_device(cidr: Ipv4Net) -> Result<(), RouteError> {
    ensure_service_device()?;
    ip(&[
        "route",
        "replace",
        &cidr.to_string(),
        "dev",
        SERVICE_DEVICE,
        "src",
        &SERVICE_DEVICE_ADDRESS.to_string(),
    ])
}

/// The veth pair and the namespace, made idempotently (a running agent's device is never
/// recreated: its routes would go with it).
fn ensure_service_device() -> Result<(), RouteError> {
    if ip(&["netns", "exec", SERVICE_NETNS, "true"]).is_err() {
        ip(&["netns", "add", SERVICE_NETNS])?;
    }
    if ip(&["link", "show", SERVICE_DEVICE]).is_err() {
        ip(&[
            "link",
            "add",
            SERVICE_DEVICE,
            "type",
            "veth",
            "peer",
            "name",
            SERVICE_PEER,
            "netns",
            SERVICE_NETNS,
        ])?;
    }
    ip(&[
        "addr",
        "replace",
        &format!("{SERVICE_DEVICE_ADDRESS}/32"),
        "dev",
        SERVICE_DEVICE,
    ])?;
    ip(&["link", "set", SERVICE_DEVICE, "up"])?;
    let inside = |args: &[&str]| {
        let mut all = vec!["netns", "exec", SERVICE_NETNS, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    };
    inside(&[
        "addr",
        "replace",
        &format!("{SERVICE_PEER_ADDRESS}/32"),
        "dev",
        SERVICE_PEER,
    ])?;
    inside(&["link", "set", SERVICE_PEER, "up"])?;
    inside(&[
        "route",
        "replace",
        &SERVICE_DEVICE_ADDRESS.to_string(),
        "dev",
        SERVICE_PEER,
    ])?;
    inside(&["route", "replace", "unreachable", "default"])?;
    // Forwarding on, so a packet for elsewhere meets the unreachable route and is answered
    // with an ICMP error (with it off it is dropped silently and the sender waits).
    ip(&[
        "netns",
        "exec",
        SERVICE_NETNS,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ])
    .or_else(|_| {
        // No sysctl binary: write the file from inside the namespace.
        ip(&[
            "netns",
            "exec",
            SERVICE_NETNS,
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv4/ip_forward",
        ])
    })
}

/// Deletes the Service device and its namespace, each of its routes replaced by an
/// `unreachable` one first (and again after, should one have been replaced meanwhile).
pub fn remove_service_device() -> Result<(), RouteError> {
    if ip(&["link", "show", SERVICE_DEVICE]).is_err() {
        let _ = ip(&["netns", "del", SERVICE_NETNS]);
        return Ok(());
    }
    let routes = routes_via_service_device()?;
    for cidr in &routes {
        ip(&["route", "replace", "unreachable", cidr])?;
    }
    ip(&["link", "del", SERVICE_DEVICE])?;
    let _ = ip(&["netns", "del", SERVICE_NETNS]);
    for cidr in &routes {
        // Fails when a route is there: one a new agent just installed.
        let _ = ip(&["route", "add", "unreachable", cidr]);
    }
    Ok(())
}

/// The destinations routed to the Service device.
fn routes_via_service_device() -> Result<Vec<String>, RouteError> {
    let out = Command::new("ip")
        .args(["-4", "route", "show", "dev", SERVICE_DEVICE])
        .output()
        .map_err(RouteError::Spawn)?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|dest| dest.parse::<Ipv4Net>().is_ok() || dest.parse::<Ipv4Addr>().is_ok())
        .map(str::to_owned)
        .collect())
}

/// `ip <args>`, failing with its stderr.
fn ip(args: &[&str]) -> Result<(), RouteError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(RouteError::Spawn)?;
    if !out.status.success() {
        return Err(RouteError::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}
