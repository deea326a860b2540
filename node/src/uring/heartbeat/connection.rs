//! The persistent connection: [`HeartbeatConnection`] builds the requests (Lease renewal,
//! node status), its channel sends them with timeout and back-off, reconnecting when the
//! server closed the kept-alive connection, and non-2xx answers become errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rustls::ClientConfig;
use tracing::debug;

use crate::kubelet::certificate::Identity;
use crate::uring::http::{self, LeaseRequest, RequestHead, Response};
use crate::uring::tls;

use super::ConnectionError;
use super::backoff::{Backoff, INITIAL_BACKOFF, MAX_BACKOFF};
use super::settings::{Credential, HeartbeatSettings};
use super::transport::{Stream, Target, Transport};

/// How long one request may take, connecting included (the kubelet uses its renew interval).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The bearer token, if the node authenticates with one.
    token: Option<String>,
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
        let token = match &settings.credential {
            Credential::BearerToken(token) => Some(token.clone()),
            Credential::ClientCertificate(_) => None,
        };
        let identity = match &settings.credential {
            Credential::ClientCertificate(identity) => Some(identity.clone()),
            Credential::BearerToken(_) => None,
        };
        let head = RequestHead::new(&target.authority, token.as_deref())?;
        let lease = LeaseRequest::new(&head, &settings.node_name, settings.lease_duration_seconds)?;
        Ok(HeartbeatConnection {
            channel: Channel {
                transport,
                target,
                tls: tls::client_config(&settings.ca_pem, identity.as_ref())?,
                stream: None,
                identity,
                connected_generation: 0,
                received: Vec::with_capacity(4096),
                timeout: DEFAULT_TIMEOUT,
                backoff: Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF),
                connects: 0,
            },
            token,
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
        let head = RequestHead::new(&target.authority, self.token.as_deref())?;
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

    /// Renews the Lease of another node, `node`, on this connection (same holder-is-the-node
    /// patch and duration as [`renew_at`](Self::renew_at)): one connection carrying many
    /// nodes' heartbeats, as the hollow nodes do. The request is built per call.
    pub async fn renew_lease_of(
        &mut self,
        node: &str,
        renew_time: DateTime<Utc>,
    ) -> Result<ApiResponse, ConnectionError> {
        let mut lease = LeaseRequest::new(&self.head, node, self.lease_duration_seconds)?;
        lease.stamp(renew_time)?;
        self.channel.send(lease.bytes()).await
    }

    /// Writes the status of another node, `node`, on this connection (see
    /// [`update_node_status`](Self::update_node_status)).
    pub async fn update_node_status_of(
        &mut self,
        node: &str,
        merge_patch: &[u8],
    ) -> Result<ApiResponse, ConnectionError> {
        let request = self
            .head
            .merge_patch(&http::node_status_path(node)?, merge_patch);
        self.channel.send(&request).await
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
    /// The client certificate, if the node authenticates with one.
    identity: Option<Identity>,
    /// The certificate's generation when the stream connected: a renewed certificate closes
    /// the stream, so the API server sees the new one (as the kubelet closes its connections).
    connected_generation: u64,
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
        let generation = self.identity.as_ref().map_or(0, Identity::generation);
        if generation != self.connected_generation {
            self.stream = None;
        }
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
        self.connected_generation = generation;
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

pub(super) fn check_status(response: Response) -> Result<ApiResponse, ConnectionError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
