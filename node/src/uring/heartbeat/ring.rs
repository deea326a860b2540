//! Many connections' heartbeats on one io_uring ring that a thread of its own sleeps in:
//! [`HeartbeatRing`].
//!
//! tokio-uring keeps its ring behind tokio's epoll: each time the runtime parks it makes an
//! `io_uring_enter` to submit and an `epoll_wait` to sleep, and a request and its answer
//! take two parks (the write's completion, then the read's), so a request/response exchange
//! costs more system calls on it than on plain tokio. Here the ring is the only thing the
//! thread sleeps in: one `io_uring_enter` per wake-up submits every connection's sends and
//! receives queued since the last one, runs the completions' task work (`DEFER_TASKRUN`) and
//! waits for the next completion or the next request's time. A connection keeps its
//! receive posted while its request is sent, so the answer needs no further submission.
//!
//! What to send comes from a [`Requests`] (the hollow nodes' renewal schedule): asked for a
//! connection's next request when the connection is free, told each request's outcome. The
//! requests are the [`HeartbeatConnection`](super::HeartbeatConnection)'s: the same HTTP/1.1
//! Lease renewal and node status merge patch, the same rustls configuration, the same
//! timeout, and the same back-off after the API server could not be reached.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use io_uring::{IoUring, opcode, squeue, types};
use rustls::{ClientConfig, ClientConnection};
use tracing::debug;

use super::ConnectionError;
use super::backoff::{Backoff, INITIAL_BACKOFF, MAX_BACKOFF};
use super::connection::{ApiResponse, DEFAULT_TIMEOUT, check_status};
use super::settings::{Credential, HeartbeatSettings};
use super::transport::Target;
use crate::uring::http::{self, LeaseRequest, RequestHead};
use crate::uring::tls;

/// The longest the thread sleeps without looking at its stop flag.
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// The longest an answer waits for others to be reaped with it.
const BATCH_WAIT: Duration = Duration::from_millis(1);
/// How long a connection attempt may block the thread (the API server is near: loopback or
/// the node-local balancer).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The low bit of an operation's `user_data`: which of a connection's two operations.
const RECEIVE: u64 = 0;
const SEND: u64 = 1;

/// A heartbeat request.
#[derive(Debug)]
pub enum Request<'a> {
    /// Renew the Lease `kube-node-lease/<node>` (as [`HeartbeatConnection::renew_lease_of`](super::HeartbeatConnection::renew_lease_of)).
    RenewLease {
        /// The node, holder of its Lease.
        node: &'a str,
        /// The `renewTime` to write.
        at: DateTime<Utc>,
    },
    /// Merge-patch a Node's status (as [`HeartbeatConnection::update_node_status_of`](super::HeartbeatConnection::update_node_status_of)).
    NodeStatus {
        /// The Node.
        node: &'a str,
        /// The merge patch of its `status` subresource.
        patch: &'a [u8],
    },
}

/// A connection's next request, or when to ask again.
#[derive(Debug)]
pub enum Next<'a> {
    /// Send this now.
    Send(Request<'a>),
    /// Nothing before this time.
    At(Instant),
}

/// What the connections send, and who hears how it went; called on the ring's thread.
pub trait Requests {
    /// The next request of free connection `connection`, at `now`.
    fn next(&mut self, connection: usize, now: Instant) -> Next<'_>;
    /// The outcome of the request `connection` was last given, which took `took`.
    fn done(
        &mut self,
        connection: usize,
        outcome: Result<ApiResponse, ConnectionError>,
        took: Duration,
    );
}

/// `connections` persistent HTTPS/1.1 connections to one API server on one io_uring ring.
pub struct HeartbeatRing {
    ring: IoUring,
    target: Target,
    tls: Arc<ClientConfig>,
    head: RequestHead,
    lease_duration_seconds: i32,
    connections: Vec<Connection>,
    /// The request being encoded; reused.
    request: Vec<u8>,
}

/// One connection's socket, TLS state and buffers. Its two buffers are the kernel's while
/// an operation on them is in flight: `incoming` is allocated once and never resized, and
/// `outgoing` is not touched while `sending`.
struct Connection {
    socket: Option<TcpStream>,
    tls: Option<ClientConnection>,
    incoming: Box<[u8]>,
    outgoing: Vec<u8>,
    /// Bytes of `outgoing` the kernel took so far.
    sent: usize,
    receiving: bool,
    sending: bool,
    /// Decrypted bytes of the answer being read.
    plaintext: Vec<u8>,
    /// When the request in flight was sent (none: the connection is free).
    started: Option<Instant>,
    /// When the connection was made: the handshake's deadline counts from it.
    connected: Option<Instant>,
    /// Failed or finished: closes once its operations have completed.
    closing: bool,
    /// When to look at the connection next, unless an operation of it completes first.
    look_at: Option<Instant>,
    backoff: Backoff,
}

impl Connection {
    fn new() -> Connection {
        Connection {
            socket: None,
            tls: None,
            incoming: vec![0; tls::READ_BUFFER].into_boxed_slice(),
            outgoing: Vec::new(),
            sent: 0,
            receiving: false,
            sending: false,
            plaintext: Vec::with_capacity(4096),
            started: None,
            connected: None,
            closing: false,
            look_at: None,
            backoff: Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF),
        }
    }

    /// Shuts the socket down, so the operations in flight complete; closed once they have.
    fn begin_close(&mut self) {
        self.closing = true;
        if let Some(socket) = &self.socket {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    fn close(&mut self) {
        self.socket = None;
        self.tls = None;
        self.plaintext.clear();
        self.connected = None;
        self.closing = false;
    }

    fn busy(&self) -> bool {
        self.receiving || self.sending
    }
}

impl HeartbeatRing {
    /// A ring for `connections` connections to `settings`' API server, to be run on the
    /// thread that calls this (the ring is made for a single submitter). Nothing is
    /// connected yet.
    pub fn new(settings: &HeartbeatSettings, connections: usize) -> Result<Self, ConnectionError> {
        let target = Target::from_url(&settings.server_url)?;
        let (token, identity) = match &settings.credential {
            Credential::BearerToken(token) => (Some(token.as_str()), None),
            Credential::ClientCertificate(identity) => (None, Some(identity)),
        };
        let head = RequestHead::new(&target.authority, token)?;
        let tls = tls::client_config(&settings.ca_pem, identity)?;
        let connections = connections.max(1);
        // Two operations in flight per connection at most: the receive and a send.
        let entries = u32::try_from(connections.saturating_mul(2))
            .unwrap_or(u32::MAX)
            .clamp(8, 1 << 15)
            .next_power_of_two();
        Ok(HeartbeatRing {
            ring: build_ring(entries)?,
            target,
            tls,
            head,
            lease_duration_seconds: settings.lease_duration_seconds,
            connections: (0..connections).map(|_| Connection::new()).collect(),
            request: Vec::with_capacity(2048),
        })
    }

    /// Sends what `requests` gives until `stop` is set, then closes every connection.
    /// Fails only if the ring itself fails.
    pub fn run(&mut self, requests: &mut impl Requests, stop: &AtomicBool) -> io::Result<()> {
        let mut completions = Vec::with_capacity(self.connections.len() * 2);
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let mut wake = now + MAX_SLEEP;
            for id in 0..self.connections.len() {
                // A connection is looked at when one of its operations completed or the time
                // it asked for came, not at every wake-up of every other.
                if let Some(at) = self.connections[id].look_at
                    && now < at
                {
                    wake = wake.min(at);
                    continue;
                }
                let mut at = now + MAX_SLEEP;
                self.advance(id, now, requests, &mut at);
                self.connections[id].look_at = Some(at);
                wake = wake.min(at);
            }
            // Waiting for a quarter of the answers due (at most BATCH_WAIT longer than for
            // the first) wakes the thread once for many; DEFER_TASKRUN lets the kernel wait
            // for them without returning to the thread.
            let awaited = self
                .connections
                .iter()
                .filter(|c| c.started.is_some() && c.receiving)
                .count();
            let want = (awaited / 4).max(1);
            let mut timeout = wake.saturating_duration_since(Instant::now());
            if want > 1 {
                timeout = timeout.min(BATCH_WAIT);
            }
            if let Err(err) = self.submit_and_wait(want, Some(timeout)) {
                self.abandon();
                return Err(err);
            }
            completions.clear();
            completions.extend(
                self.ring
                    .completion()
                    .map(|cqe| (cqe.user_data(), cqe.result())),
            );
            for &(user_data, result) in &completions {
                let id = usize::try_from(user_data >> 1).unwrap_or(usize::MAX);
                let Some(connection) = self.connections.get_mut(id) else {
                    continue;
                };
                connection.look_at = None;
                if user_data & 1 == SEND {
                    self.sent(id, result, requests);
                } else {
                    self.received(id, result, requests);
                }
            }
        }
        // No buffer may be freed while the kernel may still write to it.
        for connection in &mut self.connections {
            connection.begin_close();
        }
        while self.connections.iter().any(Connection::busy) {
            if let Err(err) = self.submit_and_wait(1, None) {
                self.abandon();
                return Err(err);
            }
            for cqe in self.ring.completion() {
                let id = usize::try_from(cqe.user_data() >> 1).unwrap_or(usize::MAX);
                if let Some(connection) = self.connections.get_mut(id) {
                    if cqe.user_data() & 1 == SEND {
                        connection.sending = false;
                    } else {
                        connection.receiving = false;
                    }
                }
            }
        }
        for connection in &mut self.connections {
            connection.close();
        }
        Ok(())
    }

    /// The ring is broken: operations in flight may still complete, so the connections'
    /// buffers are never freed.
    fn abandon(&mut self) {
        std::mem::take(&mut self.connections).leak();
    }

    /// One `io_uring_enter`: submits what is queued, waits for `want` completions (at most
    /// `timeout`).
    fn submit_and_wait(&mut self, want: usize, timeout: Option<Duration>) -> io::Result<()> {
        let result = match timeout {
            Some(timeout) => {
                let timespec = types::Timespec::from(timeout);
                let args = types::SubmitArgs::new().timespec(&timespec);
                self.ring.submitter().submit_with_args(want, &args)
            }
            None => self.ring.submitter().submit_and_wait(want),
        };
        match result {
            Ok(_) => Ok(()),
            // The time was up, a signal came, or the completion queue is full: reap and go on.
            Err(err)
                if matches!(
                    err.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Queues an operation; submits first if the queue is full.
    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the entry's buffer is a connection's, which stays allocated and
            // untouched until its completion is reaped (see `Connection`).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    /// Moves connection `id` on at `now`: closes it once a failure's operations are done,
    /// times its request or handshake out, or starts its next request.
    fn advance(
        &mut self,
        id: usize,
        now: Instant,
        requests: &mut impl Requests,
        wake: &mut Instant,
    ) {
        let connection = &mut self.connections[id];
        if connection.closing {
            if !connection.busy() {
                connection.close();
            } else {
                return;
            }
        }
        let deadline = connection
            .started
            .or(connection.connected.filter(|_| {
                connection
                    .tls
                    .as_ref()
                    .is_some_and(|tls| tls.is_handshaking())
            }))
            .map(|since| since + DEFAULT_TIMEOUT);
        if let Some(deadline) = deadline {
            if now >= deadline {
                self.fail(id, ConnectionError::Timeout(DEFAULT_TIMEOUT), requests);
            } else {
                *wake = (*wake).min(deadline);
            }
            return;
        }
        let retry_in = connection.backoff.remaining(now);
        if !retry_in.is_zero() {
            *wake = (*wake).min(now + retry_in);
            return;
        }
        let encoded = match requests.next(id, now) {
            Next::At(at) => {
                *wake = (*wake).min(at);
                return;
            }
            Next::Send(request) => encode(
                &mut self.request,
                &self.head,
                self.lease_duration_seconds,
                &request,
            ),
        };
        if let Err(err) = encoded {
            requests.done(id, Err(err), Duration::ZERO);
            return;
        }
        if self.connections[id].socket.is_none()
            && let Err(err) = self.connect(id)
        {
            self.connections[id].backoff.failed(now);
            requests.done(id, Err(err), Duration::ZERO);
            return;
        }
        let connection = &mut self.connections[id];
        let Some(tls) = connection.tls.as_mut() else {
            return;
        };
        // rustls keeps what is written during the handshake until the handshake is done.
        if let Err(err) = tls.writer().write_all(&self.request) {
            connection.started = Some(now);
            self.fail(id, err.into(), requests);
            return;
        }
        connection.started = Some(now);
        self.flush(id, requests);
    }

    /// Connects connection `id` (blocking the thread for at most [`CONNECT_TIMEOUT`]) and
    /// posts its receive.
    fn connect(&mut self, id: usize) -> Result<(), ConnectionError> {
        let mut last_error = None;
        let mut socket = None;
        for addr in self.target.resolve_blocking()? {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(connected) => {
                    socket = Some(connected);
                    break;
                }
                Err(source) => last_error = Some(ConnectionError::Connect { addr, source }),
            }
        }
        let Some(socket) = socket else {
            return Err(last_error.unwrap_or(ConnectionError::Closed));
        };
        // Requests are single small writes; do not let Nagle hold them back.
        socket.set_nodelay(true)?;
        let tls = ClientConnection::new(self.tls.clone(), self.target.server_name().clone())?;
        let connection = &mut self.connections[id];
        connection.socket = Some(socket);
        connection.tls = Some(tls);
        connection.connected = Some(Instant::now());
        self.receive(id)?;
        Ok(())
    }

    /// Posts connection `id`'s receive.
    fn receive(&mut self, id: usize) -> io::Result<()> {
        let connection = &mut self.connections[id];
        let Some(socket) = &connection.socket else {
            return Ok(());
        };
        let entry = opcode::Recv::new(
            types::Fd(socket.as_raw_fd()),
            connection.incoming.as_mut_ptr(),
            u32::try_from(connection.incoming.len()).unwrap_or(u32::MAX),
        )
        .build()
        .user_data(user_data(id, RECEIVE));
        connection.receiving = true;
        self.push(&entry)
    }

    /// Sends what rustls has queued for connection `id`, unless a send is in flight.
    fn flush(&mut self, id: usize, requests: &mut impl Requests) {
        let connection = &mut self.connections[id];
        if connection.sending || connection.closing {
            return;
        }
        let Some(tls) = connection.tls.as_mut() else {
            return;
        };
        if !tls.wants_write() {
            return;
        }
        connection.outgoing.clear();
        let mut encrypted = Ok(());
        while encrypted.is_ok() && tls.wants_write() {
            encrypted = tls.write_tls(&mut connection.outgoing).map(drop);
        }
        connection.sent = 0;
        let Some(fd) = connection.socket.as_ref().map(AsRawFd::as_raw_fd) else {
            return;
        };
        if let Err(err) = encrypted.and_then(|()| self.send(id, fd)) {
            self.fail(id, err.into(), requests);
        }
    }

    /// Posts the send of what is left of connection `id`'s `outgoing`.
    fn send(&mut self, id: usize, fd: i32) -> io::Result<()> {
        let connection = &mut self.connections[id];
        let rest = &connection.outgoing[connection.sent..];
        let entry = opcode::Send::new(
            types::Fd(fd),
            rest.as_ptr(),
            u32::try_from(rest.len()).unwrap_or(u32::MAX),
        )
        .build()
        .user_data(user_data(id, SEND));
        connection.sending = true;
        self.push(&entry)
    }

    /// A send of connection `id` completed with `result` (bytes taken, or `-errno`).
    fn sent(&mut self, id: usize, result: i32, requests: &mut impl Requests) {
        let connection = &mut self.connections[id];
        connection.sending = false;
        if connection.closing {
            return;
        }
        let Ok(taken) = usize::try_from(result) else {
            let err = io::Error::from_raw_os_error(result.saturating_neg());
            self.fail(id, err.into(), requests);
            return;
        };
        connection.sent = connection
            .sent
            .saturating_add(taken)
            .min(connection.outgoing.len());
        if connection.sent < connection.outgoing.len() {
            let Some(fd) = connection.socket.as_ref().map(AsRawFd::as_raw_fd) else {
                return;
            };
            if let Err(err) = self.send(id, fd) {
                self.fail(id, err.into(), requests);
            }
        } else {
            self.flush(id, requests);
        }
    }

    /// A receive of connection `id` completed with `result` (bytes read, 0 at the end, or
    /// `-errno`): decrypts it, posts the next receive, and finishes the request if its
    /// answer is complete.
    fn received(&mut self, id: usize, result: i32, requests: &mut impl Requests) {
        let connection = &mut self.connections[id];
        connection.receiving = false;
        if connection.closing {
            return;
        }
        let read = match usize::try_from(result) {
            Ok(0) => {
                // The server closed the connection: an error only if an answer was due.
                if connection.started.is_some() {
                    self.fail(id, ConnectionError::Closed, requests);
                } else {
                    connection.begin_close();
                }
                return;
            }
            Ok(read) => read.min(connection.incoming.len()),
            Err(_) => {
                let err = io::Error::from_raw_os_error(result.saturating_neg());
                self.fail(id, err.into(), requests);
                return;
            }
        };
        let Some(tls) = connection.tls.as_mut() else {
            return;
        };
        let mut peer_closed = false;
        let mut pos = 0;
        while pos < read {
            let taken = match tls.read_tls(&mut &connection.incoming[pos..read]) {
                Ok(0) => break,
                Ok(taken) => taken,
                Err(err) => {
                    self.fail(id, err.into(), requests);
                    return;
                }
            };
            pos += taken;
            let state = match tls.process_new_packets() {
                Ok(state) => state,
                Err(err) => {
                    // rustls queued an alert saying why; the close does not wait for it.
                    self.fail(id, err.into(), requests);
                    return;
                }
            };
            let pending = state.plaintext_bytes_to_read();
            peer_closed |= state.peer_has_closed();
            if pending > 0 {
                let start = connection.plaintext.len();
                connection.plaintext.resize(start + pending, 0);
                if let Err(err) = tls.reader().read_exact(&mut connection.plaintext[start..]) {
                    self.fail(id, err.into(), requests);
                    return;
                }
            }
        }
        // The handshake's next flight, or the request rustls held until it was done.
        self.flush(id, requests);
        let connection = &mut self.connections[id];
        if connection.closing {
            return;
        }
        let Some(started) = connection.started else {
            if !connection.plaintext.is_empty() || peer_closed {
                // An answer nobody asked for, or the server's goodbye: start afresh.
                connection.begin_close();
            } else if let Err(err) = self.receive(id) {
                self.fail(id, err.into(), requests);
            }
            return;
        };
        match http::parse_response(&connection.plaintext, peer_closed) {
            Ok(Some((response, used))) => {
                connection.plaintext.drain(..used);
                connection.started = None;
                let reuse = response.keep_alive && connection.plaintext.is_empty() && !peer_closed;
                let outcome = check_status(response);
                match &outcome {
                    Err(err) if err.is_unavailable() => {
                        connection.backoff.failed(Instant::now());
                    }
                    _ => connection.backoff.succeeded(),
                }
                if reuse {
                    if let Err(err) = self.receive(id) {
                        self.connections[id].begin_close();
                        debug!(connection = id, error = %err, "posting a receive");
                    }
                } else {
                    self.connections[id].begin_close();
                }
                requests.done(id, outcome, started.elapsed());
            }
            Ok(None) if peer_closed => self.fail(id, ConnectionError::Closed, requests),
            Ok(None) => {
                if let Err(err) = self.receive(id) {
                    self.fail(id, err.into(), requests);
                }
            }
            Err(err) => self.fail(id, err.into(), requests),
        }
    }

    /// Connection `id` failed: its request (if any) fails with `err`, and the connection is
    /// closed once its operations are done. After an error that says the API server could
    /// not be reached, its next request waits out the back-off.
    fn fail(&mut self, id: usize, err: ConnectionError, requests: &mut impl Requests) {
        let connection = &mut self.connections[id];
        if err.is_unavailable() {
            connection.backoff.failed(Instant::now());
        }
        connection.begin_close();
        match connection.started.take() {
            Some(started) => requests.done(id, Err(err), started.elapsed()),
            None => debug!(connection = id, error = %err, "heartbeat connection failed"),
        }
    }
}

/// The ring, with the kernel doing a completion's work when the thread next enters it
/// (`COOP_TASKRUN`, `DEFER_TASKRUN` for a single submitter); kernels that refuse those flags
/// get a plain ring.
fn build_ring(entries: u32) -> io::Result<IoUring> {
    IoUring::builder()
        .setup_coop_taskrun()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
        .or_else(|_| IoUring::builder().setup_coop_taskrun().build(entries))
        .or_else(|_| IoUring::new(entries))
}

fn user_data(id: usize, operation: u64) -> u64 {
    (id as u64) << 1 | operation
}

/// Writes `request` as HTTP/1.1 into `into` (cleared first).
fn encode(
    into: &mut Vec<u8>,
    head: &RequestHead,
    lease_duration_seconds: i32,
    request: &Request<'_>,
) -> Result<(), ConnectionError> {
    into.clear();
    match request {
        Request::RenewLease { node, at } => {
            let mut lease = LeaseRequest::new(head, node, lease_duration_seconds)?;
            lease.stamp(*at)?;
            into.extend_from_slice(lease.bytes());
        }
        Request::NodeStatus { node, patch } => {
            into.extend_from_slice(&head.merge_patch(&http::node_status_path(node)?, patch));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_of_a_connection_are_told_apart() {
        for id in [0, 1, 63, 100_000] {
            for operation in [RECEIVE, SEND] {
                let data = user_data(id, operation);
                assert_eq!(usize::try_from(data >> 1).ok(), Some(id));
                assert_eq!(data & 1, operation);
            }
        }
    }

    #[test]
    fn requests_are_the_heartbeat_connections() {
        let head = RequestHead::new("127.0.0.1:6443", Some("t")).expect("head");
        let mut into = Vec::new();
        let at = DateTime::parse_from_rfc3339("2026-12-05T10:00:00.5Z")
            .expect("time")
            .with_timezone(&Utc);
        encode(
            &mut into,
            &head,
            40,
            &Request::RenewLease { node: "n-1", at },
        )
        .expect("lease");
        let text = String::from_utf8(into.clone()).expect("utf-8");
        assert!(text.starts_with(
            "PATCH /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n-1 HTTP/1.1\r\n"
        ));
        assert!(text.ends_with(
            r#"{"spec":{"holderIdentity":"n-1","leaseDurationSeconds":40,"renewTime":"2026-12-05T10:00:00.500000Z"}}"#
        ));
        encode(
            &mut into,
            &head,
            40,
            &Request::NodeStatus {
                node: "n-1",
                patch: b"{}",
            },
        )
        .expect("status");
        let text = String::from_utf8(into.clone()).expect("utf-8");
        assert!(
            text.starts_with("PATCH /api/v1/nodes/n-1/status HTTP/1.1\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\n{}"));
        let bad = encode(
            &mut into,
            &head,
            40,
            &Request::RenewLease {
                node: "Not A Name",
                at,
            },
        );
        assert!(matches!(bad, Err(ConnectionError::InvalidSettings(_))));
    }
}
