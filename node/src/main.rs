//! skiff-node: the node agent. Registers this machine as a Node with the master and runs the
//! pods bound to it (and static pods from a directory) on Docker.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ipnet::Ipv4Net;
use skiff_node::api_balancer::{self, ApiBalancer};
use skiff_node::kubelet::{self, Kubelet};
use skiff_node::proxy;
use skiff_node::proxy::datapath::MapSizes;
use skiff_node::runtime::{DEFAULT_DOCKER_HOST, DockerRuntime};
use skiff_node::uring;

/// skiff's node agent (kubelet).
#[derive(Parser, Debug)]
#[command(name = "skiff-node", version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Kubeconfig with the master's address and this node's credentials (default: $KUBECONFIG,
    /// else ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The Node's name (default: the hostname).
    #[arg(long, global = true)]
    node_name: Option<String>,
    /// This node's pod CIDR (default: the Node's spec.podCIDR, which the master assigns).
    #[arg(long)]
    pod_cidr: Option<Ipv4Net>,
    /// The cluster's pod CIDR: pod traffic within it is allowed between nodes.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: Ipv4Net,
    /// Directory of static pod manifests (YAML or JSON, one Pod per file).
    #[arg(long)]
    manifests_dir: Option<PathBuf>,
    /// Seconds between reads of the manifests directory.
    #[arg(long, default_value_t = 2)]
    manifests_seconds: u64,
    /// Seconds between lease renewals (the lease lasts four times as long).
    #[arg(long, default_value_t = 10)]
    lease_seconds: u64,
    /// Seconds between node status updates when nothing changes.
    #[arg(long, default_value_t = 60)]
    node_status_seconds: u64,
    /// Seconds between syncs of a pod when nothing happens to it.
    #[arg(long, default_value_t = 60)]
    resync_seconds: u64,
    /// Directory for the agent's files, e.g. pod volumes (default: /var/lib/skiff-node/<node>).
    #[arg(long)]
    root_dir: Option<PathBuf>,
    /// The node's IP as reported to the master (default: detected).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// Docker's address.
    #[arg(long, default_value = DEFAULT_DOCKER_HOST)]
    docker_host: String,
    /// Pull images that are not present from their registries (off: only local images).
    #[arg(long)]
    allow_image_pull: bool,
    /// Address of the agent's HTTPS endpoint (container logs for the API server).
    #[arg(long, default_value = "0.0.0.0")]
    address: IpAddr,
    /// Port of the agent's HTTPS endpoint; 0 picks a free one. The Node's status publishes it.
    #[arg(long, default_value_t = kubelet::server::DEFAULT_PORT)]
    port: u16,
    /// Size at which a container's log file is rotated (a quantity: 10Mi, 500Ki).
    #[arg(long, default_value = "10Mi", value_parser = kubelet::logs::parse_size)]
    container_log_max_size: u64,
    /// How Services are load-balanced on this node: `ebpf` (socket programs on the cgroup v2
    /// root), `iptables` (kube-proxy's rules, for kernels without cgroup BPF) or `none`.
    #[arg(long, value_enum, default_value = "ebpf")]
    proxy_mode: proxy::ProxyMode,
    /// The Service CIDR (the master's --service-cluster-ip-range): kept on this machine before
    /// any program loads or rule is written (an `unreachable` route in eBPF mode, a route to
    /// skiff's own device `skiff-svc0` in iptables mode).
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: Ipv4Net,
    /// The cluster DNS servers written into pods' resolv.conf (comma separated; default: the
    /// 10th address of `--service-cluster-ip-range`, the master's `kube-dns` Service, 10.96.0.10).
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Option<Vec<IpAddr>>,
    /// The cluster domain pods search (`<ns>.svc.<domain>`, ...).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The host's resolver configuration, which `dnsPolicy: Default` pods get (empty: none).
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// Entries of the eBPF Service map: frontends and their backend slots (Cilium's
    /// `--bpf-lb-map-max`). A change takes effect once `skiff-node proxy cleanup` removed the
    /// pinned maps.
    #[arg(long, default_value_t = MapSizes::default().services, value_parser = clap::value_parser!(u32).range(1..))]
    bpf_lb_map_max: u32,
    /// Entries of the eBPF backend map (Cilium's `--bpf-lb-backend-map-max`).
    #[arg(long, default_value_t = MapSizes::default().backends, value_parser = clap::value_parser!(u32).range(1..))]
    bpf_lb_backend_map_max: u32,
    /// Sockets the eBPF reverse map remembers for replies and getpeername() (an LRU map;
    /// Cilium's `--bpf-sock-rev-map-max`).
    #[arg(long, default_value_t = MapSizes::default().rev_nat, value_parser = clap::value_parser!(u32).range(1..))]
    bpf_sock_rev_map_max: u32,
    /// Clients the eBPF affinity map remembers for `sessionAffinity: ClientIP` (an LRU map;
    /// Cilium's `--bpf-lb-affinity-map-max`).
    #[arg(long, default_value_t = MapSizes::default().affinity, value_parser = clap::value_parser!(u32).range(1..))]
    bpf_lb_affinity_map_max: u32,
    /// The devices NodePorts are reachable on from outside the node (comma separated; default:
    /// those carrying the node's IP). The NodePort TC programs attach to them.
    #[arg(long, value_delimiter = ',')]
    devices: Option<Vec<String>>,
    /// Log files kept per container, the current one included (at least 2).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..))]
    container_log_max_files: u16,
    /// Run N hollow nodes instead of this machine's agent: simulated kubelets that register,
    /// heartbeat and report their pods Running through the API server, without containers
    /// (named `<--node-name>-<i>`, default prefix `hollow-node`; see the README). Refused up
    /// front when the machine's memory cannot hold them.
    #[arg(long, value_name = "N")]
    hollow: Option<u32>,
    /// Persistent connections carrying the hollow nodes' heartbeats.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    hollow_connections: u32,
    /// Time from a pod's binding to a hollow node until its status says Running (`0s`,
    /// `500ms`, `2s`).
    #[arg(long, default_value = "0s", value_parser = skiff_api::time::parse_duration)]
    hollow_pod_start_delay: Duration,
    /// Seconds between the hollow nodes' report lines on stdout (0: none).
    #[arg(long, default_value_t = 10)]
    hollow_report_seconds: u64,
    /// CPUs each hollow node offers.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    hollow_cpus: u64,
    /// Memory each hollow node offers (a quantity: 16Gi).
    #[arg(long, default_value = "16Gi", value_parser = kubelet::logs::parse_size)]
    hollow_memory: u64,
}

/// What else skiff-node can do besides running the agent.
#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Service load balancing on this node.
    #[command(subcommand)]
    Proxy(ProxyCommand),
    /// The images skiff builds locally (no registry needed).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Pass connections from LISTEN to the API servers, round robin over those that accept
    /// (the node-local API load balancer the agent runs with several masters, on its own:
    /// a kubeconfig pointed at it fails over between the masters).
    ApiBalancer {
        /// The API servers, `https://host:port`, comma separated.
        #[arg(value_delimiter = ',', required = true)]
        servers: Vec<String>,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: std::net::SocketAddr,
    },
    /// Join the cluster at SERVER with a bootstrap token (`skiff-master token create`), get
    /// this node's own client certificate, then run the agent with it (kubeadm join).
    Join {
        /// The API server, `https://host:port`; several masters comma separated: the agent
        /// then reaches them through its node-local API load balancer, fails over between
        /// them, and follows the `kubernetes` Endpoints for masters that come and go.
        #[arg(value_delimiter = ',', required = true)]
        servers: Vec<String>,
        /// The bootstrap token, `<id>.<secret>`.
        #[arg(long)]
        token: String,
        /// The pin of the cluster CA, `sha256:<hex>` (`skiff-master token create
        /// --print-join-command` prints it).
        #[arg(long)]
        ca_cert_hash: String,
    },
}

#[derive(clap::Subcommand, Debug)]
enum ImageCommand {
    /// Build `skiff/busybox:1` (the host's static busybox, every applet in /bin, FROM
    /// scratch) unless Docker has it.
    Busybox,
}

#[derive(clap::Subcommand, Debug)]
enum ProxyCommand {
    /// Print every frontend with its backends and connection count, from the live maps.
    Dump,
    /// Detach the programs and remove the maps, or the iptables rules, this node's agent left
    /// (they outlive the agent, as kube-proxy's rules do; run it with the agent stopped).
    Cleanup,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Proxy(command)) = &args.command {
        let node = args
            .node_name
            .clone()
            .unwrap_or_else(skiff_api::host::hostname);
        match command {
            ProxyCommand::Dump => print!("{}", proxy::dump::dump(&node)?),
            ProxyCommand::Cleanup => proxy::cleanup(&node)?,
        }
        return Ok(());
    }
    if let Some(Command::Image(ImageCommand::Busybox)) = &args.command {
        let docker = DockerRuntime::new(args.docker_host.clone(), "skiff-node image");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(docker.ensure_busybox_image())?;
        println!("{}", skiff_node::images::BUSYBOX_IMAGE);
        return Ok(());
    }
    if let Some(count) = args.hollow {
        // Refused before anything is set up or sent.
        let available = skiff_node::hollow::mem_available()?;
        if let Err(refusal) = skiff_node::hollow::check_count(count, available) {
            anyhow::bail!(refusal);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only, not for log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some(Command::ApiBalancer { servers, listen }) = &args.command {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(run_api_balancer(*listen, servers));
    }
    if args.hollow.is_some() {
        let runtime =
            skiff_node::hollow::executor().context("starting the hollow nodes' runtime")?;
        return runtime.block_on(run_hollow(args));
    }
    // One thread: the agent's work is waiting on Docker and the master. io_uring carries its
    // own hot I/O (heartbeats, file reads); without io_uring, plain tokio (said once).
    let runtime = uring::Executor::new().context("starting the agent's runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let node_name = args
        .node_name
        .clone()
        .unwrap_or_else(skiff_api::host::hostname);
    let root_dir = args
        .root_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/lib/skiff-node").join(&node_name));
    let joined = matches!(args.command, Some(Command::Join { .. }));
    let kubeconfig_path = match &args.command {
        Some(Command::Join {
            servers,
            token,
            ca_cert_hash,
        }) => Some(
            kubelet::bootstrap::join(&kubelet::bootstrap::Join {
                servers,
                token,
                ca_cert_hash,
                node_name: &node_name,
                root_dir: &root_dir,
            })
            .await
            .context("joining the cluster")?,
        ),
        _ => args.kubeconfig.clone(),
    };
    let mut kubeconfig = read_kubeconfig(kubeconfig_path.as_deref())?;
    // Several masters: every connection to the API goes through the node-local balancer.
    let balancer = match &args.command {
        Some(Command::Join { servers, .. }) if servers.len() > 1 => {
            let balancer = ApiBalancer::bind((std::net::Ipv4Addr::LOCALHOST, 0).into(), servers)
                .await
                .context("the node-local API load balancer")?;
            let url = balancer.url()?;
            tracing::info!(
                listen = url,
                masters = servers.join(","),
                "the API through the node-local load balancer"
            );
            api_balancer::point_kubeconfig_at(&mut kubeconfig, &url);
            Some(balancer)
        }
        _ => None,
    };
    let dns = cluster_dns(&args)?;
    let config = kubelet::Config {
        root_dir,
        node_name: node_name.clone(),
        pod_cidr: args.pod_cidr,
        cluster_cidr: args.cluster_cidr,
        manifests_dir: args.manifests_dir,
        manifests_interval: Duration::from_secs(args.manifests_seconds.max(1)),
        lease_interval: Duration::from_secs(args.lease_seconds.max(1)),
        node_status_interval: Duration::from_secs(args.node_status_seconds.max(1)),
        resync_interval: Duration::from_secs(args.resync_seconds.max(1)),
        node_ip: args.node_ip,
        allow_image_pull: args.allow_image_pull,
        container_logs: kubelet::logs::LogLimits {
            max_size: args.container_log_max_size,
            max_files: usize::from(args.container_log_max_files),
        },
        dns,
    };
    let settings = uring::HeartbeatSettings::from_kubeconfig(
        &kubeconfig,
        &node_name,
        config.lease_duration_seconds(),
    )
    .context("the heartbeat's connection settings")?;
    // One client certificate for the heartbeat and the API client, renewed in place.
    let identity = match &settings.credential {
        uring::Credential::ClientCertificate(identity) => Some(identity.clone()),
        uring::Credential::BearerToken(_) => None,
    };
    let client = kube_client(kubeconfig, identity.as_ref()).await?;
    if let Some(balancer) = balancer {
        tokio::spawn(api_balancer::follow_endpoints(
            client.clone(),
            balancer.backends(),
        ));
        tokio::spawn(balancer.serve());
    }
    let heartbeat = uring::UringHeartbeat::preferred(&settings)
        .context("setting up the heartbeat connection")?;
    tracing::info!(
        transport = %uring::heartbeat::Transport::preferred().name(),
        "heartbeats over a persistent connection"
    );
    // Only the API server, with a client certificate of the cluster CA, may call the endpoint.
    let server = kubelet::server::ServerConfig {
        address: args.address,
        port: args.port,
        client_ca_pem: settings.ca_pem.clone(),
    };
    let proxy_config = proxy::ProxyConfig {
        mode: args.proxy_mode,
        node_name: node_name.clone(),
        node_addresses: node_port_addresses(args.node_ip),
        service_cidr: args.service_cluster_ip_range,
        cluster_cidr: args.cluster_cidr,
        map_sizes: MapSizes {
            services: args.bpf_lb_map_max,
            backends: args.bpf_lb_backend_map_max,
            rev_nat: args.bpf_sock_rev_map_max,
            affinity: args.bpf_lb_affinity_map_max,
            ..MapSizes::default()
        },
        devices: args.devices.clone(),
    };
    // Service load balancing that cannot start stops the agent: its pods would be cut off.
    // It starts before the kubelet, which tells it of each pod's network namespace.
    let started = proxy::start(&proxy_config).context("Service load balancing")?;
    let mut runtime = DockerRuntime::new(args.docker_host, node_name.clone());
    if let Some(node_netns) = started.node_netns() {
        runtime = runtime.with_node_netns(node_netns);
    }
    let runtime = Arc::new(runtime);
    let proxy = (args.proxy_mode != proxy::ProxyMode::None)
        .then(|| tokio::spawn(started.run(client.clone(), proxy_config)));
    let mut kubelet = Kubelet::new(config, client, runtime, heartbeat).serving(server);
    // A node that joined keeps its own certificate fresh.
    if let (true, Some(identity)) = (joined, identity) {
        kubelet = kubelet.rotating_client_certificate(identity);
    }
    let kubelet = kubelet.run(shutdown_signal());
    let Some(proxy) = proxy else {
        kubelet.await?;
        return Ok(());
    };
    // The watch failing stops the agent too.
    let mut kubelet = std::pin::pin!(kubelet);
    tokio::select! {
        done = &mut kubelet => done?,
        proxied = proxy => match proxied {
            // The watch ended (its client is gone): the kubelet goes on.
            Ok(Ok(())) => kubelet.await?,
            Ok(Err(err)) => return Err(anyhow::Error::new(err).context("Service load balancing")),
            Err(err) => anyhow::bail!("the Service proxy stopped: {err}"),
        },
    }
    Ok(())
}

/// `skiff-node api-balancer`: until SIGTERM or SIGINT.
async fn run_api_balancer(listen: std::net::SocketAddr, servers: &[String]) -> anyhow::Result<()> {
    let balancer = ApiBalancer::bind(listen, servers).await?;
    println!(
        "api-balancer: {} -> {}",
        balancer.local_addr()?,
        servers.join(",")
    );
    tokio::select! {
        () = balancer.serve() => {}
        () = shutdown_signal() => {}
    }
    Ok(())
}

/// `--hollow N`: the simulated nodes, until SIGTERM or SIGINT.
async fn run_hollow(args: Args) -> anyhow::Result<()> {
    let count = args.hollow.unwrap_or(1);
    let kubeconfig = read_kubeconfig(args.kubeconfig.as_deref())?;
    let lease_duration_seconds =
        i32::try_from(args.lease_seconds.saturating_mul(4)).unwrap_or(i32::MAX);
    let prefix = args
        .node_name
        .clone()
        .unwrap_or_else(|| String::from("hollow-node"));
    let settings =
        uring::HeartbeatSettings::from_kubeconfig(&kubeconfig, &prefix, lease_duration_seconds)
            .context("the heartbeat's connection settings")?;
    let client = kube_client(kubeconfig, None).await?;
    let config = skiff_node::hollow::HollowConfig {
        count,
        prefix,
        lease_interval: Duration::from_secs(args.lease_seconds.max(1)),
        lease_duration_seconds,
        status_interval: Duration::from_secs(args.node_status_seconds.max(1)),
        pod_start_delay: args.hollow_pod_start_delay,
        connections: args.hollow_connections,
        report_interval: Duration::from_secs(args.hollow_report_seconds),
        cpus: args.hollow_cpus,
        memory_bytes: args.hollow_memory,
    };
    skiff_node::hollow::run(client, settings, config, shutdown_signal()).await
}

/// Where this node's NodePorts listen: its IPv4 address and 127.0.0.1, as kube-proxy's
/// default `--nodeport-addresses` (every local address) gives for one interface.
/// What pods' resolv.conf is made from: `--cluster-dns`, `--cluster-domain` and the host's
/// `--resolv-conf`.
fn cluster_dns(args: &Args) -> anyhow::Result<kubelet::dns::ClusterDns> {
    let servers = args.cluster_dns.clone().unwrap_or_else(|| {
        vec![IpAddr::V4(skiff_api::well_known::cluster_dns_address(
            args.service_cluster_ip_range.network(),
        ))]
    });
    let host = if args.resolv_conf.as_os_str().is_empty() {
        String::new()
    } else {
        std::fs::read_to_string(&args.resolv_conf)
            .with_context(|| format!("reading --resolv-conf {}", args.resolv_conf.display()))?
    };
    Ok(kubelet::dns::ClusterDns {
        servers,
        domain: args.cluster_domain.trim_end_matches('.').to_owned(),
        host: kubelet::dns::ResolvConf::parse(&host),
    })
}

fn node_port_addresses(node_ip: Option<IpAddr>) -> Vec<std::net::Ipv4Addr> {
    let mut addresses = vec![std::net::Ipv4Addr::LOCALHOST];
    if let IpAddr::V4(ip) = kubelet::node_facts::internal_ip(node_ip)
        && !ip.is_loopback()
    {
        addresses.push(ip);
    }
    addresses
}

/// The kubeconfig at `path`, else at $KUBECONFIG or ~/.kube/config.
fn read_kubeconfig(path: Option<&std::path::Path>) -> anyhow::Result<kube::config::Kubeconfig> {
    match path {
        Some(path) => kube::config::Kubeconfig::read_from(path)
            .with_context(|| format!("reading kubeconfig {}", path.display())),
        None => kube::config::Kubeconfig::read()
            .context("no --kubeconfig and no usable default kubeconfig"),
    }
}

/// The API client of the kubeconfig's current context, presenting `identity`'s current
/// certificate when the node authenticates with one.
async fn kube_client(
    kubeconfig: kube::config::Kubeconfig,
    identity: Option<&kubelet::certificate::Identity>,
) -> anyhow::Result<kube::Client> {
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .context("using the kubeconfig")?;
    kubelet::certificate::api_client(config, identity).context("building the API client")
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the default action (exit) still applies.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
