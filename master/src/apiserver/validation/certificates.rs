//! certificates.k8s.io/v1 CertificateSigningRequests, as Kubernetes'
//! `pkg/apis/certificates/validation` checks them: a PEM certificate request whose signature
//! holds, a qualified signer name, known usages, at least ten minutes of life, and for the
//! kubelet signers a request a kubelet would make (`system:node:<name>` in `system:nodes`;
//! for its client certificate no alternative names and client usages, for its serving
//! certificate DNS or IP names only and server usages). Updates change no spec; Approved
//! and Denied exclude each other and neither is taken back.

use std::net::IpAddr;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use skiff_api::names::NameRule;

use super::{object_meta, object_meta_update};
use crate::apiserver::field_error::FieldError;

/// The signer of node agents' client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The signer of node agents' serving certificates (the kubelet port).
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";

const USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// What a certificate request asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RequestSubject {
    /// The subject's common name.
    pub common_name: String,
    /// The subject's organizations.
    pub organizations: Vec<String>,
    /// Its DNS alternative names.
    pub dns_names: Vec<String>,
    /// Its IP alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// Whether it names other alternative names (email, URI, other).
    pub other_alt_names: bool,
}

impl RequestSubject {
    /// Whether it names any alternative name.
    pub fn has_alt_names(&self) -> bool {
        !self.dns_names.is_empty() || !self.ip_addresses.is_empty() || self.other_alt_names
    }
}

/// Parse a PEM certificate request and check its signature.
pub fn parse_request(pem: &[u8]) -> Result<RequestSubject, String> {
    let text =
        std::str::from_utf8(pem).map_err(|_| "PEM block type must be CERTIFICATE REQUEST")?;
    if !text.contains("-----BEGIN CERTIFICATE REQUEST-----") {
        return Err("PEM block type must be CERTIFICATE REQUEST".into());
    }
    let params = rcgen::CertificateSigningRequestParams::from_pem(text)
        .map_err(|e| format!("invalid certificate request: {e}"))?;
    let mut subject = RequestSubject::default();
    for name in &params.params.subject_alt_names {
        match name {
            rcgen::SanType::DnsName(dns) => subject.dns_names.push(dns.as_str().to_owned()),
            rcgen::SanType::IpAddress(ip) => subject.ip_addresses.push(*ip),
            _ => subject.other_alt_names = true,
        }
    }
    for (kind, value) in params.params.distinguished_name.iter() {
        let text = dn_text(value);
        match kind {
            rcgen::DnType::CommonName => subject.common_name = text,
            rcgen::DnType::OrganizationName => subject.organizations.push(text),
            _ => {}
        }
    }
    Ok(subject)
}

fn dn_text(value: &rcgen::DnValue) -> String {
    match value {
        rcgen::DnValue::Utf8String(s) => s.clone(),
        rcgen::DnValue::PrintableString(s) => s.as_str().to_owned(),
        rcgen::DnValue::Ia5String(s) => s.as_str().to_owned(),
        rcgen::DnValue::TeletexString(s) => s.as_str().to_owned(),
        rcgen::DnValue::BmpString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        rcgen::DnValue::UniversalString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        _ => String::new(),
    }
}

/// Why a request is not one a kubelet makes for its client certificate (Kubernetes'
/// `ValidateKubeletClientCSR`), if it is not.
pub fn kubelet_client_problem(subject: &RequestSubject, usages: &[String]) -> Option<String> {
    if subject.organizations != ["system:nodes"] {
        return Some("subject organization is not system:nodes".into());
    }
    if !subject.common_name.starts_with("system:node:") {
        return Some("subject common name does not begin with system:node:".into());
    }
    if subject.has_alt_names() {
        return Some("DNS, email, IP and URI subjectAltNames are not allowed".into());
    }
    let allowed = ["digital signature", "key encipherment", "client auth"];
    if !usages.iter().any(|u| u == "client auth")
        || usages.iter().any(|u| !allowed.contains(&u.as_str()))
    {
        return Some(
            "usages did not match [\"client auth\" \"digital signature\"] or [\"client auth\" \"digital signature\" \"key encipherment\"]"
                .into(),
        );
    }
    None
}

/// Why a request is not one a kubelet makes for its serving certificate (Kubernetes'
/// `ValidateKubeletServingCSR`), if it is not.
pub fn kubelet_serving_problem(subject: &RequestSubject, usages: &[String]) -> Option<String> {
    if subject.organizations != ["system:nodes"] {
        return Some("subject organization is not system:nodes".into());
    }
    if subject.dns_names.is_empty() && subject.ip_addresses.is_empty() {
        return Some("DNS or IP subjectAltName is required".into());
    }
    if subject.other_alt_names {
        return Some("email and URI subjectAltNames are not allowed".into());
    }
    let mut asked: Vec<&str> = usages.iter().map(String::as_str).collect();
    asked.sort_unstable();
    asked.dedup();
    if asked != ["digital signature", "key encipherment", "server auth"]
        && asked != ["digital signature", "server auth"]
    {
        return Some(
            "usages did not match [digital signature key encipherment server auth]".into(),
        );
    }
    if !subject.common_name.starts_with("system:node:") {
        return Some("subject common name does not begin with system:node:".into());
    }
    None
}

/// A CertificateSigningRequest.
pub fn certificate_signing_request(csr: &CertificateSigningRequest) -> Vec<FieldError> {
    let mut errs = object_meta(&csr.metadata, false, NameRule::Dns1123Subdomain);
    let spec = &csr.spec;
    let subject = match parse_request(&spec.request.0) {
        Ok(subject) => Some(subject),
        Err(msg) => {
            errs.push(FieldError::invalid_unquoted(
                "spec.request",
                "[]byte{...}",
                msg,
            ));
            None
        }
    };
    let signer = spec.signer_name.as_str();
    if signer.is_empty() {
        errs.push(FieldError::required("spec.signerName", ""));
    } else if !signer
        .split_once('/')
        .is_some_and(|(domain, name)| domain.contains('.') && !name.is_empty())
    {
        errs.push(FieldError::invalid(
            "spec.signerName",
            signer,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
    }
    let usages = spec.usages.as_deref().unwrap_or_default();
    if usages.is_empty() {
        errs.push(FieldError::required("spec.usages", ""));
    }
    for (i, usage) in usages.iter().enumerate() {
        if !USAGES.contains(&usage.as_str()) {
            errs.push(FieldError::not_supported(
                format!("spec.usages[{i}]"),
                usage,
                USAGES,
            ));
        }
    }
    if let Some(seconds) = spec.expiration_seconds
        && seconds < 600
    {
        errs.push(FieldError::invalid_unquoted(
            "spec.expirationSeconds",
            seconds,
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    let kubelet_problem = match (signer, &subject) {
        (KUBELET_CLIENT_SIGNER, Some(subject)) => kubelet_client_problem(subject, usages),
        (KUBELET_SERVING_SIGNER, Some(subject)) => kubelet_serving_problem(subject, usages),
        _ => None,
    };
    if let Some(problem) = kubelet_problem {
        errs.push(FieldError::invalid_unquoted(
            "spec.request",
            "[]byte{...}",
            problem,
        ));
    }
    errs
}

/// Whether the request has a condition of type `kind` (`Approved`, `Denied`, `Failed`).
pub fn has_condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == kind))
}

/// CertificateSigningRequest update rules.
pub fn certificate_signing_request_update(
    old: &CertificateSigningRequest,
    new: &CertificateSigningRequest,
) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    if old.spec != new.spec {
        errs.push(FieldError::forbidden("spec", "field is immutable"));
    }
    if has_condition(new, "Approved") && has_condition(new, "Denied") {
        errs.push(FieldError::invalid_unquoted(
            "status.conditions",
            "[]certificates.CertificateSigningRequestCondition{...}",
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    for kind in ["Approved", "Denied"] {
        if has_condition(old, kind) && !has_condition(new, kind) {
            errs.push(FieldError::invalid_unquoted(
                "status.conditions",
                "[]certificates.CertificateSigningRequestCondition{...}",
                format!("updates may not remove a condition of type {kind:?}"),
            ));
        }
    }
    let certificate = new
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .map(|c| c.0.as_slice())
        .unwrap_or_default();
    if !certificate.is_empty() && !certificate.starts_with(b"-----BEGIN CERTIFICATE-----") {
        errs.push(FieldError::invalid_unquoted(
            "status.certificate",
            "<certificate data>",
            "must contain at least one CERTIFICATE PEM block",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cn: &str, orgs: &[&str], dns: &[&str]) -> String {
        let mut params =
            rcgen::CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *o);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn csr(pem: &str, usages: &[&str]) -> CertificateSigningRequest {
        csr_for(KUBELET_CLIENT_SIGNER, pem, usages)
    }

    fn csr_for(signer: &str, pem: &str, usages: &[&str]) -> CertificateSigningRequest {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "node-csr"},
            "spec": {
                "request": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pem),
                "signerName": signer,
                "usages": usages,
            }
        }))
        .unwrap()
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.message()))
            .collect()
    }

    #[test]
    fn a_kubelets_request_is_valid_and_others_for_its_signer_are_not() {
        let good = request("system:node:a", &["system:nodes"], &[]);
        assert_eq!(
            parse_request(good.as_bytes()).unwrap(),
            RequestSubject {
                common_name: "system:node:a".into(),
                organizations: vec!["system:nodes".into()],
                ..Default::default()
            }
        );
        let usages = ["digital signature", "client auth"];
        assert!(certificate_signing_request(&csr(&good, &usages)).is_empty());
        let wrong_org = request("system:node:a", &["system:masters"], &[]);
        assert_eq!(
            messages(&certificate_signing_request(&csr(&wrong_org, &usages))),
            ["spec.request: Invalid value: []byte{...}: subject organization is not system:nodes"]
        );
        let alt = request("system:node:a", &["system:nodes"], &["evil.example"]);
        assert_eq!(certificate_signing_request(&csr(&alt, &usages)).len(), 1);
        assert_eq!(
            messages(&certificate_signing_request(&csr(&good, &["server auth"]))).len(),
            1
        );
    }

    #[test]
    fn a_kubelets_serving_request_names_its_host_and_asks_for_server_usages() {
        let mut params = rcgen::CertificateParams::new(vec![String::from("host-a")]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress([10, 0, 0, 5].into()));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:a");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:nodes");
        let key = rcgen::KeyPair::generate().unwrap();
        let good = params.serialize_request(&key).unwrap().pem().unwrap();
        let subject = parse_request(good.as_bytes()).unwrap();
        assert_eq!(subject.dns_names, ["host-a"]);
        assert_eq!(subject.ip_addresses, [IpAddr::from([10, 0, 0, 5])]);
        let usages = ["digital signature", "key encipherment", "server auth"];
        let serving = |pem: &str, usages: &[&str]| {
            messages(&certificate_signing_request(&csr_for(
                KUBELET_SERVING_SIGNER,
                pem,
                usages,
            )))
        };
        assert!(serving(&good, &usages).is_empty());
        assert!(serving(&good, &["server auth", "digital signature"]).is_empty());
        assert_eq!(
            serving(&good, &["digital signature", "client auth"]),
            [
                "spec.request: Invalid value: []byte{...}: usages did not match [digital signature key encipherment server auth]"
            ]
        );
        let nameless = request("system:node:a", &["system:nodes"], &[]);
        assert_eq!(
            serving(&nameless, &usages),
            ["spec.request: Invalid value: []byte{...}: DNS or IP subjectAltName is required"]
        );
        let user = request("alice", &["system:nodes"], &["host-a"]);
        assert_eq!(
            serving(&user, &usages),
            [
                "spec.request: Invalid value: []byte{...}: subject common name does not begin with system:node:"
            ]
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        let garbage =
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
        let errs = certificate_signing_request(&csr(garbage, &["client auth"]));
        assert_eq!(errs[0].field, "spec.request");
        let errs = certificate_signing_request(&csr("hello", &["bogus"]));
        assert_eq!(
            messages(&errs)[0],
            "spec.request: Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST"
        );
        assert!(messages(&errs)[1].starts_with("spec.usages[0]: Unsupported value: \"bogus\""));
        // A request whose signature does not hold.
        let good = request("system:node:a", &["system:nodes"], &[]);
        let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
        let body = &mut lines[2];
        let flipped = if body.starts_with('A') { 'B' } else { 'A' };
        body.replace_range(0..1, &flipped.to_string());
        let tampered = lines.join("\n");
        assert!(parse_request(tampered.as_bytes()).is_err());
    }
}
