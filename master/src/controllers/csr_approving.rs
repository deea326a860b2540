//! The csrapproving controller: approves node agents' client certificate requests for the
//! `kubernetes.io/kube-apiserver-client-kubelet` signer when their requester may make them,
//! as kube-controller-manager's `sarapprove.go` does: a node renewing its own certificate
//! (the request's common name is the requester) needs `create` on
//! `certificatesigningrequests/selfnodeclient`; anyone else (a bootstrap token) on
//! `certificatesigningrequests/nodeclient`. Each question is a SubjectAccessReview for the
//! requester. A request it may not approve is left as it is, for an admin to decide.
//!
//! Beyond kube-controller-manager (which leaves them to an admin or an add-on approver), it
//! also approves node agents' serving certificate requests (`kubernetes.io/kubelet-serving`)
//! that a node makes for itself and that name only its own addresses, checked against its
//! Node's `status.addresses` (DNS names among its Hostname and DNS addresses, IPs among its
//! InternalIP and ExternalIP addresses), as the kubelet-csr-approver add-on does: the API
//! server then verifies the agents it calls against the cluster CA.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tracing::{info, warn};

use super::informers::{Informers, synced};
use crate::apiserver::validation::certificates::{
    KUBELET_CLIENT_SIGNER, KUBELET_SERVING_SIGNER, RequestSubject, has_condition,
    kubelet_client_problem, kubelet_serving_problem, parse_request,
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
        nodes: informers.nodes.reader(),
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
    nodes: Store<Node>,
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
    if has_condition(&csr, "Approved") || has_condition(&csr, "Denied") {
        return Ok(Action::await_change());
    }
    let Ok(subject) = parse_request(&spec.request.0) else {
        return Ok(Action::await_change());
    };
    let usages = spec.usages.clone().unwrap_or_default();
    let message = match spec.signer_name.as_str() {
        KUBELET_CLIENT_SIGNER if kubelet_client_problem(&subject, &usages).is_none() => {
            match client_review(&ctx, &csr, &subject).await? {
                Some(message) => message,
                None => return Ok(Action::await_change()),
            }
        }
        KUBELET_SERVING_SIGNER if kubelet_serving_problem(&subject, &usages).is_none() => {
            // Only a node asking for itself.
            let requester = spec.username.as_deref().unwrap_or_default();
            let Some(node_name) = requester.strip_prefix("system:node:") else {
                return Ok(Action::await_change());
            };
            if subject.common_name != requester {
                return Ok(Action::await_change());
            }
            let Some(node) = ctx.nodes.get(&ObjectRef::new(node_name)) else {
                // The Node may not be in the cache yet.
                return Ok(Action::requeue(Duration::from_secs(2)));
            };
            if let Some(problem) = serving_names_problem(&subject, &node) {
                info!(csr = %csr.name_any(), "not approving a serving certificate request: {problem}");
                return Ok(Action::await_change());
            }
            "Auto approving kubelet serving certificate after checking its names against the Node."
        }
        _ => return Ok(Action::await_change()),
    };
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
    info!(csr = %csr.name_any(), user = ?spec.username, signer = %spec.signer_name, "approved a node certificate request");
    Ok(Action::await_change())
}

/// The approval message for a node client certificate request whose requester may make it
/// (a SubjectAccessReview), or None.
async fn client_review(
    ctx: &Context,
    csr: &CertificateSigningRequest,
    subject: &RequestSubject,
) -> Result<Option<&'static str>, Error> {
    let spec = &csr.spec;
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
    Ok(answer.status.is_some_and(|s| s.allowed).then_some(message))
}

/// Why a serving certificate request names what is not its Node's, if it does.
fn serving_names_problem(subject: &RequestSubject, node: &Node) -> Option<String> {
    let addresses = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default();
    let of = |types: &[&str]| -> Vec<&str> {
        addresses
            .iter()
            .filter(|a| types.contains(&a.type_.as_str()))
            .map(|a| a.address.as_str())
            .collect()
    };
    let hostnames = of(&["Hostname", "InternalDNS", "ExternalDNS"]);
    let ips: Vec<IpAddr> = of(&["InternalIP", "ExternalIP"])
        .into_iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    if let Some(dns) = subject
        .dns_names
        .iter()
        .find(|d| !hostnames.contains(&d.as_str()))
    {
        return Some(format!(
            "DNS name {dns:?} is not one of the Node's addresses"
        ));
    }
    if let Some(ip) = subject.ip_addresses.iter().find(|ip| !ips.contains(ip)) {
        return Some(format!(
            "IP address {ip} is not one of the Node's addresses"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(addresses: &[(&str, &str)]) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "status": {"addresses": addresses
                .iter()
                .map(|(t, a)| json!({"type": t, "address": a}))
                .collect::<Vec<_>>()},
        }))
        .expect("node")
    }

    fn subject(dns: &[&str], ips: &[&str]) -> RequestSubject {
        RequestSubject {
            common_name: String::from("system:node:n1"),
            organizations: vec![String::from("system:nodes")],
            dns_names: dns.iter().map(|d| d.to_string()).collect(),
            ip_addresses: ips.iter().map(|ip| ip.parse().expect("ip")).collect(),
            other_alt_names: false,
        }
    }

    #[test]
    fn a_serving_request_may_name_only_the_nodes_own_addresses() {
        let n1 = node(&[("InternalIP", "10.0.0.5"), ("Hostname", "host-a")]);
        assert_eq!(
            serving_names_problem(&subject(&["host-a"], &["10.0.0.5"]), &n1),
            None
        );
        assert_eq!(
            serving_names_problem(&subject(&["host-b"], &["10.0.0.5"]), &n1).as_deref(),
            Some("DNS name \"host-b\" is not one of the Node's addresses")
        );
        assert_eq!(
            serving_names_problem(&subject(&[], &["10.0.0.6"]), &n1).as_deref(),
            Some("IP address 10.0.0.6 is not one of the Node's addresses")
        );
        // A Hostname address is no IP address.
        let named = node(&[("Hostname", "10.0.0.7")]);
        assert!(serving_names_problem(&subject(&[], &["10.0.0.7"]), &named).is_some());
    }
}
