//! Overload protection end to end: a user's flood of requests beyond
//! `--max-requests-inflight` gets 429 with `Retry-After` while a node's requests are still
//! served (seats kept for the system's clients), a user's watches are capped, a request that
//! outlives its timeout gets 504, a JSON patch that copies the object into itself again and
//! again is refused and changes nothing, and a watcher that stops reading is cut off.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use skiff::master::{Master, MasterOptions};

use crate::Client;

fn master(extra: &[&str]) -> Master {
    let mut extra_args = crate::api_only();
    extra_args.extend(extra.iter().map(|a| a.to_string()));
    Master::start(MasterOptions {
        extra_args,
        ..Default::default()
    })
    .expect("starting skiff-master")
}

/// `jane`, a user who may do anything but is not in `system:masters`, over HTTPS.
async fn jane(master: &Master) -> reqwest::Client {
    let admin = Client::new(master);
    let (code, body) = admin
        .post(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "jane-admin"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "User", "name": "jane"}]}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let (cert, key) = master.client_certificate("jane", &["devs"]).unwrap();
    master.http_with_certificate(&cert, &key).unwrap()
}

#[tokio::test]
async fn a_flood_gets_429_while_nodes_are_served_and_watches_are_capped() {
    let master = master(&[
        "--max-requests-inflight=4",
        "--max-mutating-requests-inflight=2",
        "--max-watches-per-user=2",
    ]);
    let jane = jane(&master).await;
    let (cert, key) = master
        .client_certificate("system:node:n1", &["system:nodes"])
        .unwrap();
    let node = master.http_with_certificate(&cert, &key).unwrap();
    let base = master.server_url().to_owned();

    // Three reads that wait (3 s) for a revision the store has not reached hold jane's
    // three seats (the fourth is kept for the system).
    let holders: Vec<_> = (0..3)
        .map(|_| {
            let jane = jane.clone();
            let url =
                format!("{base}/api/v1/namespaces/default/configmaps?resourceVersion=999999999");
            tokio::spawn(async move { jane.get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = jane
        .get(format!("{base}/api/v1/namespaces/default/configmaps"))
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status().as_u16(), 429);
    assert_eq!(
        refused.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let status: Value = refused.json().await.expect("Status");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(
        status["message"],
        "Too many requests, please try again later."
    );
    assert_eq!(status["details"]["retryAfterSeconds"], 1);
    // The node is served from the seat kept for the system (its Node does not exist: 404),
    // and the admin (system:masters) is not counted at all.
    for _ in 0..5 {
        let answer = node
            .get(format!("{base}/api/v1/nodes/n1"))
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status().as_u16(), 404);
    }
    let (code, _) = Client::new(&master)
        .json(
            reqwest::Method::GET,
            "/api/v1/namespaces/default/configmaps",
            None,
        )
        .await;
    assert_eq!(code, 200);
    for holder in holders {
        let code = holder.await.expect("task").expect("answer");
        assert_ne!(code, 429, "a holder had a seat");
    }
    // Seats free again.
    let answer = jane
        .get(format!("{base}/api/v1/namespaces/default/configmaps"))
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 200);
    // The refusals are counted.
    let metrics = master
        .http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("apiserver_dropped_requests_total{request_kind=\"readOnly\"}"),
        "{metrics}"
    );

    // Two watches per user; the third is refused until one ends.
    let watch = |client: &reqwest::Client| {
        client
            .get(format!(
                "{base}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=0"
            ))
            .send()
    };
    let first = watch(&jane).await.expect("first watch");
    assert_eq!(first.status().as_u16(), 200);
    let second = watch(&jane).await.expect("second watch");
    assert_eq!(second.status().as_u16(), 200);
    let third = watch(&jane).await.expect("third watch");
    assert_eq!(third.status().as_u16(), 429);
    let status: Value = third.json().await.expect("Status");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Too many watches: jane has 2 open")),
        "{status}"
    );
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = watch(&jane).await.expect("watch");
        if again.status().as_u16() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the ended watch's seat was not freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn timeouts_patch_bombs_and_slow_watchers() {
    let master = master(&[]);
    let admin = Client::new(&master);
    let base = master.server_url().to_owned();

    // A read that waits for a future revision outlives its 300 ms timeout: 504.
    let (code, status) = admin
        .json(
            reqwest::Method::GET,
            "/api/v1/namespaces/default/configmaps?resourceVersion=999999999&timeout=300ms",
            None,
        )
        .await;
    assert_eq!(code, 504, "{status}");
    assert_eq!(status["reason"], "Timeout");
    assert_eq!(
        status["message"],
        "Timeout: request did not complete within requested timeout - context deadline exceeded"
    );

    // A patch that copies the object's data into itself 40 times (2^40 times the data): 422,
    // and the object is as it was.
    let (code, _) = admin
        .post(
            "/api/v1/namespaces/default/configmaps",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bomb"},
                "data": {"a": "x".repeat(1000)}}),
        )
        .await;
    assert_eq!(code, 201);
    let ops: Vec<Value> = (0..40)
        .map(|i| json!({"op": "copy", "from": "/data", "path": format!("/data/c{i}")}))
        .collect();
    let (code, status) = admin
        .send(
            reqwest::Method::PATCH,
            "/api/v1/namespaces/default/configmaps/bomb",
            "application/json-patch+json",
            Value::Array(ops).to_string(),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    let (_, bomb) = admin
        .json(
            reqwest::Method::GET,
            "/api/v1/namespaces/default/configmaps/bomb",
            None,
        )
        .await;
    assert_eq!(bomb["data"].as_object().map(|d| d.len()), Some(1), "{bomb}");

    // A watcher that reads nothing while 40 MB of changes go by is cut off: its stream ends
    // long before its 30 minutes.
    let stalled = master
        .http()
        .get(format!(
            "{base}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=0"
        ))
        .send()
        .await
        .expect("watch");
    assert_eq!(stalled.status().as_u16(), 200);
    let big = "y".repeat(100_000);
    for i in 0..400 {
        let (code, body) = admin
            .send(
                reqwest::Method::PATCH,
                "/api/v1/namespaces/default/configmaps/bomb",
                "application/merge-patch+json",
                json!({"data": {"big": format!("{i}{big}")}}).to_string(),
            )
            .await;
        assert_eq!(code, 200, "{body}");
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut body = stalled.bytes_stream();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stalled watch was not ended");
}
