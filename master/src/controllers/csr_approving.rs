//! The csrapproving controller: approves node agents' client certificate requests for the
//! `kubernetes.io/kube-apiserver-client-kubelet` signer when their requester may make them,
//! as kube-controller-manager's `sarapprove.go` does: a node renewing its own certificate
//! (the request's common name is the requester) needs `create` on
//! `certificatesigningrequests/selfnodeclient`; anyone else (a bootstrap token) on
//! `certificatesigningrequests/nodeclient`. Each question is a SubjectAccessReview for the
//! requester. A request it may not approve is left as it is, for an admin to decide.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use serde_json::json;
use tracing::{info, warn};

use super::informers::{Informers, synced};
use crate::apiserver::validation::certificates::{
    KUBELET_CLIENT_SIGNER, has_condition, kubelet_client_problem, parse_request,
};

/// What a reconcile can fail with (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// The controller on the shared informers; it runs until `shutdown` resolves.
pub fn run(
    client: kube::Client,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let requests = informers.certificate_signing_requests.reader();
    let changes = informers.certificate_signing_requests.subscribe();
    let context = Arc::new(Context {
        client,
        requests: requests.clone(),
    });
    async move {
        info!("csrapproving controller started");
        let results =
            Controller::for_shared_stream(changes, requests).run(reconcile, error_policy, context);
        super::drive("csrapproving", results, shutdown).await;
    }
}

struct Context {
    client: kube::Client,
    requests: Store<CertificateSigningRequest>,
}

fn error_policy(csr: Arc<CertificateSigningRequest>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(csr = %csr.name_any(), "approving: {err}");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if !synced(&ctx.requests).await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let spec = &csr.spec;
    let decided = has_condition(&csr, "Approved") || has_condition(&csr, "Denied");
    if spec.signer_name != KUBELET_CLIENT_SIGNER || decided {
        return Ok(Action::await_change());
    }
    let Ok(subject) = parse_request(&spec.request.0) else {
        return Ok(Action::await_change());
    };
    let usages = spec.usages.clone().unwrap_or_default();
    if kubelet_client_problem(&subject, &usages).is_some() {
        return Ok(Action::await_change());
    }
    let own = spec.username.as_deref() == Some(subject.common_name.as_str());
    let (subresource, message) = if own {
        (
            "selfnodeclient",
            "Auto approving self kubelet client certificate after SubjectAccessReview.",
        )
    } else {
        (
            "nodeclient",
            "Auto approving kubelet client certificate after SubjectAccessReview.",
        )
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: spec.username.clone(),
            uid: spec.uid.clone(),
            groups: spec.groups.clone(),
            extra: spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some(String::from("certificates.k8s.io")),
                resource: Some(String::from("certificatesigningrequests")),
                subresource: Some(subresource.to_owned()),
                verb: Some(String::from("create")),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<SubjectAccessReview> = Api::all(ctx.client.clone());
    let answer = reviews.create(&PostParams::default(), &review).await?;
    if !answer.status.is_some_and(|s| s.allowed) {
        return Ok(Action::await_change());
    }
    let condition = CertificateSigningRequestCondition {
        type_: String::from("Approved"),
        status: String::from("True"),
        reason: Some(String::from("AutoApproved")),
        message: Some(message.to_owned()),
        last_update_time: Some(Time(chrono::Utc::now())),
        ..Default::default()
    };
    let mut conditions = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    conditions.push(condition);
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let patch = json!({"status": {"conditions": conditions}});
    api.patch_approval(
        &csr.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    info!(csr = %csr.name_any(), user = ?spec.username, "approved a node client certificate request");
    Ok(Action::await_change())
}
