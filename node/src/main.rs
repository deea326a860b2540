//! skiff-node: the node agent. The kubelet and the eBPF Service proxy land here in the
//! node-agent issue; until then the binary only answers `--help` and `--version`.

use clap::Parser;

/// skiff's node agent (kubelet + Service proxy).
#[derive(Parser, Debug)]
#[command(name = "skiff-node", version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("skiff-node: the node agent is not built yet (see the node-agent issue)")
}
