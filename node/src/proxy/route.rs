//! The route that keeps the Service CIDR on this machine. A connect the socket programs
//! translate never looks it up; any other packet to a Service address fails at once
//! (EHOSTUNREACH) instead of following the default route off the machine. Installed before
//! any program loads, and left in place when the agent stops.

use std::process::Command;

use ipnet::Ipv4Net;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("running ip route: {0}")]
    Spawn(std::io::Error),
    #[error("ip route replace unreachable {cidr} failed: {stderr}")]
    Failed { cidr: Ipv4Net, stderr: String },
}

/// `ip route replace unreachable <cidr>`: idempotent, so every agent on a machine may run it.
pub fn keep_local(cidr: Ipv4Net) -> Result<(), RouteError> {
    let out = Command::new("ip")
        .args(["route", "replace", "unreachable", &cidr.to_string()])
        .output()
        .map_err(RouteError::Spawn)?;
    if !out.status.success() {
        return Err(RouteError::Failed {
            cidr,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}
