//! etcd going away under a running master, and a master started before its etcd: requests
//! are answered promptly (503/504) while etcd is down, `/readyz` says why, and everything
//! recovers by itself when etcd is back, a watch opened before included. On a cluster of
//! three members, one member down changes nothing and two down are an outage like the above.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use skiff::etcd::{Etcd, EtcdCluster};
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

/// A CA and, signed by it, etcd's serving certificate for 127.0.0.1 and a client
/// certificate, written into `dir`.
fn etcd_pki(dir: &std::path::Path) -> skiff::etcd::EtcdTlsFiles {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "etcd-ca");
    let ca_pem = ca_params.self_signed(&ca_key).expect("ca").pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = |name: &str, usage: rcgen::ExtendedKeyUsagePurpose| {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![rcgen::SanType::IpAddress([127, 0, 0, 1].into())];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).expect("certificate");
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf("etcd", rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) =
        leaf("kube-apiserver", rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let write = |name: &str, contents: &str| {
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write");
        path
    };
    skiff::etcd::EtcdTlsFiles {
        ca: write("ca.crt", &ca_pem),
        server_cert: write("server.crt", &server_cert),
        server_key: write("server.key", &server_key),
        client_cert: write("client.crt", &client_cert),
        client_key: write("client.key", &client_key),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_talks_to_etcd_over_tls_with_a_client_certificate() {
    let pki = tempfile::tempdir().expect("tempdir");
    let files = etcd_pki(pki.path());
    let etcd = tokio::task::spawn_blocking({
        let files = files.clone();
        move || Etcd::start_tls(files)
    })
    .await
    .expect("task")
    .expect("starting etcd with TLS");
    assert!(etcd.endpoint().starts_with("https://"));
    // Without a client certificate etcd refuses the connection.
    let ca_only = skiff_master::store::etcd::EtcdTls {
        ca_pem: std::fs::read(&files.ca).expect("ca"),
        client: None,
    };
    assert!(
        skiff_master::store::etcd::EtcdStore::connect_with(&[etcd.endpoint()], Some(&ca_only))
            .await
            .is_err()
    );
    let mut extra_args = crate::api_only();
    extra_args.extend([
        format!("--etcd-cafile={}", files.ca.display()),
        format!("--etcd-certfile={}", files.client_cert.display()),
        format!("--etcd-keyfile={}", files.client_key.display()),
    ]);
    let master = Master::start(MasterOptions {
        etcd_endpoints: vec![etcd.endpoint()],
        extra_args,
        ..Default::default()
    })
    .expect("starting skiff-master on etcd over TLS");
    let admin = Client::new(&master);
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let (code, body) = admin.post(configmaps, &configmap("over-tls")).await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = admin
        .json(
            reqwest::Method::GET,
            &format!("{configmaps}/over-tls"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
}

/// Posts ConfigMap `name` until it is created (201), for at most `within`.
async fn create_eventually(admin: &Client, name: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let (code, body) = admin
            .post("/api/v1/namespaces/default/configmaps", &configmap(name))
            .await;
        if code == 201 {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{name} not created in {within:?}: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_on_three_etcd_members_serves_with_one_down_and_recovers_from_two() {
    let mut etcd = tokio::task::spawn_blocking(|| EtcdCluster::start(3))
        .await
        .expect("task")
        .expect("starting three etcd members");
    let master = Master::start(MasterOptions {
        etcd_endpoints: etcd.endpoints(),
        extra_args: crate::api_only(),
        ..Default::default()
    })
    .expect("starting skiff-master on the etcd cluster");
    let admin = Client::new(&master);
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let (code, body) = admin.post(configmaps, &configmap("before")).await;
    assert_eq!(code, 201, "{body}");

    // One member of three down (perhaps etcd's leader, perhaps the one the master talks to):
    // after at most a new etcd election, every write goes through.
    tokio::task::block_in_place(|| etcd.member(0).stop());
    create_eventually(&admin, "one-down", Duration::from_secs(15)).await;
    for i in 0..10 {
        let (code, body) = admin.post(configmaps, &configmap(&format!("w-{i}"))).await;
        assert_eq!(code, 201, "{body}");
    }
    let (code, why) = readyz(&master).await;
    assert_eq!(code, 200, "{why}");

    // Two down: no quorum. Writes fail promptly, within the store's deadline.
    tokio::task::block_in_place(|| etcd.member(1).stop());
    let started = Instant::now();
    let (code, status) = admin.post(configmaps, &configmap("no-quorum")).await;
    assert!(matches!(code, 503 | 504), "{code} {status}");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "answered after {:?}",
        started.elapsed()
    );

    // A member back: quorum again, and writes resume by themselves.
    tokio::task::block_in_place(|| etcd.member(1).resume()).expect("member 1 again");
    create_eventually(&admin, "quorum-again", Duration::from_secs(30)).await;
    for name in ["before", "one-down", "w-0", "w-9", "quorum-again"] {
        let (code, _) = admin
            .json(reqwest::Method::GET, &format!("{configmaps}/{name}"), None)
            .await;
        assert_eq!(code, 200, "{name} was lost");
    }
}
