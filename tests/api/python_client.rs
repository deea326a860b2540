//! The official Kubernetes Python client (37.x) against skiff: objects built from its model
//! classes carry no `kind` or `apiVersion`, which the API server fills in from the URL; and
//! the access control APIs (RBAC, reviews, ServiceAccount tokens) as its users call them.

use std::path::Path;
use std::process::Command;

use super::{Client, embedded_master};

/// A master with `tests/python/<script>` run against it by the official client; the script
/// must end by printing OK.
fn run_script(script: &str) -> skiff::master::Master {
    let python = skiff::python::client_python(Path::new(env!("CARGO_TARGET_TMPDIR")))
        .expect("installing the official Python client in a venv");
    let master = embedded_master();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let output = Command::new(&python)
        .arg(&script)
        .arg(master.kubeconfig_path())
        .output()
        .expect("running the Python client script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("OK"),
        "python script failed ({}):\n{stdout}\n{stderr}\nmaster log:\n{}",
        output.status,
        master.log_tail()
    );
    master
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_drives_objects_without_kind() {
    let master = run_script("objects_without_kind.py");

    // What the script made is stored with its type, as any other client sees it.
    let client = Client::new(&master);
    for (path, kind, api_version) in [
        ("/api/v1/nodes/py-node", "Node", "v1"),
        (
            "/api/v1/namespaces/default/services/py-svc",
            "Service",
            "v1",
        ),
        (
            "/apis/apps/v1/namespaces/default/deployments/py-deploy",
            "Deployment",
            "apps/v1",
        ),
        (
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/py-lease",
            "Lease",
            "coordination.k8s.io/v1",
        ),
    ] {
        let (code, body) = client.json(reqwest::Method::GET, path, None).await;
        assert_eq!(code, 200, "{path}: {body}");
        assert_eq!(body["kind"], kind, "{path}: {body}");
        assert_eq!(body["apiVersion"], api_version, "{path}: {body}");
    }
    let (_, deployment) = client
        .json(
            reqwest::Method::GET,
            "/apis/apps/v1/namespaces/default/deployments/py-deploy",
            None,
        )
        .await;
    assert_eq!(deployment["spec"]["replicas"], 5, "{deployment}");
    let (_, lease) = client
        .json(
            reqwest::Method::GET,
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/py-lease",
            None,
        )
        .await;
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 20, "{lease}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_drives_access_control() {
    run_script("access_control.py");
}
