//! What the benchmarks that drive a real skiff-master through its API share.

use std::time::Instant;

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
