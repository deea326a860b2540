//! The `kube` crate (the Rust client of the field) against skiff: list, create, watch, patch.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt as _;
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

/// kube's metadata client (`Api::get_metadata`, `list_metadata`, `metadata_watcher`) asks for
/// `as=PartialObjectMetadata[List]`: objects come back as their metadata alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_lists_gets_and_watches() {
    let master = embedded_master();
    let client = master.kube_client().await.expect("kube client");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("meta-a", "meta"))
        .await
        .expect("create");
    let listed = pods
        .list_metadata(&ListParams::default().labels("app=meta"))
        .await
        .expect("list_metadata");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].metadata.name.as_deref(), Some("meta-a"));
    assert!(listed.metadata.resource_version.is_some());
    let one = pods.get_metadata("meta-a").await.expect("get_metadata");
    assert_eq!(
        one.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    assert_eq!(
        one.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app"))
            .map(String::as_str),
        Some("meta")
    );
    // The raw answer has no spec: metadata alone.
    let raw = master
        .http()
        .get(format!(
            "{}/api/v1/namespaces/default/pods/meta-a",
            master.server_url()
        ))
        .header(
            "Accept",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        )
        .send()
        .await
        .expect("get")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    assert!(raw.get("spec").is_none(), "{raw}");
    assert_eq!(raw["apiVersion"], "meta.k8s.io/v1");

    let mut events = std::pin::pin!(
        kube::runtime::metadata_watcher(
            pods.clone(),
            watcher::Config::default().labels("app=meta")
        )
        .applied_objects()
    );
    let first = tokio::time::timeout(Duration::from_secs(10), events.try_next())
        .await
        .expect("first event in time")
        .expect("watch")
        .expect("an object");
    assert_eq!(first.metadata.name.as_deref(), Some("meta-a"));
    pods.create(&PostParams::default(), &pod("meta-b", "meta"))
        .await
        .expect("create");
    let second = tokio::time::timeout(Duration::from_secs(10), events.try_next())
        .await
        .expect("second event in time")
        .expect("watch")
        .expect("an object");
    assert_eq!(second.metadata.name.as_deref(), Some("meta-b"));
}
