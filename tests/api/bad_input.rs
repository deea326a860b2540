//! Bad input gets a clear Kubernetes Status, nothing is stored, and the server keeps serving.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{Client, embedded_master};

/// A Status of the given code and reason, naming `field` among its causes if given.
fn assert_status(got: &(u16, Value), code: u16, reason: &str, field: Option<&str>) {
    let (status, body) = got;
    assert_eq!(*status, code, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    if let Some(field) = field {
        let causes = body["details"]["causes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            causes.iter().any(|c| c["field"] == field),
            "no cause for {field}: {body}"
        );
        assert!(body["message"].as_str().unwrap().contains(field), "{body}");
    }
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}})
}

fn deployment(replicas: i64, selector: &str, template: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": selector}},
            "template": {"metadata": {"labels": {"app": template}}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}})
}

const PODS: &str = "/api/v1/namespaces/default/pods";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_status_and_stores_nothing() {
    let master = embedded_master();
    let c = Client::new(&master);

    // Malformed JSON and YAML: 400.
    assert_status(
        &c.send(
            reqwest::Method::POST,
            PODS,
            "application/json",
            "{\"apiVersion\": \"v1\", ",
        )
        .await,
        400,
        "BadRequest",
        None,
    );
    assert_status(
        &c.send(
            reqwest::Method::POST,
            PODS,
            "application/yaml",
            "a: [b\n  c: :",
        )
        .await,
        400,
        "BadRequest",
        None,
    );
    assert_status(
        &c.send(reqwest::Method::POST, PODS, "application/json", "[1,2]")
            .await,
        400,
        "BadRequest",
        None,
    );

    // Invalid name, missing required field, bad quantity: 422 naming the field.
    assert_status(
        &c.post(PODS, &pod("My_Pod")).await,
        422,
        "Invalid",
        Some("metadata.name"),
    );
    let mut no_image = pod("no-image");
    no_image["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("image");
    assert_status(
        &c.post(PODS, &no_image).await,
        422,
        "Invalid",
        Some("spec.containers[0].image"),
    );
    let mut bad_cpu = pod("bad-cpu");
    bad_cpu["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "12Qi"}});
    let got = c.post(PODS, &bad_cpu).await;
    assert!(got.0 == 422 || got.0 == 400, "{got:?}");
    assert!(
        got.1["message"].as_str().unwrap_or("").contains("cpu"),
        "{got:?}"
    );
    let no_containers = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty"}, "spec": {"containers": []}});
    assert_status(
        &c.post(PODS, &no_containers).await,
        422,
        "Invalid",
        Some("spec.containers"),
    );

    // Selector not matching the template labels; negative replicas.
    assert_status(
        &c.post(DEPLOYMENTS, &deployment(1, "a", "b")).await,
        422,
        "Invalid",
        Some("spec.template.metadata.labels"),
    );
    assert_status(
        &c.post(DEPLOYMENTS, &deployment(-1, "a", "a")).await,
        422,
        "Invalid",
        Some("spec.replicas"),
    );

    // kind/apiVersion not matching the path: 400.
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}});
    assert_status(&c.post(PODS, &svc).await, 400, "BadRequest", None);
    let mut wrong_version = pod("wrong-version");
    wrong_version["apiVersion"] = json!("apps/v1");
    assert_status(&c.post(PODS, &wrong_version).await, 400, "BadRequest", None);

    // Unknown resource or object: 404.
    assert_status(
        &c.send(
            reqwest::Method::GET,
            "/api/v1/namespaces/default/widgets",
            "application/json",
            "",
        )
        .await,
        404,
        "NotFound",
        None,
    );
    assert_status(
        &c.send(
            reqwest::Method::GET,
            "/api/v1/namespaces/default/pods/nope",
            "application/json",
            "",
        )
        .await,
        404,
        "NotFound",
        None,
    );
    assert_status(
        &c.post("/api/v1/namespaces/nowhere/pods", &pod("lost"))
            .await,
        404,
        "NotFound",
        None,
    );

    // Body over 3 MiB: 413.
    let mut huge = pod("huge");
    huge["metadata"]["annotations"] = json!({"big": "x".repeat(3 * 1024 * 1024 + 10)});
    assert_status(
        &c.post(PODS, &huge).await,
        413,
        "RequestEntityTooLarge",
        None,
    );

    // Unknown field under fieldValidation=Strict: 400.
    let mut unknown = pod("unknown-field");
    unknown["spec"]["containerz"] = json!([]);
    let got = c
        .post(&format!("{PODS}?fieldValidation=Strict"), &unknown)
        .await;
    assert_status(&got, 400, "BadRequest", None);
    assert!(
        got.1["message"]
            .as_str()
            .unwrap()
            .contains("spec.containerz"),
        "{got:?}"
    );

    // Nothing of the above was stored.
    assert_eq!(c.count(PODS).await, 0);
    assert_eq!(c.count(DEPLOYMENTS).await, 0);

    // Existing name: 409 AlreadyExists; the first object is untouched.
    let (code, first) = c.post(PODS, &pod("taken")).await;
    assert_eq!(code, 201, "{first}");
    let mut second = pod("taken");
    second["metadata"]["labels"] = json!({"second": "yes"});
    assert_status(&c.post(PODS, &second).await, 409, "AlreadyExists", None);

    // Stale resourceVersion: 409 Conflict, the newer write kept.
    let path = format!("{PODS}/taken");
    let mut update = first.clone();
    update["metadata"]["labels"] = json!({"v": "1"});
    let (code, updated) = c
        .send(
            reqwest::Method::PUT,
            &path,
            "application/json",
            update.to_string(),
        )
        .await;
    assert_eq!(code, 200, "{updated}");
    let mut stale = first.clone();
    stale["metadata"]["labels"] = json!({"v": "stale"});
    assert_status(
        &c.send(
            reqwest::Method::PUT,
            &path,
            "application/json",
            stale.to_string(),
        )
        .await,
        409,
        "Conflict",
        None,
    );
    let (_, now) = c
        .send(reqwest::Method::GET, &path, "application/json", "")
        .await;
    assert_eq!(now["metadata"]["labels"]["v"], "1");
    assert_eq!(c.count(PODS).await, 1);

    // Bad selectors and query values: 400.
    assert_status(
        &c.send(
            reqwest::Method::GET,
            &format!("{PODS}?labelSelector=a%20in%20(b"),
            "application/json",
            "",
        )
        .await,
        400,
        "BadRequest",
        None,
    );
    assert_status(
        &c.send(
            reqwest::Method::GET,
            &format!("{PODS}?fieldSelector=spec.bogus%3Dx"),
            "application/json",
            "",
        )
        .await,
        400,
        "BadRequest",
        None,
    );
    assert_status(
        &c.send(
            reqwest::Method::GET,
            &format!("{PODS}?watch=1&resourceVersion=abc"),
            "application/json",
            "",
        )
        .await,
        400,
        "BadRequest",
        None,
    );

    // The server is still serving.
    let r = master
        .http()
        .get(format!("{}/readyz", master.server_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Seconds past the end of time: kube-apiserver bounds `terminationGracePeriodSeconds`,
/// `tolerationSeconds` and DeleteOptions' `gracePeriodSeconds` by nothing but the int64
/// range, and refuses an `activeDeadlineSeconds` past 2^31-1. A graceful delete of a pod
/// that waits that long answers, with a deletionTimestamp Go clients can read, and the server
/// goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_periods_past_the_end_of_time_are_answered_and_the_server_keeps_serving() {
    let master = embedded_master();
    let c = Client::new(&master);

    let mut forever = pod("forever");
    forever["spec"]["terminationGracePeriodSeconds"] = json!(i64::MAX);
    forever["spec"]["tolerations"] = json!([{"key": "node.kubernetes.io/unreachable",
        "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": i64::MAX}]);
    let (code, body) = c.json(reqwest::Method::POST, PODS, Some(forever)).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["spec"]["terminationGracePeriodSeconds"], i64::MAX);

    let mut deadline = pod("deadline");
    deadline["spec"]["activeDeadlineSeconds"] = json!(i64::MAX);
    let refused = c.json(reqwest::Method::POST, PODS, Some(deadline)).await;
    assert_status(&refused, 422, "Invalid", Some("spec.activeDeadlineSeconds"));
    assert!(
        refused.1["message"]
            .as_str()
            .unwrap()
            .contains("must be between 1 and 2147483647, inclusive"),
        "{}",
        refused.1
    );

    for name in ["query", "body"] {
        let (code, body) = c.json(reqwest::Method::POST, PODS, Some(pod(name))).await;
        assert_eq!(code, 201, "{body}");
    }
    // Bound to a node, so that deleting them waits for its agent.
    for name in ["forever", "query", "body"] {
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
            "target": {"kind": "Node", "name": "node-1"}});
        let (code, body) = c
            .json(
                reqwest::Method::POST,
                &format!("{PODS}/{name}/binding"),
                Some(binding),
            )
            .await;
        assert_eq!(code, 201, "{body}");
    }
    let max = i64::MAX.to_string();
    let deletes = [
        c.json(reqwest::Method::DELETE, &format!("{PODS}/forever"), None)
            .await,
        c.json(
            reqwest::Method::DELETE,
            &format!("{PODS}/query?gracePeriodSeconds={max}"),
            None,
        )
        .await,
        c.send(
            reqwest::Method::DELETE,
            &format!("{PODS}/body"),
            "application/json",
            format!(r#"{{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":{max}}}"#),
        )
        .await,
    ];
    for (code, body) in deletes {
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            body["metadata"]["deletionTimestamp"], "9999-12-31T23:59:59Z",
            "{body}"
        );
        assert_eq!(body["metadata"]["deletionGracePeriodSeconds"], i64::MAX);
    }

    // Still serving, and the pods read back as they were marked.
    let (code, list) = c.json(reqwest::Method::GET, PODS, None).await;
    assert_eq!(code, 200, "{list}");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{list}");
    assert!(
        items
            .iter()
            .all(|p| p["metadata"]["deletionTimestamp"] == "9999-12-31T23:59:59Z"),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_token_get_401() {
    let master = embedded_master();
    let ca = reqwest::Certificate::from_pem(master.ca_pem().as_bytes()).unwrap();
    let anonymous = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let url = |p: &str| format!("{}{p}", master.server_url());
    let r = anonymous.get(url(PODS)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["kind"].as_str(), body["reason"].as_str()),
        (Some("Status"), Some("Unauthorized"))
    );
    let r = anonymous
        .get(url(PODS))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = anonymous
        .post(url(PODS))
        .bearer_auth("wrong")
        .json(&pod("sneaky"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Health and version are public.
    assert_eq!(
        anonymous.get(url("/readyz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        anonymous
            .get(url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let version: Value = anonymous
        .get(url("/version"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["major"], "1");
    // Nothing was stored by the rejected create.
    let list: Value = master
        .http()
        .get(url(PODS))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().map_or(0, Vec::len), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_do_not_block_others() {
    let master = embedded_master();
    let addr = master
        .server_url()
        .trim_start_matches("https://")
        .to_string();
    // Connections that never start TLS, and one that sends half a request in plain bytes.
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();
    // A TLS client that sends headers and never the promised body.
    let http = master.http();
    let slow = tokio::spawn({
        let http = http.clone();
        let url = format!("{}{PODS}", master.server_url());
        async move {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
            tx.send(Ok(b"{\"apiVersion\":".to_vec())).await.unwrap();
            let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
            let _keep = tx;
            let _ = tokio::time::timeout(
                Duration::from_secs(30),
                http.post(url)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send(),
            )
            .await;
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    for i in 0..20 {
        let r = http
            .post(format!("{}{PODS}", master.server_url()))
            .json(&pod(&format!("ok-{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "others were blocked: {:?}",
        started.elapsed()
    );
    slow.abort();
    drop(idle);
}
