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
//! the latter also for side-by-side measurements with [`measure_renewals`]. Many connections'
//! heartbeats (the hollow nodes') go on a [`HeartbeatRing`]: one io_uring ring that a thread
//! of its own sleeps in.

mod backoff;
mod connection;
mod measure;
mod ring;
mod settings;
mod transport;

pub use backoff::{INITIAL_BACKOFF, MAX_BACKOFF};
pub use connection::{ApiResponse, DEFAULT_TIMEOUT, HeartbeatConnection};
pub use measure::{RenewalCost, measure_renewals};
pub use ring::{HeartbeatRing, Next, Request, Requests};
pub use settings::{Credential, HeartbeatSettings};
pub(crate) use transport::Target;
pub use transport::Transport;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::uring::http;
use crate::uring::tls;

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
