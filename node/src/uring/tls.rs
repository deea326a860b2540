//! TLS for the heartbeat: the rustls client configuration (cluster CA only, ring provider,
//! ALPN `http/1.1`) and a TLS stream over a tokio-uring `TcpStream`.
//!
//! tokio-uring's reads and writes take ownership of their buffer until the kernel is done
//! with it, so rustls is driven by hand: ciphertext is read into an owned `Vec<u8>` and fed
//! to [`ClientConnection::read_tls`]; what [`ClientConnection::write_tls`] produces is
//! collected in another owned `Vec<u8>` and handed to `write_all`. Both buffers come back
//! with the completion and are reused, so a renewal allocates nothing here.

use std::io::{Read as _, Write as _};
use std::mem;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use crate::kubelet::certificate::Identity;

/// What setting up or using a TLS stream can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA PEM holds no usable certificate.
    #[error("cluster CA: {0}")]
    Ca(String),
    /// The TCP connection could not be made.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// TLS failed (handshake, certificate, alert).
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Reading or writing the connection failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection during the handshake.
    #[error("the server closed the connection")]
    Closed,
}

/// Ciphertext read per io_uring read: one full TLS record (16 KiB + overhead).
pub(crate) const READ_BUFFER: usize = 16 * 1024 + 512;

/// A client configuration that trusts exactly the CA certificates in `ca_pem`, presenting
/// `identity`'s current certificate if given.
pub(crate) fn client_config(
    ca_pem: &[u8],
    identity: Option<&Identity>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|err| TlsError::Ca(err.to_string()))?;
        roots
            .add(cert)
            .map_err(|err| TlsError::Ca(err.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsError::Ca("no certificate in the PEM".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => builder.with_client_cert_resolver(Arc::new(identity.clone())),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS client connection over a tokio-uring `TcpStream`.
pub(crate) struct UringTlsStream {
    tcp: tokio_uring::net::TcpStream,
    tls: ClientConnection,
    /// Ciphertext from the socket; owned by the kernel during a read.
    incoming: Vec<u8>,
    /// Ciphertext for the socket; owned by the kernel during a write.
    outgoing: Vec<u8>,
    /// The server closed the connection (close_notify or TCP end).
    closed: bool,
}

impl UringTlsStream {
    /// Connects to `addr` and completes the TLS handshake for `server_name`.
    pub(crate) async fn connect(
        addr: SocketAddr,
        server_name: ServerName<'static>,
        config: Arc<ClientConfig>,
    ) -> Result<Self, TlsError> {
        let tcp = tokio_uring::net::TcpStream::connect(addr)
            .await
            .map_err(|source| TlsError::Connect { addr, source })?;
        // Requests are single small writes; do not let Nagle hold them back.
        tcp.set_nodelay(true)?;
        let mut stream = UringTlsStream {
            tcp,
            tls: ClientConnection::new(config, server_name)?,
            incoming: Vec::with_capacity(READ_BUFFER),
            outgoing: Vec::new(),
            closed: false,
        };
        let mut early = Vec::new();
        while stream.tls.is_handshaking() {
            if stream.tls.wants_write() {
                stream.flush().await?;
            } else if !stream.fill(&mut early).await? {
                return Err(TlsError::Closed);
            }
        }
        stream.flush().await?;
        Ok(stream)
    }

    /// Encrypts and sends all of `plaintext`.
    pub(crate) async fn write_all(&mut self, plaintext: &[u8]) -> Result<(), TlsError> {
        self.tls.writer().write_all(plaintext)?;
        self.flush().await
    }

    /// Appends decrypted bytes to `into`; returns how many, 0 once the server closed.
    pub(crate) async fn read(&mut self, into: &mut Vec<u8>) -> Result<usize, TlsError> {
        let before = into.len();
        while !self.closed {
            let open = self.fill(into).await?;
            // e.g. a TLS 1.3 KeyUpdate asks for an answer.
            self.flush().await?;
            if !open {
                self.closed = true;
            }
            if into.len() > before {
                break;
            }
        }
        Ok(into.len() - before)
    }

    /// Sends whatever rustls has queued.
    async fn flush(&mut self) -> Result<(), TlsError> {
        while self.tls.wants_write() {
            let mut outgoing = mem::take(&mut self.outgoing);
            outgoing.clear();
            while self.tls.wants_write() {
                self.tls.write_tls(&mut outgoing)?;
            }
            let (result, outgoing) = self.tcp.write_all(outgoing).await;
            self.outgoing = outgoing;
            result?;
        }
        Ok(())
    }

    /// One socket read, fed through rustls; decrypted bytes are appended to `plaintext`.
    /// Returns `false` when the server closed the connection.
    async fn fill(&mut self, plaintext: &mut Vec<u8>) -> Result<bool, TlsError> {
        let mut incoming = mem::take(&mut self.incoming);
        incoming.clear();
        let (result, incoming) = self.tcp.read(incoming).await;
        self.incoming = incoming;
        let read = result?;
        if read == 0 {
            return Ok(false);
        }
        let mut open = true;
        let mut pos = 0;
        while pos < read {
            let taken = self.tls.read_tls(&mut &self.incoming[pos..read])?;
            if taken == 0 {
                // close_notify was received: rustls takes nothing more.
                break;
            }
            pos += taken;
            let state = match self.tls.process_new_packets() {
                Ok(state) => state,
                Err(err) => {
                    // Best effort: tell the server why (rustls queued an alert).
                    let _ = self.flush().await;
                    return Err(err.into());
                }
            };
            // Drained after every record batch so rustls' plaintext buffer never fills up.
            let pending = state.plaintext_bytes_to_read();
            if pending > 0 {
                let start = plaintext.len();
                plaintext.resize(start + pending, 0);
                self.tls.reader().read_exact(&mut plaintext[start..])?;
            }
            if state.peer_has_closed() {
                open = false;
            }
        }
        Ok(open)
    }
}

impl Drop for UringTlsStream {
    fn drop(&mut self) {
        // A read still in flight (its future dropped by a timeout) keeps the socket open
        // until it completes; shutting the socket down completes it now.
        let _ = self.tcp.shutdown(Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_needs_a_certificate() {
        assert!(matches!(
            client_config(b"not a pem", None),
            Err(TlsError::Ca(_))
        ));
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(client_config(garbage, None).is_err());
    }
}
