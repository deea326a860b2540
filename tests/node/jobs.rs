//! Jobs end to end: the Job controller in the master, the pods on a real agent and Docker,
//! driven with the real kubectl: completions with parallelism, a failing Job reaching its
//! backoff limit, an Indexed Job whose pods know their index and which goes after its TTL, a
//! deadline, and the Jobs the API server refuses.

use skiff_node::images::BUSYBOX_IMAGE;

use super::Cluster;
use super::exec::build_busybox_image;

/// `kubectl wait` for `what` on `object`, up to `seconds`; panics with kubectl's output.
fn wait(cluster: &Cluster, what: &str, object: &str, seconds: u32) {
    let timeout = format!("--timeout={seconds}s");
    let out = cluster
        .master
        .kubectl(&["wait", &format!("--for={what}"), object, &timeout]);
    assert!(
        out.success(),
        "{out}\n{}",
        cluster.master.kubectl(&["get", "jobs,pods", "-o", "wide"])
    );
}

/// Waits until every pod of Job `job` is gone; panics with kubectl's output.
fn wait_pods_gone(cluster: &Cluster, job: &str) {
    let selector = format!("batch.kubernetes.io/job-name={job}");
    let out = cluster.master.kubectl(&[
        "wait",
        "--for=delete",
        "pod",
        "-l",
        &selector,
        "--timeout=60s",
    ]);
    assert!(out.success(), "{out}");
}

fn jsonpath(cluster: &Cluster, object: &str, path: &str) -> String {
    let out = cluster
        .master
        .kubectl(&["get", object, "-o", &format!("jsonpath={path}")]);
    assert!(out.success(), "{out}");
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_complete_fail_by_backoff_and_deadline_and_indexed_pods_know_their_index() {
    build_busybox_image().await;
    let cluster = Cluster::start("node-jobs", "10.244.244.0/24").await;
    cluster.apply(&format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {{name: three}}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers: [{{name: work, image: {BUSYBOX_IMAGE}, command: [sh, -c, "sleep 1"]}}]
---
apiVersion: batch/v1
kind: Job
metadata: {{name: fails}}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: work, image: {BUSYBOX_IMAGE}, command: [sh, -c, "exit 1"]}}]
---
apiVersion: batch/v1
kind: Job
metadata: {{name: indexed}}
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  ttlSecondsAfterFinished: 20
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: work, image: {BUSYBOX_IMAGE}, command: [sh, -c, "echo index $JOB_COMPLETION_INDEX on $(hostname)"]}}]
---
apiVersion: batch/v1
kind: Job
metadata: {{name: slow}}
spec:
  activeDeadlineSeconds: 2
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers: [{{name: work, image: {BUSYBOX_IMAGE}, command: [sh, -c, "sleep 100"]}}]
"#
    ));

    // Each index once, each pod knowing its own; the TTL takes the Job and
    // its pods later.
    wait(&cluster, "condition=Complete", "job/indexed", 90);
    assert_eq!(
        jsonpath(&cluster, "job/indexed", "{.status.completedIndexes}"),
        "0-2"
    );
    let mut said = Vec::new();
    for index in 0..3 {
        let pod = cluster.master.kubectl(&[
            "get",
            "pods",
            "-l",
            &format!("batch.kubernetes.io/job-completion-index={index},batch.kubernetes.io/job-name=indexed"),
            "-o",
            "name",
        ]);
        let name = pod.stdout.trim().to_owned();
        assert!(!name.is_empty() && !name.contains('\n'), "{pod}");
        let logs = cluster.master.kubectl(&["logs", &name]);
        assert!(logs.success(), "{logs}");
        said.push(logs.stdout.trim().to_owned());
    }
    assert_eq!(
        said,
        [
            "index 0 on indexed-0",
            "index 1 on indexed-1",
            "index 2 on indexed-2"
        ]
    );
    // Three completions, two at a time.
    wait(&cluster, "condition=Complete", "job/three", 90);
    assert_eq!(jsonpath(&cluster, "job/three", "{.status.succeeded}"), "3");
    let table = cluster.master.kubectl(&["get", "job", "three"]);
    assert!(table.success(), "{table}");
    let row = table.stdout.lines().nth(1).unwrap_or_default().to_owned();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..3], ["three", "Complete", "3/3"], "{table}");
    let reason = jsonpath(
        &cluster,
        "job/three",
        r#"{.status.conditions[?(@.type=="Complete")].reason}"#,
    );
    assert_eq!(reason, "CompletionsReached");
    let pods = cluster.master.kubectl(&[
        "get",
        "pods",
        "-l",
        "batch.kubernetes.io/job-name=three",
        "-o",
        "name",
    ]);
    assert_eq!(pods.stdout.lines().count(), 3, "{pods}");
    // Deleting a Job takes its pods with it (the garbage collector knows Jobs).
    let deleted = cluster.master.kubectl(&["delete", "job", "three"]);
    assert!(deleted.success(), "{deleted}");
    wait_pods_gone(&cluster, "three");

    // A pod that fails, another after the back-off, then the limit.
    wait(&cluster, "condition=Failed", "job/fails", 90);
    let reason = jsonpath(
        &cluster,
        "job/fails",
        r#"{.status.conditions[?(@.type=="Failed")].reason}"#,
    );
    assert_eq!(reason, "BackoffLimitExceeded");
    assert_eq!(jsonpath(&cluster, "job/fails", "{.status.failed}"), "2");

    // The deadline ends a Job whose pod runs on, and its pod goes.
    wait(&cluster, "condition=Failed", "job/slow", 60);
    let reason = jsonpath(
        &cluster,
        "job/slow",
        r#"{.status.conditions[?(@.type=="Failed")].reason}"#,
    );
    assert_eq!(reason, "DeadlineExceeded");
    wait_pods_gone(&cluster, "slow");

    wait(&cluster, "delete", "job/indexed", 60);
    wait_pods_gone(&cluster, "indexed");

    // kubectl's own Job, made suspended, then resumed.
    let created = cluster.master.kubectl(&[
        "create",
        "job",
        "later",
        &format!("--image={BUSYBOX_IMAGE}"),
        "--",
        "sh",
        "-c",
        "echo done",
    ]);
    assert!(created.success(), "{created}");
    let suspended = cluster.master.kubectl(&[
        "patch",
        "job",
        "later",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    assert!(suspended.success(), "{suspended}");
    wait(&cluster, "condition=Complete", "job/later", 60);
    let table = cluster
        .master
        .kubectl(&["get", "job", "later", "--no-headers"]);
    assert!(table.stdout.starts_with("later "), "{table}");
    let paused = cluster.master.kubectl_with_stdin(
        &["create", "-f", "-"],
        &format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: paused}}\nspec:\n  suspend: true\n  \
             template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: {BUSYBOX_IMAGE}, command: [sh, -c, 'echo done']}}]\n"
        ),
    );
    assert!(paused.success(), "{paused}");
    wait(&cluster, "condition=Suspended", "job/paused", 30);
    let none = cluster.master.kubectl(&[
        "get",
        "pods",
        "-l",
        "batch.kubernetes.io/job-name=paused",
        "-o",
        "name",
    ]);
    assert_eq!(none.stdout, "", "a suspended Job made pods: {none}");
    let table = cluster
        .master
        .kubectl(&["get", "job", "paused", "--no-headers"]);
    let cells: Vec<&str> = table.stdout.split_whitespace().collect();
    assert_eq!(cells[..3], ["paused", "Suspended", "0/1"], "{table}");
    let resumed = cluster.master.kubectl(&[
        "patch",
        "job",
        "paused",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    assert!(resumed.success(), "{resumed}");
    wait(&cluster, "condition=Complete", "job/paused", 60);
    let reason = jsonpath(
        &cluster,
        "job/paused",
        r#"{.status.conditions[?(@.type=="Suspended")].reason}"#,
    );
    assert_eq!(reason, "JobResumed");

    // What the API server refuses, as Kubernetes words it.
    for (manifest, wanted) in [
        (
            "spec: {completions: -1, template: {spec: {restartPolicy: Never, containers: [{name: c, image: i}]}}}",
            "spec.completions: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "spec: {template: {spec: {containers: [{name: c, image: i}]}}}",
            "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
        ),
        (
            "spec: {completionMode: Indexed, parallelism: 2, template: {spec: {restartPolicy: Never, containers: [{name: c, image: i}]}}}",
            "spec.completions: Required value: when completion mode is Indexed",
        ),
    ] {
        let out = cluster.master.kubectl_with_stdin(
            &["create", "-f", "-"],
            &format!("apiVersion: batch/v1\nkind: Job\nmetadata: {{name: bad}}\n{manifest}\n"),
        );
        assert!(!out.success(), "{manifest}: {out}");
        assert!(out.stderr.contains(wanted), "{manifest}: {out}");
    }
    let none = cluster.master.kubectl(&["get", "job", "bad"]);
    assert!(!none.success(), "a refused Job was stored: {none}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_job_makes_its_jobs_on_schedule_and_kubectl_makes_one_from_it() {
    build_busybox_image().await;
    let cluster = Cluster::start("node-cronjobs", "10.244.245.0/24").await;
    cluster.apply(&format!(
        r#"
apiVersion: batch/v1
kind: CronJob
metadata: {{name: every}}
spec:
  schedule: "* * * * *"
  successfulJobsHistoryLimit: 1
  jobTemplate:
    metadata: {{labels: {{from: every}}}}
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{{name: work, image: {BUSYBOX_IMAGE}, command: [sh, -c, "echo tick"]}}]
"#
    ));
    // kubectl's own Job from the CronJob's template, at once.
    let manual = cluster
        .master
        .kubectl(&["create", "job", "by-hand", "--from=cronjob/every"]);
    assert!(manual.success(), "{manual}");
    wait(&cluster, "condition=Complete", "job/by-hand", 60);

    // The scheduled one, within the minute (and a few seconds).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let scheduled = loop {
        let names = jsonpath(
            &cluster,
            "jobs",
            "{range .items[?(@.metadata.ownerReferences[0].kind==\"CronJob\")]}{.metadata.name}{\"\\n\"}{end}",
        );
        if let Some(name) = names.lines().next().filter(|n| n.starts_with("every-")) {
            break name.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled Job:\n{names}"
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    wait(
        &cluster,
        "condition=Complete",
        &format!("job/{scheduled}"),
        60,
    );
    let minutes: i64 = scheduled
        .trim_start_matches("every-")
        .parse()
        .expect("named by its minute");
    let at = jsonpath(
        &cluster,
        &format!("job/{scheduled}"),
        "{.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
    );
    let at = k8s_openapi::chrono::DateTime::parse_from_rfc3339(&at).expect("a scheduled time");
    assert_eq!(at.timestamp(), minutes * 60);
    let table = cluster
        .master
        .kubectl(&["get", "cronjob", "every", "--no-headers"]);
    assert!(table.success(), "{table}");
    let cells: Vec<&str> = table.stdout.split_whitespace().collect();
    assert_eq!(
        cells[..8],
        ["every", "*", "*", "*", "*", "*", "<none>", "False"],
        "{table}"
    );
    let last = jsonpath(&cluster, "cronjob/every", "{.status.lastScheduleTime}");
    assert_eq!(
        k8s_openapi::chrono::DateTime::parse_from_rfc3339(&last).map(|t| t.timestamp()),
        Ok(minutes * 60)
    );

    // What the API server refuses, as Kubernetes words it.
    for (spec, wanted) in [
        (
            "schedule: bad",
            "spec.schedule: Invalid value: \"bad\": expected exactly 5 fields, found 1: [bad]",
        ),
        (
            "schedule: '* * * * *'\n  timeZone: Mars/Olympus",
            "spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus",
        ),
    ] {
        let out = cluster.master.kubectl_with_stdin(
            &["create", "-f", "-"],
            &format!(
                "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: bad}}\nspec:\n  {spec}\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{{name: c, image: i}}]\n"
            ),
        );
        assert!(!out.success(), "{spec}: {out}");
        assert!(out.stderr.contains(wanted), "{spec}: {out}");
    }

    // The CronJob's deletion takes its Jobs with it.
    let deleted = cluster.master.kubectl(&["delete", "cronjob", "every"]);
    assert!(deleted.success(), "{deleted}");
    wait(&cluster, "delete", &format!("job/{scheduled}"), 60);
}
