//! What the benchmarks that drive a real skiff-master through its API share.

use std::time::Instant;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use skiff::master::Master;

/// Sends `bodies` to `url` from `clients` concurrent connections; returns when each request
/// started, by body index.
pub async fn post_all(
    master: &Master,
    url: &str,
    bodies: Vec<String>,
    clients: usize,
) -> anyhow::Result<Vec<Instant>> {
    let total = bodies.len();
    let mut shares: Vec<Vec<(usize, String)>> = vec![Vec::new(); clients];
    for (i, body) in bodies.into_iter().enumerate() {
        shares[i % clients].push((i, body));
    }
    let mut tasks = Vec::new();
    for share in shares {
        let client = master.http();
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let mut started = Vec::with_capacity(share.len());
            for (i, body) in share {
                let t = Instant::now();
                let response = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = response.status();
                let text = response.bytes().await?;
                anyhow::ensure!(
                    status.as_u16() == 201,
                    "POST {url}: {status}: {}",
                    String::from_utf8_lossy(&text)
                );
                started.push((i, t));
            }
            anyhow::Ok(started)
        }));
    }
    let mut starts = vec![None; total];
    for task in tasks {
        for (i, t) in task.await?? {
            starts[i] = Some(t);
        }
    }
    starts
        .into_iter()
        .map(|t| t.ok_or_else(|| anyhow::anyhow!("a create did not run")))
        .collect()
}

/// Watches the pods at `pods_url` (a collection) from now on and calls `seen` with each
/// created or changed pod's name and whether it is bound to a node, in a task of its own.
pub async fn watch_pods(
    master: &Master,
    pods_url: &str,
    mut seen: impl FnMut(&str, bool) + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let http = master.http();
    let list: Value = http.get(pods_url).send().await?.json().await?;
    let from = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let response = http
        .get(format!(
            "{pods_url}?watch=1&resourceVersion={from}&timeoutSeconds=3600"
        ))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "watch: {}",
        response.status()
    );
    Ok(tokio::spawn(async move {
        let mut stream = response.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buf.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(end) = buf[start..].iter().position(|b| *b == b'\n') {
                let line = &buf[start..start + end];
                start += end + 1;
                let Ok(event) = serde_json::from_slice::<WatchLine>(line) else {
                    continue;
                };
                if event.kind != "MODIFIED" && event.kind != "ADDED" {
                    continue;
                }
                let Some(name) = event.object.metadata.name else {
                    continue;
                };
                seen(&name, event.object.spec.and_then(|s| s.node_name).is_some());
            }
            buf.drain(..start);
        }
    }))
}

#[derive(Deserialize)]
struct WatchLine {
    #[serde(rename = "type")]
    kind: String,
    object: Object,
}

#[derive(Deserialize)]
struct Object {
    metadata: Metadata,
    spec: Option<Spec>,
}

#[derive(Deserialize)]
struct Metadata {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Spec {
    #[serde(rename = "nodeName")]
    node_name: Option<String>,
}
