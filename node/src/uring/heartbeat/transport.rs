//! The socket under the connection: [`Transport`] (io_uring or tokio), the API server's
//! address, and the TLS stream on either transport.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::uring::executor::io_uring_active;
use crate::uring::tls::UringTlsStream;

use super::ConnectionError;

/// Which socket layer carries the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// tokio-uring `TcpStream`, rustls driven over owned buffers. Needs an io_uring
    /// [`Executor`](crate::uring::Executor).
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

/// The API server's address as the connection uses it (and the node-local API balancer).
#[derive(Clone, Debug)]
pub(crate) struct Target {
    host: String,
    port: u16,
    /// `host:port` for the `Host` header.
    pub(super) authority: String,
    server_name: ServerName<'static>,
}

impl Target {
    pub(crate) fn from_url(url: &str) -> Result<Target, ConnectionError> {
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

    /// The name the server's certificate must carry.
    pub(super) fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// Its socket addresses (at least one), resolved on the calling thread (which blocks).
    pub(super) fn resolve_blocking(&self) -> Result<Vec<SocketAddr>, ConnectionError> {
        use std::net::ToSocketAddrs as _;
        self.addresses((self.host.as_str(), self.port).to_socket_addrs())
    }

    /// Its socket addresses (at least one).
    pub(crate) async fn resolve(&self) -> Result<Vec<SocketAddr>, ConnectionError> {
        self.addresses(tokio::net::lookup_host((self.host.as_str(), self.port)).await)
    }

    /// What a lookup of the host found: an error if it failed or found nothing.
    fn addresses(
        &self,
        found: io::Result<impl Iterator<Item = SocketAddr>>,
    ) -> Result<Vec<SocketAddr>, ConnectionError> {
        let resolve_error = |source| ConnectionError::Resolve {
            host: self.host.clone(),
            source,
        };
        let addrs: Vec<SocketAddr> = found.map_err(resolve_error)?.collect();
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
pub(super) enum Stream {
    IoUring(Box<UringTlsStream>),
    Tokio(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

impl Stream {
    /// Connects to the first of the target's addresses that answers.
    pub(super) async fn connect(
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

    pub(super) async fn write_all(&mut self, bytes: &[u8]) -> Result<(), ConnectionError> {
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
    pub(super) async fn read(&mut self, into: &mut Vec<u8>) -> Result<usize, ConnectionError> {
        match self {
            Stream::IoUring(stream) => Ok(stream.read(into).await?),
            Stream::Tokio(stream) => {
                into.reserve(8 * 1024);
                Ok(stream.read_buf(into).await?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::connection::HeartbeatConnection;
    use super::super::settings::HeartbeatSettings;
    use super::*;

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
    fn io_uring_transport_needs_an_io_uring_runtime() {
        let settings = HeartbeatSettings {
            server_url: "https://127.0.0.1:1".into(),
            ca_pem: Vec::new(),
            credential: super::super::Credential::BearerToken("t".into()),
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
