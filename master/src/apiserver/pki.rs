//! Credentials made at first start: a CA, the API server's serving certificate, its client
//! certificate for calling node agents (`kube-apiserver-kubelet-client`), the key that signs
//! ServiceAccount tokens and the admin bearer token, kept under the state directory with mode
//! 0600, plus the kubeconfig that carries them to kubectl.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use kube::config::{
    AuthInfo, Cluster, Context as KubeconfigContext, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use secrecy::SecretString;

/// The common name of the client certificate the API server presents to node agents
/// (kubeadm's name for it).
pub const KUBELET_CLIENT_NAME: &str = "kube-apiserver-kubelet-client";

/// The cluster's credentials as loaded from (or first written to) `<state-dir>/pki`.
pub struct Credentials {
    /// PEM of the cluster CA certificate (what clients trust).
    pub ca_pem: String,
    /// PEM of the serving certificate.
    pub serving_cert_pem: String,
    /// PEM of the serving key.
    pub serving_key_pem: String,
    /// PEM of the client certificate presented to node agents (signed by the CA).
    pub kubelet_client_cert_pem: String,
    /// PEM of its key.
    pub kubelet_client_key_pem: String,
    /// PEM (PKCS#8) of the key ServiceAccount tokens are signed with (`pki/sa.key`).
    pub service_account_key_pem: String,
    /// PEM of its public half (`pki/sa.pub`), which verifies them.
    pub service_account_public_pem: String,
    /// The admin bearer token.
    pub admin_token: String,
}

impl Credentials {
    /// Load the credentials under `state_dir`, creating any that are missing.
    /// `addresses`: the IP addresses the serving certificate names besides loopback (where the
    /// server listens, and the `kubernetes` Service's ClusterIP that pods connect to).
    pub fn load_or_create(state_dir: &Path, addresses: &[IpAddr]) -> anyhow::Result<Self> {
        let pki = state_dir.join("pki");
        fs::create_dir_all(&pki).with_context(|| format!("creating {}", pki.display()))?;
        let paths = ["ca.crt", "ca.key", "apiserver.crt", "apiserver.key"].map(|f| pki.join(f));
        if !paths[..2].iter().all(|p| p.exists()) {
            generate_ca(&paths)?;
        }
        let read =
            |p: &PathBuf| fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
        // The names the serving certificate was made for: a start with other addresses (a
        // state directory from before the Service IP was named, another advertise address)
        // gets a new one from the same CA, so clients keep trusting it.
        let (names, ips) = serving_names(addresses);
        let wanted = format!(
            "{}\n{}\n",
            names.join(","),
            ips.iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let names_path = pki.join("apiserver.names");
        if !paths[2..].iter().all(|p| p.exists())
            || fs::read_to_string(&names_path).ok().as_deref() != Some(wanted.as_str())
        {
            generate_serving(&read(&paths[1])?, &paths, &names, &ips)?;
            write_private(&names_path, wanted.as_bytes())?;
        }
        // Made apart from the rest, so state directories from before it existed get one too.
        let client_paths = [
            "apiserver-kubelet-client.crt",
            "apiserver-kubelet-client.key",
        ]
        .map(|f| pki.join(f));
        if !client_paths.iter().all(|p| p.exists()) {
            generate_kubelet_client(&read(&paths[1])?, &client_paths)?;
        }
        let sa_paths = ["sa.key", "sa.pub"].map(|f| pki.join(f));
        if !sa_paths.iter().all(|p| p.exists()) {
            let key = KeyPair::generate()?;
            write_private(&sa_paths[0], key.serialize_pem().as_bytes())?;
            write_private(&sa_paths[1], key.public_key_pem().as_bytes())?;
        }
        let admin_token = load_or_create_token(&state_dir.join("token"))?;
        Ok(Self {
            ca_pem: read(&paths[0])?,
            serving_cert_pem: read(&paths[2])?,
            serving_key_pem: read(&paths[3])?,
            kubelet_client_cert_pem: read(&client_paths[0])?,
            kubelet_client_key_pem: read(&client_paths[1])?,
            service_account_key_pem: read(&sa_paths[0])?,
            service_account_public_pem: read(&sa_paths[1])?,
            admin_token,
        })
    }

    /// The rustls server configuration for the serving certificate (HTTP/2 and HTTP/1.1).
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let certs = rustls_pemfile::certs(&mut self.serving_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("parsing the serving certificate")?;
        let key = rustls_pemfile::private_key(&mut self.serving_key_pem.as_bytes())
            .context("parsing the serving key")?
            .context("no private key in the serving key file")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Client certificates the cluster CA signed authenticate their subject; a client
        // without one may still present a bearer token.
        let mut roots = rustls::RootCertStore::empty();
        for ca in rustls_pemfile::certs(&mut self.ca_pem.as_bytes()) {
            roots
                .add(ca.context("parsing the CA certificate")?)
                .context("trusting the CA certificate")?;
        }
        let webpki = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .context("the client certificate verifier")?;
        let verifier = Arc::new(ClientCertificates {
            webpki,
            ca_der: rustls_pemfile::certs(&mut self.ca_pem.as_bytes())
                .filter_map(Result::ok)
                .map(|c| c.to_vec())
                .collect(),
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Write the admin's kubeconfig for `server` (e.g. `https://127.0.0.1:6443`) with the CA
    /// and the admin token embedded, atomically (temp file + rename), mode 0600.
    pub fn write_kubeconfig(&self, path: &Path, server: &str) -> anyhow::Result<()> {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let (name, token) = ("admin", &self.admin_token);
        let kubeconfig = Kubeconfig {
            api_version: Some(String::from("v1")),
            kind: Some(String::from("Config")),
            clusters: vec![NamedCluster {
                name: String::from("skiff"),
                cluster: Some(Cluster {
                    server: Some(server.to_owned()),
                    certificate_authority_data: Some(ca),
                    ..Default::default()
                }),
            }],
            auth_infos: vec![NamedAuthInfo {
                name: name.to_owned(),
                auth_info: Some(AuthInfo {
                    token: Some(SecretString::from(token.as_str())),
                    ..Default::default()
                }),
            }],
            contexts: vec![NamedContext {
                name: String::from("skiff"),
                context: Some(KubeconfigContext {
                    cluster: String::from("skiff"),
                    user: Some(name.to_owned()),
                    namespace: Some(String::from("default")),
                    ..Default::default()
                }),
            }],
            current_context: Some(String::from("skiff")),
            ..Default::default()
        };
        let kubeconfig = serde_yaml::to_string(&kubeconfig).context("encoding the kubeconfig")?;
        let tmp = path.with_extension("tmp");
        write_private(&tmp, kubeconfig.as_bytes())?;
        fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// The bearer token in `path`, made (32 random bytes, mode 0600) if missing.
fn load_or_create_token(path: &Path) -> anyhow::Result<String> {
    if !path.exists() {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        write_private(path, token.as_bytes())?;
    }
    let token = fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_string();
    anyhow::ensure!(!token.is_empty(), "{} is empty", path.display());
    Ok(token)
}

/// The CA's parameters: what it was made from, and what an issuer signing with its key must
/// name (its subject and key identifier method).
fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "skiff-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(ca_params)
}

fn generate_ca(paths: &[PathBuf; 4]) -> anyhow::Result<()> {
    let ca = CertifiedIssuer::self_signed(ca_params()?, KeyPair::generate()?)?;
    write_private(&paths[0], ca.pem().as_bytes())?;
    write_private(&paths[1], ca.key().serialize_pem().as_bytes())?;
    Ok(())
}

/// The DNS names and IP addresses of the serving certificate: kube-apiserver's (`kubernetes`,
/// `kubernetes.default`, ... `kubernetes.default.svc.cluster.local`, loopback) and `addresses`.
fn serving_names(addresses: &[IpAddr]) -> (Vec<String>, Vec<IpAddr>) {
    let names = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ];
    let mut ips: Vec<IpAddr> = vec![[127, 0, 0, 1].into(), [0u16, 0, 0, 0, 0, 0, 0, 1].into()];
    for ip in addresses {
        if !ip.is_unspecified() && !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    (names.map(String::from).to_vec(), ips)
}

/// The serving certificate for `names` and `ips`, signed with the CA key at `paths[1]`
/// (PEM `ca_key_pem`), written to `paths[2]` and `paths[3]`.
fn generate_serving(
    ca_key_pem: &str,
    paths: &[PathBuf; 4],
    names: &[String],
    ips: &[IpAddr],
) -> anyhow::Result<()> {
    let ca_key = KeyPair::from_pem(ca_key_pem).context("reading the CA key")?;
    let ca = Issuer::new(ca_params()?, ca_key);
    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params
        .subject_alt_names
        .extend(ips.iter().copied().map(SanType::IpAddress));
    params
        .distinguished_name
        .push(DnType::CommonName, "skiff-apiserver");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = params.signed_by(&server_key, &ca)?;
    write_private(&paths[3], server_key.serialize_pem().as_bytes())?;
    write_private(&paths[2], server.pem().as_bytes())?;
    Ok(())
}

/// The API server's client certificate for node agents, signed with the CA key (PEM
/// `ca_key_pem`), written to `paths` (certificate, key).
fn generate_kubelet_client(ca_key_pem: &str, paths: &[PathBuf; 2]) -> anyhow::Result<()> {
    let ca_key = KeyPair::from_pem(ca_key_pem).context("reading the CA key")?;
    let ca = Issuer::new(ca_params()?, ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, KUBELET_CLIENT_NAME);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca)?;
    write_private(&paths[1], key.serialize_pem().as_bytes())?;
    write_private(&paths[0], cert.pem().as_bytes())?;
    Ok(())
}

/// Write a file readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::{CertificateDer, UnixTime};
    use rustls::server::WebPkiClientVerifier;

    use super::*;

    /// Whether a client verifier trusting the CA accepts the kubelet-client certificate.
    fn ca_accepts_kubelet_client(credentials: &Credentials) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut credentials.ca_pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("verifier");
        let client: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut credentials.kubelet_client_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("client PEM");
        verifier
            .verify_client_cert(&client[0], &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn the_kubelet_client_certificate_is_signed_by_the_ca_kept_and_remade_if_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bind: IpAddr = [127, 0, 0, 1].into();
        let first = Credentials::load_or_create(dir.path(), &[bind]).expect("credentials");
        assert!(ca_accepts_kubelet_client(&first));
        let key = dir.path().join("pki/apiserver-kubelet-client.key");
        let mode = fs::metadata(&key).expect("key file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let again = Credentials::load_or_create(dir.path(), &[bind]).expect("credentials");
        assert_eq!(again.kubelet_client_cert_pem, first.kubelet_client_cert_pem);

        // A state directory from before the certificate existed gets one from the same CA.
        fs::remove_file(dir.path().join("pki/apiserver-kubelet-client.crt")).expect("remove");
        let remade = Credentials::load_or_create(dir.path(), &[bind]).expect("credentials");
        assert_eq!(remade.ca_pem, first.ca_pem);
        assert_ne!(
            remade.kubelet_client_cert_pem,
            first.kubelet_client_cert_pem
        );
        assert!(ca_accepts_kubelet_client(&remade));
    }
}

/// Client certificates as kube-apiserver takes them: webpki's verification against the
/// cluster CA, and, for X.509 version 1 certificates (what `openssl x509 -req` makes without
/// an extension file, which webpki refuses and Go accepts), the CA's signature and the
/// validity period checked here, and the handshake signed with the certificate's key (TLS
/// 1.3).
#[derive(Debug)]
struct ClientCertificates {
    webpki: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    /// The cluster CA certificates (DER).
    ca_der: Vec<Vec<u8>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

/// The certificate's public key if it is an X.509 version 1 certificate.
fn version_1_key(certificate: &[u8]) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    (parsed.version() == x509_parser::x509::X509Version::V1)
        .then(|| parsed.public_key().raw.to_vec())
}

impl ClientCertificates {
    fn verify_version_1(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        use rustls::CertificateError;
        let bad = |e: CertificateError| rustls::Error::InvalidCertificate(e);
        let (_, certificate) = x509_parser::parse_x509_certificate(end_entity)
            .map_err(|_| bad(CertificateError::BadEncoding))?;
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let validity = certificate.validity();
        if now < validity.not_before.timestamp() {
            return Err(bad(CertificateError::NotValidYet));
        }
        if now > validity.not_after.timestamp() {
            return Err(bad(CertificateError::Expired));
        }
        let signed_by_ca = self.ca_der.iter().any(|ca| {
            x509_parser::parse_x509_certificate(ca).is_ok_and(|(_, ca)| {
                ca.subject() == certificate.issuer()
                    && certificate.verify_signature(Some(ca.public_key())).is_ok()
            })
        });
        if !signed_by_ca {
            return Err(bad(CertificateError::UnknownIssuer));
        }
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }
}

impl rustls::server::danger::ClientCertVerifier for ClientCertificates {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        if version_1_key(end_entity).is_some() {
            return self.verify_version_1(end_entity, now);
        }
        self.webpki
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        match version_1_key(cert) {
            Some(spki) => rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                &rustls::pki_types::SubjectPublicKeyInfoDer::from(spki.as_slice()),
                dss,
                &self.algorithms,
            ),
            None => self.webpki.verify_tls13_signature(message, cert, dss),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
