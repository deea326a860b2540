//! The API server's client for node agents (the kubelet port): HTTPS with the
//! `kube-apiserver-kubelet-client` certificate, so agents let it in.
//!
//! As kube-apiserver with `--kubelet-certificate-authority`, it verifies the agent's serving
//! certificate: signed by the cluster CA (agents ask for it with a `kubernetes.io/kubelet-serving`
//! CertificateSigningRequest) and naming the address dialled, so an agent that is not the
//! node's, or a node that moved another's address onto itself, is refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
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
    /// A client presenting `cert_pem` (with its chain) and `key_pem`, trusting agents whose
    /// serving certificates a CA of `ca_pem` signed.
    pub fn new(
        cert_pem: &str,
        key_pem: &str,
        ca_pem: &str,
    ) -> Result<KubeletClient, KubeletClientError> {
        let invalid = |what: &str, err: &dyn std::fmt::Display| {
            KubeletClientError::Certificate(format!("{what}: {err}"))
        };
        let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| invalid("parsing the certificate", &err))?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(|err| invalid("parsing the key", &err))?
            .ok_or_else(|| KubeletClientError::Certificate("no private key in the PEM".into()))?;
        let mut roots = RootCertStore::empty();
        for ca in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            let ca = ca.map_err(|err| invalid("parsing the CA", &err))?;
            roots.add(ca).map_err(|err| invalid("the CA", &err))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|err| invalid("the CA", &err))?;
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| invalid("TLS versions", &err))?
            .with_webpki_verifier(verifier)
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
            // The certificate must name the address (an IP sends no SNI).
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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::AsyncWriteExt;

    struct Ca {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca() -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).expect("ca").pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate and key for `ip`, signed by `ca` (or by itself).
    fn leaf(ca: Option<&Ca>, ip: [u8; 4]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![SanType::IpAddress(ip.into())];
        let cert = match ca {
            Some(ca) => params.signed_by(&key, &ca.issuer),
            None => params.self_signed(&key),
        }
        .expect("certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    }

    /// An agent on loopback serving `serving` (no client certificate asked for) and
    /// answering one request with 200.
    async fn agent(serving: (CertificateDer<'static>, PrivateKeyDer<'static>)) -> SocketAddr {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![serving.0], serving.1)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            }
        });
        addr
    }

    fn client(ca: &Ca) -> KubeletClient {
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(Vec::<String>::new()).expect("params");
        let cert = params
            .signed_by(&key, &ca.issuer)
            .expect("client certificate");
        KubeletClient::new(&cert.pem(), &key.serialize_pem(), &ca.pem).expect("client")
    }

    #[tokio::test]
    async fn only_an_agent_with_a_certificate_of_the_cluster_ca_for_its_address_is_trusted() {
        let cluster = ca();
        let kubelet = client(&cluster);

        let trusted = agent(leaf(Some(&cluster), [127, 0, 0, 1])).await;
        let answer = kubelet
            .get(trusted, "/healthz")
            .await
            .expect("trusted agent");
        assert_eq!(answer.status(), 200);

        let self_signed = agent(leaf(None, [127, 0, 0, 1])).await;
        let err = kubelet
            .get(self_signed, "/healthz")
            .await
            .expect_err("a self-signed agent is refused");
        assert!(matches!(err, KubeletClientError::Tls(_)), "{err}");
        assert!(
            err.to_string().contains("invalid peer certificate"),
            "{err}"
        );

        let elsewhere = agent(leaf(Some(&cluster), [10, 0, 0, 9])).await;
        let err = kubelet
            .get(elsewhere, "/healthz")
            .await
            .expect_err("a certificate for another address is refused");
        assert!(err.to_string().contains("not valid for name"), "{err}");

        let other = ca();
        let stranger = agent(leaf(Some(&other), [127, 0, 0, 1])).await;
        assert!(kubelet.get(stranger, "/healthz").await.is_err());
    }
}
