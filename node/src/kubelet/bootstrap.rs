//! Joining a cluster (`skiff-node join <server>[,<server>...] --token <id.secret> --ca-cert-hash
//! sha256:<hex>`), as kubeadm's discovery and the kubelet's TLS bootstrap do it:
//!
//! 1. read the `cluster-info` ConfigMap in `kube-public` (before any credential, without
//!    trusting the server yet) and take its CA only if the CA's public key has the pin;
//! 2. with the bootstrap token, over TLS that trusts that CA alone, ask for a client
//!    certificate for `system:node:<name>` in `system:nodes` (a CertificateSigningRequest
//!    for `kubernetes.io/kube-apiserver-client-kubelet`; the master's csrapproving and
//!    csrsigning controllers approve and sign it);
//! 3. keep the key and the certificate in `pki/kubelet-client-current.pem` and write the
//!    kubeconfig the agent then runs with, naming that file. A later start finds them and
//!    skips 1 and 2 while the certificate is valid; the agent renews it itself before it
//!    expires (`certificate::Rotation`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::config::{
    AuthInfo, Cluster, Context as KubeContext, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use secrecy::SecretString;
use tracing::info;

use super::certificate::{self, Identity, Template};

/// What joining needs.
pub struct Join<'a> {
    /// The API servers, `https://host:port`: the first that answers is joined through.
    pub servers: &'a [String],
    /// The bootstrap token.
    pub token: &'a str,
    /// The CA pin, `sha256:<hex>`.
    pub ca_cert_hash: &'a str,
    /// The Node's name.
    pub node_name: &'a str,
    /// The agent's directory (its `pki/` and `kubeconfig` go there).
    pub root_dir: &'a Path,
}

/// Join the cluster (or find that this node already did); returns the kubeconfig to run with.
pub async fn join(request: &Join<'_>) -> anyhow::Result<PathBuf> {
    let kubeconfig_path = request.root_dir.join("kubeconfig");
    let cert_path = request.root_dir.join(certificate::CLIENT_FILE);
    if kubeconfig_path.exists() && Identity::load_valid(&cert_path).is_some() {
        info!(kubeconfig = %kubeconfig_path.display(), "already joined");
        // The cluster may serve elsewhere now (one master where there were three): the
        // server given wins over the one joined through.
        let mut own = Kubeconfig::read_from(&kubeconfig_path)
            .with_context(|| format!("reading {}", kubeconfig_path.display()))?;
        let server = request.servers.first().context("no API server given")?;
        let stale = own
            .clusters
            .iter()
            .filter_map(|c| c.cluster.as_ref())
            .any(|c| c.server.as_ref() != Some(server));
        if stale {
            crate::api_balancer::point_kubeconfig_at(&mut own, server);
            let text = serde_yaml::to_string(&own)?;
            certificate::write_private(&kubeconfig_path, text.as_bytes())?;
        }
        return Ok(kubeconfig_path);
    }
    let (server, ca_pem) = discover_ca(request.servers, request.ca_cert_hash).await?;
    let bootstrap = kubeconfig(
        server,
        &ca_pem,
        AuthInfo {
            token: Some(SecretString::from(request.token.to_owned())),
            ..Default::default()
        },
    );
    let config = kube::Config::from_custom_kubeconfig(bootstrap, &Default::default())
        .await
        .context("the bootstrap kubeconfig")?;
    let client = certificate::api_client(config, None)?;
    let (cert_pem, key_pem) = certificate::request(&client, &Template::client(request.node_name))
        .await
        .context("requesting the node's client certificate (is the bootstrap token valid?)")?;
    certificate::store(&cert_path, &cert_pem, key_pem.as_bytes())?;
    let file = cert_path.display().to_string();
    let own = kubeconfig(
        server,
        &ca_pem,
        AuthInfo {
            client_certificate: Some(file.clone()),
            client_key: Some(file),
            ..Default::default()
        },
    );
    let text = serde_yaml::to_string(&own)?;
    certificate::write_private(&kubeconfig_path, text.as_bytes())?;
    info!(kubeconfig = %kubeconfig_path.display(), "joined with the node's own certificate");
    Ok(kubeconfig_path)
}

/// The first of `servers` that answers, and the cluster CA from its `cluster-info` if it has
/// the pin (a CA without it is refused at once: another server would not make it trusted).
async fn discover_ca<'a>(servers: &'a [String], pin: &str) -> anyhow::Result<(&'a str, Vec<u8>)> {
    let mut failures = Vec::new();
    for server in servers {
        match cluster_info(server).await {
            Ok(info) => return Ok((server, pinned_ca(&info, pin)?)),
            Err(err) => failures.push(format!("{err:#}")),
        }
    }
    bail!("no API server answered: {}", failures.join("; "))
}

/// The `cluster-info` ConfigMap of `server`, read before anything is trusted.
async fn cluster_info(server: &str) -> anyhow::Result<ConfigMap> {
    // Nothing is trusted yet: the pin is what makes the answer trustworthy.
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!(
        "{}/api/v1/namespaces/kube-public/configmaps/cluster-info",
        server.trim_end_matches('/')
    );
    let answer = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("reading {url}"))?;
    if !answer.status().is_success() {
        bail!("reading {url}: {}", answer.status());
    }
    answer.json().await.context("the cluster-info ConfigMap")
}

/// The CA `cluster-info` names, if it has the pin.
fn pinned_ca(info: &ConfigMap, pin: &str) -> anyhow::Result<Vec<u8>> {
    let text = info
        .data
        .as_ref()
        .and_then(|d| d.get("kubeconfig"))
        .context("the cluster-info ConfigMap has no kubeconfig")?;
    let config: Kubeconfig = serde_yaml::from_str(text).context("the cluster-info kubeconfig")?;
    let data = config
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.clone())
        .context("the cluster-info kubeconfig names no CA")?;
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .context("the cluster-info CA")?;
    if !skiff_api::ca_pin::matches(&ca_pem, pin) {
        let found = skiff_api::ca_pin::ca_cert_hash(&ca_pem).unwrap_or_default();
        bail!(
            "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{found}\" are pinned"
        );
    }
    Ok(ca_pem)
}

fn kubeconfig(server: &str, ca_pem: &[u8], user: AuthInfo) -> Kubeconfig {
    Kubeconfig {
        api_version: Some(String::from("v1")),
        kind: Some(String::from("Config")),
        clusters: vec![NamedCluster {
            name: String::from("skiff"),
            cluster: Some(Cluster {
                server: Some(server.to_owned()),
                certificate_authority_data: Some(
                    base64::engine::general_purpose::STANDARD.encode(ca_pem),
                ),
                ..Default::default()
            }),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: String::from("node"),
            auth_info: Some(user),
        }],
        contexts: vec![NamedContext {
            name: String::from("skiff"),
            context: Some(KubeContext {
                cluster: String::from("skiff"),
                user: Some(String::from("node")),
                ..Default::default()
            }),
        }],
        current_context: Some(String::from("skiff")),
        ..Default::default()
    }
}
