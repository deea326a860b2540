//! The node's heartbeat: renewing its Lease (`kube-node-lease/<node>`), and writing its
//! status, over one persistent HTTPS/1.1 connection to the API server.
//!
//! The renewal request is built once (a merge patch of `spec.renewTime`, bearer token,
//! cluster CA trusted) and only its timestamp is rewritten per renewal. The connection is
//! kept open between requests; a connection the server closed meanwhile is replaced at once, and when
//! the API server cannot be reached, renewals back off exponentially (200 ms doubling up to
//! 7 s, as the kubelet's lease controller does) until one succeeds.
//!
//! Two transports behind one type: [`Transport::IoUring`] (a tokio-uring `TcpStream`,
//! rustls over owned buffers) and [`Transport::Tokio`] (tokio `TcpStream` + tokio-rustls),
//! the latter also for side-by-side measurements with [`measure_renewals`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tracing::debug;

use super::executor::io_uring_active;
use super::http::{self, LeaseRequest, RequestHead, Response};
use super::tls::{self, UringTlsStream};

/// How long one request may take, connecting included (the kubelet uses its renew interval).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait after a failed renewal.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between failed renewals.
pub const MAX_BACKOFF: Duration = Duration::from_secs(7);

/// Which socket layer carries the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// tokio-uring `TcpStream`, rustls driven over owned buffers. Needs an io_uring
    /// [`Executor`](super::Executor).
    IoUring,
    /// tokio `TcpStream` with tokio-rustls; works on either runtime.
    Tokio,
}

impl Transport {
    /// [`Transport::IoUring`] when the calling thread runs on io_uring, else
    /// [`Transport::Tokio`].
    pub fn preferred() -> Transport {
        if io_uring_active() {
            Transport::IoUring
        } else {
            Transport::Tokio
        }
    }

    /// `"io_uring"` or `"tokio"`, for logs and benchmark keys.
    pub fn name(self) -> &'static str {
        match self {
            Transport::IoUring => "io_uring",
            Transport::Tokio => "tokio",
        }
    }
}

/// Where and as whom the heartbeat renews.
#[derive(Clone, Debug)]
pub struct HeartbeatSettings {
    /// The API server, `https://host:port` (a path, if any, is ignored).
    pub server_url: String,
    /// The cluster CA certificate(s), PEM: the only roots trusted.
    pub ca_pem: Vec<u8>,
    /// The node's bearer token.
    pub token: String,
    /// The node's name, also the Lease's name.
    pub node_name: String,
    /// The Lease's `leaseDurationSeconds` (the kubelet's default: 40).
    pub lease_duration_seconds: i32,
}

impl HeartbeatSettings {
    /// The settings of the current context of `kubeconfig`: its server, its cluster CA
    /// (`certificate-authority-data` or `certificate-authority`) and its user's token
    /// (`token` or `tokenFile`).
    pub fn from_kubeconfig(
        kubeconfig: &kube::config::Kubeconfig,
        node_name: &str,
        lease_duration_seconds: i32,
    ) -> Result<HeartbeatSettings, ConnectionError> {
        use base64::Engine as _;
        use secrecy::ExposeSecret as _;
        let invalid = |what: &str| ConnectionError::InvalidSettings(what.to_owned());
        let context_name = kubeconfig
            .current_context
            .as_deref()
            .ok_or_else(|| invalid("the kubeconfig has no current-context"))?;
        let context = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context_name)
            .and_then(|c| c.context.as_ref())
            .ok_or_else(|| invalid("the kubeconfig's current context is missing"))?;
        let cluster = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .and_then(|c| c.cluster.as_ref())
            .ok_or_else(|| invalid("the kubeconfig's cluster is missing"))?;
        let user = kubeconfig
            .auth_infos
            .iter()
            .find(|u| Some(&u.name) == context.user.as_ref())
            .and_then(|u| u.auth_info.as_ref())
            .ok_or_else(|| invalid("the kubeconfig's user is missing"))?;
        let server_url = cluster
            .server
            .clone()
            .ok_or_else(|| invalid("the kubeconfig's cluster has no server"))?;
        let ca_pem = match (
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        ) {
            (Some(data), _) => base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|err| ConnectionError::Ca(format!("certificate-authority-data: {err}")))?,
            (None, Some(path)) => std::fs::read(path)
                .map_err(|err| ConnectionError::Ca(format!("reading {path}: {err}")))?,
            (None, None) => return Err(ConnectionError::Ca("the kubeconfig names no CA".into())),
        };
        let token = match (&user.token, &user.token_file) {
            (Some(token), _) => token.expose_secret().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|err| invalid(&format!("reading the token file {path}: {err}")))?
                .trim()
                .to_owned(),
            (None, None) => return Err(invalid("the kubeconfig's user has no bearer token")),
        };
        Ok(HeartbeatSettings {
            server_url,
            ca_pem,
            token,
            node_name: node_name.to_owned(),
            lease_duration_seconds,
        })
    }
}

/// Why a call on a [`HeartbeatConnection`] failed (the kubelet sees it as a
/// [`crate::kubelet::HeartbeatError`]).
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The settings cannot make a valid request (URL, node name, token).
    #[error("invalid heartbeat settings: {0}")]
    InvalidSettings(String),
    /// The CA PEM holds no usable certificate.
    #[error("cluster CA: {0}")]
    Ca(String),
    /// [`Transport::IoUring`] was asked for outside an io_uring runtime.
    #[error("the io_uring transport needs an io_uring runtime (see uring::Executor)")]
    NoIoUring,
    /// The API server's host name did not resolve.
    #[error("resolving {host}: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// The TCP connection could not be made.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// Why it failed.
        source: io::Error,
    },
    /// TLS failed (handshake, certificate, alert).
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Reading or writing the connection failed.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// The server closed the connection before the response was complete.
    #[error("the API server closed the connection before answering")]
    Closed,
    /// The response is not valid HTTP/1.1.
    #[error("malformed HTTP response: {0}")]
    MalformedResponse(String),
    /// The renewal did not finish in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The API server answered with a non-2xx status.
    #[error("the API server answered {status}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The `message` of its `Status` object, or the start of the body.
        message: String,
    },
}

impl From<http::HttpError> for ConnectionError {
    fn from(err: http::HttpError) -> Self {
        match err {
            http::HttpError::InvalidRequest(reason) => ConnectionError::InvalidSettings(reason),
            http::HttpError::MalformedResponse(reason) => {
                ConnectionError::MalformedResponse(reason)
            }
        }
    }
}

impl From<tls::TlsError> for ConnectionError {
    fn from(err: tls::TlsError) -> Self {
        match err {
            tls::TlsError::Ca(reason) => ConnectionError::Ca(reason),
            tls::TlsError::Connect { addr, source } => ConnectionError::Connect { addr, source },
            tls::TlsError::Tls(err) => ConnectionError::Tls(err),
            tls::TlsError::Io(err) => ConnectionError::Io(err),
            tls::TlsError::Closed => ConnectionError::Closed,
        }
    }
}

impl ConnectionError {
    /// The Lease does not exist (404): the kubelet creates it and renews again.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ConnectionError::Status { status: 404, .. })
    }

    /// The API server could not be reached or could not serve the request (network, TLS,
    /// timeout, malformed answer, 429, 5xx): renewals back off after these.
    pub fn is_unavailable(&self) -> bool {
        match self {
            ConnectionError::Status { status, .. } => *status == 429 || *status >= 500,
            ConnectionError::InvalidSettings(_)
            | ConnectionError::Ca(_)
            | ConnectionError::NoIoUring => false,
            _ => true,
        }
    }

    /// An error on a kept-alive connection the server had closed meanwhile.
    fn is_stale_connection(&self) -> bool {
        match self {
            ConnectionError::Closed => true,
            ConnectionError::Io(err) => matches!(
                err.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}

/// A 2xx answer of the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiResponse {
    /// The HTTP status (200).
    pub status: u16,
    /// The response body: the patched object as JSON.
    pub body: Vec<u8>,
}

/// A persistent HTTPS/1.1 connection to the API server for the node's heartbeat writes:
/// Lease renewals (pre-built request) and node status patches.
///
/// `!Send` with [`Transport::IoUring`]: it lives on the agent's single runtime thread.
pub struct HeartbeatConnection {
    channel: Channel,
    token: String,
    node_name: String,
    lease_duration_seconds: i32,
    head: RequestHead,
    lease: LeaseRequest,
    node_status_path: String,
}

impl HeartbeatConnection {
    /// A connection for `settings` over `transport`. Nothing is sent yet; the first request
    /// connects.
    pub fn new(
        transport: Transport,
        settings: &HeartbeatSettings,
    ) -> Result<HeartbeatConnection, ConnectionError> {
        let target = Target::from_url(&settings.server_url)?;
        let head = RequestHead::new(&target.authority, &settings.token)?;
        let lease = LeaseRequest::new(&head, &settings.node_name, settings.lease_duration_seconds)?;
        Ok(HeartbeatConnection {
            channel: Channel {
                transport,
                target,
                tls: tls::client_config(&settings.ca_pem)?,
                stream: None,
                received: Vec::with_capacity(4096),
                timeout: DEFAULT_TIMEOUT,
                backoff: Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF),
                connects: 0,
            },
            token: settings.token.clone(),
            node_name: settings.node_name.clone(),
            lease_duration_seconds: settings.lease_duration_seconds,
            head,
            lease,
            node_status_path: http::node_status_path(&settings.node_name)?,
        })
    }

    /// Sets how long one request may take, connecting included (default
    /// [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> HeartbeatConnection {
        self.channel.timeout = timeout;
        self
    }

    /// Sets the back-off after failures: `initial`, doubling up to `max` (default 200 ms
    /// to 7 s).
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> HeartbeatConnection {
        self.channel.backoff = Backoff::new(initial, max);
        self
    }

    /// Points the connection at another API server address (e.g. after the master moved);
    /// the current connection is closed and the back-off forgotten.
    pub fn retarget(&mut self, server_url: &str) -> Result<(), ConnectionError> {
        let target = Target::from_url(server_url)?;
        let head = RequestHead::new(&target.authority, &self.token)?;
        self.lease = LeaseRequest::new(&head, &self.node_name, self.lease_duration_seconds)?;
        self.head = head;
        self.channel.target = target;
        self.channel.stream = None;
        self.channel.backoff.succeeded();
        Ok(())
    }

    /// Renews the Lease with the current time as `renewTime`.
    pub async fn renew(&mut self) -> Result<ApiResponse, ConnectionError> {
        self.renew_at(Utc::now()).await
    }

    /// Renews the Lease `kube-node-lease/<node>`: a merge patch of `spec.renewTime` (set to
    /// `renew_time`), `holderIdentity` and `leaseDurationSeconds`. A missing Lease is an
    /// error for which [`ConnectionError::is_not_found`] holds.
    ///
    /// Connects if there is no connection (and once more at once if the kept-alive one
    /// turns out closed). After a failure to reach the API server the next request first
    /// waits out the back-off, so calling this in a loop retries at a sensible pace.
    pub async fn renew_at(
        &mut self,
        renew_time: DateTime<Utc>,
    ) -> Result<ApiResponse, ConnectionError> {
        self.lease.stamp(renew_time)?;
        self.channel.send(self.lease.bytes()).await
    }

    /// Writes the Node's status: `merge_patch` is the JSON merge patch of the Node's
    /// `status` subresource (`{"status": {...}}`). Same connection, back-off and timeout
    /// as the renewals.
    pub async fn update_node_status(
        &mut self,
        merge_patch: &[u8],
    ) -> Result<ApiResponse, ConnectionError> {
        let request = self.head.merge_patch(&self.node_status_path, merge_patch);
        self.channel.send(&request).await
    }

    /// The transport this connection uses.
    pub fn transport(&self) -> Transport {
        self.channel.transport
    }

    /// Whether a connection is open (it may still turn out closed by the server).
    pub fn is_connected(&self) -> bool {
        self.channel.stream.is_some()
    }

    /// How many connections were made so far: 1 after any number of requests on one
    /// persistent connection.
    pub fn connects(&self) -> u64 {
        self.channel.connects
    }

    /// How long the next request waits before it tries (zero unless the last one failed).
    pub fn retry_in(&self) -> Duration {
        self.channel.backoff.remaining(Instant::now())
    }

    /// Closes the connection; the next request connects again.
    pub fn close(&mut self) {
        self.channel.stream = None;
    }
}

/// The connection itself, with its back-off and timeout; knows nothing of the requests.
struct Channel {
    transport: Transport,
    target: Target,
    tls: Arc<ClientConfig>,
    stream: Option<Stream>,
    /// Bytes of the response being read; reused between requests.
    received: Vec<u8>,
    timeout: Duration,
    backoff: Backoff,
    connects: u64,
}

impl Channel {
    /// Sends `request` and reads its response, within the timeout and after the back-off.
    async fn send(&mut self, request: &[u8]) -> Result<ApiResponse, ConnectionError> {
        let wait = self.backoff.remaining(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let result = match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(Ok(response)) => {
                // Whatever follows a response we did not ask for: start afresh.
                if !response.keep_alive || !self.received.is_empty() {
                    self.stream = None;
                }
                check_status(response)
            }
            Ok(Err(err)) => {
                self.stream = None;
                Err(err)
            }
            Err(_) => {
                self.stream = None;
                Err(ConnectionError::Timeout(self.timeout))
            }
        };
        match &result {
            Err(err) if err.is_unavailable() => {
                let wait = self.backoff.failed(Instant::now());
                debug!(error = %err, retry_in = ?wait, transport = self.transport.name(), "heartbeat request failed");
            }
            _ => self.backoff.succeeded(),
        }
        result
    }

    /// One request and its response, connecting if needed.
    async fn exchange(&mut self, request: &[u8]) -> Result<Response, ConnectionError> {
        if let Some(stream) = self.stream.as_mut() {
            match round_trip(stream, request, &mut self.received).await {
                Ok(response) => return Ok(response),
                // Nothing of an answer came: the server had closed the idle connection.
                Err(err) if self.received.is_empty() && err.is_stale_connection() => {
                    debug!(error = %err, "kept-alive connection was closed; reconnecting");
                    self.stream = None;
                }
                Err(err) => return Err(err),
            }
        }
        let mut stream = Stream::connect(self.transport, &self.target, &self.tls).await?;
        self.connects += 1;
        let response = round_trip(&mut stream, request, &mut self.received).await?;
        self.stream = Some(stream);
        Ok(response)
    }
}

/// Sends `request` and reads one response; what follows it stays in `received`.
async fn round_trip(
    stream: &mut Stream,
    request: &[u8],
    received: &mut Vec<u8>,
) -> Result<Response, ConnectionError> {
    received.clear();
    stream.write_all(request).await?;
    loop {
        let eof = stream.read(received).await? == 0;
        if let Some((response, used)) = http::parse_response(received, eof)? {
            received.drain(..used);
            return Ok(response);
        }
        if eof {
            return Err(ConnectionError::Closed);
        }
    }
}

fn check_status(response: Response) -> Result<ApiResponse, ConnectionError> {
    if (200..300).contains(&response.status) {
        return Ok(ApiResponse {
            status: response.status,
            body: response.body,
        });
    }
    // Kubernetes errors are Status objects; say their message, else the start of the body.
    let message = serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|status| status.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&response.body);
            text.chars().take(200).collect()
        });
    Err(ConnectionError::Status {
        status: response.status,
        message,
    })
}

/// The API server's address as the connection uses it.
#[derive(Clone, Debug)]
struct Target {
    host: String,
    port: u16,
    /// `host:port` for the `Host` header.
    authority: String,
    server_name: ServerName<'static>,
}

impl Target {
    fn from_url(url: &str) -> Result<Target, ConnectionError> {
        let invalid = |reason: &str| ConnectionError::InvalidSettings(format!("{url:?}: {reason}"));
        let uri: ::http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(invalid("the API server URL must be https://"));
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(443);
        let server_name =
            ServerName::try_from(host.clone()).map_err(|_| invalid("invalid host name"))?;
        Ok(Target {
            host,
            port,
            authority: authority.as_str().to_owned(),
            server_name,
        })
    }

    async fn resolve(&self) -> Result<Vec<SocketAddr>, ConnectionError> {
        let resolve_error = |source| ConnectionError::Resolve {
            host: self.host.clone(),
            source,
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(resolve_error)?
            .collect();
        if addrs.is_empty() {
            return Err(resolve_error(io::Error::new(
                io::ErrorKind::NotFound,
                "no addresses",
            )));
        }
        Ok(addrs)
    }
}

/// The TLS connection on one of the transports.
enum Stream {
    IoUring(Box<UringTlsStream>),
    Tokio(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

impl Stream {
    /// Connects to the first of the target's addresses that answers.
    async fn connect(
        transport: Transport,
        target: &Target,
        tls: &Arc<ClientConfig>,
    ) -> Result<Stream, ConnectionError> {
        if transport == Transport::IoUring && !io_uring_active() {
            return Err(ConnectionError::NoIoUring);
        }
        let mut last_error = None;
        for addr in target.resolve().await? {
            match Stream::connect_to(transport, addr, target.server_name.clone(), tls).await {
                Ok(stream) => return Ok(stream),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or(ConnectionError::Closed))
    }

    async fn connect_to(
        transport: Transport,
        addr: SocketAddr,
        server_name: ServerName<'static>,
        tls: &Arc<ClientConfig>,
    ) -> Result<Stream, ConnectionError> {
        match transport {
            Transport::IoUring => Ok(Stream::IoUring(Box::new(
                UringTlsStream::connect(addr, server_name, tls.clone()).await?,
            ))),
            Transport::Tokio => {
                let tcp = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|source| ConnectionError::Connect { addr, source })?;
                tcp.set_nodelay(true)?;
                let stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(server_name, tcp)
                    .await?;
                Ok(Stream::Tokio(Box::new(stream)))
            }
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), ConnectionError> {
        match self {
            Stream::IoUring(stream) => Ok(stream.write_all(bytes).await?),
            Stream::Tokio(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await?;
                Ok(())
            }
        }
    }

    /// Appends what arrives to `into`; 0 at end of stream.
    async fn read(&mut self, into: &mut Vec<u8>) -> Result<usize, ConnectionError> {
        match self {
            Stream::IoUring(stream) => Ok(stream.read(into).await?),
            Stream::Tokio(stream) => {
                into.reserve(8 * 1024);
                Ok(stream.read_buf(into).await?)
            }
        }
    }
}

/// Exponential back-off between failed attempts.
#[derive(Clone, Debug)]
struct Backoff {
    initial: Duration,
    max: Duration,
    current: Option<Duration>,
    retry_at: Option<Instant>,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            current: None,
            retry_at: None,
        }
    }

    /// Records a failure at `now`; returns the wait before the next attempt.
    fn failed(&mut self, now: Instant) -> Duration {
        let wait = match self.current {
            None => self.initial,
            Some(previous) => previous.saturating_mul(2).min(self.max),
        };
        self.current = Some(wait);
        self.retry_at = Some(now + wait);
        wait
    }

    fn succeeded(&mut self) {
        self.current = None;
        self.retry_at = None;
    }

    /// How long an attempt at `now` still has to wait.
    fn remaining(&self, now: Instant) -> Duration {
        self.retry_at
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
    }
}

/// What one Lease renewal costs on a connection, averaged over many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenewalCost {
    /// Renewals measured.
    pub renewals: u32,
    /// Wall time of one renewal: request to complete response, API server included.
    pub wall: Duration,
    /// CPU time the calling thread spent per renewal (user + system, io_uring completions
    /// included): the node's own cost. Meaningful on this module's single-threaded runtimes,
    /// where all of the connection's work happens on the calling thread.
    pub cpu: Duration,
}

/// Renews `renewals` times back to back on `conn` and reports the mean cost of one renewal.
/// One renewal before the measurement opens the connection, so the TLS handshake is not
/// counted.
pub async fn measure_renewals(
    conn: &mut HeartbeatConnection,
    renewals: u32,
) -> Result<RenewalCost, ConnectionError> {
    conn.renew().await?;
    let cpu_start = thread_cpu_time()?;
    let start = Instant::now();
    for _ in 0..renewals {
        conn.renew().await?;
    }
    let wall = start.elapsed();
    let cpu = thread_cpu_time()?.saturating_sub(cpu_start);
    let count = renewals.max(1);
    Ok(RenewalCost {
        renewals,
        wall: wall / count,
        cpu: cpu / count,
    })
}

/// CPU time consumed by the calling thread so far.
fn thread_cpu_time() -> io::Result<Duration> {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the valid pointer it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let secs = u64::try_from(time.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(time.tv_nsec).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let start = Instant::now();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
        assert_eq!(backoff.remaining(start), Duration::ZERO);
        let waits: Vec<_> = (0..5).map(|_| backoff.failed(start)).collect();
        assert_eq!(
            waits,
            [200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
        assert_eq!(backoff.remaining(start), Duration::from_secs(1));
        assert_eq!(
            backoff.remaining(start + Duration::from_millis(300)),
            Duration::from_millis(700)
        );
        assert_eq!(
            backoff.remaining(start + Duration::from_secs(2)),
            Duration::ZERO
        );
        backoff.succeeded();
        assert_eq!(backoff.remaining(start), Duration::ZERO);
        assert_eq!(backoff.failed(start), Duration::from_millis(200));
    }

    #[test]
    fn target_from_url() {
        let target = Target::from_url("https://127.0.0.1:6443").expect("url");
        assert_eq!((target.host.as_str(), target.port), ("127.0.0.1", 6443));
        assert_eq!(target.authority, "127.0.0.1:6443");
        assert!(matches!(target.server_name, ServerName::IpAddress(_)));
        let target = Target::from_url("https://[::1]:8443/").expect("url");
        assert_eq!((target.host.as_str(), target.port), ("::1", 8443));
        assert_eq!(target.authority, "[::1]:8443");
        let target = Target::from_url("https://kubernetes.default.svc").expect("url");
        assert_eq!(target.port, 443);
        assert!(matches!(target.server_name, ServerName::DnsName(_)));
        for bad in [
            "http://127.0.0.1:80",
            "127.0.0.1:6443",
            "https://",
            "not a url",
        ] {
            assert!(Target::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_errors_carry_the_kubernetes_message() {
        let body = br#"{"kind":"Status","status":"Failure","message":"leases.coordination.k8s.io \"n\" not found","code":404}"#;
        let err = check_status(Response {
            status: 404,
            body: body.to_vec(),
            keep_alive: true,
        })
        .expect_err("404");
        assert!(err.is_not_found());
        assert!(!err.is_unavailable());
        assert!(
            err.to_string()
                .contains(r#"leases.coordination.k8s.io "n" not found"#)
        );
        let err = check_status(Response {
            status: 503,
            body: b"overloaded".to_vec(),
            keep_alive: true,
        })
        .expect_err("503");
        assert!(err.is_unavailable());
        assert!(err.to_string().ends_with("overloaded"));
    }

    #[test]
    fn io_uring_transport_needs_an_io_uring_runtime() {
        let settings = HeartbeatSettings {
            server_url: "https://127.0.0.1:1".into(),
            ca_pem: Vec::new(),
            token: "t".into(),
            node_name: "n".into(),
            lease_duration_seconds: 40,
        };
        // No CA: refused before anything is sent.
        assert!(matches!(
            HeartbeatConnection::new(Transport::Tokio, &settings),
            Err(ConnectionError::Ca(_))
        ));
        let runtime = crate::uring::Executor::tokio().expect("runtime");
        let target = Target::from_url(&settings.server_url).expect("url");
        let tls = Arc::new(
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        );
        let result =
            runtime.block_on(async { Stream::connect(Transport::IoUring, &target, &tls).await });
        assert!(matches!(result, Err(ConnectionError::NoIoUring)));
    }
}
