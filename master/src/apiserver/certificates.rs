//! What the API server adds to CertificateSigningRequests beyond their schema, as
//! kube-apiserver's CSR strategy and its `CertificateApproval` admission do: a new request
//! records who made it (`spec.username`, `uid`, `groups`, `extra`, whatever the client
//! sent), and an approval or denial (the `approval` subresource, `kubectl certificate
//! approve|deny`) needs the `approve` verb on the request's signer (`signers` in
//! certificates.k8s.io, named by the signer or `<domain>/*`).

use serde_json::{Value, json};

use super::ApiServer;
use super::authentication::requester;
use super::authorization::{Attributes, Decision};
use super::status::ApiError;

const GROUP: &str = "certificates.k8s.io";

impl ApiServer {
    /// Record the requester in a CertificateSigningRequest being created.
    pub(super) fn admit_csr_create(&self, csr: &mut Value) {
        let Some(user) = requester() else {
            return;
        };
        csr["spec"]["username"] = json!(user.username);
        csr["spec"]["uid"] = if user.uid.is_empty() {
            Value::Null
        } else {
            json!(user.uid)
        };
        csr["spec"]["groups"] = json!(user.groups);
        csr["spec"]["extra"] = if user.extra.is_empty() {
            Value::Null
        } else {
            json!(user.extra)
        };
        if let Some(spec) = csr.get_mut("spec").and_then(Value::as_object_mut) {
            spec.retain(|_, v| !v.is_null());
        }
    }

    /// An approval or denial is allowed to who may `approve` for the request's signer.
    pub(super) fn confirm_csr_approval(&self, new: &Value, old: &Value) -> Result<(), ApiError> {
        let Some(user) = requester() else {
            return Ok(());
        };
        let decided = |csr: &Value| -> Vec<String> {
            csr.pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c["type"].as_str())
                .filter(|t| matches!(*t, "Approved" | "Denied"))
                .map(str::to_owned)
                .collect()
        };
        if decided(new) == decided(old) {
            return Ok(());
        }
        let signer = new["spec"]["signerName"].as_str().unwrap_or("");
        let wildcard = signer
            .split_once('/')
            .map(|(domain, _)| format!("{domain}/*"))
            .unwrap_or_default();
        for name in [signer, wildcard.as_str()] {
            let approve = Attributes::resource("approve", GROUP, "signers", "", "", name);
            if matches!(
                self.authorizer.authorize(&user, &approve),
                Decision::Allow(_)
            ) {
                return Ok(());
            }
        }
        Err(ApiError::Forbidden(format!(
            "certificatesigningrequests.certificates.k8s.io \"{}\" is forbidden: user not permitted to approve requests with signerName \"{signer}\"",
            new["metadata"]["name"].as_str().unwrap_or("")
        )))
    }
}
