//! The cluster CA's pin, as kubeadm's `--discovery-token-ca-cert-hash` writes it:
//! `sha256:<hex>` of the CA certificate's SubjectPublicKeyInfo. `skiff-master token create
//! --print-join-command` prints it; `skiff-node join` trusts only a CA that has it.

/// The pin of the first certificate in `pem`.
pub fn ca_cert_hash(pem: &[u8]) -> Result<String, String> {
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("reading the CA PEM: {e}"))?;
    let certificate = block
        .parse_x509()
        .map_err(|e| format!("reading the CA certificate: {e}"))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, certificate.public_key().raw);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

/// Whether `pem`'s CA has the pin `expected` (`sha256:<hex>`, case-insensitive).
pub fn matches(pem: &[u8], expected: &str) -> bool {
    ca_cert_hash(pem).is_ok_and(|hash| hash.eq_ignore_ascii_case(expected.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_the_hash_of_the_public_key_and_only_it_matches() {
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let hash = ca_cert_hash(ca.as_bytes()).unwrap();
        assert!(
            hash.starts_with("sha256:") && hash.len() == 7 + 64,
            "{hash}"
        );
        let (_, spki) = x509_parser::pem::parse_x509_pem(key.public_key_pem().as_bytes()).unwrap();
        let expected = ring::digest::digest(&ring::digest::SHA256, &spki.contents);
        let hex: String = expected
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hash, format!("sha256:{hex}"));
        assert!(matches(
            ca.as_bytes(),
            &hash.to_uppercase().replace("SHA256", "sha256")
        ));
        assert!(!matches(
            ca.as_bytes(),
            &format!("sha256:{}", "0".repeat(64))
        ));
        assert!(ca_cert_hash(b"not a certificate").is_err());
        assert!(!matches(b"", "sha256:00"));
    }
}
