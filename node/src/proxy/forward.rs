//! What the host's forwarding needs for NodePort traffic from outside the node: the TC
//! program sends it to a pod IP, so the host routes it from the device to the pod bridge.
//! Docker's `FORWARD` policy drops new flows into its bridges (only published ports pass), so
//! one rule accepts exactly the packets the program translated (`MARK_NODEPORT`), as
//! kube-proxy's `KUBE-FORWARD` accepts its marked packets. Replies pass Docker's own rules
//! (out of a bridge is accepted). Idempotent, shared by every agent on the machine, and left
//! in place when an agent stops (it matches nothing without the programs).

use std::process::Command;

use skiff_node_ebpf::MARK_NODEPORT;
use tracing::warn;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("running iptables: {0}")]
    Spawn(std::io::Error),
    #[error("iptables -I {rule} failed: {stderr}")]
    Failed { rule: String, stderr: String },
}

/// `iptables -I FORWARD -m mark --mark <MARK_NODEPORT> -j ACCEPT` unless present, and a
/// warning if the host does not forward IPv4 at all.
pub fn allow_translated() -> Result<(), ForwardError> {
    if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "0") {
        warn!(
            "net.ipv4.ip_forward is 0: NodePorts are not reachable from outside the node until \
             the host forwards IPv4"
        );
    }
    let mark = format!("{MARK_NODEPORT:#x}/{MARK_NODEPORT:#x}");
    let rule = [
        "FORWARD",
        "-m",
        "mark",
        "--mark",
        &mark,
        "-m",
        "comment",
        "--comment",
        "skiff NodePort",
        "-j",
        "ACCEPT",
    ];
    let present = Command::new("iptables")
        .arg("-C")
        .args(rule)
        .output()
        .map_err(ForwardError::Spawn)?
        .status
        .success();
    if present {
        return Ok(());
    }
    let out = Command::new("iptables")
        .arg("-I")
        .args(rule)
        .output()
        .map_err(ForwardError::Spawn)?;
    if !out.status.success() {
        return Err(ForwardError::Failed {
            rule: rule.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}
