//! The kubelet's [`Heartbeat`] writes over a [`HeartbeatConnection`]: lease renewals and node
//! status updates on the agent's persistent (io_uring) connection instead of the `kube`
//! client.

use k8s_openapi::api::core::v1::NodeStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use tokio::sync::Mutex;

use super::heartbeat::{self, HeartbeatConnection, HeartbeatSettings, Transport};
use crate::kubelet::{Heartbeat, HeartbeatError};

/// [`Heartbeat`] on a [`HeartbeatConnection`]; the transport is the connection's.
pub struct UringHeartbeat {
    // The trait takes `&self`; the heartbeat loop writes one at a time, so the lock is
    // never contended, it only makes overlapping writes wait instead of failing.
    conn: Mutex<HeartbeatConnection>,
}

impl UringHeartbeat {
    /// Heartbeats over `conn`.
    pub fn new(conn: HeartbeatConnection) -> UringHeartbeat {
        UringHeartbeat {
            conn: Mutex::new(conn),
        }
    }

    /// Heartbeats for `settings` over [`Transport::preferred`]: io_uring when the calling
    /// thread runs on it, else tokio. Call it inside the agent's runtime.
    pub fn preferred(
        settings: &HeartbeatSettings,
    ) -> Result<UringHeartbeat, heartbeat::ConnectionError> {
        Ok(UringHeartbeat::new(HeartbeatConnection::new(
            Transport::preferred(),
            settings,
        )?))
    }
}

impl Heartbeat for UringHeartbeat {
    async fn renew_lease(&self, renew_time: &MicroTime) -> Result<(), HeartbeatError> {
        let mut conn = self.conn.lock().await;
        conn.renew_at(renew_time.0).await.map_err(to_kubelet)?;
        Ok(())
    }

    async fn update_node_status(&self, status: &NodeStatus) -> Result<(), HeartbeatError> {
        let patch = serde_json::to_vec(&serde_json::json!({ "status": status }))
            .map_err(|err| HeartbeatError::Transport(format!("encoding the node status: {err}")))?;
        let mut conn = self.conn.lock().await;
        conn.update_node_status(&patch).await.map_err(to_kubelet)?;
        Ok(())
    }
}

fn to_kubelet(err: heartbeat::ConnectionError) -> HeartbeatError {
    match err {
        err if err.is_not_found() => HeartbeatError::NotFound,
        heartbeat::ConnectionError::Status { status, message } => HeartbeatError::Api {
            code: status,
            message,
        },
        other => HeartbeatError::Transport(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_kubelets() {
        let not_found = heartbeat::ConnectionError::Status {
            status: 404,
            message: "gone".into(),
        };
        assert!(matches!(to_kubelet(not_found), HeartbeatError::NotFound));
        let conflict = heartbeat::ConnectionError::Status {
            status: 409,
            message: "conflict".into(),
        };
        assert!(matches!(
            to_kubelet(conflict),
            HeartbeatError::Api { code: 409, message } if message == "conflict"
        ));
        assert!(matches!(
            to_kubelet(heartbeat::ConnectionError::Closed),
            HeartbeatError::Transport(_)
        ));
    }
}
