//! TLS of the agent's endpoint: the node's serving certificate (asked of the cluster with a
//! `kubernetes.io/kubelet-serving` CertificateSigningRequest and renewed while the agent
//! runs; until the first is issued, handshakes fail, as the kubelet's with
//! `serverTLSBootstrap`) and client certificates required and verified against the cluster
//! CA, so only the API server (whose kubelet-client certificate the CA signed) gets in.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::{ServerConfig, WebPkiClientVerifier};

use super::ServerError;
use crate::kubelet::certificate::Identity;

/// The rustls configuration of the endpoint: `serving`'s current certificate as its own,
/// client certificates signed by a CA of `client_ca_pem` required (no valid one: the
/// handshake fails). ALPN h2 and http/1.1.
pub(super) fn server_config(
    client_ca_pem: &[u8],
    serving: Identity,
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
        .with_cert_resolver(Arc::new(serving));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_needs_a_ca_certificate() {
        assert!(matches!(
            server_config(b"not a pem", Identity::empty()),
            Err(ServerError::ClientCa(_))
        ));
    }

    #[test]
    fn a_ca_makes_a_config_before_any_serving_certificate() {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let config = server_config(ca.pem().as_bytes(), Identity::empty()).expect("config");
        assert_eq!(config.alpn_protocols[1], b"http/1.1");
    }
}
