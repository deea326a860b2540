//! End-to-end tests of garbage collection against a real `skiff-master` with its controllers
//! (default flags): what `kubectl delete` does to the dependents of an object, by
//! `--cascade` (propagationPolicy), and that the collector deletes objects whose owners are
//! gone and nothing else.
//!
//! The owners are ConfigMaps and the dependents hand-made Pods (no controller manages
//! either). Pods stay unbound (no node agent runs), so their deletion is immediate unless a
//! finalizer holds them.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skiff::master::{Master, MasterOptions};

/// How long the collector may take to act.
const WAIT: Duration = Duration::from_secs(30);

/// A finalizer of the test's own, to keep a dependent from going.
const HOLD: &str = "skiff.test/hold";

/// Creates the ConfigMap `name` and returns its uid.
async fn owner(config_maps: &Api<ConfigMap>, name: &str) -> String {
    let object: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"role": "owner"},
    }))
    .expect("config map");
    config_maps
        .create(&PostParams::default(), &object)
        .await
        .expect("create owner")
        .metadata
        .uid
        .expect("uid")
}

/// An owner reference to the ConfigMap `name` with `uid`.
fn owned_by(name: &str, uid: &str, block_owner_deletion: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid,
        "blockOwnerDeletion": block_owner_deletion,
    })
}

/// Creates the Pod `name` with these owner references and finalizers.
async fn dependent(pods: &Api<Pod>, name: &str, owners: Vec<Value>, finalizers: &[&str]) {
    let object: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "ownerReferences": owners, "finalizers": finalizers},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &object)
        .await
        .expect("create dependent");
}

/// Waits until `check` holds, up to [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The uids of the owners the pod names; `None` when the pod is gone.
async fn owner_uids(pods: &Api<Pod>, name: &str) -> Option<Vec<String>> {
    let pod = pods.get_opt(name).await.expect("get pod")?;
    Some(
        pod.metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .map(|o| o.uid)
            .collect(),
    )
}

async fn gone(pods: &Api<Pod>, name: &str) -> bool {
    pods.get_opt(name).await.expect("get pod").is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_delete_removes_the_dependents_whose_owners_are_all_gone() {
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");

    let web = owner(&config_maps, "web").await;
    let keeper = owner(&config_maps, "keeper").await;
    dependent(&pods, "web-a", vec![owned_by("web", &web, true)], &[]).await;
    dependent(&pods, "web-b", vec![owned_by("web", &web, false)], &[]).await;
    // Two owners: it outlives one of them.
    dependent(
        &pods,
        "shared",
        vec![
            owned_by("web", &web, false),
            owned_by("keeper", &keeper, false),
        ],
        &[],
    )
    .await;
    dependent(&pods, "kept", vec![owned_by("keeper", &keeper, true)], &[]).await;
    // Names an object called "keeper" that has another uid: its owner is gone.
    dependent(
        &pods,
        "stale",
        vec![owned_by("keeper", "0000-not-keepers-uid", false)],
        &[],
    )
    .await;
    eventually("the pod naming a recreated owner is deleted", || {
        gone(&pods, "stale")
    })
    .await;

    // kubectl's default cascade (background): the owner goes at once, its dependents after.
    let out = master.kubectl(&["delete", "configmap", "web"]);
    assert!(out.success(), "{out}");
    assert!(
        config_maps.get_opt("web").await.expect("get").is_none(),
        "the owner is gone when kubectl returns"
    );
    eventually("web's pods are deleted", || async {
        gone(&pods, "web-a").await && gone(&pods, "web-b").await
    })
    .await;
    eventually("shared no longer names web", || async {
        owner_uids(&pods, "shared").await == Some(vec![keeper.clone()])
    })
    .await;
    assert_eq!(
        owner_uids(&pods, "kept").await,
        Some(vec![keeper.clone()]),
        "a pod whose owner exists is left alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_delete_keeps_the_dependents_and_removes_their_owner_reference() {
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");

    let db = owner(&config_maps, "db").await;
    let other = owner(&config_maps, "other").await;
    dependent(&pods, "db-0", vec![owned_by("db", &db, true)], &[]).await;
    dependent(
        &pods,
        "db-1",
        vec![owned_by("db", &db, true), owned_by("other", &other, false)],
        &[],
    )
    .await;

    // kubectl waits until the owner is gone: the collector orphaned the pods first.
    let out = master.kubectl(&["delete", "configmap", "db", "--cascade=orphan"]);
    assert!(out.success(), "{out}");
    eventually("the owner is gone", || async {
        config_maps.get_opt("db").await.expect("get").is_none()
    })
    .await;
    assert_eq!(owner_uids(&pods, "db-0").await, Some(Vec::new()));
    assert_eq!(owner_uids(&pods, "db-1").await, Some(vec![other.clone()]));
    // Orphans are not garbage.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(owner_uids(&pods, "db-0").await, Some(Vec::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_delete_keeps_the_owner_until_its_blocking_dependents_are_gone() {
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");

    let app = owner(&config_maps, "app").await;
    // A blocking dependent that its own finalizer keeps around after its delete.
    dependent(
        &pods,
        "app-held",
        vec![owned_by("app", &app, true)],
        &[HOLD],
    )
    .await;
    dependent(&pods, "app-free", vec![owned_by("app", &app, false)], &[]).await;

    let out = master.kubectl(&[
        "delete",
        "configmap",
        "app",
        "--cascade=foreground",
        "--wait=false",
    ]);
    assert!(out.success(), "{out}");
    eventually("the dependents are deleted", || async {
        let held = pods.get_opt("app-held").await.expect("get");
        held.is_some_and(|p| p.metadata.deletion_timestamp.is_some())
            && gone(&pods, "app-free").await
    })
    .await;
    // The owner waits, marked for deletion, for the dependent that blocks it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let waiting = config_maps
        .get_opt("app")
        .await
        .expect("get")
        .expect("the owner waits for its blocking dependent");
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert_eq!(
        waiting.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );

    // Once the dependent is gone, so is the owner.
    pods.patch(
        "app-held",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release the dependent");
    eventually("the held dependent is gone", || gone(&pods, "app-held")).await;
    eventually("the owner is gone", || async {
        config_maps.get_opt("app").await.expect("get").is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_propagation_policy_is_refused_with_a_status() {
    let master = Master::start(MasterOptions::default()).expect("start skiff-master");
    let client = master.kube_client().await.expect("client");
    let config_maps: Api<ConfigMap> = Api::namespaced(client, "default");
    owner(&config_maps, "settings").await;
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps/settings",
        master.server_url()
    );
    let http = master.http();

    let in_query = http
        .delete(format!("{url}?propagationPolicy=Sideways"))
        .send()
        .await
        .expect("DELETE");
    let in_body = http
        .delete(&url)
        .json(
            &json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Sideways"}),
        )
        .send()
        .await
        .expect("DELETE");
    for response in [in_query, in_body] {
        assert_eq!(response.status().as_u16(), 422);
        let status: Value = response.json().await.expect("a Status");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(status["code"], 422);
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(
                "propagationPolicy: Unsupported value: \"Sideways\": supported values: \
                 \"Foreground\", \"Background\", \"Orphan\""
            ),
            "{status}"
        );
    }
    let both = http
        .delete(&url)
        .json(&json!({"propagationPolicy": "Orphan", "orphanDependents": true}))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(both.status().as_u16(), 422);
    assert!(
        config_maps
            .get_opt("settings")
            .await
            .expect("get")
            .is_some(),
        "a refused delete deletes nothing"
    );
}
