//! Where and as whom the heartbeat renews: [`HeartbeatSettings`], read from a kubeconfig.

use super::ConnectionError;

/// Where and as whom the heartbeat renews.
#[derive(Clone, Debug)]
pub struct HeartbeatSettings {
    /// The API server, `https://host:port` (a path, if any, is ignored).
    pub server_url: String,
    /// The cluster CA certificate(s), PEM: the only roots trusted.
    pub ca_pem: Vec<u8>,
    /// The node's bearer token.
    pub token: String,
    /// The node's name, also the Lease's name.
    pub node_name: String,
    /// The Lease's `leaseDurationSeconds` (the kubelet's default: 40).
    pub lease_duration_seconds: i32,
}

impl HeartbeatSettings {
    /// The settings of the current context of `kubeconfig`: its server, its cluster CA
    /// (`certificate-authority-data` or `certificate-authority`) and its user's token
    /// (`token` or `tokenFile`).
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
        let token = match (&user.token, &user.token_file) {
            (Some(token), _) => token.expose_secret().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|err| invalid(&format!("reading the token file {path}: {err}")))?
                .trim()
                .to_owned(),
            (None, None) => return Err(invalid("the kubeconfig's user has no bearer token")),
        };
        Ok(HeartbeatSettings {
            server_url,
            ca_pem,
            token,
            node_name: node_name.to_owned(),
            lease_duration_seconds,
        })
    }
}
