//! Watches the container runtime: while Docker answers, its container events wake the pod
//! workers; when it stops answering, the node turns NotReady (with the reason) and the monitor
//! retries with back-off until Docker is back, then prepares the node again (network, pause
//! image) and has every pod resynced, since events may have been missed meanwhile.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::messages::ManagerMsg;
use super::node_status::RuntimeHealth;
use crate::runtime::{ContainerRuntime, NodeNetwork};

/// Longest wait between two attempts to reach Docker.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Runs until the pod manager is gone.
pub async fn run<R: ContainerRuntime>(
    runtime: Arc<R>,
    network: NodeNetwork,
    health: watch::Sender<RuntimeHealth>,
    manager: mpsc::UnboundedSender<ManagerMsg>,
) {
    let mut retry = Duration::from_millis(250);
    let mut version = String::new();
    loop {
        let ready = match runtime.version().await {
            Ok(v) => {
                version = v;
                runtime.prepare_node(&network).await
            }
            Err(err) => Err(err),
        };
        if let Err(err) = ready {
            let message = err.to_string();
            let changed = health.send_if_modified(|h| {
                let changed = h.ready || h.message != message;
                *h = RuntimeHealth {
                    ready: false,
                    version: version.clone(),
                    message: message.clone(),
                };
                changed
            });
            if changed {
                warn!("container runtime not ready: {message}; retrying");
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(MAX_RETRY);
            continue;
        }
        retry = Duration::from_millis(250);
        // Subscribe before announcing readiness so no event between the two is lost.
        let mut events = Box::pin(runtime.events());
        health.send_if_modified(|h| {
            let changed = !h.ready || h.version != version;
            if !h.ready {
                info!(%version, "container runtime ready");
            }
            *h = RuntimeHealth {
                ready: true,
                version: version.clone(),
                message: String::new(),
            };
            changed
        });
        if manager.send(ManagerMsg::RuntimeReady).is_err() {
            return;
        }
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    if manager.send(ManagerMsg::Container(event)).is_err() {
                        return;
                    }
                }
                Err(err) => {
                    warn!("container event stream: {err}");
                    break;
                }
            }
        }
        // The stream ended: Docker went away or closed it. Check again shortly.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
