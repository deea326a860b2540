//! TLS of the agent's endpoint: a self-signed serving certificate made at start (as the
//! kubelet makes one when it is given none) and client certificates required and verified
//! against the cluster CA, so only the API server (whose kubelet-client certificate the CA
//! signed) gets in.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};

use super::ServerError;

/// The rustls configuration of the endpoint: `serving` as its certificate, client
/// certificates signed by a CA of `client_ca_pem` required (no valid one: the handshake
/// fails). ALPN h2 and http/1.1.
pub(super) fn server_config(
    client_ca_pem: &[u8],
    serving: SelfSigned,
) -> Result<Arc<ServerConfig>, ServerError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(client_ca_pem) {
        let cert = cert.map_err(|err| ServerError::ClientCa(err.to_string()))?;
        roots
            .add(cert)
            .map_err(|err| ServerError::ClientCa(err.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ServerError::ClientCa(String::from(
            "no certificate in the cluster CA PEM",
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|err| ServerError::ClientCa(err.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| ServerError::Tls(err.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![serving.cert], serving.key)
        .map_err(|err| ServerError::Tls(err.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A serving certificate signed by its own key.
pub(super) struct SelfSigned {
    /// The certificate (DER).
    pub(super) cert: CertificateDer<'static>,
    /// Its private key (PKCS#8 DER).
    pub(super) key: PrivateKeyDer<'static>,
}

impl SelfSigned {
    /// A fresh key and certificate for `node` (CN `<node>@<unix time>` as the kubelet's),
    /// valid for the names `node` and `localhost` and the addresses `ips` and loopback.
    pub(super) fn generate(node: &str, ips: &[IpAddr]) -> Result<SelfSigned, ServerError> {
        let certificate_error = |err: rcgen::Error| ServerError::Certificate(err.to_string());
        let key = KeyPair::generate().map_err(certificate_error)?;
        let mut names = vec![String::from("localhost")];
        if node != "localhost" {
            names.insert(0, node.to_owned());
        }
        let mut params = CertificateParams::new(names).map_err(certificate_error)?;
        let mut addresses: Vec<IpAddr> = vec![[127, 0, 0, 1].into()];
        for ip in ips {
            if !ip.is_unspecified() && !addresses.contains(ip) {
                addresses.push(*ip);
            }
        }
        params
            .subject_alt_names
            .extend(addresses.into_iter().map(SanType::IpAddress));
        let issued_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{node}@{issued_at}"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.self_signed(&key).map_err(certificate_error)?;
        Ok(SelfSigned {
            cert: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_needs_a_ca_certificate() {
        let serving = SelfSigned::generate("n1", &[]).expect("certificate");
        assert!(matches!(
            server_config(b"not a pem", serving),
            Err(ServerError::ClientCa(_))
        ));
    }

    #[test]
    fn a_ca_and_a_self_signed_certificate_make_a_config() {
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let serving =
            SelfSigned::generate("n1", &["10.0.0.5".parse().expect("ip")]).expect("certificate");
        let config = server_config(ca.pem().as_bytes(), serving).expect("config");
        assert_eq!(config.alpn_protocols[1], b"http/1.1");
    }
}
