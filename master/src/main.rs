//! `skiff-master`: the control plane process (API server; scheduler and controllers join it
//! in later issues).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use ipnet::Ipv4Net;
use skiff_master::apiserver::{self, Config};
use tracing_subscriber::EnvFilter;

// The API server allocates many short-lived JSON trees; mimalloc handles that churn far
// better than glibc's allocator (malloc was ~20% of a create-heavy profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// skiff's control plane.
#[derive(Parser, Debug)]
#[command(name = "skiff-master", version, about)]
struct Args {
    /// Directory for credentials (pki/, token), the embedded store (data/) and the kubeconfig.
    #[arg(long, default_value = ".skiff")]
    state_dir: PathBuf,
    /// Address the API server listens on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// Port the API server listens on (0 = any free port; the kubeconfig names it).
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// etcd endpoints (comma separated); without them the embedded store is used.
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// The range Service ClusterIPs come from.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: Ipv4Net,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config {
        state_dir: args.state_dir,
        bind_address: args.bind_address,
        secure_port: args.secure_port,
        etcd_endpoints: args.etcd_endpoints,
        service_cidr: args.service_cluster_ip_range,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(apiserver::serve(config, shutdown_signal()))?;
    // Watches and connections still open are cut here; every acknowledged write is durable.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown signal received");
}
