//! The io_uring layer against the real kernel and a real skiff-master: the runtime really
//! holds an io_uring instance, Lease renewals round-trip over the io_uring and the tokio
//! connection alike, and a connection whose API server went away reconnects with back-off.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use skiff::master::{Master, MasterOptions};
use skiff_node::kubelet::{self, Heartbeat as _};
use skiff_node::uring::heartbeat::{Next, Request, Requests};
use skiff_node::uring::{
    self, ConnectionError, Credential, Executor, HeartbeatConnection, HeartbeatRing,
    HeartbeatSettings, Transport, UringHeartbeat,
};

/// File descriptors of this process that are io_uring instances.
fn io_uring_fds() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy() == "anon_inode:[io_uring]")
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn executor_holds_an_io_uring_instance_while_it_runs() {
    let runtime = Executor::new().expect("runtime");
    assert!(
        runtime.is_io_uring(),
        "io_uring could not be set up on this machine"
    );
    let (inside, meminfo) = runtime.block_on(async {
        let meminfo = uring::read_file("/proc/meminfo").await;
        (uring::io_uring_active(), meminfo)
    });
    assert!(inside, "io_uring_active() inside the runtime");
    assert!(meminfo.expect("/proc/meminfo").starts_with(b"MemTotal:"));
    let fds = io_uring_fds();
    assert!(!fds.is_empty(), "no anon_inode:[io_uring] in /proc/self/fd");
    // The kernel's view of the ring: fdinfo of an io_uring fd lists its queues.
    let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fds[0]))
        .expect("fdinfo of the io_uring fd");
    assert!(fdinfo.contains("SqMask"), "{fdinfo}");
    assert!(!uring::io_uring_active(), "outside block_on");
}

/// A Lease for `node` as the kubelet creates it.
fn lease(node: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node.to_owned()),
            namespace: Some("kube-node-lease".to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_owned()),
            lease_duration_seconds: Some(40),
            renew_time: Some(MicroTime(micros(Utc::now()))),
            ..LeaseSpec::default()
        }),
    }
}

/// `time` cut to microseconds, as a MicroTime keeps it.
fn micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

fn settings(server_url: &str, master: &Master, node: &str) -> HeartbeatSettings {
    HeartbeatSettings {
        server_url: server_url.to_owned(),
        ca_pem: master.ca_pem().as_bytes().to_vec(),
        credential: Credential::BearerToken(master.token().to_owned()),
        node_name: node.to_owned(),
        lease_duration_seconds: 40,
    }
}

async fn renew_time(leases: &Api<Lease>, node: &str) -> anyhow::Result<DateTime<Utc>> {
    let lease = leases.get(node).await.context("GET lease")?;
    lease
        .spec
        .and_then(|spec| spec.renew_time)
        .map(|time| time.0)
        .context("lease without renewTime")
}

#[test]
fn lease_renewals_round_trip_on_both_transports() -> anyhow::Result<()> {
    let master = Master::start(MasterOptions::default())?;
    let runtime = Executor::new()?;
    ensure!(runtime.is_io_uring(), "io_uring could not be set up");
    runtime.block_on(async {
        let leases: Api<Lease> = Api::namespaced(master.kube_client().await?, "kube-node-lease");
        for (transport, node) in [
            (Transport::IoUring, "node-uring"),
            (Transport::Tokio, "node-tokio"),
        ] {
            leases.create(&PostParams::default(), &lease(node)).await?;
            let mut conn =
                HeartbeatConnection::new(transport, &settings(master.server_url(), &master, node))?;
            ensure!(conn.transport() == transport);
            // In the past, so that renew() below stamps a later time however fast this runs.
            let start = micros(Utc::now()) - chrono::Duration::seconds(1);
            let mut last = start;
            for i in 0..100 {
                last =
                    start + chrono::Duration::milliseconds(i) + chrono::Duration::microseconds(7);
                let renewed = conn
                    .renew_at(last)
                    .await
                    .with_context(|| format!("{transport:?} renewal {i}"))?;
                ensure!(renewed.status == 200, "{renewed:?}");
                let echoed: Lease = serde_json::from_slice(&renewed.body)?;
                ensure!(
                    echoed.spec.and_then(|s| s.renew_time).map(|t| t.0) == Some(last),
                    "{transport:?}: the response is the renewed Lease"
                );
            }
            ensure!(
                conn.connects() == 1,
                "{transport:?}: 100 renewals on one connection, made {}",
                conn.connects()
            );
            ensure!(
                renew_time(&leases, node).await? == last,
                "{transport:?}: stored renewTime is the last one sent"
            );

            let cost = uring::measure_renewals(&mut conn, 200).await?;
            eprintln!(
                "{}: one renewal {:?} wall, {:?} cpu of the agent thread ({} renewals)",
                transport.name(),
                cost.wall,
                cost.cpu,
                cost.renewals
            );
            ensure!(conn.connects() == 1);
            ensure!(
                renew_time(&leases, node).await? > last,
                "{transport:?}: renew() stamps the current time"
            );
        }

        // A Lease that does not exist is a 404 the kubelet can act on, without back-off.
        let mut missing = HeartbeatConnection::new(
            Transport::IoUring,
            &settings(master.server_url(), &master, "node-missing"),
        )?;
        match missing.renew().await {
            Err(err) if err.is_not_found() => ensure!(missing.retry_in().is_zero()),
            other => bail!("renewing a missing Lease: {other:?}"),
        }
        // A wrong token is refused.
        let mut wrong = settings(master.server_url(), &master, "node-uring");
        wrong.credential = Credential::BearerToken("not-the-token".into());
        let mut refused = HeartbeatConnection::new(Transport::IoUring, &wrong)?;
        match refused.renew().await {
            Err(ConnectionError::Status { status: 401, .. }) => {}
            other => bail!("renewing with a wrong token: {other:?}"),
        }
        // A CA that did not sign the server's certificate fails the handshake.
        let mut other_ca = settings(master.server_url(), &master, "node-uring");
        other_ca.ca_pem = rcgen::generate_simple_self_signed(vec!["other-ca".to_owned()])?
            .cert
            .pem()
            .into_bytes();
        for transport in [Transport::IoUring, Transport::Tokio] {
            let mut untrusted = HeartbeatConnection::new(transport, &other_ca)?;
            match untrusted.renew().await {
                Err(err)
                    if err.is_unavailable() && !matches!(err, ConnectionError::Status { .. }) => {}
                other => bail!("{transport:?} with an untrusted server: {other:?}"),
            }
        }
        Ok(())
    })
}

/// A TCP forwarder on a fixed loopback port to wherever `upstream` says, so a client keeps
/// one address while the master behind it restarts on another port. A connection whose
/// upstream cannot be reached is closed at once, as a down server would do.
struct Forwarder {
    addr: SocketAddr,
    upstream: Arc<Mutex<SocketAddr>>,
}

impl Forwarder {
    fn start(upstream: SocketAddr) -> io::Result<Forwarder> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let upstream = Arc::new(Mutex::new(upstream));
        let target = upstream.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let to = *target
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let Ok(server) = TcpStream::connect_timeout(&to, Duration::from_secs(1)) else {
                    continue; // dropped: the client sees the connection closed
                };
                for (from, into) in [(&client, &server), (&server, &client)] {
                    let (Ok(mut from), Ok(mut into)) = (from.try_clone(), into.try_clone()) else {
                        continue;
                    };
                    thread::spawn(move || {
                        let _ = io::copy(&mut from, &mut into);
                        let _ = into.shutdown(Shutdown::Write);
                        let _ = from.shutdown(Shutdown::Read);
                    });
                }
            }
        });
        Ok(Forwarder { addr, upstream })
    }

    fn set_upstream(&self, to: SocketAddr) {
        *self
            .upstream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

fn master_addr(master: &Master) -> anyhow::Result<SocketAddr> {
    let url = master.server_url();
    url.strip_prefix("https://")
        .and_then(|authority| authority.parse().ok())
        .with_context(|| format!("master URL {url}"))
}

#[test]
fn renewals_reconnect_with_backoff_after_the_master_restarts() -> anyhow::Result<()> {
    let mut master = Master::start(MasterOptions::default())?;
    let forwarder = Forwarder::start(master_addr(&master)?)?;
    let runtime = Executor::new()?;
    ensure!(runtime.is_io_uring(), "io_uring could not be set up");
    let node = "node-restart";
    let mut conns = runtime.block_on(async {
        let leases: Api<Lease> = Api::namespaced(master.kube_client().await?, "kube-node-lease");
        leases.create(&PostParams::default(), &lease(node)).await?;
        let mut conns = Vec::new();
        for transport in [Transport::IoUring, Transport::Tokio] {
            let mut conn =
                HeartbeatConnection::new(transport, &settings(&forwarder.url(), &master, node))?
                    .with_timeout(Duration::from_secs(5));
            conn.renew()
                .await
                .with_context(|| format!("{transport:?} before the restart"))?;
            conns.push(conn);
        }
        anyhow::Ok(conns)
    })?;

    master.stop();
    runtime.block_on(async {
        for conn in &mut conns {
            let transport = conn.transport();
            // The kept-alive connection is gone and nothing answers: errors, with back-off.
            let started = Instant::now();
            for attempt in 0..3 {
                match conn.renew().await {
                    Err(err) if err.is_unavailable() => {}
                    other => {
                        bail!("{transport:?} attempt {attempt} while the master is down: {other:?}")
                    }
                }
            }
            // Waits of 200 ms and 400 ms before the second and third attempts.
            ensure!(
                started.elapsed() >= Duration::from_millis(600),
                "{transport:?} did not back off: {:?}",
                started.elapsed()
            );
            ensure!(
                conn.retry_in() > Duration::from_millis(400),
                "{transport:?}: {:?}",
                conn.retry_in()
            );
        }
        anyhow::Ok(())
    })?;

    master.restart()?;
    forwarder.set_upstream(master_addr(&master)?);
    runtime.block_on(async {
        let leases: Api<Lease> = Api::namespaced(master.kube_client().await?, "kube-node-lease");
        for conn in &mut conns {
            let transport = conn.transport();
            let before = renew_time(&leases, node).await?;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match conn.renew().await {
                    Ok(_) => break,
                    Err(err) if Instant::now() < deadline => {
                        eprintln!("{transport:?}: still failing after the restart: {err}");
                    }
                    Err(err) => {
                        return Err(err).context(format!("{transport:?} after the restart"));
                    }
                }
            }
            ensure!(
                conn.retry_in().is_zero(),
                "{transport:?}: back-off forgotten after success"
            );
            ensure!(conn.connects() >= 2, "{transport:?} reconnected");
            ensure!(
                renew_time(&leases, node).await? > before,
                "{transport:?} renewed after the restart"
            );
        }
        anyhow::Ok(())
    })
}

#[test]
fn retarget_moves_the_connection_to_the_new_address() -> anyhow::Result<()> {
    let mut master = Master::start(MasterOptions::default())?;
    let runtime = Executor::new()?;
    let node = "node-retarget";
    let mut conn = runtime.block_on(async {
        let leases: Api<Lease> = Api::namespaced(master.kube_client().await?, "kube-node-lease");
        leases.create(&PostParams::default(), &lease(node)).await?;
        let mut conn = HeartbeatConnection::new(
            Transport::preferred(),
            &settings(master.server_url(), &master, node),
        )?;
        conn.renew().await?;
        anyhow::Ok(conn)
    })?;
    let old_url = master.server_url().to_owned();
    master.restart_on_new_port()?;
    ensure!(
        master.server_url() != old_url,
        "the restarted master kept its port"
    );
    runtime.block_on(async {
        conn.retarget(master.server_url())?;
        let renewed = conn.renew().await.context("renewal at the new address")?;
        ensure!(renewed.status == 200);
        ensure!(conn.connects() == 2);
        anyhow::Ok(())
    })
}

#[test]
fn kubelet_heartbeat_writes_lease_and_node_status_over_io_uring() -> anyhow::Result<()> {
    let master = Master::start(MasterOptions::default())?;
    let node = "node-kubelet";
    uring::block_on(async {
        ensure!(uring::io_uring_active(), "io_uring could not be set up");
        let client = master.kube_client().await?;
        let nodes: Api<Node> = Api::all(client.clone());
        let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
        let registered = Node {
            metadata: ObjectMeta {
                name: Some(node.to_owned()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        };
        nodes.create(&PostParams::default(), &registered).await?;
        let heartbeat = UringHeartbeat::preferred(&settings(master.server_url(), &master, node))?;

        // No Lease yet: the kubelet is told to create it.
        let now = MicroTime(micros(Utc::now()));
        match heartbeat.renew_lease(&now).await {
            Err(kubelet::HeartbeatError::NotFound) => {}
            other => bail!("renewing a missing Lease: {other:?}"),
        }
        leases.create(&PostParams::default(), &lease(node)).await?;
        let now = MicroTime(micros(Utc::now()));
        heartbeat.renew_lease(&now).await?;
        let stored = leases.get(node).await?.spec.unwrap_or_default();
        ensure!(stored.renew_time == Some(now), "{stored:?}");
        ensure!(stored.holder_identity.as_deref() == Some(node));
        ensure!(stored.lease_duration_seconds == Some(40));

        let status = NodeStatus {
            capacity: Some([("cpu".to_owned(), Quantity("2".to_owned()))].into()),
            ..NodeStatus::default()
        };
        heartbeat.update_node_status(&status).await?;
        let stored = nodes.get(node).await?.status.unwrap_or_default();
        ensure!(stored.capacity == status.capacity, "{stored:?}");
        Ok(())
    })
}

/// A scripted request: the node, the status patch (none: a Lease renewal), the renewTime.
type Step = (String, Option<Vec<u8>>, DateTime<Utc>);
/// A [`Step`] as written in the test.
type StepRef<'a> = (&'a str, Option<&'a [u8]>, DateTime<Utc>);

/// The requests of [`heartbeat_ring_carries_many_connections_requests`]: a queue per
/// connection, every outcome recorded; stops the ring once all are answered (or at the
/// deadline).
struct Script {
    queues: Vec<std::collections::VecDeque<Step>>,
    in_flight: Vec<Option<Step>>,
    /// (connection, node, status or error) in the order answered.
    outcomes: Vec<(usize, String, Result<u16, ConnectionError>)>,
    pending: usize,
    deadline: Instant,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Script {
    fn new(queues: Vec<Vec<StepRef<'_>>>) -> Script {
        let pending = queues.iter().map(Vec::len).sum();
        Script {
            in_flight: queues.iter().map(|_| None).collect(),
            queues: queues
                .into_iter()
                .map(|queue| {
                    queue
                        .into_iter()
                        .map(|(node, patch, at)| (node.to_owned(), patch.map(<[u8]>::to_vec), at))
                        .collect()
                })
                .collect(),
            outcomes: Vec::new(),
            pending,
            deadline: Instant::now() + Duration::from_secs(60),
            stop: Arc::default(),
        }
    }

    /// Runs the script on a ring of one connection per queue, on a thread of its own.
    fn run(mut self, settings: HeartbeatSettings) -> anyhow::Result<Script> {
        thread::spawn(move || -> anyhow::Result<Script> {
            let mut ring = HeartbeatRing::new(&settings, self.queues.len())?;
            let stop = self.stop.clone();
            ring.run(&mut self, &stop)?;
            Ok(self)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the ring's thread panicked"))?
    }
}

impl Requests for Script {
    fn next(&mut self, connection: usize, now: Instant) -> Next<'_> {
        if now > self.deadline {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let Some(request) = self.queues[connection].pop_front() else {
            return Next::At(now + Duration::from_millis(50));
        };
        let (node, patch, at) = self.in_flight[connection].insert(request);
        Next::Send(match patch {
            Some(patch) => Request::NodeStatus { node, patch },
            None => Request::RenewLease { node, at: *at },
        })
    }

    fn done(
        &mut self,
        connection: usize,
        outcome: Result<uring::ApiResponse, ConnectionError>,
        _took: Duration,
    ) {
        let node = self.in_flight[connection]
            .take()
            .map(|(node, ..)| node)
            .unwrap_or_default();
        self.outcomes
            .push((connection, node, outcome.map(|response| response.status)));
        self.pending = self.pending.saturating_sub(1);
        if self.pending == 0 {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

#[test]
fn heartbeat_ring_carries_many_connections_requests() -> anyhow::Result<()> {
    let master = Master::start(MasterOptions::default())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let client = runtime.block_on(master.kube_client())?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(client);
    let names: Vec<String> = (0..6).map(|i| format!("ring-{i}")).collect();
    runtime.block_on(async {
        for name in &names {
            leases.create(&PostParams::default(), &lease(name)).await?;
        }
        let node = Node {
            metadata: ObjectMeta {
                name: Some(names[0].clone()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        };
        nodes.create(&PostParams::default(), &node).await?;
        anyhow::Ok(())
    })?;
    // Three connections, two nodes each, ten renewals of each node one after the other; a
    // status write on the first; a Lease that does not exist on the last.
    let start = micros(Utc::now()) - chrono::Duration::seconds(1);
    let at = |i: i64| start + chrono::Duration::milliseconds(i) + chrono::Duration::microseconds(3);
    let status = br#"{"status":{"nodeInfo":{"kubeletVersion":"ring"}}}"#;
    let mut queues: Vec<Vec<StepRef<'_>>> = (0..3)
        .map(|c| {
            (0..10)
                .flat_map(|i| {
                    [
                        (names[c].as_str(), None, at(i)),
                        (names[c + 3].as_str(), None, at(i)),
                    ]
                })
                .collect()
        })
        .collect();
    queues[0].push((&names[0], Some(status), at(0)));
    queues[2].push(("ring-missing", None, at(0)));
    let settings = settings(master.server_url(), &master, "ring");
    let script = Script::new(queues).run(settings.clone())?;
    ensure!(
        script.pending == 0,
        "unanswered after a minute: {:?}",
        script.outcomes
    );
    for (connection, node, outcome) in &script.outcomes {
        match (node.as_str(), outcome) {
            ("ring-missing", Err(err)) => ensure!(err.is_not_found(), "{err}"),
            (_, Ok(200)) => {}
            other => bail!("connection {connection}: {other:?}"),
        }
    }
    // Each connection's requests were answered in the order given.
    let answered: Vec<&str> = script
        .outcomes
        .iter()
        .filter(|(connection, ..)| *connection == 1)
        .map(|(_, node, _)| node.as_str())
        .collect();
    ensure!(answered.len() == 20 && answered.chunks(2).all(|pair| pair == ["ring-1", "ring-4"]));
    runtime.block_on(async {
        for name in &names {
            ensure!(
                renew_time(&leases, name).await? == at(9),
                "{name}'s last renewTime"
            );
        }
        let node = nodes.get(&names[0]).await?;
        let kubelet = node
            .status
            .and_then(|s| s.node_info)
            .map(|i| i.kubelet_version);
        ensure!(
            kubelet.as_deref() == Some("ring"),
            "the status patch: {kubelet:?}"
        );
        anyhow::Ok(())
    })?;
    // A wrong token is refused, and said so.
    let mut wrong = settings;
    wrong.credential = Credential::BearerToken("not-the-token".into());
    let refused = Script::new(vec![vec![("ring-0", None, at(20))]]).run(wrong)?;
    match refused.outcomes.as_slice() {
        [(0, _, Err(ConnectionError::Status { status: 401, .. }))] => Ok(()),
        other => bail!("renewing with a wrong token: {other:?}"),
    }
}
