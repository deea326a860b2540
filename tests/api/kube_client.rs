//! The `kube` crate (the Rust client of the field) against skiff: list, create, watch, patch.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

use super::embedded_master;

fn pod(name: &str, app: &str) -> Pod {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_client_lists_watches_and_patches() {
    let master = embedded_master();
    let client = master.kube_client().await.expect("kube client");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // The system namespaces exist.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(names.contains(&ns.to_string()), "{names:?}");
    }

    // A watcher (kube-runtime: list, then watch from the list's resourceVersion).
    let mut events =
        watcher::watcher(pods.clone(), watcher::Config::default().labels("app=web")).boxed();
    // The watcher is lazy: drive it through its initial list before changing anything, so
    // what follows reaches it through the watch (replayed from the list's resourceVersion).
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap();
        if matches!(ev, Some(Event::InitDone)) {
            break;
        }
    }

    pods.create(&PostParams::default(), &pod("a", "web"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("b", "db"))
        .await
        .unwrap();
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("a"));

    // Merge, strategic and server-side apply patches.
    let patched = pods
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["tier"], "front");
    let patched = pods
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.spec.unwrap().containers[0].image.as_deref(),
        Some("busybox:1.37")
    );

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}});
    let params = PatchParams::apply("skiff-test");
    let d = deployments
        .patch("web", &params, &Patch::Apply(&applied))
        .await
        .unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(2));
    let mut again = applied.clone();
    again["spec"]["replicas"] = json!(4);
    let d = deployments
        .patch("web", &params, &Patch::Apply(&again))
        .await
        .unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(4));
    assert_eq!(d.metadata.generation, Some(2));

    pods.delete("a", &DeleteParams::default()).await.unwrap();

    // The watcher saw a's creation, its changes and its deletion, and never saw b.
    let mut seen = Vec::new();
    while !seen.iter().any(|s: &String| s.starts_with("delete")) {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("watch event in time")
            .unwrap()
            .unwrap();
        match ev {
            Event::Apply(p) | Event::InitApply(p) => {
                seen.push(format!("apply {}", p.metadata.name.unwrap()))
            }
            Event::Delete(p) => seen.push(format!("delete {}", p.metadata.name.unwrap())),
            Event::Init | Event::InitDone => {}
        }
    }
    assert!(seen.contains(&"apply a".to_string()), "{seen:?}");
    assert!(seen.contains(&"delete a".to_string()), "{seen:?}");
    assert!(!seen.iter().any(|s| s.ends_with(" b")), "{seen:?}");
}
