//! Kubernetes' protobuf encoding on the wire, as Go clients (client-go, and so
//! kube-controller-manager, the conformance tests and most operators) speak it: protobuf
//! bodies in, `Accept: application/vnd.kubernetes.protobuf, application/json` answers out,
//! lists and watch streams included. The bodies are built and read with `k8s-pb` (prost code
//! generated from Kubernetes' `generated.proto`, the same messages Go's code is generated
//! from).

use std::time::Duration;

use futures::StreamExt;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;
use serde_json::json;

use super::embedded_master;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// What client-go sends when a client is configured for protobuf.
const CLIENT_GO_ACCEPT: &str = "application/vnd.kubernetes.protobuf, application/json";
const PODS: &str = "/api/v1/namespaces/default/pods";

/// `k8s\0` and the `runtime.Unknown` envelope around a message, as client-go writes a body.
fn envelope(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [b"k8s\0".as_slice(), &unknown.encode_to_vec()].concat()
}

/// The kind and message of a protobuf answer (panics on anything else: a test).
fn open_envelope(body: &[u8]) -> (String, Vec<u8>) {
    let unknown = Unknown::decode(body.strip_prefix(b"k8s\0").expect("the k8s\\0 magic"))
        .expect("a runtime.Unknown");
    (
        unknown.type_meta.and_then(|t| t.kind).unwrap_or_default(),
        unknown.raw.unwrap_or_default(),
    )
}

fn pod(name: &str) -> core::Pod {
    core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: Some(name.into()),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: Some("c".into()),
                image: Some("busybox:1.36".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

struct Answer {
    code: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    /// Panics with the body unless the status is `code`.
    fn expect_code(&self, code: u16) {
        assert_eq!(self.code, code, "{}", String::from_utf8_lossy(&self.body));
    }

    /// The protobuf object of kind `kind` the answer carries (panics on anything else).
    fn message<M: Message + Default>(&self, kind: &str) -> M {
        let (got, raw) = open_envelope(&self.body);
        assert_eq!(got, kind);
        M::decode(raw.as_slice()).unwrap_or_else(|e| panic!("a {kind}: {e}"))
    }
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    accept: &str,
    body: Option<(&str, Vec<u8>)>,
) -> Answer {
    let mut request = http.request(method, url).header("Accept", accept);
    if let Some((content_type, body)) = body {
        request = request.header("Content-Type", content_type).body(body);
    }
    let response = request.send().await.expect("request");
    Answer {
        code: response.status().as_u16(),
        content_type: response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: response.bytes().await.expect("body").to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_clients_create_read_list_watch_and_delete_in_protobuf() {
    let master = embedded_master();
    let http = master.http();
    let base = master.server_url().to_owned();
    let pods = format!("{base}{PODS}");

    // Create from a protobuf body; the answer is the created Pod in protobuf.
    let body = envelope("v1", "Pod", &pod("web"));
    let created = send(
        &http,
        reqwest::Method::POST,
        &pods,
        CLIENT_GO_ACCEPT,
        Some((PROTOBUF, body)),
    )
    .await;
    created.expect_code(201);
    assert_eq!(created.content_type, PROTOBUF);
    let created: core::Pod = created.message("Pod");
    let created_meta = created.metadata.expect("metadata");
    let uid = created_meta.uid.expect("a uid");
    assert!(created_meta.creation_timestamp.is_some());
    // Defaults the API server applied come back too.
    let spec = created.spec.expect("spec");
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.termination_grace_period_seconds, Some(30));

    // Get and list.
    let got = send(
        &http,
        reqwest::Method::GET,
        &format!("{pods}/web"),
        CLIENT_GO_ACCEPT,
        None,
    )
    .await;
    assert_eq!((got.code, got.content_type.as_str()), (200, PROTOBUF));
    let got: core::Pod = got.message("Pod");
    assert_eq!(got.metadata.unwrap().uid.as_deref(), Some(uid.as_str()));
    let listed = send(&http, reqwest::Method::GET, &pods, CLIENT_GO_ACCEPT, None).await;
    assert_eq!((listed.code, listed.content_type.as_str()), (200, PROTOBUF));
    let list: core::PodList = listed.message("PodList");
    assert_eq!(list.items.len(), 1);
    let list_rv = list
        .metadata
        .unwrap()
        .resource_version
        .expect("a list resourceVersion");

    // A watch from the list's resourceVersion: length-prefixed WatchEvents.
    let watch = http
        .get(format!("{pods}?watch=1&resourceVersion={list_rv}"))
        .header("Accept", CLIENT_GO_ACCEPT)
        .send()
        .await
        .expect("watch");
    assert_eq!(
        watch.headers()["content-type"],
        "application/vnd.kubernetes.protobuf;stream=watch"
    );
    let mut stream = watch.bytes_stream();

    // A merge patch (JSON body), answered in protobuf.
    let patched = send(
        &http,
        reqwest::Method::PATCH,
        &format!("{pods}/web"),
        CLIENT_GO_ACCEPT,
        Some((
            "application/merge-patch+json",
            json!({"metadata": {"labels": {"tier": "front"}}})
                .to_string()
                .into_bytes(),
        )),
    )
    .await;
    assert_eq!(
        (patched.code, patched.content_type.as_str()),
        (200, PROTOBUF)
    );

    // Delete with a protobuf DeleteOptions body: a wrong uid precondition is refused (so the
    // body was read), the right one deletes.
    let options = |uid: &str| meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: Some(uid.into()),
            resource_version: None,
        }),
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    let refused = send(
        &http,
        reqwest::Method::DELETE,
        &format!("{pods}/web"),
        CLIENT_GO_ACCEPT,
        Some((
            PROTOBUF,
            envelope("v1", "DeleteOptions", &options("not-the-uid")),
        )),
    )
    .await;
    refused.expect_code(409);
    let deleted = send(
        &http,
        reqwest::Method::DELETE,
        &format!("{pods}/web"),
        CLIENT_GO_ACCEPT,
        Some((PROTOBUF, envelope("v1", "DeleteOptions", &options(&uid)))),
    )
    .await;
    deleted.expect_code(200);
    assert_eq!(deleted.content_type, PROTOBUF);

    // The watch saw the patch and the deletion, each a WatchEvent around a Pod.
    let mut buffer = Vec::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events.len() < 2 {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("watch events in time")
            .expect("the watch stays open")
            .expect("a chunk");
        buffer.extend_from_slice(&chunk);
        while buffer.len() >= 4 {
            let len = u32::from_be_bytes(buffer[..4].try_into().unwrap()) as usize;
            if buffer.len() < 4 + len {
                break;
            }
            let frame: Vec<u8> = buffer.drain(..4 + len).skip(4).collect();
            let event = meta::WatchEvent::decode(frame.as_slice()).expect("a WatchEvent");
            let (kind, raw) = open_envelope(&event.object.unwrap().raw.unwrap());
            assert_eq!(kind, "Pod");
            let pod = core::Pod::decode(raw.as_slice()).expect("a Pod");
            let labels = pod.metadata.unwrap().labels;
            events.push((event.r#type.unwrap(), labels.get("tier").cloned()));
        }
    }
    assert_eq!(
        events,
        [
            ("MODIFIED".to_owned(), Some("front".to_owned())),
            ("DELETED".to_owned(), Some("front".to_owned())),
        ]
    );

    // deletecollection with a protobuf body.
    for name in ["a", "b"] {
        let body = envelope("v1", "Pod", &pod(name));
        let created = send(
            &http,
            reqwest::Method::POST,
            &pods,
            CLIENT_GO_ACCEPT,
            Some((PROTOBUF, body)),
        )
        .await;
        assert_eq!(created.code, 201);
    }
    let options = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    let cleared = send(
        &http,
        reqwest::Method::DELETE,
        &format!("{pods}?labelSelector=app%3Dweb"),
        CLIENT_GO_ACCEPT,
        Some((PROTOBUF, envelope("v1", "DeleteOptions", &options))),
    )
    .await;
    cleared.expect_code(200);
    let listed = send(&http, reqwest::Method::GET, &pods, "application/json", None).await;
    let list: serde_json::Value = serde_json::from_slice(&listed.body).unwrap();
    assert_eq!(list["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_stay_json_and_unservable_accept_headers_get_406() {
    let master = embedded_master();
    let http = master.http();
    let pods = format!("{}{PODS}", master.server_url());

    // An error is a JSON Status, which Go clients read by its Content-Type.
    let missing = send(
        &http,
        reqwest::Method::GET,
        &format!("{pods}/nope"),
        CLIENT_GO_ACCEPT,
        None,
    )
    .await;
    assert_eq!(missing.code, 404);
    assert_eq!(missing.content_type, "application/json");
    let status: serde_json::Value = serde_json::from_slice(&missing.body).unwrap();
    assert_eq!(status["reason"], "NotFound");

    // Nothing the server can write.
    let refused = send(&http, reqwest::Method::GET, &pods, "text/html", None).await;
    assert_eq!(refused.code, 406);
    let status: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(status["reason"], "NotAcceptable");

    // A malformed protobuf DeleteOptions body is a 400 that says so, and deletes nothing.
    let body = envelope("v1", "Pod", &pod("keep"));
    let created = send(
        &http,
        reqwest::Method::POST,
        &pods,
        "application/json",
        Some((PROTOBUF, body)),
    )
    .await;
    assert_eq!(created.code, 201);
    let bad = send(
        &http,
        reqwest::Method::DELETE,
        &format!("{pods}/keep"),
        CLIENT_GO_ACCEPT,
        Some((PROTOBUF, b"k8s\0\x0a\xff".to_vec())),
    )
    .await;
    assert_eq!(bad.code, 400);
    let status: serde_json::Value = serde_json::from_slice(&bad.body).unwrap();
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid DeleteOptions"),
        "{status}"
    );
    let kept = send(
        &http,
        reqwest::Method::GET,
        &format!("{pods}/keep"),
        "application/json",
        None,
    )
    .await;
    assert_eq!(kept.code, 200);
}

fn quantities(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(name, q)| {
            (
                (*name).to_owned(),
                Quantity {
                    string: Some((*q).to_owned()),
                },
            )
        })
        .collect()
}

fn amounts(list: &std::collections::BTreeMap<String, Quantity>) -> Vec<(String, String)> {
    list.iter()
        .map(|(name, q)| (name.clone(), q.string.clone().unwrap_or_default()))
        .collect()
}

/// `kubectl create quota` and client-go's typed clients send PodTemplates and ResourceQuotas
/// in protobuf (the resourcequota controller writes the status so too), and read them so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_templates_and_resource_quotas_travel_in_protobuf() {
    let master = embedded_master();
    let http = master.http();
    let base = format!("{}/api/v1/namespaces/default", master.server_url());

    let template = core::PodTemplate {
        metadata: Some(meta::ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        }),
        template: Some(core::PodTemplateSpec {
            metadata: Some(meta::ObjectMeta {
                labels: [("app".to_owned(), "web".to_owned())].into(),
                ..Default::default()
            }),
            spec: pod("unused").spec,
        }),
    };
    let created = send(
        &http,
        reqwest::Method::POST,
        &format!("{base}/podtemplates"),
        CLIENT_GO_ACCEPT,
        Some((PROTOBUF, envelope("v1", "PodTemplate", &template))),
    )
    .await;
    created.expect_code(201);
    let created: core::PodTemplate = created.message("PodTemplate");
    let spec = created
        .template
        .and_then(|t| t.spec)
        .expect("the template's spec");
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"), "defaulted");
    assert_eq!(spec.containers[0].image.as_deref(), Some("busybox:1.36"));

    let quota = core::ResourceQuota {
        metadata: Some(meta::ObjectMeta {
            name: Some("compute".into()),
            ..Default::default()
        }),
        spec: Some(core::ResourceQuotaSpec {
            hard: quantities(&[("pods", "1"), ("requests.memory", "1Gi")]),
            scopes: vec!["NotTerminating".into()],
            scope_selector: None,
        }),
        status: None,
    };
    let created = send(
        &http,
        reqwest::Method::POST,
        &format!("{base}/resourcequotas"),
        CLIENT_GO_ACCEPT,
        Some((PROTOBUF, envelope("v1", "ResourceQuota", &quota))),
    )
    .await;
    created.expect_code(201);
    let mut created: core::ResourceQuota = created.message("ResourceQuota");
    let spec = created.spec.clone().expect("spec");
    assert_eq!(
        amounts(&spec.hard),
        [
            ("pods".to_owned(), "1".to_owned()),
            ("requests.memory".to_owned(), "1Gi".to_owned())
        ]
    );
    assert_eq!(spec.scopes, ["NotTerminating"]);

    // The status as the controller writes it, in protobuf: the quota is full.
    created.status = Some(core::ResourceQuotaStatus {
        hard: spec.hard.clone(),
        used: quantities(&[("pods", "1"), ("requests.memory", "0")]),
    });
    let updated = send(
        &http,
        reqwest::Method::PUT,
        &format!("{base}/resourcequotas/compute/status"),
        CLIENT_GO_ACCEPT,
        Some((PROTOBUF, envelope("v1", "ResourceQuota", &created))),
    )
    .await;
    updated.expect_code(200);

    // A pod over it is refused with a JSON Status, as every error is.
    let mut over = pod("over");
    over.spec.as_mut().expect("spec").containers[0].resources = Some(core::ResourceRequirements {
        requests: quantities(&[("memory", "64Mi")]),
        ..Default::default()
    });
    let refused = send(
        &http,
        reqwest::Method::POST,
        &format!("{base}/pods"),
        CLIENT_GO_ACCEPT,
        Some((PROTOBUF, envelope("v1", "Pod", &over))),
    )
    .await;
    assert_eq!(refused.code, 403);
    assert_eq!(refused.content_type, "application/json");
    let status: serde_json::Value = serde_json::from_slice(&refused.body).expect("a Status");
    assert_eq!(
        status["message"],
        "pods \"over\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=1, limited: pods=1"
    );

    // The list in protobuf.
    let listed = send(
        &http,
        reqwest::Method::GET,
        &format!("{base}/resourcequotas"),
        CLIENT_GO_ACCEPT,
        None,
    )
    .await;
    assert_eq!(listed.code, 200);
    let list: core::ResourceQuotaList = listed.message("ResourceQuotaList");
    assert_eq!(list.items.len(), 1);
    let status = list.items[0].status.clone().expect("status");
    assert_eq!(
        amounts(&status.used),
        [
            ("pods".to_owned(), "1".to_owned()),
            ("requests.memory".to_owned(), "0".to_owned())
        ]
    );
}
