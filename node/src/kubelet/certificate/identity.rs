//! [`Identity`]: a certificate and its key that can be replaced while connections use it, as
//! client-go's certificate manager's `Current()`. The heartbeat, the API client and the
//! endpoint's TLS read it at each handshake, so a renewed certificate is used from the next
//! connection on.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// What loading a certificate can fail with.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The PEM holds no usable certificate or key.
    #[error("{0}")]
    Pem(String),
}

/// A certificate (chain) and key, replaceable; empty until the first is set.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    current: Arc<RwLock<Option<Current>>>,
    /// Bumped at each replacement, so holders of connections know theirs is older.
    generation: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Identity {
    /// An identity with nothing yet (a TLS server on it fails handshakes until one is set).
    pub fn empty() -> Identity {
        Identity::default()
    }

    /// An identity holding `cert_pem` (leaf first) and `key_pem`.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Identity, IdentityError> {
        let identity = Identity::empty();
        identity.replace(cert_pem, key_pem)?;
        Ok(identity)
    }

    /// The identity stored in `path` (certificate chain and key in one PEM file), if the file
    /// is there, readable and its certificate still valid now.
    pub fn load_valid(path: &Path) -> Option<Identity> {
        let pem = std::fs::read(path).ok()?;
        let identity = Identity::from_pem(&pem, &pem).ok()?;
        let (not_before, not_after) = identity.validity()?;
        let now = SystemTime::now();
        (not_before <= now && now < not_after).then_some(identity)
    }

    /// Replaces the certificate and key; the next handshake uses them.
    pub fn replace(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), IdentityError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| IdentityError::Pem(format!("the certificate: {err}")))?;
        let leaf = chain
            .first()
            .ok_or_else(|| IdentityError::Pem("no certificate in the PEM".into()))?;
        let (not_before, not_after) = validity(leaf)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|err| IdentityError::Pem(format!("the key: {err}")))?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|err| IdentityError::Pem(format!("the key: {err}")))?;
        let key = Arc::new(CertifiedKey::new(chain, signing));
        key.keys_match()
            .map_err(|err| IdentityError::Pem(format!("the key and the certificate: {err}")))?;
        let current = Current {
            key,
            not_before,
            not_after,
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(current);
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// The current certificate and key, if any.
    pub fn certified_key(&self) -> Option<Arc<CertifiedKey>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.as_ref().map(|c| c.key.clone())
    }

    /// When the current certificate starts and stops being valid.
    pub fn validity(&self) -> Option<(SystemTime, SystemTime)> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.as_ref().map(|c| (c.not_before, c.not_after))
    }

    /// How many times the certificate was set or replaced.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

fn validity(leaf: &CertificateDer<'_>) -> Result<(SystemTime, SystemTime), IdentityError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|err| IdentityError::Pem(format!("the certificate: {err}")))?;
    let at = |time: x509_parser::time::ASN1Time| {
        let seconds = u64::try_from(time.timestamp()).unwrap_or(0);
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    };
    let validity = certificate.validity();
    Ok((at(validity.not_before), at(validity.not_after)))
}

impl ResolvesClientCert for Identity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.certified_key()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for Identity {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.certified_key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_replacement_is_what_the_next_handshake_gets() {
        let identity = Identity::empty();
        assert!(identity.certified_key().is_none());
        let (cert, key) = self_signed("one");
        identity
            .replace(cert.as_bytes(), key.as_bytes())
            .expect("set");
        let first = identity.certified_key().expect("key");
        let shared = identity.clone();
        let (cert, key) = self_signed("two");
        shared
            .replace(cert.as_bytes(), key.as_bytes())
            .expect("replace");
        let second = identity.certified_key().expect("key");
        assert_ne!(first.cert[0], second.cert[0]);
        assert_eq!(identity.generation(), 2);
        let (not_before, not_after) = identity.validity().expect("validity");
        assert!(not_before < not_after);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (cert, _) = self_signed("one");
        let (_, other_key) = self_signed("two");
        let identity = Identity::empty();
        assert!(
            identity
                .replace(cert.as_bytes(), other_key.as_bytes())
                .is_err()
        );
        assert!(identity.certified_key().is_none());
        assert!(Identity::from_pem(b"garbage", b"garbage").is_err());
    }
}
