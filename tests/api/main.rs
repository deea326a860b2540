//! End-to-end tests of the API server: the real `skiff-master` process (as `cargo xtask run`
//! starts it), driven by the real kubectl, the `kube` crate and raw HTTPS, on the embedded
//! store and on a real etcd.

mod authorization;
mod bad_input;
mod etcd_faults;
mod hollow_nodes;
mod kube_client;
mod kubectl;
mod leader_election;
mod overload;
mod protobuf;
mod python_client;
mod resource_quota;
mod restart;
mod semantics;
mod store_faults;

use std::path::PathBuf;

use serde_json::Value;
use skiff::etcd::Etcd;
use skiff::master::{Master, MasterOptions};

/// The API server alone: these tests pin API behaviour, which the scheduler's and the
/// controllers' own writes (conditions, events, pods of Deployments) would interleave with.
fn api_only() -> Vec<String> {
    vec!["--scheduler=false".into(), "--controllers=".into()]
}

/// A master on the embedded store in a fresh state directory.
pub fn embedded_master() -> Master {
    Master::start(MasterOptions {
        extra_args: api_only(),
        ..Default::default()
    })
    .expect("starting skiff-master")
}

/// A real etcd and a master using it.
pub fn etcd_master() -> (Etcd, Master) {
    let etcd = Etcd::start().expect("starting etcd");
    let master = Master::start(MasterOptions {
        etcd_endpoints: vec![etcd.endpoint()],
        extra_args: api_only(),
        ..Default::default()
    })
    .expect("starting skiff-master on etcd");
    (etcd, master)
}

/// Write `contents` to a file named `name` in a new temporary directory.
pub fn manifest(dir: &tempfile::TempDir, name: &str, contents: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).expect("writing manifest");
    path
}

/// Raw HTTPS requests with the admin token, answering (status code, JSON body).
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// A client for `master`.
    pub fn new(master: &Master) -> Self {
        Self {
            http: master.http(),
            base: master.server_url().to_string(),
        }
    }

    /// One request with a body of the given media type.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let code = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POST a JSON object.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            path,
            "application/json",
            body.to_string(),
        )
        .await
    }

    /// How many items a list returns.
    pub async fn count(&self, path: &str) -> usize {
        let (code, list) = self
            .send(reqwest::Method::GET, path, "application/json", "")
            .await;
        assert_eq!(code, 200, "{list}");
        list["items"].as_array().map_or(0, Vec::len)
    }
}

impl Client {
    /// A request with an optional JSON body.
    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.send(method, path, "application/json", body).await
    }
}
