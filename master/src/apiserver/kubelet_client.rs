//! The API server's client for node agents (the kubelet port): HTTPS with the
//! `kube-apiserver-kubelet-client` certificate, so agents let it in.
//!
//! As kube-apiserver without `--kubelet-certificate-authority`, it does not verify the agent's
//! serving certificate (agents make a self-signed one at start); the handshake's signatures
//! are still checked, so the peer holds the key of the certificate it shows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::debug;

/// How long connecting and the TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the agent may take to answer with its response head (the body may stream on).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call to a node agent failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeletClientError {
    /// The client certificate or key is unusable.
    #[error("the kubelet client certificate: {0}")]
    Certificate(String),
    /// No TCP connection.
    #[error("dial tcp {addr}: {source}")]
    Connect {
        /// The agent's address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (e.g. the agent refused the client certificate).
    #[error("TLS handshake: {0}")]
    Tls(#[source] std::io::Error),
    /// The HTTP exchange failed.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The request cannot be made (a path that is not a valid URI).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The agent did not answer in time.
    #[error("timeout awaiting {0}")]
    Timeout(&'static str),
}

/// HTTPS requests to node agents, presenting the API server's client certificate.
#[derive(Clone)]
pub struct KubeletClient {
    connector: TlsConnector,
}

impl KubeletClient {
    /// A client presenting `cert_pem` (with its chain) and `key_pem`.
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<KubeletClient, KubeletClientError> {
        let invalid = |what: &str, err: &dyn std::fmt::Display| {
            KubeletClientError::Certificate(format!("{what}: {err}"))
        };
        let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| invalid("parsing the certificate", &err))?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(|err| invalid("parsing the key", &err))?
            .ok_or_else(|| KubeletClientError::Certificate("no private key in the PEM".into()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(AnyServerCertificate {
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| invalid("TLS versions", &err))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(certs, key)
            .map_err(|err| invalid("the certificate and key", &err))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// `GET https://<addr><path_and_query>` on a connection of its own; the response body
    /// streams until the agent ends it or the caller drops it (which closes the connection).
    pub async fn get(
        &self,
        addr: SocketAddr,
        path_and_query: &str,
    ) -> Result<hyper::Response<Incoming>, KubeletClientError> {
        let request = hyper::Request::get(path_and_query)
            .body(Empty::<Bytes>::new())
            .map_err(|err| KubeletClientError::InvalidRequest(err.to_string()))?;
        self.send(addr, request).await
    }

    /// Sends `request` (its URI the path and query) to `https://<addr>` on a connection of its
    /// own, its body streamed up; the response body streams until the agent ends it or the
    /// caller drops it (which closes the connection). The `Host` header is set to `addr`.
    pub async fn send<B>(
        &self,
        addr: SocketAddr,
        mut request: hyper::Request<B>,
    ) -> Result<hyper::Response<Incoming>, KubeletClientError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(
            self.connect(addr, &mut request).await?,
        ))
        .await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                debug!(%addr, "connection to the node agent ended: {err}");
            }
        });
        tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| KubeletClientError::Timeout("response headers"))?
            .map_err(KubeletClientError::Http)
    }

    /// Sends upgrade `request` (a WebSocket or SPDY handshake; its URI the path and query) to
    /// `https://<addr>` on a connection of its own. When the agent answers 101,
    /// `hyper::upgrade::on` of the response is the agent's end of the upgraded connection.
    pub async fn upgrade(
        &self,
        addr: SocketAddr,
        mut request: hyper::Request<Empty<Bytes>>,
    ) -> Result<hyper::Response<Incoming>, KubeletClientError> {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(
            self.connect(addr, &mut request).await?,
        ))
        .await?;
        tokio::spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                debug!(%addr, "upgraded connection to the node agent ended: {err}");
            }
        });
        tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| KubeletClientError::Timeout("response headers"))?
            .map_err(KubeletClientError::Http)
    }

    /// A TLS connection to the agent at `addr`, with `request`'s `Host` set to it.
    async fn connect<B>(
        &self,
        addr: SocketAddr,
        request: &mut hyper::Request<B>,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, KubeletClientError> {
        let host = hyper::header::HeaderValue::from_str(&addr.to_string())
            .map_err(|err| KubeletClientError::InvalidRequest(err.to_string()))?;
        request.headers_mut().insert(hyper::header::HOST, host);
        let connect = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|source| KubeletClientError::Connect { addr, source })?;
            let _ = tcp.set_nodelay(true);
            // The name is not checked (see the module docs); an IP sends no SNI.
            let name = ServerName::IpAddress(addr.ip().into());
            self.connector
                .connect(name, tcp)
                .await
                .map_err(KubeletClientError::Tls)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| KubeletClientError::Timeout("the connection to the node agent"))?
    }
}

/// Accepts whatever certificate the agent serves, but checks the handshake signatures made
/// with its key.
#[derive(Debug)]
struct AnyServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
