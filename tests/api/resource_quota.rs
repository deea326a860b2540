//! ResourceQuota admission on the real API server (its controllers off: the tests set a
//! quota's status as the resourcequota controller would): a create that would go over a hard
//! limit is refused with 403 and Kubernetes' message, one that fits is charged to
//! `status.used`, and concurrent creates cannot both take the last unit, on the embedded
//! store and on etcd. PodTemplates are served like the other kinds.

use serde_json::{Value, json};
use skiff::master::Master;

use super::{Client, embedded_master, etcd_master};

const QUOTAS: &str = "/api/v1/namespaces/default/resourcequotas";
const PODS: &str = "/api/v1/namespaces/default/pods";

fn pod(name: &str, cpu: Option<&str>) -> Value {
    let resources = cpu.map_or(json!({}), |cpu| json!({"requests": {"cpu": cpu}}));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "resources": resources}]}})
}

/// Creates the quota `name` with `hard` and counts it as the controller would, `used` so far.
async fn counted_quota(client: &Client, name: &str, hard: Value, used: Value) {
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota",
                       "metadata": {"name": name}, "spec": {"hard": hard}});
    let (code, created) = client.post(QUOTAS, &quota).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created.get("status"),
        None,
        "a new quota has no status: {created}"
    );
    let mut counted = created.clone();
    counted["status"] = json!({"hard": hard, "used": used});
    let (code, body) = client
        .json(
            reqwest::Method::PUT,
            &format!("{QUOTAS}/{name}/status"),
            Some(counted),
        )
        .await;
    assert_eq!(code, 200, "{body}");
}

async fn used(client: &Client, name: &str) -> Value {
    let (code, quota) = client
        .json(reqwest::Method::GET, &format!("{QUOTAS}/{name}"), None)
        .await;
    assert_eq!(code, 200, "{quota}");
    quota["status"]["used"].clone()
}

/// A refusal: 403, reason Forbidden, and the message.
fn refused(code: u16, status: &Value) -> &str {
    assert_eq!(code, 403, "{status}");
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["reason"], "Forbidden", "{status}");
    assert_eq!(status["code"], 403, "{status}");
    status["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_over_a_quota_are_refused_and_the_rest_are_charged() {
    let master = embedded_master();
    let client = Client::new(&master);
    let hard = json!({"pods": "2", "requests.cpu": "1", "configmaps": "1",
                      "count/deployments.apps": "1"});

    // Before the controller has counted, the quota does not limit anything yet: nothing in
    // status.hard. Once status.hard is set but the usage is not, it refuses.
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota",
                       "metadata": {"name": "compute"}, "spec": {"hard": hard}});
    let (code, created) = client.post(QUOTAS, &quota).await;
    assert_eq!(code, 201, "{created}");
    let mut half_counted = created.clone();
    half_counted["status"] = json!({"hard": hard});
    let (code, body) = client
        .json(
            reqwest::Method::PUT,
            &format!("{QUOTAS}/compute/status"),
            Some(half_counted),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, status) = client.post(PODS, &pod("early", Some("100m"))).await;
    assert_eq!(
        refused(code, &status),
        "pods \"early\" is forbidden: status unknown for quota: compute, resources: pods,requests.cpu"
    );
    let (code, body) = client
        .json(reqwest::Method::DELETE, &format!("{QUOTAS}/compute"), None)
        .await;
    assert_eq!(code, 200, "{body}");

    counted_quota(
        &client,
        "compute",
        hard.clone(),
        json!({"pods": "0", "requests.cpu": "0", "configmaps": "0", "count/deployments.apps": "0"}),
    )
    .await;

    let (code, body) = client.post(PODS, &pod("a", Some("500m"))).await;
    assert_eq!(code, 201, "{body}");
    let after_one = used(&client, "compute").await;
    assert_eq!(after_one["pods"], "1", "{after_one}");
    assert_eq!(after_one["requests.cpu"], "500m", "{after_one}");

    // A quota on cpu requests needs every container to request cpu.
    let (code, status) = client.post(PODS, &pod("no-request", None)).await;
    assert_eq!(
        refused(code, &status),
        "pods \"no-request\" is forbidden: failed quota: compute: must specify requests.cpu for: c"
    );
    let (code, status) = client.post(PODS, &pod("big", Some("600m"))).await;
    assert_eq!(
        refused(code, &status),
        "pods \"big\" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=500m, limited: requests.cpu=1"
    );
    // A dry run is checked but charges nothing.
    let (code, body) = client
        .post(&format!("{PODS}?dryRun=All"), &pod("trial", Some("500m")))
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(used(&client, "compute").await, after_one);

    let (code, body) = client.post(PODS, &pod("b", Some("0.5"))).await;
    assert_eq!(code, 201, "{body}");
    let full = used(&client, "compute").await;
    assert_eq!(full["pods"], "2", "{full}");
    assert_eq!(
        full["requests.cpu"], "1",
        "sums are written canonically: {full}"
    );
    let (code, status) = client.post(PODS, &pod("c", Some("1m"))).await;
    assert_eq!(
        refused(code, &status),
        "pods \"c\" is forbidden: exceeded quota: compute, requested: pods=1,requests.cpu=1m, used: pods=2,requests.cpu=1, limited: pods=2,requests.cpu=1"
    );
    // A generated name is shown as generated.
    let mut generated = pod("", Some("1m"));
    generated["metadata"] = json!({"generateName": "web-"});
    let (code, status) = client.post(PODS, &generated).await;
    let message = refused(code, &status);
    assert!(
        message.starts_with("pods \"web-")
            && message.contains("is forbidden: exceeded quota: compute"),
        "{message}"
    );

    // Object counts, by the legacy name and by count/<resource>.<group>.
    let cm =
        |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    let (code, body) = client
        .post("/api/v1/namespaces/default/configmaps", &cm("one"))
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, status) = client
        .post("/api/v1/namespaces/default/configmaps", &cm("two"))
        .await;
    assert_eq!(
        refused(code, &status),
        "configmaps \"two\" is forbidden: exceeded quota: compute, requested: configmaps=1, used: configmaps=1, limited: configmaps=1"
    );
    let deployment = |name: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
               "spec": {"selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}},
                                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    };
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    let (code, body) = client.post(deployments, &deployment("one")).await;
    assert_eq!(code, 201, "{body}");
    let (code, status) = client.post(deployments, &deployment("two")).await;
    assert_eq!(
        refused(code, &status),
        "deployments.apps \"two\" is forbidden: exceeded quota: compute, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"
    );
    // What the quota does not limit is not counted, and other namespaces are not limited.
    let (code, body) = client
        .post(
            "/api/v1/namespaces/default/secrets",
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = client
        .post(
            "/api/v1/namespaces/kube-system/pods",
            &pod("elsewhere", None),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let end = used(&client, "compute").await;
    assert_eq!(
        end,
        json!({"pods": "2", "requests.cpu": "1", "configmaps": "1", "count/deployments.apps": "1"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_validation_refuses_what_cannot_be_counted() {
    let master = embedded_master();
    let client = Client::new(&master);
    let quota = |hard: Value| {
        json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
               "spec": {"hard": hard}})
    };
    let (code, status) = client
        .post(
            QUOTAS,
            &quota(json!({"pods": "1.5", "memory": "1e40", "widgets": "1"})),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    let causes: Vec<String> = status["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c["field"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        causes,
        [
            "spec.hard[memory]: Invalid value: \"1e40\": must be no more than 1e27 in magnitude",
            "spec.hard[pods]: Invalid value: \"1500m\": must be an integer",
            "spec.hard[widgets]: Invalid value: \"widgets\": must be a standard resource type or fully qualified",
        ]
    );
    let (code, status) = client
        .post(
            QUOTAS,
            &json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
                    "spec": {"hard": {"secrets": "1"}, "scopes": ["BestEffort"]}}),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unsupported scope applied to resource"),
        "{status}"
    );
}

/// `n` pods created at once against a quota with room for `room`.
async fn race(master: &Master, n: usize, room: usize) {
    let client = Client::new(master);
    counted_quota(
        &client,
        "pods",
        json!({"pods": room.to_string()}),
        json!({"pods": "0"}),
    )
    .await;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let http = master.http();
            let url = format!("{}{PODS}", master.server_url());
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .json(&pod(&format!("p{i}"), None))
                    .send()
                    .await
                    .expect("request");
                r.status().as_u16()
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.expect("joined") {
            201 => created += 1,
            403 => {}
            other => panic!("a create answered {other}"),
        }
    }
    assert_eq!(created, room, "exactly the room the quota had");
    assert_eq!(client.count(PODS).await, room);
    assert_eq!(
        used(&client, "pods").await,
        json!({"pods": room.to_string()})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_cannot_both_take_the_last_unit() {
    let master = embedded_master();
    race(&master, 24, 5).await;
    let (_etcd, master) = etcd_master();
    race(&master, 24, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_templates_are_served_with_their_template_defaulted_and_validated() {
    let master = embedded_master();
    let client = Client::new(&master);
    let templates = "/api/v1/namespaces/default/podtemplates";
    let template = json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "web"},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}});
    let (code, created) = client.post(templates, &template).await;
    assert_eq!(code, 201, "{created}");
    let spec = &created["template"]["spec"];
    assert_eq!(spec["restartPolicy"], "Always", "{created}");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
    let (code, status) = client
        .post(
            templates,
            &json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "bad"},
                    "template": {"spec": {"containers": [{"name": "c"}]}}}),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "template.spec.containers[0].image"
    );
    assert_eq!(client.count(templates).await, 1);

    // kubectl prints kube-apiserver's columns, and deletes.
    let out = master.kubectl(&["get", "podtemplates"]);
    assert!(out.success(), "{out}");
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["NAME", "CONTAINERS", "IMAGES", "POD", "LABELS"],
            vec!["web", "nginx", "nginx:1.25", "app=web"]
        ],
        "{out}"
    );
    let out = master.kubectl(&["delete", "podtemplate", "web"]);
    assert!(out.success(), "{out}");
    assert_eq!(client.count(templates).await, 0);
}
