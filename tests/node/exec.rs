//! `kubectl exec` and `kubectl cp` end to end: the real kubectl (v1.32, WebSockets) through the
//! API server to the agent and Docker's exec, in a shell image made of Debian's static busybox.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use skiff_node::images::BUSYBOX_IMAGE;
use skiff_node::runtime::{DEFAULT_DOCKER_HOST, DockerRuntime};

use super::{Cluster, WORKLOAD_IMAGE, container_status};

/// The tests' shell image: the static busybox with every applet linked in /bin (sh, cat, tar
/// for `kubectl cp`, ...), as `skiff-node image busybox` builds it.
pub(super) async fn build_busybox_image() {
    tokio::task::spawn_blocking(skiff::docker::ensure_dockerd)
        .await
        .expect("ensure_dockerd")
        .expect("Docker must run for the node tests");
    DockerRuntime::new(DEFAULT_DOCKER_HOST, "test-harness")
        .ensure_busybox_image()
        .await
        .expect("build the busybox image");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_returns_the_exit_code_takes_stdin_and_kubectl_cp_copies_both_ways() {
    let cluster = Cluster::start("exec-node", "10.244.238.0/24").await;
    build_busybox_image().await;
    let node = cluster.agent.name().to_owned();
    cluster.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: shell}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  hostAliases: [{{ip: 10.1.2.3, hostnames: [foo.local, bar.local]}}]
  containers:
  - name: sh
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{{name: tmp, mountPath: /tmp}}]
  - name: done
    image: {WORKLOAD_IMAGE}
    args: [exit, "0"]
  - name: strict
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 1; done"]
    securityContext: {{seccompProfile: {{type: RuntimeDefault}}}}
  volumes: [{{name: tmp, emptyDir: {{}}}}]"#
    ));
    let shell = cluster
        .wait_pod("shell", "sh running, done finished", |p| {
            let statuses = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref());
            statuses.is_some_and(|s| s.len() == 3)
                && container_status(p, "sh")
                    .state
                    .and_then(|s| s.running)
                    .is_some()
                && container_status(p, "done").restart_count >= 1
        })
        .await;
    let master = &cluster.master;

    // The pod's own network, as the agent plumbed it, and the kubelet's hosts file.
    let pod_ip = super::pod_ip(&shell);
    let out = master.kubectl(&[
        "exec",
        "shell",
        "-c",
        "sh",
        "--",
        "sh",
        "-c",
        "hostname; cat /etc/hosts; ip -o -4 addr show eth0",
    ]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout
            .starts_with("shell\n# Kubernetes-managed hosts file.\n"),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("\n{pod_ip}\tshell\n")),
        "{out}"
    );
    assert!(
        out.stdout.contains("\n10.1.2.3\tfoo.local\tbar.local\n"),
        "{out}"
    );
    assert!(out.stdout.contains(&format!("inet {pod_ip}/24")), "{out}");

    // No seccomp filter unless the pod asks for one, as the kubelet's default; the runtime's
    // default filter when it does.
    for (container, mode) in [("sh", "0"), ("strict", "2")] {
        let out = master.kubectl(&[
            "exec",
            "shell",
            "-c",
            container,
            "--",
            "grep",
            "Seccomp:",
            "/proc/self/status",
        ]);
        assert_eq!(
            out.stdout.split_whitespace().collect::<Vec<_>>(),
            ["Seccomp:", mode],
            "{container}: {out}"
        );
    }

    // Output on both streams, and the command's exit code as kubectl's own.
    let out = master.kubectl(&[
        "exec",
        "shell",
        "-c",
        "sh",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.and_then(|s| s.code()), Some(3), "{out}");
    assert_eq!(out.stdout, "out\n", "{out}");
    assert!(out.stderr.starts_with("err\n"), "{out}");
    assert!(
        out.stderr.contains("command terminated with exit code 3"),
        "{out}"
    );
    let out = master.kubectl(&["exec", "shell", "-c", "sh", "--", "true"]);
    assert!(out.success() && out.stdout.is_empty(), "{out}");

    // Standard input, to its end.
    let out = master.kubectl_with_stdin(
        &[
            "exec",
            "-i",
            "shell",
            "-c",
            "sh",
            "--",
            "sh",
            "-c",
            "cat; echo done",
        ],
        "hello\nworld\n",
    );
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "hello\nworld\ndone\n", "{out}");

    // The official Python client (`v4.channel.k8s.io`).
    let python = skiff::python::client_python(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
        .expect("installing the official Python client in a venv");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/exec.py");
    // Bounded: a hung session fails the test instead of holding it.
    let output = std::process::Command::new("timeout")
        .arg("60")
        .arg(&python)
        .arg(&script)
        .arg(master.kubeconfig_path())
        .args(["shell", "sh"])
        .output()
        .expect("running the Python client script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("OK"),
        "python exec failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A terminal: `script` gives kubectl one, so `-it` allocates one in the container.
    let kubeconfig = master.kubeconfig_path();
    let command = format!(
        "kubectl --kubeconfig {} exec -it shell -c sh -- sh -c 'tty && stty size'",
        kubeconfig.display()
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("COLUMNS", "100")
        .env("LINES", "30")
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{text}");
    assert!(text.contains("/dev/pts/"), "no terminal: {text}");

    // kubectl cp, in and back out (tar in the container).
    let dir = tempfile::tempdir().expect("temp dir");
    let local = dir.path().join("in.txt");
    let content = "copied by kubectl cp\n".repeat(1000);
    std::fs::write(&local, &content).expect("write");
    let out = master.kubectl(&[
        "cp",
        &local.display().to_string(),
        "default/shell:/tmp/in.txt",
        "-c",
        "sh",
    ]);
    assert!(out.success(), "{out}");
    let out = master.kubectl(&["exec", "shell", "-c", "sh", "--", "wc", "-c", "/tmp/in.txt"]);
    assert!(
        out.stdout.trim().starts_with(&content.len().to_string()),
        "{out}"
    );
    let back = dir.path().join("back.txt");
    let out = master.kubectl(&[
        "cp",
        "default/shell:/tmp/in.txt",
        &back.display().to_string(),
        "-c",
        "sh",
    ]);
    assert!(out.success(), "{out}");
    assert_eq!(
        std::fs::read_to_string(&back).expect("copied back"),
        content
    );

    // What cannot run: clear errors, nothing else disturbed.
    let out = master.kubectl(&["exec", "shell", "-c", "sh", "--", "/no/such/command"]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stdout.contains("/no/such/command") || out.stderr.contains("/no/such/command"),
        "{out}"
    );
    let out = master.kubectl(&["exec", "shell", "-c", "done", "--", "true"]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("container not running"), "{out}");
    let out = master.kubectl(&["exec", "shell", "-c", "nope", "--", "true"]);
    assert!(
        out.stderr
            .contains("container nope is not valid for pod shell"),
        "{out}"
    );
    let out = master.kubectl(&["exec", "missing", "--", "true"]);
    assert!(out.stderr.contains("pods \"missing\" not found"), "{out}");

    // A session dropped midway: the agent's tasks come back to their level.
    let before = super::probes::agent_tasks(&cluster, &node);
    let mut child = tokio::process::Command::new("kubectl")
        .args(["--kubeconfig", &kubeconfig.display().to_string()])
        .args(["exec", "-i", "shell", "-c", "sh", "--", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl exec");
    // The session is live once cat echoes a line back (seconds, more on a busy machine).
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout"));
    stdin
        .write_all(b"ping\n")
        .await
        .expect("write to the session");
    let mut echoed = String::new();
    tokio::time::timeout(Duration::from_secs(60), stdout.read_line(&mut echoed))
        .await
        .expect("the session echoes within a minute")
        .expect("read from the session");
    assert_eq!(echoed, "ping\n");
    child.kill().await.expect("kill kubectl");
    super::probes::wait_agent_tasks_back(&cluster, &node, before, "the dropped session").await;
    let out = master.kubectl(&["exec", "shell", "-c", "sh", "--", "echo", "still here"]);
    assert_eq!(out.stdout, "still here\n", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_attach_carries_stdin_to_the_containers_process_and_its_output_back() {
    let cluster = Cluster::start("attach-node", "10.244.239.0/24").await;
    build_busybox_image().await;
    let node = cluster.agent.name().to_owned();
    // It reads its standard input until the attached client closes it (stdinOnce).
    cluster.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: reader}}
spec:
  nodeName: {node}
  restartPolicy: Never
  containers:
  - name: sh
    image: {BUSYBOX_IMAGE}
    stdin: true
    stdinOnce: true
    command: [sh, -c, "while read line; do echo got $line; done; echo bye"]"#
    ));
    cluster.wait_running("reader").await;
    let out = cluster
        .master
        .kubectl_with_stdin(&["attach", "-i", "reader", "-c", "sh"], "one\ntwo\n");
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("got one\ngot two\nbye\n"), "{out}");
    // The process ended with its input: the pod is done.
    cluster
        .wait_pod("reader", "Succeeded", |p| super::phase(p) == "Succeeded")
        .await;
    let out = cluster.master.kubectl(&["attach", "reader", "-c", "sh"]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("completed pod"), "{out}");
}

/// The body of a 200 answer to `GET <path>` on local `port` (any HTTP version).
fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.split_whitespace()
        .nth(1)
        .is_some_and(|code| code == "200")
        .then(|| body.to_owned())
}

/// A `kubectl port-forward` running in the background, and the local port it listens on.
struct PortForward {
    child: std::process::Child,
    local_port: u16,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl PortForward {
    /// Starts `kubectl port-forward pod/<pod> 0:<port>` and waits for its local port.
    fn start(cluster: &Cluster, pod: &str, port: u16) -> PortForward {
        use std::io::{BufRead, BufReader, Read};
        let kubeconfig = cluster.master.kubeconfig_path();
        let mut child = std::process::Command::new("kubectl")
            .args(["--kubeconfig", &kubeconfig.display().to_string()])
            .args(["port-forward", &format!("pod/{pod}"), &format!("0:{port}")])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl port-forward");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                sink.lock().expect("stderr lock").push_str(&text);
            }
        });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // "Forwarding from 127.0.0.1:43127 -> 8080"
        let local_port = lines
            .find_map(|line| {
                let line = line.ok()?;
                let rest = line.strip_prefix("Forwarding from 127.0.0.1:")?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .unwrap_or_else(|| {
                panic!(
                    "kubectl port-forward did not start: {}",
                    stderr.lock().expect("lock")
                )
            });
        std::thread::spawn(move || for _ in lines {});
        PortForward {
            child,
            local_port,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_reaches_a_port_only_the_pod_listens_on() {
    let cluster = Cluster::start("forward-node", "10.244.241.0/24").await;
    build_busybox_image().await;
    let node = cluster.agent.name().to_owned();
    // busybox httpd on the pod's loopback only: reachable from inside the pod's namespace, not
    // through the pod IP.
    cluster.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: local-only}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {BUSYBOX_IMAGE}
    command: [sh, -c, "mkdir -p /tmp/www && echo forwarded > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:8081 -h /tmp/www"]
    volumeMounts: [{{name: tmp, mountPath: /tmp}}]
  volumes: [{{name: tmp, emptyDir: {{}}}}]"#
    ));
    cluster.wait_running("local-only").await;
    let before = super::probes::agent_tasks(&cluster, &node);

    let forward = PortForward::start(&cluster, "local-only", 8081);
    // Several connections through one session, each its own pair of streams.
    for _ in 0..3 {
        let body = get(forward.local_port, "/index.html");
        assert_eq!(body.as_deref(), Some("forwarded\n"), "{}", forward.stderr());
    }
    drop(forward);

    // A port nothing listens on: kubectl reports the agent's error.
    let forward = PortForward::start(&cluster, "local-only", 9999);
    assert_eq!(get(forward.local_port, "/"), None);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !forward.stderr().contains("error forwarding port 9999") {
        assert!(
            std::time::Instant::now() < deadline,
            "no error from kubectl: {}",
            forward.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(forward);

    // Nothing left behind in the agent.
    super::probes::wait_agent_tasks_back(&cluster, &node, before, "port-forwarding").await;
}
