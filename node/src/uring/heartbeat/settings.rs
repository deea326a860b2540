//! Where and as whom the heartbeat renews: [`HeartbeatSettings`], read from a kubeconfig.

use super::ConnectionError;
use crate::kubelet::certificate::Identity;

/// How the node authenticates.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A bearer token.
    BearerToken(String),
    /// A client certificate and its key, the node's own after it joined (renewed while the
    /// agent runs: each new connection presents the current one).
    ClientCertificate(Identity),
}

/// Where and as whom the heartbeat renews.
#[derive(Clone, Debug)]
pub struct HeartbeatSettings {
    /// The API server, `https://host:port` (a path, if any, is ignored).
    pub server_url: String,
    /// The cluster CA certificate(s), PEM: the only roots trusted.
    pub ca_pem: Vec<u8>,
    /// Who the node is to the API server.
    pub credential: Credential,
    /// The node's name, also the Lease's name.
    pub node_name: String,
    /// The Lease's `leaseDurationSeconds` (the kubelet's default: 40).
    pub lease_duration_seconds: i32,
}

impl HeartbeatSettings {
    /// The settings of the current context of `kubeconfig`: its server, its cluster CA
    /// (`certificate-authority-data` or `certificate-authority`) and its user's token
    /// (`token` or `tokenFile`) or client certificate (`client-certificate[-data]`,
    /// `client-key[-data]`).
    pub fn from_kubeconfig(
        kubeconfig: &kube::config::Kubeconfig,
        node_name: &str,
        lease_duration_seconds: i32,
    ) -> Result<HeartbeatSettings, ConnectionError> {
        use base64::Engine as _;
        use secrecy::ExposeSecret as _;
        let invalid = |what: &str| ConnectionError::InvalidSettings(what.to_owned());
        let context_name = kubeconfig
            .current_context
            .as_deref()
            .ok_or_else(|| invalid("the kubeconfig has no current-context"))?;
        let context = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context_name)
            .and_then(|c| c.context.as_ref())
            .ok_or_else(|| invalid("the kubeconfig's current context is missing"))?;
        let cluster = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .and_then(|c| c.cluster.as_ref())
            .ok_or_else(|| invalid("the kubeconfig's cluster is missing"))?;
        let user = kubeconfig
            .auth_infos
            .iter()
            .find(|u| Some(&u.name) == context.user.as_ref())
            .and_then(|u| u.auth_info.as_ref())
            .ok_or_else(|| invalid("the kubeconfig's user is missing"))?;
        let server_url = cluster
            .server
            .clone()
            .ok_or_else(|| invalid("the kubeconfig's cluster has no server"))?;
        let ca_pem = match (
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        ) {
            (Some(data), _) => base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|err| ConnectionError::Ca(format!("certificate-authority-data: {err}")))?,
            (None, Some(path)) => std::fs::read(path)
                .map_err(|err| ConnectionError::Ca(format!("reading {path}: {err}")))?,
            (None, None) => return Err(ConnectionError::Ca("the kubeconfig names no CA".into())),
        };
        let read = |data: &Option<String>, path: &Option<String>, what: &str| match (data, path) {
            (Some(data), _) => base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map(Some)
                .map_err(|err| invalid(&format!("{what}-data: {err}"))),
            (None, Some(path)) => std::fs::read(path)
                .map(Some)
                .map_err(|err| invalid(&format!("reading {path}: {err}"))),
            (None, None) => Ok(None),
        };
        let certificate = read(
            &user.client_certificate_data,
            &user.client_certificate,
            "client-certificate",
        )?;
        let key = read(
            &user
                .client_key_data
                .as_ref()
                .map(|k| k.expose_secret().to_owned()),
            &user.client_key,
            "client-key",
        )?;
        let credential = match (&user.token, &user.token_file, certificate, key) {
            (Some(token), _, _, _) => Credential::BearerToken(token.expose_secret().to_owned()),
            (None, Some(path), _, _) => Credential::BearerToken(
                std::fs::read_to_string(path)
                    .map_err(|err| invalid(&format!("reading the token file {path}: {err}")))?
                    .trim()
                    .to_owned(),
            ),
            (None, None, Some(cert_pem), Some(key_pem)) => Credential::ClientCertificate(
                Identity::from_pem(&cert_pem, &key_pem)
                    .map_err(|err| invalid(&format!("the client certificate: {err}")))?,
            ),
            _ => {
                return Err(invalid(
                    "the kubeconfig's user has no bearer token and no client certificate",
                ));
            }
        };
        Ok(HeartbeatSettings {
            server_url,
            ca_pem,
            credential,
            node_name: node_name.to_owned(),
            lease_duration_seconds,
        })
    }
}
