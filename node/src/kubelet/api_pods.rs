//! The API source of pods: a watch of the pods bound to this node (`spec.nodeName=<node>`).
//! The initial list (and every re-list after the watch broke, e.g. while the master was down)
//! arrives as one snapshot, so pods deleted meanwhile are noticed; then single changes follow.
//! Reconnects back off (kube's default: 0.8 s doubling to 30 s).

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::messages::ManagerMsg;

/// Watches until the pod manager is gone.
pub async fn watch(client: kube::Client, node: String, manager: mpsc::UnboundedSender<ManagerMsg>) {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = Box::pin(watcher::watcher(api, config).default_backoff());
    let mut initial: Vec<Pod> = Vec::new();
    let mut failing = false;
    while let Some(event) = stream.next().await {
        let msg = match event {
            Ok(Event::Init) => {
                initial.clear();
                continue;
            }
            Ok(Event::InitApply(pod)) => {
                initial.push(pod);
                continue;
            }
            Ok(Event::InitDone) => {
                if failing {
                    info!("watching pods again");
                    failing = false;
                }
                ManagerMsg::ApiSnapshot(std::mem::take(&mut initial))
            }
            Ok(Event::Apply(pod)) => ManagerMsg::ApiApply(pod),
            Ok(Event::Delete(pod)) => ManagerMsg::ApiDelete(pod),
            Err(err) => {
                if !failing {
                    warn!("watching this node's pods: {err}; retrying with back-off");
                    failing = true;
                }
                continue;
            }
        };
        if manager.send(msg).is_err() {
            return;
        }
    }
}
