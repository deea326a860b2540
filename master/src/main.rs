//! `skiff-master`: the control plane process: the API server and, once it listens, the
//! scheduler and the controllers as its clients.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use clap::Parser;
use futures::FutureExt;
use futures::future::BoxFuture;
use ipnet::Ipv4Net;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use skiff_master::apiserver::Config;
use skiff_master::apiserver::server::{Listening, serve};
use skiff_master::controllers::informers::Informers;
use skiff_master::controllers::node_ipam::{self, NodeIpamConfig};
use skiff_master::controllers::node_lifecycle::{self, NodeLifecycleConfig};
use skiff_master::controllers::pod_gc::{self, PodGcConfig};
use skiff_master::controllers::{
    cluster_role_aggregation, cron_job, csr_approving, csr_signing, daemon_set, deployment,
    disruption, endpoint_slice, endpoints, garbage_collector, job, replica_set, resource_quota,
    root_ca_cert_publisher, service_account, stateful_set,
};
use skiff_master::dns::{self, DnsConfig};
use skiff_master::leader_election;
use skiff_master::scheduler::{self, SchedulerConfig, score::ScoreWeights};
use skiff_master::supervisor::{Outcome, supervise};
use tokio::sync::{oneshot, watch};
use tracing_subscriber::EnvFilter;

// The API server allocates many short-lived JSON trees; mimalloc handles that churn far
// better than glibc's allocator (malloc was ~20% of a create-heavy profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// skiff's control plane.
#[derive(Parser, Debug)]
#[command(name = "skiff-master", version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Directory for credentials (pki/, token), the embedded store (data/) and the kubeconfig.
    #[arg(long, default_value = ".skiff", global = true)]
    state_dir: PathBuf,
    /// Address the API server listens on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// The address pods reach the API server at: it listens there too, and the `kubernetes`
    /// Service's Endpoints name it (default: this host's address, as a node's InternalIP).
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// Port the API server listens on (0 = any free port; the kubeconfig names it).
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// etcd endpoints (comma separated); without them the embedded store is used.
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// The CA (PEM) that signed etcd's serving certificate, for `https://` endpoints.
    #[arg(long)]
    etcd_cafile: Option<PathBuf>,
    /// The client certificate (PEM) presented to etcd.
    #[arg(long, requires = "etcd_keyfile")]
    etcd_certfile: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, requires = "etcd_certfile")]
    etcd_keyfile: Option<PathBuf>,
    /// The range Service ClusterIPs come from.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: Ipv4Net,
    /// An EncryptionConfiguration file (kube-apiserver's format: aescbc, secretbox and
    /// identity providers): the resources it names are encrypted in the store.
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// The cluster domain the cluster DNS answers for.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The `kube-dns` Service's ClusterIP, which kubelets write into pods' resolv.conf
    /// (default: the 10th address of `--service-cluster-ip-range`, 10.96.0.10).
    #[arg(long)]
    cluster_dns: Option<Ipv4Addr>,
    /// The port the cluster DNS listens on at the advertise address (0 = any free port, which
    /// the `kube-dns` Endpoints name).
    #[arg(long, default_value_t = 53)]
    dns_port: u16,
    /// Resolvers for names outside the cluster domain (`ip` or `ip:port`, comma separated;
    /// default: the host's, from /etc/resolv.conf).
    #[arg(long, value_delimiter = ',', value_parser = parse_upstream)]
    dns_upstream: Vec<SocketAddr>,
    /// Run the scheduler (binds pods to nodes); `--scheduler=false` turns it off.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    scheduler: bool,
    /// Weights of the scheduler's score plugins.
    #[arg(long, default_value_t = ScoreWeights::default())]
    scheduler_score_weights: ScoreWeights,
    /// Give every Node a pod CIDR from `--cluster-cidr`; `--allocate-node-cidrs=false` turns
    /// it off (agents then need `--pod-cidr`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    allocate_node_cidrs: bool,
    /// The range the nodes' pod CIDRs come from.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: Ipv4Net,
    /// The prefix length of one node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// How often the node lifecycle controller looks at the nodes (`5s`).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    node_monitor_period: std::time::Duration,
    /// How long a node may stay silent (no lease renewal, no status) before its status turns
    /// Unknown and it is tainted unreachable (`40s`).
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// Terminated pods (Succeeded or Failed) kept before the pod garbage collector deletes
    /// the oldest (0: keep them all).
    #[arg(long, default_value_t = 12_500)]
    terminated_pod_gc_threshold: usize,
    /// Controllers to run, as kube-controller-manager's flag: `*` for all, a name to add one,
    /// `-name` to leave one out, empty for none (names: replicaset, replicationcontroller,
    /// deployment, endpoint, nodelifecycle, podgc, garbagecollector, serviceaccount,
    /// root-ca-cert-publisher, resourcequota, job, cronjob, endpointslice, disruption,
    /// daemonset, statefulset, clusterrole-aggregation, csrapproving, csrsigning).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    controllers: Vec<String>,
    /// Read-only requests served at a time, watches and other long-running requests apart;
    /// one more gets 429 (0: no limit).
    #[arg(long, default_value_t = 400)]
    max_requests_inflight: usize,
    /// Mutating requests served at a time; one more gets 429 (0: no limit).
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,
    /// Watches one user may have open at a time; one more gets 429 (0: no limit).
    #[arg(long, default_value_t = 1000)]
    max_watches_per_user: usize,
    /// How often the store's history is compacted, as kube-apiserver's flag (`5m`; `0`:
    /// never).
    #[arg(long, default_value = "5m", value_parser = parse_interval)]
    etcd_compaction_interval: std::time::Duration,
    /// How long a request that is not long-running may take before it gets 504 (`60s`,
    /// `2m`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    request_timeout: std::time::Duration,
    /// Run the scheduler and the controllers only while this master holds the Lease
    /// `kube-system/kube-controller-manager` (for several masters on one etcd; every master
    /// serves the API either way). Off by default: the embedded store has one master.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    leader_elect: bool,
    /// How long a leader's Lease keeps other masters out after its last renewal (`15s`).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    leader_elect_lease_duration: std::time::Duration,
    /// How long the leader keeps trying to renew before it stops leading (`10s`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    leader_elect_renew_deadline: std::time::Duration,
    /// Between tries to take or renew the Lease (`2s`).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    leader_elect_retry_period: std::time::Duration,
    /// The longest the certificates the csrsigning controller issues live (`8760h`, `30m`,
    /// `90s`); node agents renew theirs when 70 to 90% of it has passed.
    #[arg(long, default_value = "8760h", value_parser = parse_duration)]
    cluster_signing_duration: std::time::Duration,
}

/// TLS to etcd from `--etcd-cafile`, `--etcd-certfile` and `--etcd-keyfile`.
fn etcd_tls(args: &Args) -> anyhow::Result<Option<skiff_master::store::etcd::EtcdTls>> {
    use anyhow::Context;
    let read =
        |path: &PathBuf| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let client = match (&args.etcd_certfile, &args.etcd_keyfile) {
        (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
        _ => None,
    };
    Ok(match &args.etcd_cafile {
        Some(ca) => Some(skiff_master::store::etcd::EtcdTls {
            ca_pem: read(ca)?,
            client,
        }),
        None if client.is_some() => anyhow::bail!("--etcd-certfile needs --etcd-cafile"),
        None => None,
    })
}

/// An interval flag: a Go duration (`5m`), or `0` for none.
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    skiff_api::time::parse_duration(text)
}

/// A duration flag (`--cluster-signing-duration`, `--request-timeout`, ...): a Go duration
/// (`90s`, `1h30m`) of more than 0.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let duration = skiff_api::time::parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("invalid duration {text:?}: must be more than 0"));
    }
    Ok(duration)
}

/// What else skiff-master does besides running the control plane.
#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Bootstrap tokens, which nodes join the cluster with (`skiff-node join`).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(clap::Subcommand, Debug)]
enum TokenCommand {
    /// Make a bootstrap token (kubeadm's `token create`) through the running API server
    /// (`<state-dir>/kubeconfig`) and print it.
    Create {
        /// How long the token is valid (`24h`, `30m`, `0` for ever).
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// Print the whole `skiff-node join` command: server, token and CA pin.
        #[arg(long)]
        print_join_command: bool,
    },
}

/// `skiff-master token create`.
fn create_token(
    state_dir: &std::path::Path,
    ttl: &str,
    print_join_command: bool,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let ttl =
        skiff_master::apiserver::bootstrap_tokens::parse_ttl(ttl).map_err(anyhow::Error::msg)?;
    let kubeconfig_path = state_dir.join("kubeconfig");
    let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig_path).with_context(|| {
        format!(
            "reading {} (is the master running?)",
            kubeconfig_path.display()
        )
    })?;
    let server = kubeconfig
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .context("the kubeconfig names no server")?;
    let ca = std::fs::read(state_dir.join("pki/ca.crt")).context("reading the cluster CA")?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .context("using the kubeconfig")?;
            let client = kube::Client::try_from(config)?;
            let token = skiff_master::apiserver::bootstrap_tokens::create(&client, ttl)
                .await
                .context("creating the bootstrap token's Secret")?;
            if print_join_command {
                let pin = skiff_api::ca_pin::ca_cert_hash(&ca).map_err(anyhow::Error::msg)?;
                println!("skiff-node join {server} --token {token} --ca-cert-hash {pin}");
            } else {
                println!("{token}");
            }
            anyhow::Ok(())
        })
}

/// The controllers `--controllers` can name.
const CONTROLLERS: &[&str] = &[
    "replicaset",
    "replicationcontroller",
    "deployment",
    "endpoint",
    "nodelifecycle",
    "podgc",
    "garbagecollector",
    "serviceaccount",
    "root-ca-cert-publisher",
    "resourcequota",
    "job",
    "cronjob",
    "endpointslice",
    "disruption",
    "daemonset",
    "statefulset",
    "clusterrole-aggregation",
    "csrapproving",
    "csrsigning",
];

/// Whether `--controllers` turns `name` on.
fn controller_enabled(flag: &[String], name: &str) -> bool {
    if flag.iter().any(|c| c.strip_prefix('-') == Some(name)) {
        return false;
    }
    flag.iter().any(|c| c == "*" || c == name)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only, not for log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut args = Args::parse();
    if let Some(Command::Token(TokenCommand::Create {
        ttl,
        print_join_command,
    })) = &args.command
    {
        return create_token(&args.state_dir, ttl, *print_join_command);
    }
    args.controllers.retain(|c| !c.is_empty());
    if let Some(unknown) = args
        .controllers
        .iter()
        .map(|c| c.trim_start_matches('-'))
        .find(|c| *c != "*" && !CONTROLLERS.contains(c))
    {
        anyhow::bail!(
            "--controllers: unknown controller {unknown:?} (known: {})",
            CONTROLLERS.join(", ")
        );
    }
    let etcd_tls = etcd_tls(&args)?;
    let advertise_address = args
        .advertise_address
        .or_else(|| skiff_api::host::internal_ipv4().map(IpAddr::V4))
        .unwrap_or(args.bind_address);
    let dns = DnsConfig {
        address: advertise_address,
        port: args.dns_port,
        domain: args.cluster_domain.clone(),
        service_ip: args.cluster_dns.unwrap_or_else(|| {
            skiff_api::well_known::cluster_dns_address(args.service_cluster_ip_range.network())
        }),
        upstreams: args.dns_upstream.clone(),
    };
    let config = Config {
        state_dir: args.state_dir.clone(),
        bind_address: args.bind_address,
        advertise_address: Some(advertise_address),
        secure_port: args.secure_port,
        etcd_endpoints: args.etcd_endpoints,
        etcd_tls,
        service_cidr: args.service_cluster_ip_range,
        encryption_provider_config: args.encryption_provider_config,
        limits: skiff_master::apiserver::overload::Limits {
            max_requests_inflight: args.max_requests_inflight,
            max_mutating_requests_inflight: args.max_mutating_requests_inflight,
            max_watches_per_user: args.max_watches_per_user,
            request_timeout: args.request_timeout,
        },
        compaction_interval: args.etcd_compaction_interval,
    };
    let components = Components {
        scheduler: args.scheduler.then(|| SchedulerConfig {
            weights: args.scheduler_score_weights,
            ..Default::default()
        }),
        node_ipam: args.allocate_node_cidrs.then_some(NodeIpamConfig {
            cluster_cidr: args.cluster_cidr,
            node_mask: args.node_cidr_mask_size,
        }),
        replica_set: controller_enabled(&args.controllers, "replicaset"),
        replication_controller: controller_enabled(&args.controllers, "replicationcontroller"),
        resource_quota: controller_enabled(&args.controllers, "resourcequota"),
        deployment: controller_enabled(&args.controllers, "deployment"),
        daemon_set: controller_enabled(&args.controllers, "daemonset"),
        stateful_set: controller_enabled(&args.controllers, "statefulset"),
        job: controller_enabled(&args.controllers, "job"),
        cron_job: controller_enabled(&args.controllers, "cronjob"),
        disruption: controller_enabled(&args.controllers, "disruption"),
        garbage_collector: controller_enabled(&args.controllers, "garbagecollector"),
        endpoints: controller_enabled(&args.controllers, "endpoint"),
        endpoint_slice: controller_enabled(&args.controllers, "endpointslice"),
        service_account: controller_enabled(&args.controllers, "serviceaccount"),
        root_ca_cert_publisher: controller_enabled(&args.controllers, "root-ca-cert-publisher"),
        cluster_role_aggregation: controller_enabled(&args.controllers, "clusterrole-aggregation"),
        csr_approving: controller_enabled(&args.controllers, "csrapproving"),
        csr_signing: controller_enabled(&args.controllers, "csrsigning").then(|| {
            CsrSigningConfig {
                pki: args.state_dir.join("pki"),
                max_duration: args.cluster_signing_duration,
            }
        }),
        node_lifecycle: controller_enabled(&args.controllers, "nodelifecycle").then_some(
            NodeLifecycleConfig {
                monitor_period: args.node_monitor_period,
                grace_period: args.node_monitor_grace_period,
            },
        ),
        pod_gc: controller_enabled(&args.controllers, "podgc").then_some(PodGcConfig {
            terminated_pod_threshold: args.terminated_pod_gc_threshold,
        }),
    };
    let clients = Clients {
        dns: Some(dns),
        components,
    };
    let election = args.leader_elect.then_some(leader_election::Timings {
        lease_duration: args.leader_elect_lease_duration,
        renew_deadline: args.leader_elect_renew_deadline,
        retry_period: args.leader_elect_retry_period,
    });
    if let Some(timings) = &election {
        timings.check().map_err(anyhow::Error::msg)?;
        if config.etcd_endpoints.is_empty() {
            tracing::warn!(
                "--leader-elect on the embedded store: it serves one master only; several \
                 masters share an etcd (--etcd-endpoints)"
            );
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // One shutdown signal for every component: the sender is dropped when it comes.
        let (stop_tx, stop_rx) = watch::channel(());
        tokio::spawn(async move {
            shutdown_signal().await;
            drop(stop_tx);
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        let mut clients = tokio::spawn(run_clients(ready_rx, clients, election, stop_rx.clone()));
        // The server stops after its clients (2 s at most): a leader gives its Lease up
        // through it.
        let clients_done = async move {
            stopped(stop_rx).await;
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), &mut clients).await;
        };
        serve(config, clients_done, Some(ready_tx)).await
    })?;
    // Watches and connections still open are cut here; every acknowledged write is durable.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}

/// Completes when the shutdown signal has been given.
async fn stopped(mut rx: watch::Receiver<()>) {
    while rx.changed().await.is_ok() {}
}

/// The components that run as clients of the API server (`None`: turned off).
struct Clients {
    dns: Option<DnsConfig>,
    components: Components,
}

/// The scheduler and the controllers: what runs on the leading master only.
#[derive(Clone)]
struct Components {
    scheduler: Option<SchedulerConfig>,
    node_ipam: Option<NodeIpamConfig>,
    replica_set: bool,
    replication_controller: bool,
    resource_quota: bool,
    deployment: bool,
    daemon_set: bool,
    stateful_set: bool,
    job: bool,
    cron_job: bool,
    disruption: bool,
    garbage_collector: bool,
    endpoints: bool,
    endpoint_slice: bool,
    service_account: bool,
    root_ca_cert_publisher: bool,
    cluster_role_aggregation: bool,
    csr_approving: bool,
    csr_signing: Option<CsrSigningConfig>,
    node_lifecycle: Option<NodeLifecycleConfig>,
    pod_gc: Option<PodGcConfig>,
}

/// Where the csrsigning controller's CA is and how long what it signs lives.
#[derive(Clone)]
struct CsrSigningConfig {
    /// The directory of the cluster CA (`ca.crt`, `ca.key`).
    pki: PathBuf,
    /// `--cluster-signing-duration`.
    max_duration: std::time::Duration,
}

/// Starts the cluster DNS, the scheduler and the controllers once the API server listens,
/// as its clients over HTTPS, and waits until they stop. With `election`, the scheduler and
/// the controllers run only while this master leads (the DNS runs on every master).
async fn run_clients(
    ready: oneshot::Receiver<Listening>,
    clients: Clients,
    election: Option<leader_election::Timings>,
    stop: watch::Receiver<()>,
) {
    // No report: the API server did not start (its error is the one that matters).
    let Ok(listening) = ready.await else { return };
    let client = match scheduler::client(
        &listening.server_url,
        &listening.ca_pem,
        &listening.admin_token,
    ) {
        Ok(client) => client,
        Err(e) => return tracing::error!(error = %e, "cannot reach the API server as a client"),
    };
    // The cluster DNS reads Services, Endpoints and Leases through informers, which it shares
    // with the scheduler and the controllers when they run here for good.
    let mut informers = Informers::new(&client);
    let mut dns_server = None;
    if let Some(config) = clients.dns {
        match dns::start(
            client.clone(),
            config,
            &mut informers,
            stopped(stop.clone()),
        )
        .await
        {
            Ok(server) => dns_server = Some(tokio::spawn(server)),
            Err(e) => tracing::error!(error = %e, "the cluster DNS cannot start"),
        }
    }
    let components = clients.components;
    let ca_pem = listening.ca_pem;
    match election {
        None => run_components(client, components, ca_pem, informers, stop).await,
        Some(timings) => {
            // The DNS's informers run for good; each term's components make their own.
            let dns_watches = tokio::spawn(informers.run(stopped(stop.clone())));
            let mut elector =
                leader_election::Elector::new(client.clone(), "kube-controller-manager", timings);
            loop {
                tokio::select! {
                    () = elector.acquire() => {}
                    () = stopped(stop.clone()) => break,
                }
                // One term: the components stop when the lead is lost or at shutdown.
                let (term_tx, term_rx) = watch::channel(());
                let term = tokio::spawn(run_components(
                    client.clone(),
                    components.clone(),
                    ca_pem.clone(),
                    Informers::new(&client),
                    term_rx,
                ));
                let shutdown = tokio::select! {
                    () = elector.keep() => false,
                    () = stopped(stop.clone()) => true,
                };
                drop(term_tx);
                let _ = term.await;
                if shutdown {
                    elector.release().await;
                    break;
                }
            }
            let _ = dns_watches.await;
        }
    }
    if let Some(dns) = dns_server {
        let _ = dns.await;
    }
}

/// Runs the scheduler and the controllers until `stop`, each supervised: made again, after a
/// back-off, when it panics or stops by itself.
async fn run_components(
    client: kube::Client,
    clients: Components,
    ca_pem: String,
    informers: Informers,
    stop: watch::Receiver<()>,
) {
    // The scheduler and the controllers take what they read from the shared informers
    // first; the informers then watch each resource that any of them asked for, once.
    let mut tasks = Vec::new();
    let parts = Parts {
        client,
        informers: Arc::new(Mutex::new(informers)),
        stop: stop.clone(),
    };
    if let Some(config) = clients.scheduler {
        tasks.push(
            parts.supervise("scheduler", move |client, informers, stop| {
                scheduler::run(client, config.clone(), informers, stop).boxed()
            }),
        );
    }
    if let Some(config) = clients.node_ipam {
        // A cluster CIDR the allocator refuses is told once, not retried.
        match node_ipam::CidrSet::new(config) {
            Ok(_) => tasks.push(parts.supervise("nodeipam", move |client, informers, stop| {
                let controller = node_ipam::run(client, config, informers, stop);
                async move {
                    controller?.await;
                    Ok::<(), String>(())
                }
                .boxed()
            })),
            Err(e) => tracing::error!(error = %e, "the node IPAM controller cannot start"),
        }
    }
    if clients.replica_set {
        tasks.push(parts.supervise("replicaset", |client, informers, stop| {
            replica_set::run::<ReplicaSet>(client, informers, stop).boxed()
        }));
    }
    if clients.replication_controller {
        tasks.push(
            parts.supervise("replicationcontroller", |client, informers, stop| {
                replica_set::run::<ReplicationController>(client, informers, stop).boxed()
            }),
        );
    }
    let controllers: [(bool, &'static str, Make); 13] = [
        (clients.resource_quota, "resourcequota", |c, i, s| {
            resource_quota::run(c, i, s).boxed()
        }),
        (clients.disruption, "disruption", |c, i, s| {
            disruption::run(c, i, s).boxed()
        }),
        (clients.cron_job, "cronjob", |c, i, s| {
            cron_job::run(c, i, s).boxed()
        }),
        (clients.job, "job", |c, i, s| job::run(c, i, s).boxed()),
        (clients.daemon_set, "daemonset", |c, i, s| {
            daemon_set::run(c, i, s).boxed()
        }),
        (clients.stateful_set, "statefulset", |c, i, s| {
            stateful_set::run(c, i, s).boxed()
        }),
        (clients.deployment, "deployment", |c, i, s| {
            deployment::run(c, i, s).boxed()
        }),
        (clients.endpoint_slice, "endpointslice", |c, i, s| {
            endpoint_slice::run(c, i, s).boxed()
        }),
        (clients.endpoints, "endpoint", |c, i, s| {
            endpoints::run(c, i, s).boxed()
        }),
        (
            clients.cluster_role_aggregation,
            "clusterrole-aggregation",
            |c, i, s| cluster_role_aggregation::run(c, i, s).boxed(),
        ),
        (clients.csr_approving, "csrapproving", |c, i, s| {
            csr_approving::run(c, i, s).boxed()
        }),
        (clients.service_account, "serviceaccount", |c, i, s| {
            service_account::run(c, i, s).boxed()
        }),
        (clients.garbage_collector, "garbagecollector", |c, i, s| {
            garbage_collector::run(c, i, s).boxed()
        }),
    ];
    for (enabled, name, make) in controllers {
        if enabled {
            tasks.push(parts.supervise(name, make));
        }
    }
    if let Some(signing) = &clients.csr_signing {
        let pki = &signing.pki;
        let read = |file: &str| std::fs::read_to_string(pki.join(file));
        match (read("ca.crt"), read("ca.key")) {
            (Ok(cert_pem), Ok(key_pem)) => {
                let ca = csr_signing::SigningCa {
                    cert_pem,
                    key_pem,
                    max_duration: signing.max_duration,
                };
                tasks.push(
                    parts.supervise("csrsigning", move |client, informers, stop| {
                        csr_signing::run(client, ca.clone(), informers, stop).boxed()
                    }),
                );
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(
                    "csrsigning controller not started: reading the CA in {}: {e}",
                    pki.display()
                )
            }
        }
    }
    if clients.root_ca_cert_publisher {
        // The CA the API server's certificate is signed with, as kube-controller-manager
        // publishes its `--root-ca-file`.
        tasks.push(
            parts.supervise("root-ca-cert-publisher", move |client, informers, stop| {
                root_ca_cert_publisher::run(client, ca_pem.clone(), informers, stop).boxed()
            }),
        );
    }
    if let Some(config) = clients.node_lifecycle {
        tasks.push(
            parts.supervise("nodelifecycle", move |client, informers, stop| {
                node_lifecycle::run(client, config, informers, stop).boxed()
            }),
        );
    }
    if let Some(config) = clients.pod_gc {
        tasks.push(parts.supervise("podgc", move |client, informers, stop| {
            pod_gc::run(client, config, informers, stop).boxed()
        }));
    }
    let watches = parts.informers().run(stopped(stop.clone()));
    tasks.push(tokio::spawn(watches));
    futures::future::join_all(tasks).await;
}

/// The shutdown signal as a component takes it.
type Shutdown = BoxFuture<'static, ()>;

/// How most controllers are made.
type Make = fn(kube::Client, &mut Informers, Shutdown) -> BoxFuture<'static, ()>;

/// What the supervised components are made of (again, each time one is started anew).
#[derive(Clone)]
struct Parts {
    client: kube::Client,
    informers: Arc<Mutex<Informers>>,
    stop: watch::Receiver<()>,
}

impl Parts {
    /// The shared informers, to read or subscribe to (also while they run).
    fn informers(&self) -> MutexGuard<'_, Informers> {
        self.informers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Spawns component `name`, which `make` makes now and again after each failure.
    fn supervise<O, F>(&self, name: &'static str, make: F) -> tokio::task::JoinHandle<()>
    where
        O: Outcome + Send + 'static,
        F: Fn(kube::Client, &mut Informers, Shutdown) -> BoxFuture<'static, O> + Send + 'static,
    {
        let parts = self.clone();
        let start = move || {
            let shutdown = stopped(parts.stop.clone()).boxed();
            make(parts.client.clone(), &mut parts.informers(), shutdown)
        };
        tokio::spawn(supervise(name, start, stopped(self.stop.clone())))
    }
}

/// A resolver's address: `ip:port`, or `ip` for port 53.
fn parse_upstream(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("{text:?} is neither an IP address nor an IP address and port"))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown signal received");
}
