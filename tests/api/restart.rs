//! A restarted master keeps every object: graceful stop, kill -9, and on etcd.

use serde_json::{Value, json};
use skiff::master::Master;

use super::{embedded_master, etcd_master};

async fn create_objects(master: &Master) -> Vec<(String, String)> {
    let http = master.http();
    let mut created = Vec::new();
    for i in 0..20 {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p{i}"), "labels": {"n": i.to_string()}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}});
        let r = http
            .post(format!(
                "{}/api/v1/namespaces/default/pods",
                master.server_url()
            ))
            .json(&pod)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        created.push((
            format!("p{i}"),
            body["metadata"]["uid"].as_str().unwrap().to_string(),
        ));
    }
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    let r = http
        .post(format!(
            "{}/api/v1/namespaces/default/services",
            master.server_url()
        ))
        .json(&svc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    created
}

async fn check_objects(master: &Master, created: &[(String, String)]) {
    let http = master.http();
    let list: Value = http
        .get(format!(
            "{}/api/v1/namespaces/default/pods",
            master.server_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), created.len(), "{list}");
    for (name, uid) in created {
        assert!(
            items
                .iter()
                .any(|p| p["metadata"]["name"] == name.as_str()
                    && p["metadata"]["uid"] == uid.as_str()),
            "{name} lost"
        );
    }
    let svc: Value = http
        .get(format!(
            "{}/api/v1/namespaces/default/services/web",
            master.server_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.")),
        "{svc}"
    );
    // A new Service never gets the address of an existing one.
    let other = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("after-{}", rand_suffix())},
        "spec": {"ports": [{"port": 80}]}});
    let r: Value = http
        .post(format!(
            "{}/api/v1/namespaces/default/services",
            master.server_url()
        ))
        .json(&other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(r["spec"]["clusterIP"], svc["spec"]["clusterIP"]);
    // Revisions keep increasing across the restart.
    let before: i64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let after: i64 = r["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after > before, "{after} <= {before}");
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_every_object() {
    let mut master = embedded_master();
    let created = create_objects(&master).await;
    master.restart().expect("restart");
    check_objects(&master, &created).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_every_acknowledged_object() {
    let mut master = embedded_master();
    let created = create_objects(&master).await;
    master.kill9();
    master.restart().expect("restart after kill -9");
    check_objects(&master, &created).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_etcd_keeps_every_object() {
    let (_etcd, mut master) = etcd_master();
    let created = create_objects(&master).await;
    master.restart().expect("restart");
    check_objects(&master, &created).await;
}

/// kill -9 in the middle of a write load: every create that was answered 201 before the
/// kill is there after the restart (the answer comes only after the commit's fsync).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_write_load_loses_no_acknowledged_write() {
    let mut master = embedded_master();
    let http = master.http();
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps",
        master.server_url()
    );
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let http = http.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0.. {
                    let name = format!("w{writer}-{i}");
                    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name}, "data": {"v": "x".repeat(512)}});
                    match http.post(&url).json(&body).send().await {
                        Ok(r) if r.status() == 201 => acknowledged.push(name),
                        // The master is gone: what was answered is all there is.
                        _ => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    master.kill9();
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer"));
    }
    assert!(
        acknowledged.len() > 100,
        "only {} writes",
        acknowledged.len()
    );
    master.restart().expect("restart after kill -9");
    let http = master.http();
    let list: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    let stored: std::collections::HashSet<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !stored.contains(n.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
}
