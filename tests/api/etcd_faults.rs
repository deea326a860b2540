//! etcd going away under a running master, and a master started before its etcd: requests
//! are answered promptly (503/504) while etcd is down, `/readyz` says why, and everything
//! recovers by itself when etcd is back, a watch opened before included.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use skiff::etcd::Etcd;
use skiff::master::{Master, MasterOptions};

use crate::Client;

async fn readyz(master: &Master) -> (u16, String) {
    match master
        .http()
        .get(format!("{}/readyz", master.server_url()))
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_lives_through_etcd_going_away_and_waits_for_it_at_start() {
    let mut etcd = tokio::task::spawn_blocking(Etcd::start)
        .await
        .expect("task")
        .expect("starting etcd");
    let mut master = Master::start(MasterOptions {
        etcd_endpoints: vec![etcd.endpoint()],
        extra_args: crate::api_only(),
        ..Default::default()
    })
    .expect("starting skiff-master on etcd");
    let admin = Client::new(&master);
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let (code, before) = admin.post(configmaps, &configmap("before")).await;
    assert_eq!(code, 201, "{before}");
    let rv = before["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    let watch = master
        .http()
        .get(format!(
            "{}{configmaps}?watch=1&resourceVersion={rv}",
            master.server_url()
        ))
        .send()
        .await
        .expect("watch");
    assert_eq!(watch.status().as_u16(), 200);
    let mut events = watch.bytes_stream();

    // etcd goes away: a write is answered within the store deadline, and /readyz says why.
    etcd.stop();
    let started = Instant::now();
    let (code, status) = admin.post(configmaps, &configmap("during")).await;
    assert!(matches!(code, 503 | 504), "{code} {status}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered after {:?}",
        started.elapsed()
    );
    let (code, why) = readyz(&master).await;
    assert_eq!(code, 503, "{why}");
    assert!(why.contains("store"), "{why}");

    // etcd is back: everything recovers by itself.
    etcd = tokio::task::spawn_blocking(move || {
        etcd.resume().expect("etcd again");
        etcd
    })
    .await
    .expect("task");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _) = readyz(&master).await;
        if code == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "/readyz stayed red");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, after) = admin.post(configmaps, &configmap("after")).await;
    assert_eq!(code, 201, "{after}");
    // The watch opened before goes on (and sees the new object) or ends cleanly with 410.
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        let mut text = String::new();
        while let Some(Ok(chunk)) = events.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("\"name\":\"after\"") || text.contains("\"code\":410") {
                return text;
            }
        }
        text
    })
    .await
    .expect("the watch neither went on nor ended");
    assert!(
        seen.contains("\"name\":\"after\"") || seen.contains("\"code\":410") || seen.is_empty(),
        "{seen}"
    );

    // A master started while etcd is down waits for it.
    etcd.stop();
    let restarted = tokio::task::spawn_blocking(move || master.restart().map(|()| master));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!restarted.is_finished(), "the master came up without etcd");
    let _etcd = tokio::task::spawn_blocking(move || etcd.resume().map(|()| etcd))
        .await
        .expect("task")
        .expect("etcd again");
    let master = restarted
        .await
        .expect("task")
        .expect("the master starts once etcd is there");
    let (code, _) = Client::new(&master)
        .json(reqwest::Method::GET, &format!("{configmaps}/after"), None)
        .await;
    assert_eq!(code, 200);
}
