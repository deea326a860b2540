//! The node's certificates, as the kubelet's certificate managers keep them: its client
//! certificate (who it is to the API server) and its serving certificate (the endpoint the
//! API server calls), each asked of the cluster with a CertificateSigningRequest, kept in one
//! PEM file under `pki/` (`kubelet-client-current.pem`, `kubelet-server-current.pem`) and
//! renewed while the agent runs once 70 to 90% of its life has passed (jittered, so nodes
//! do not all renew at once).
//!
//! - [`identity`]: the certificate connections use, replaceable while they run;
//! - [`Template`] and [`request`]: what is asked and the asking;
//! - [`Rotation`]: the renewal loop;
//! - [`api_client`]: the API client presenting the node's current client certificate.

pub mod identity;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::Api;
use kube::api::PostParams;
use kube::client::ConfigExt;
use tower::{BoxError, ServiceBuilder};
use tracing::{info, warn};

pub use identity::{Identity, IdentityError};

/// The signer of node client certificates.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The signer of node serving certificates.
pub const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// The client certificate's file under the agent's directory.
pub const CLIENT_FILE: &str = "pki/kubelet-client-current.pem";
/// The serving certificate's file under the agent's directory.
pub const SERVING_FILE: &str = "pki/kubelet-server-current.pem";
/// How long the master has to issue a certificate.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(120);
/// The first wait after a failed renewal; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest wait after a failed renewal.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// What asking for a certificate can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// A call to the API server failed.
    #[error("{context}: {source}")]
    Api {
        /// What was being done.
        context: &'static str,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// The request was denied or failed, or not issued in time.
    #[error("{0}")]
    NotIssued(String),
    /// Making the key or the request failed.
    #[error("making the certificate request: {0}")]
    Request(#[from] rcgen::Error),
    /// What was issued, or the file, is unusable.
    #[error("{0}")]
    Identity(#[from] IdentityError),
}

/// What a certificate request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// The signer (`spec.signerName`).
    pub signer: &'static str,
    /// The node's name: the subject is `system:node:<name>` in `system:nodes`.
    pub node_name: String,
    /// DNS names (serving certificates).
    pub dns_names: Vec<String>,
    /// IP addresses (serving certificates).
    pub ip_addresses: Vec<IpAddr>,
    /// `spec.usages`.
    pub usages: &'static [&'static str],
}

impl Template {
    /// The node's client certificate, as the kubelet asks for it.
    pub fn client(node_name: &str) -> Template {
        Template {
            signer: CLIENT_SIGNER,
            node_name: node_name.to_owned(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usages: &["digital signature", "client auth"],
        }
    }

    /// The node's serving certificate for its host name and addresses (those its Node's
    /// status lists), as the kubelet with `serverTLSBootstrap` asks for it.
    pub fn serving(node_name: &str, hostname: &str, ips: &[IpAddr]) -> Template {
        let mut ip_addresses = Vec::new();
        for ip in ips {
            if !ip.is_unspecified() && !ip_addresses.contains(ip) {
                ip_addresses.push(*ip);
            }
        }
        Template {
            signer: SERVING_SIGNER,
            node_name: node_name.to_owned(),
            dns_names: vec![hostname.to_owned()],
            ip_addresses,
            usages: &["digital signature", "server auth"],
        }
    }

    /// The PEM certificate request for `key`.
    fn request_pem(&self, key: &rcgen::KeyPair) -> Result<String, rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(self.dns_names.clone())?;
        params.subject_alt_names.extend(
            self.ip_addresses
                .iter()
                .copied()
                .map(rcgen::SanType::IpAddress),
        );
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("system:node:{}", self.node_name),
        );
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:nodes");
        params.serialize_request(key)?.pem()
    }
}

/// A fresh key and a certificate for it as `template` asks, through `client`: a
/// CertificateSigningRequest the master approves and signs (or an admin, with
/// `kubectl certificate approve`). Returns the certificate PEM and the key PEM.
pub async fn request(
    client: &kube::Client,
    template: &Template,
) -> Result<(Vec<u8>, String), CertificateError> {
    let key = rcgen::KeyPair::generate()?;
    let csr: CertificateSigningRequest = serde_json::from_value(serde_json::json!({
        "metadata": {"generateName": "csr-"},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(template.request_pem(&key)?),
            "signerName": template.signer,
            "usages": template.usages,
        }
    }))
    .map_err(|err| CertificateError::NotIssued(err.to_string()))?;
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let created = api
        .create(&PostParams::default(), &csr)
        .await
        .map_err(|source| CertificateError::Api {
            context: "creating the certificate request",
            source,
        })?;
    let name = created.metadata.name.unwrap_or_default();
    info!(csr = %name, signer = template.signer, "asked for a certificate");
    let certificate = wait_issued(&api, &name).await?;
    Ok((certificate, key.serialize_pem()))
}

async fn wait_issued(
    api: &Api<CertificateSigningRequest>,
    name: &str,
) -> Result<Vec<u8>, CertificateError> {
    let deadline = tokio::time::Instant::now() + ISSUE_TIMEOUT;
    loop {
        let csr = api
            .get(name)
            .await
            .map_err(|source| CertificateError::Api {
                context: "reading the certificate request",
                source,
            })?;
        let status = csr.status.unwrap_or_default();
        if let Some(condition) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| matches!(c.type_.as_str(), "Denied" | "Failed"))
        {
            return Err(CertificateError::NotIssued(format!(
                "the certificate request {name} was {}: {}",
                condition.type_.to_lowercase(),
                condition.message.clone().unwrap_or_default()
            )));
        }
        if let Some(certificate) = status.certificate.filter(|c| !c.0.is_empty()) {
            return Ok(certificate.0);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(CertificateError::NotIssued(format!(
                "the certificate request {name} was not issued in {ISSUE_TIMEOUT:?} (approve it with `kubectl certificate approve {name}`)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes the certificate and its key into `path` (one PEM file, readable by root only),
/// replacing what was there at once.
pub fn store(path: &Path, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), IdentityError> {
    let mut contents = cert_pem.to_vec();
    if !contents.ends_with(b"\n") {
        contents.push(b'\n');
    }
    contents.extend_from_slice(key_pem);
    write_private(path, &contents)
}

/// Writes `contents` into `path` (mode 0600, its directory made if missing) through a
/// temporary file renamed over it, so a reader sees the old or the new whole.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), IdentityError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| IdentityError::Io { path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(contents).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// When a certificate valid from `not_before` to `not_after` is renewed: after `fraction`
/// of its life (client-go takes a random fraction between 0.7 and 0.9).
pub fn rotation_deadline(
    not_before: SystemTime,
    not_after: SystemTime,
    fraction: f64,
) -> SystemTime {
    let life = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_before + life.mul_f64(fraction.clamp(0.0, 1.0))
}

/// A random fraction between 0.7 and 0.9.
fn jittered_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    0.7 + 0.2 * (random % 10_000) as f64 / 10_000.0
}

/// Renews one certificate of the node for as long as the agent runs.
pub struct Rotation {
    /// The API client it asks with (the node's own credentials).
    pub client: kube::Client,
    /// What it asks for.
    pub template: Template,
    /// Where connections find the certificate.
    pub identity: Identity,
    /// The file it is kept in.
    pub file: PathBuf,
}

impl Rotation {
    /// Asks for a certificate at once if there is none, else at its rotation deadline; on
    /// failure tries again after 2 s, doubling up to 5 minutes.
    pub async fn run(self) {
        let mut retry = FIRST_RETRY;
        loop {
            if let Some((not_before, not_after)) = self.identity.validity() {
                let deadline = rotation_deadline(not_before, not_after, jittered_fraction());
                let at = chrono::DateTime::<chrono::Utc>::from(deadline);
                info!(signer = self.template.signer, renew_at = %at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "certificate valid; renewal scheduled");
                let wait = deadline
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait).await;
            }
            match self.renew().await {
                Ok(()) => {
                    retry = FIRST_RETRY;
                    info!(signer = self.template.signer, file = %self.file.display(), "new certificate in use");
                }
                Err(err) => {
                    warn!(
                        signer = self.template.signer,
                        "renewing the certificate: {err}; trying again in {retry:?}"
                    );
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
        }
    }

    async fn renew(&self) -> Result<(), CertificateError> {
        let (cert_pem, key_pem) = request(&self.client, &self.template).await?;
        // Checked before it is kept: a certificate that does not load replaces nothing.
        Identity::from_pem(&cert_pem, key_pem.as_bytes())?;
        store(&self.file, &cert_pem, key_pem.as_bytes())?;
        self.identity.replace(&cert_pem, key_pem.as_bytes())?;
        Ok(())
    }
}

/// The API client of `config` that trusts its cluster CA and, when `identity` is given,
/// presents the identity's current certificate at each new connection (kube's own client
/// reads a client certificate once); a token or other credentials of `config` are sent as
/// kube sends them.
pub fn api_client(
    config: kube::Config,
    identity: Option<&Identity>,
) -> Result<kube::Client, anyhow::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for der in config.root_cert.iter().flatten() {
        roots.add(der.clone().into())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let tls = match identity {
        Some(identity) => builder.with_client_cert_resolver(Arc::new(identity.clone())),
        None => builder.with_no_client_auth(),
    };
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let http_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_after_the_fraction_of_the_life() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let end = start + Duration::from_secs(100);
        assert_eq!(
            rotation_deadline(start, end, 0.8),
            start + Duration::from_secs(80)
        );
        // A certificate that ended before it began is renewed at once.
        assert_eq!(rotation_deadline(end, start, 0.8), end);
        for _ in 0..100 {
            let fraction = jittered_fraction();
            assert!((0.7..=0.9).contains(&fraction), "{fraction}");
        }
    }

    #[test]
    fn a_serving_request_names_the_host_and_its_addresses_once() {
        let ip: IpAddr = "10.0.0.5".parse().expect("ip");
        let template = Template::serving("n1", "host-a", &[ip, ip, "0.0.0.0".parse().expect("ip")]);
        assert_eq!(template.ip_addresses, [ip]);
        let key = rcgen::KeyPair::generate().expect("key");
        let pem = template.request_pem(&key).expect("request");
        let request =
            rcgen::CertificateSigningRequestParams::from_pem(&pem).expect("parsed request");
        assert_eq!(request.params.subject_alt_names.len(), 2);
    }

    #[test]
    fn a_stored_certificate_loads_back_while_it_is_valid() {
        let dir = tempfile::tempdir().expect("dir");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![String::from("n1")])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let path = dir.path().join(CLIENT_FILE);
        store(&path, cert.pem().as_bytes(), key.serialize_pem().as_bytes()).expect("store");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("metadata").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let loaded = Identity::load_valid(&path).expect("valid");
        assert_eq!(loaded.certified_key().expect("key").cert[0], *cert.der());
        assert!(Identity::load_valid(&dir.path().join("missing.pem")).is_none());
    }
}
