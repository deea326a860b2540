//! The csrsigning controller: issues the certificates of approved requests with the cluster
//! CA, as kube-controller-manager's `signer` does for the Kubernetes signers it serves:
//! `kubernetes.io/kube-apiserver-client-kubelet` (node agents' client certificates, only for
//! requests a kubelet would make), `kubernetes.io/kubelet-serving` (node agents' serving
//! certificates, with the DNS and IP names asked for) and `kubernetes.io/kube-apiserver-client`
//! (users' client certificates). A certificate lives what the request asks
//! (`expirationSeconds`), at most `--cluster-signing-duration` (a year by default), from
//! five minutes back for clock skew (a tenth of its life back when that is shorter, so a
//! short-lived certificate is not born half spent). A request it must not sign gets a
//! `Failed` condition saying why.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use rcgen::{ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::json;
use tracing::{info, warn};

use super::informers::{Informers, synced};
use crate::apiserver::validation::certificates::{
    KUBELET_CLIENT_SIGNER, KUBELET_SERVING_SIGNER, has_condition, kubelet_client_problem,
    kubelet_serving_problem, parse_request,
};

/// The signer of users' client certificates.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// How far back a certificate's validity starts (at most).
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// What a reconcile can fail with (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// The cluster CA the controller signs with.
#[derive(Clone)]
pub struct SigningCa {
    /// PEM of the CA certificate.
    pub cert_pem: String,
    /// PEM of its key.
    pub key_pem: String,
    /// The longest a certificate it signs lives (`--cluster-signing-duration`).
    pub max_duration: Duration,
}

/// The controller on the shared informers; it runs until `shutdown` resolves.
pub fn run(
    client: kube::Client,
    ca: SigningCa,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let requests = informers.certificate_signing_requests.reader();
    let changes = informers.certificate_signing_requests.subscribe();
    let context = Arc::new(Context {
        client,
        ca,
        requests: requests.clone(),
    });
    async move {
        info!("csrsigning controller started");
        let results =
            Controller::for_shared_stream(changes, requests).run(reconcile, error_policy, context);
        super::drive("csrsigning", results, shutdown).await;
    }
}

struct Context {
    client: kube::Client,
    ca: SigningCa,
    requests: Store<CertificateSigningRequest>,
}

fn error_policy(csr: Arc<CertificateSigningRequest>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(csr = %csr.name_any(), "signing: {err}");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if !synced(&ctx.requests).await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let issued = csr
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    let ours = matches!(
        csr.spec.signer_name.as_str(),
        KUBELET_CLIENT_SIGNER | KUBELET_SERVING_SIGNER | CLIENT_SIGNER
    );
    if !ours
        || issued
        || !has_condition(&csr, "Approved")
        || has_condition(&csr, "Failed")
        || has_condition(&csr, "Denied")
    {
        return Ok(Action::await_change());
    }
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let status = match sign(&ctx.ca, &csr) {
        Ok(pem) => {
            info!(csr = %csr.name_any(), signer = %csr.spec.signer_name, "issued a certificate");
            json!({"certificate": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pem)})
        }
        Err(why) => {
            warn!(csr = %csr.name_any(), "refusing to sign: {why}");
            let mut conditions = csr
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            conditions.push(CertificateSigningRequestCondition {
                type_: String::from("Failed"),
                status: String::from("True"),
                reason: Some(String::from("SignerValidationFailure")),
                message: Some(why),
                last_update_time: Some(Time(chrono::Utc::now())),
                ..Default::default()
            });
            json!({"conditions": conditions})
        }
    };
    api.patch_status(
        &csr.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": status})),
    )
    .await?;
    Ok(Action::await_change())
}

/// The PEM certificate for `csr`, or why it is not signed.
pub fn sign(ca: &SigningCa, csr: &CertificateSigningRequest) -> Result<String, String> {
    let spec = &csr.spec;
    let usages = spec.usages.clone().unwrap_or_default();
    let subject = parse_request(&spec.request.0)?;
    let serving = spec.signer_name == KUBELET_SERVING_SIGNER;
    let problem = match spec.signer_name.as_str() {
        KUBELET_CLIENT_SIGNER => kubelet_client_problem(&subject, &usages),
        KUBELET_SERVING_SIGNER => kubelet_serving_problem(&subject, &usages),
        _ => None,
    };
    if let Some(problem) = problem {
        return Err(problem);
    }
    if !serving && usages.iter().any(|u| u == "server auth") {
        return Err("invalid usage for client certificate: server auth".into());
    }
    let text = std::str::from_utf8(&spec.request.0).map_err(|e| e.to_string())?;
    let mut request =
        rcgen::CertificateSigningRequestParams::from_pem(text).map_err(|e| e.to_string())?;
    let asked = spec
        .expiration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(ca.max_duration, Duration::from_secs)
        .min(ca.max_duration);
    let now = time::OffsetDateTime::now_utc();
    let params = &mut request.params;
    params.not_before = now - BACKDATE.min(asked / 10);
    params.not_after = now + asked;
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = usages
        .iter()
        .filter_map(|u| match u.as_str() {
            "digital signature" => Some(KeyUsagePurpose::DigitalSignature),
            "key encipherment" => Some(KeyUsagePurpose::KeyEncipherment),
            _ => None,
        })
        .collect();
    if serving {
        // The names were checked above: DNS and IP only.
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        params.subject_alt_names.clear();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let key = KeyPair::from_pem(&ca.key_pem).map_err(|e| format!("the CA key: {e}"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, key).map_err(|e| format!("the CA: {e}"))?;
    let certificate = request.signed_by(&issuer).map_err(|e| e.to_string())?;
    Ok(certificate.pem())
}
