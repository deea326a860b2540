//! A bootstrap token to join agents with: `skiff-master token create --print-join-command`
//! run against a master's state directory, its `skiff-node join` command read back.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// What `skiff-node join` is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinCommand {
    /// The API server URL.
    pub server: String,
    /// The bootstrap token.
    pub token: String,
    /// The CA pin, `sha256:<hex>`.
    pub ca_cert_hash: String,
}

impl JoinCommand {
    /// A new token of the master whose state is in `state_dir`, valid for `ttl` (`24h`).
    pub fn create(master_bin: &Path, state_dir: &Path, ttl: &str) -> anyhow::Result<Self> {
        let out = Command::new(master_bin)
            .args([
                "token",
                "create",
                "--print-join-command",
                "--ttl",
                ttl,
                "--state-dir",
            ])
            .arg(state_dir)
            .stdin(Stdio::null())
            .output()
            .context("running skiff-master token create")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "skiff-master token create failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Self::parse(&text)
            .with_context(|| format!("unexpected output of skiff-master token create: {text}"))
    }

    /// Read `skiff-node join <server> --token <token> --ca-cert-hash <pin>`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.split_whitespace().collect::<Vec<_>>().as_slice() {
            [
                "skiff-node",
                "join",
                server,
                "--token",
                token,
                "--ca-cert-hash",
                pin,
            ] => Some(Self {
                server: (*server).to_owned(),
                token: (*token).to_owned(),
                ca_cert_hash: (*pin).to_owned(),
            }),
            _ => None,
        }
    }

    /// The arguments of `skiff-node` that join with it.
    pub fn args(&self) -> [&str; 6] {
        [
            "join",
            &self.server,
            "--token",
            &self.token,
            "--ca-cert-hash",
            &self.ca_cert_hash,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_command_is_read_back() {
        let text = "skiff-node join https://127.0.0.1:6443 --token abcdef.0123456789abcdef --ca-cert-hash sha256:00\n";
        let join = JoinCommand::parse(text).unwrap();
        assert_eq!(join.server, "https://127.0.0.1:6443");
        assert_eq!(join.args()[3], "abcdef.0123456789abcdef");
        assert_eq!(JoinCommand::parse("abcdef.0123456789abcdef"), None);
    }
}
