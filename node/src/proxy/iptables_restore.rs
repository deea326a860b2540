//! The iptables mode's side effects: `iptables-restore --noflush` of what [`super::iptables`]
//! writes, `iptables-save` to find a node's chains, the jumps from the built-in chains, and
//! removing it all (`skiff-node proxy cleanup`). Blocking: the agent runs them on tokio's
//! blocking pool.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use tracing::info;

use super::frontends::Frontend;
use super::iptables::{self, Chains, Table};

#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    #[error("running {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} failed: {stderr}")]
    Failed { command: String, stderr: String },
}

/// `iptables-restore -w --noflush` with `input` on stdin: one transaction per table.
pub fn restore(input: &str) -> Result<(), IptablesError> {
    let command = String::from("iptables-restore -w --noflush");
    let spawn = |source| IptablesError::Spawn {
        command: command.clone(),
        source,
    };
    let mut child = Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error means it exited early; its status and stderr say why.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().map_err(spawn)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        // iptables-restore names the line it stopped at; quote it.
        let line = stderr
            .split("line: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| input.lines().nth(n.saturating_sub(1)))
            .map(|line| format!(" (line: {line})"))
            .unwrap_or_default();
        return Err(IptablesError::Failed {
            command,
            stderr: format!("{stderr}{line}"),
        });
    }
    Ok(())
}

/// `iptables-save -t <table>`.
pub fn save(table: Table) -> Result<String, IptablesError> {
    let out = iptables("iptables-save", &["-t", table.name()])?;
    Ok(out)
}

/// The chains of `chains`' node in the kernel, both tables (found by reachability from its
/// fixed chains).
pub fn live_chains(chains: &Chains) -> Result<BTreeSet<String>, IptablesError> {
    let mut live = BTreeSet::new();
    for table in [Table::Nat, Table::Filter] {
        live.extend(iptables::reachable_chains(
            &save(table)?,
            &chains.roots(table),
        ));
    }
    Ok(live)
}

/// Inserts each jump from a built-in chain to the node's chains unless it is there
/// (kube-proxy's `EnsureRule(Prepend, ...)`).
pub fn ensure_jumps(chains: &Chains) -> Result<(), IptablesError> {
    for jump in chains.jumps() {
        let mut check = vec!["-w", "-t", jump.table.name(), "-C", jump.chain];
        check.extend(jump.rule.iter().map(String::as_str));
        if iptables("iptables", &check).is_ok() {
            continue;
        }
        let mut insert = vec!["-w", "-t", jump.table.name(), "-I", jump.chain];
        insert.extend(jump.rule.iter().map(String::as_str));
        iptables("iptables", &insert)?;
    }
    Ok(())
}

/// Removes node `node`'s jumps and chains from both tables; whether it had any.
pub fn remove_rules(node: &str) -> Result<bool, IptablesError> {
    let chains = Chains::new(node);
    let mut found = false;
    for jump in chains.jumps() {
        let mut delete = vec!["-w", "-t", jump.table.name(), "-D", jump.chain];
        delete.extend(jump.rule.iter().map(String::as_str));
        // Once per copy (a jump is never inserted twice, but an interrupted run may have).
        while iptables("iptables", &delete).is_ok() {
            found = true;
        }
    }
    for table in [Table::Nat, Table::Filter] {
        let live = iptables::reachable_chains(&save(table)?, &chains.roots(table));
        if live.is_empty() {
            continue;
        }
        found = true;
        for input in iptables::delete_chains(table, &live) {
            restore(&input)?;
        }
        info!(
            node,
            table = table.name(),
            chains = live.len(),
            "iptables rules removed"
        );
    }
    Ok(found)
}

/// Whether any skiff node's Service jump is left in nat `OUTPUT`.
pub fn any_node_present() -> Result<bool, IptablesError> {
    Ok(save(Table::Nat)?.lines().any(|line| {
        line.starts_with("-A OUTPUT ") && line.contains("service portals\" -j KUBE-SERVICES-")
    }))
}

/// Deletes the UDP conntrack entries that send `frontend`'s traffic to `backend`, as kube-proxy
/// does when a UDP endpoint goes: a ClusterIP's by their original destination, a NodePort's
/// by their original destination port. The client's next datagram meets the rules afresh.
pub fn clear_udp_flows(
    frontend: &Frontend,
    cluster_ip: bool,
    backend: Ipv4Addr,
) -> Result<(), IptablesError> {
    let (address, port) = (frontend.address.to_string(), frontend.port.to_string());
    let backend = backend.to_string();
    let mut args = vec!["-D", "-p", "udp"];
    match cluster_ip {
        true => args.extend(["--orig-dst", &address]),
        false => args.extend(["--orig-port-dst", &port]),
    }
    args.extend(["--dst-nat", &backend]);
    match iptables("conntrack", &args) {
        Ok(_) => Ok(()),
        // "0 flow entries have been deleted": nothing to clear.
        Err(IptablesError::Failed { stderr, .. }) if stderr.contains(" 0 flow entries") => Ok(()),
        Err(err) => Err(err),
    }
}

/// `net.ipv4.conf.all.route_localnet=1`, as kube-proxy sets it: a NodePort on 127.0.0.1 is
/// DNATed to a pod, and the kernel routes a packet from 127.0.0.1 off `lo` only with it (the
/// filter `KUBE-FIREWALL` drops what it would otherwise let in).
pub fn enable_route_localnet() -> std::io::Result<()> {
    std::fs::write("/proc/sys/net/ipv4/conf/all/route_localnet", "1")
}

/// Runs `program args`, its stdout, or its stderr as the error.
fn iptables(program: &str, args: &[&str]) -> Result<String, IptablesError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| IptablesError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(IptablesError::Failed {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
