//! The network-safety check every test and benchmark makes before it sends to a Service
//! address: the route to it must not leave the machine (DESIGN.md, "Network safety").

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, bail};

/// Fails unless traffic to `address` stays on this machine: `ip route get` must not send it
/// via a default gateway (an `unreachable` route, what the proxy installs for the Service
/// CIDR, is local: nothing leaves).
pub fn ensure_stays_local(address: Ipv4Addr) -> anyhow::Result<()> {
    let gateways = default_gateways()?;
    let out = Command::new("ip")
        .args(["route", "get", &address.to_string()])
        .output()
        .context("running ip route get")?;
    let answer = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        if answer.contains("No route to host") || answer.contains("unreachable") {
            return Ok(());
        }
        bail!("ip route get {address} failed: {}", answer.trim());
    }
    if let Some(gateway) = gateways
        .iter()
        .find(|gw| answer.split_whitespace().any(|w| w == gw.as_str()))
    {
        bail!(
            "refusing to send to {address}: its route leaves the machine via the default gateway \
             {gateway} ({}); the Service CIDR must be kept local first",
            answer.trim()
        );
    }
    Ok(())
}

/// The `via` addresses of the default routes.
fn default_gateways() -> anyhow::Result<Vec<String>> {
    let out = Command::new("ip")
        .args(["-4", "route", "show", "default"])
        .output()
        .context("running ip route show default")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "via")?;
            words.next().map(str::to_owned)
        })
        .collect())
}
