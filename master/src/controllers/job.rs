//! The Job controller: runs each Job's pods until enough of them succeed, or the Job fails,
//! as kube-controller-manager's `job` controller (and its `ttl-after-finished` controller)
//! does:
//! - keeps up to `parallelism` pods running while completions are missing (for an Indexed
//!   Job, one pod per missing index, with the index in its annotation, label, hostname and
//!   `JOB_COMPLETION_INDEX`); a Job with parallelism only is done when one pod succeeded and
//!   none runs;
//! - counts succeeded and failed pods, and after a failure waits 10 s, 20 s, 40 s, ... (at
//!   most 10 minutes) before it makes the next pod;
//! - fails the Job when more pods failed than `backoffLimit` allows (or, with `restartPolicy:
//!   OnFailure`, its containers restarted that often) (`BackoffLimitExceeded`), or when it
//!   ran longer than `activeDeadlineSeconds` (`DeadlineExceeded`), and completes it when
//!   enough succeeded (`CompletionsReached`): first the condition `FailureTarget` or
//!   `SuccessCriteriaMet` while its running pods are stopped, then `Failed` or `Complete`
//!   once none is left terminating;
//! - deletes the pods of a suspended Job (`Suspended` condition) and starts afresh when it is
//!   resumed;
//! - deletes a finished Job `ttlSecondsAfterFinished` after it finished.
//!
//! Unlike Kubernetes it puts no `batch.kubernetes.io/job-tracking` finalizer on its pods: it
//! counts the pods it sees Succeeded or Failed (a pod deleted while it ran is not counted as
//! failed), and its counts never go down, so a finished pod deleted before the controller saw
//! it, or a failed pod deleted before the next one failed, is not counted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tracing::{info, warn};

use super::controller_ref;
use super::informers::{Index, Informers};
use super::replica_set::{Change, Expectations, delete_owned_pods, message_of};
use skiff_api::events::{EventType, Recorder, object_ref};
use skiff_api::meta::{controller_of, controller_ref};
use skiff_api::pod::{CachedPod, is_ready};
use skiff_api::selectors::LabelSelector;
use skiff_api::time::plus_seconds;

/// Objects reconciled at once (kube-controller-manager's `--concurrent-job-syncs`).
const CONCURRENT_SYNCS: u16 = 5;

/// The annotation (and label) with an Indexed Job's pod's index.
const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// The first wait after a failed pod; it doubles with every further failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
/// The longest wait after failed pods (Kubernetes' `MaxJobPodFailureBackOff`).
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// Most pods one reconcile creates (Kubernetes' `MaxPodCreateDeletePerSync`).
const MAX_CREATES_PER_SYNC: usize = 500;

/// What a reconcile can fail with (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// The controller on the shared informers; it runs until `shutdown` resolves.
pub fn run(
    client: kube::Client,
    informers: &mut Informers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let jobs = informers.jobs.reader();
    let job_index = informers.jobs.index();
    let job_changes = informers.jobs.subscribe();
    let pods = informers.pods.reader();
    let pod_changes = informers.pods.subscribe();
    let context = Arc::new(Context {
        recorder: super::recorder(&client, "job-controller"),
        client,
        pods,
        pod_index: informers.pods.index(),
        expectations: Expectations::default(),
    });
    async move {
        info!("job controller started");
        let results = Controller::for_shared_stream(job_changes, jobs)
            .watches_shared_stream(
                pod_changes,
                controller_ref::owners_trigger(job_index, |job: &Job| {
                    LabelSelector::from_api(job.spec.as_ref()?.selector.as_ref()?).ok()
                }),
            )
            .with_config(super::concurrent_syncs(CONCURRENT_SYNCS))
            .run(reconcile, error_policy, context);
        super::drive("job", results, shutdown).await;
    }
}

struct Context {
    client: kube::Client,
    recorder: Recorder,
    pods: Store<CachedPod>,
    /// The pods by controller and namespace: a reconcile reads its own and its orphans.
    pod_index: Index<CachedPod>,
    expectations: Expectations,
}

fn error_policy(_job: Arc<Job>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!("syncing a job: {err}");
    Action::requeue(Duration::from_secs(5))
}

/// How a Job ended.
struct Finish {
    failed: bool,
    reason: &'static str,
    message: &'static str,
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !super::informers::synced(&ctx.pods).await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let key = ObjectRef::from_obj(job.as_ref());
    let namespace = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let now = Utc::now();
    let spec = job.spec.clone().unwrap_or_default();
    let old_status = job.status.clone().unwrap_or_default();
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if let Some(finished_at) = finished_at(&old_status) {
        return expire(&ctx, &job, &spec, finished_at, now).await;
    }
    let Some(selector) = spec
        .selector
        .as_ref()
        .and_then(|s| LabelSelector::from_api(s).ok())
        .filter(|s| !s.is_empty())
    else {
        // The API server refuses these.
        return Ok(Action::await_change());
    };
    let uid = job.uid().unwrap_or_default();
    let pods_api: Api<CachedPod> = Api::namespaced(ctx.client.clone(), &namespace);

    // The Job's pods, adopting orphans its selector matches.
    let mut owned = Vec::new();
    for pod in ctx
        .pod_index
        .controlled_by(&uid)
        .into_iter()
        .chain(ctx.pod_index.orphans_in(&namespace))
    {
        if pod.namespace().as_deref() != Some(namespace.as_str()) || !selector.matches(pod.labels())
        {
            continue;
        }
        match controller_of(pod.as_ref()) {
            Some(owner) if owner.uid == uid => owned.push(pod),
            Some(_) => {}
            None => {
                if let Some(adopted) = controller_ref::adopt(&pods_api, &pod, job.as_ref()).await? {
                    owned.push(Arc::new(adopted));
                }
            }
        }
    }
    let phase = |pod: &CachedPod| pod.status.as_ref().and_then(|s| s.phase.clone());
    let succeeded_pods: Vec<&Arc<CachedPod>> = owned
        .iter()
        .filter(|p| phase(p).as_deref() == Some("Succeeded"))
        .collect();
    // Only pods that failed count: without Kubernetes' tracking finalizer, a pod being deleted
    // (by this controller, on suspend or scale-down, or by a user) is not known to have failed.
    let failed_pods: Vec<&Arc<CachedPod>> = owned
        .iter()
        .filter(|p| phase(p).as_deref() == Some("Failed"))
        .collect();
    let active: Vec<&Arc<CachedPod>> = owned
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && !matches!(phase(p).as_deref(), Some("Succeeded" | "Failed"))
        })
        .collect();
    let terminating = owned
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_some()
                && !matches!(phase(p).as_deref(), Some("Succeeded" | "Failed"))
        })
        .count();

    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let mut completed_indexes = parse_indexes(old_status.completed_indexes.as_deref());
    if indexed {
        completed_indexes.extend(succeeded_pods.iter().filter_map(|p| pod_index(p)));
        let completions = spec.completions.unwrap_or(0);
        completed_indexes.retain(|i| *i < completions);
    }
    let succeeded = old_status.succeeded.unwrap_or(0).max(if indexed {
        count(completed_indexes.len())
    } else {
        count(succeeded_pods.len())
    });
    let failed = old_status.failed.unwrap_or(0).max(count(failed_pods.len()));
    let restarts: i32 = if spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure")
    {
        active
            .iter()
            .flat_map(|p| {
                p.status.iter().flat_map(|s| {
                    s.init_container_statuses
                        .iter()
                        .flatten()
                        .chain(s.container_statuses.iter().flatten())
                })
            })
            .map(|c| c.restart_count.max(0))
            .fold(0i32, i32::saturating_add)
    } else {
        0
    };

    let mut status = JobStatus {
        succeeded: Some(succeeded),
        failed: Some(failed),
        start_time: old_status.start_time.clone(),
        completion_time: None,
        conditions: old_status.conditions.clone(),
        completed_indexes: indexed.then(|| format_indexes(&completed_indexes)),
        terminating: Some(count(terminating)),
        ..Default::default()
    };
    let mut requeue: Option<Duration> = None;
    let suspended = spec.suspend == Some(true);
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let deadline = spec
        .active_deadline_seconds
        .zip(old_status.start_time.as_ref())
        .map(|(seconds, start)| plus_seconds(start.0, seconds));
    let complete = match (spec.completions, indexed) {
        (Some(completions), true) => count(completed_indexes.len()) >= completions,
        (Some(completions), false) => succeeded >= completions,
        (None, _) => succeeded > 0 && active.is_empty(),
    };
    // Kubernetes' pastBackoffLimit: more failed pods than the limit, or (OnFailure) as many
    // container restarts as the limit (any, with a limit of 0).
    let restarts_past = if backoff_limit == 0 {
        restarts > 0
    } else {
        restarts >= backoff_limit
    };
    let finish = if let Some(target) = target_reached(&old_status) {
        Some(target)
    } else if failed > backoff_limit || restarts_past {
        Some(Finish {
            failed: true,
            reason: "BackoffLimitExceeded",
            message: "Job has reached the specified backoff limit",
        })
    } else if !suspended && deadline.is_some_and(|deadline| now >= deadline) {
        Some(Finish {
            failed: true,
            reason: "DeadlineExceeded",
            message: "Job was active longer than specified deadline",
        })
    } else if complete {
        Some(Finish {
            failed: false,
            reason: "CompletionsReached",
            message: "Reached expected number of succeeded pods",
        })
    } else {
        None
    };

    let mut active_count = active.len();
    if let Some(finish) = &finish {
        // First the target condition, and the pods still running stopped; the Job is
        // Complete or Failed once none of its pods is left terminating.
        delete_pods(&ctx, &job, &active).await?;
        active_count = 0;
        let (target, last) = if finish.failed {
            ("FailureTarget", "Failed")
        } else {
            ("SuccessCriteriaMet", "Complete")
        };
        set_condition(
            &mut status,
            target,
            "True",
            finish.reason,
            finish.message,
            now,
        );
        if !active.is_empty() || terminating > 0 {
            requeue = Some(Duration::from_secs(1));
        } else {
            set_condition(
                &mut status,
                last,
                "True",
                finish.reason,
                finish.message,
                now,
            );
            if !finish.failed {
                status.completion_time = Some(Time(now));
            }
            ctx.recorder.record(
                object_ref(job.as_ref()),
                if finish.failed {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                if finish.failed {
                    finish.reason
                } else {
                    "Completed"
                },
                if finish.failed {
                    finish.message.to_owned()
                } else {
                    String::from("Job completed")
                },
            );
        }
    } else if suspended {
        delete_pods(&ctx, &job, &active).await?;
        active_count = 0;
        if !holds(&status, "Suspended") {
            set_condition(
                &mut status,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
                now,
            );
            ctx.recorder.record(
                object_ref(job.as_ref()),
                EventType::Normal,
                "Suspended",
                String::from("Job suspended"),
            );
        }
    } else {
        if holds(&status, "Suspended") {
            set_condition(
                &mut status,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
                now,
            );
            status.start_time = Some(Time(now));
            ctx.recorder.record(
                object_ref(job.as_ref()),
                EventType::Normal,
                "Resumed",
                String::from("Job resumed"),
            );
        }
        let start = status.start_time.get_or_insert(Time(now)).0;
        if let Some(deadline) = spec
            .active_deadline_seconds
            .map(|seconds| plus_seconds(start, seconds))
        {
            let left = (deadline - now).to_std().unwrap_or(Duration::ZERO);
            requeue = Some(left + Duration::from_millis(100));
        }
        if ctx.expectations.satisfied(&key, &ctx.pods) {
            let parallelism = usize::try_from(spec.parallelism.unwrap_or(1).max(0)).unwrap_or(0);
            // At most `room` pods, and 500 per reconcile (Kubernetes' MaxPodCreateDeletePerSync).
            let room = parallelism
                .saturating_sub(active.len())
                .min(MAX_CREATES_PER_SYNC);
            let missing: Vec<Option<i32>> = if indexed {
                let running: BTreeSet<i32> = active.iter().filter_map(|p| pod_index(p)).collect();
                (0..spec.completions.unwrap_or(0))
                    .filter(|i| !completed_indexes.contains(i) && !running.contains(i))
                    .take(room)
                    .map(Some)
                    .collect()
            } else {
                let left = match spec.completions {
                    Some(completions) => usize::try_from(completions.saturating_sub(succeeded))
                        .unwrap_or(0)
                        .saturating_sub(active.len()),
                    None if succeeded > 0 => 0,
                    None => parallelism,
                };
                vec![None; left.min(room)]
            };
            let wait = backoff_left(&failed_pods, failed, now);
            if !missing.is_empty() && room > 0 {
                match wait {
                    Some(wait) => {
                        requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
                    }
                    None => {
                        let made = create_pods(&ctx, &job, &missing).await;
                        active_count += made;
                        if made < missing.len() {
                            // Refused (a quota, a webhook): tried again shortly.
                            requeue = Some(Duration::from_secs(5));
                        }
                    }
                }
            } else if active.len() > parallelism {
                // Parallelism went down: the newest pods go first.
                let mut surplus = active.clone();
                surplus.sort_by_key(|p| std::cmp::Reverse(p.creation_timestamp()));
                surplus.truncate(active.len() - parallelism);
                delete_pods(&ctx, &job, &surplus).await?;
                active_count = parallelism;
            }
        } else {
            requeue = Some(Duration::from_secs(1));
        }
    }
    status.active = Some(count(active_count));
    status.ready = Some(count(
        active
            .iter()
            .filter(|p| is_ready(p))
            .count()
            .min(active_count),
    ));

    if job.status.as_ref() != Some(&status) {
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = json!({ "status": status });
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// When a finished Job finished (its `Complete` or `Failed` condition).
fn finished_at(status: &JobStatus) -> Option<DateTime<Utc>> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| {
            c.last_transition_time
                .as_ref()
                .or(status.completion_time.as_ref())
                .map_or_else(Utc::now, |t| t.0)
        })
}

/// A finished Job's end: deleted (with its pods) `ttlSecondsAfterFinished` after it finished.
async fn expire(
    ctx: &Context,
    job: &Job,
    spec: &JobSpec,
    finished_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Action, Error> {
    let Some(ttl) = spec.ttl_seconds_after_finished else {
        return Ok(Action::await_change());
    };
    let expires = plus_seconds(finished_at, i64::from(ttl));
    if now < expires {
        let left = (expires - now).to_std().unwrap_or(Duration::ZERO);
        return Ok(Action::requeue(left + Duration::from_millis(100)));
    }
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..DeleteParams::default()
    };
    match api.delete(&job.name_any(), &params).await {
        Ok(_) => {
            info!(job = %job.name_any(), "deleted a finished job after its ttlSecondsAfterFinished")
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(err) => return Err(err.into()),
    }
    Ok(Action::await_change())
}

/// How long to wait before the next pod after `failed` failures: 10 s doubled per failure
/// beyond the first (at most 10 minutes), counted from when the last failed pod ended.
fn backoff_left(
    failed_pods: &[&Arc<CachedPod>],
    failed: i32,
    now: DateTime<Utc>,
) -> Option<Duration> {
    if failed <= 0 {
        return None;
    }
    let last = failed_pods.iter().filter_map(|p| ended_at(p)).max()?;
    let exponent = u32::try_from(failed - 1).unwrap_or(u32::MAX).min(16);
    let backoff = FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(MAX_BACKOFF);
    let elapsed = (now - last).to_std().unwrap_or(Duration::ZERO);
    backoff.checked_sub(elapsed).filter(|left| !left.is_zero())
}

/// When a failed pod's last container ended.
fn ended_at(pod: &CachedPod) -> Option<DateTime<Utc>> {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
        .or_else(|| {
            pod.status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .find(|c| c.type_ == "Ready" && c.status == "False")
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0)
        })
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The end a Job is already headed for: its `FailureTarget` or `SuccessCriteriaMet`
/// condition, with the reason and message it was given.
fn target_reached(status: &JobStatus) -> Option<Finish> {
    let condition = status.conditions.iter().flatten().find(|c| {
        (c.type_ == "FailureTarget" || c.type_ == "SuccessCriteriaMet") && c.status == "True"
    })?;
    let (reason, message) = match condition.reason.as_deref() {
        Some("BackoffLimitExceeded") => (
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ),
        Some("DeadlineExceeded") => (
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ),
        _ => (
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        ),
    };
    Some(Finish {
        failed: condition.type_ == "FailureTarget",
        reason,
        message,
    })
}

fn holds(status: &JobStatus, condition: &str) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == condition && c.status == "True")
}

/// Sets `condition` (its transition time only when its status changes).
fn set_condition(
    status: &mut JobStatus,
    condition: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let new = JobCondition {
        type_: condition.to_owned(),
        status: value.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    };
    match conditions.iter_mut().find(|c| c.type_ == condition) {
        Some(existing) if existing.status == value => {
            existing.reason = new.reason;
            existing.message = new.message;
        }
        Some(existing) => *existing = new,
        None => conditions.push(new),
    }
}

/// An Indexed Job's pod's index.
fn pod_index(pod: &CachedPod) -> Option<i32> {
    pod.annotations()
        .get(COMPLETION_INDEX)
        .and_then(|i| i.parse().ok())
        .filter(|i: &i32| *i >= 0)
}

/// `completedIndexes` ("1,3-5,7") as a set; what does not parse is left out.
fn parse_indexes(text: Option<&str>) -> BTreeSet<i32> {
    let mut indexes = BTreeSet::new();
    for part in text
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let range = match part.split_once('-') {
            Some((first, last)) => first.parse::<i32>().ok().zip(last.parse::<i32>().ok()),
            None => part.parse::<i32>().ok().map(|i| (i, i)),
        };
        // Bounded by the Indexed Job's limit of completions, whatever the text says.
        if let Some((first, last)) = range.filter(|(f, l)| *f >= 0 && f <= l && *l < 100_000) {
            indexes.extend(first..=last);
        }
    }
    indexes
}

/// A set of indexes as `completedIndexes` writes it: runs as `first-last`, comma-separated.
fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut runs: Vec<(i32, i32)> = Vec::new();
    for &i in indexes {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == i => *last = i,
            _ => runs.push((i, i)),
        }
    }
    runs.iter()
        .map(|(first, last)| {
            if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A new pod of the Job (for `index`, if Indexed): its template, owned by it.
fn pod_for(job: &Job, index: Option<i32>) -> Pod {
    let spec = job.spec.clone().unwrap_or_default();
    let template = spec.template;
    let meta = template.metadata.unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let mut pod_spec = template.spec.unwrap_or_default();
    let generate_name = match index {
        Some(index) => {
            labels.insert(COMPLETION_INDEX.to_owned(), index.to_string());
            annotations.insert(COMPLETION_INDEX.to_owned(), index.to_string());
            if pod_spec.hostname.is_none() {
                pod_spec.hostname = Some(format!("{}-{index}", job.name_any()));
            }
            let env = EnvVar {
                name: String::from("JOB_COMPLETION_INDEX"),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: Some(String::from("v1")),
                        field_path: format!("metadata.labels['{COMPLETION_INDEX}']"),
                    }),
                    ..EnvVarSource::default()
                }),
            };
            for container in pod_spec
                .init_containers
                .iter_mut()
                .flatten()
                .chain(pod_spec.containers.iter_mut())
            {
                container.env.get_or_insert_with(Vec::new).push(env.clone());
            }
            format!("{}-{index}-", job.name_any())
        }
        None => format!("{}-", job.name_any()),
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(job)]),
            ..ObjectMeta::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

/// Creates one pod per entry of `indexes` (`None` for a NonIndexed Job); returns how many were
/// made. A refused create is an event and a retry at the next reconcile.
async fn create_pods(ctx: &Context, job: &Job, indexes: &[Option<i32>]) -> usize {
    let key = ObjectRef::from_obj(job);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let params = PostParams::default();
    let pods: Vec<Pod> = indexes.iter().map(|index| pod_for(job, *index)).collect();
    let results = futures::future::join_all(pods.iter().map(|pod| api.create(&params, pod))).await;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(pod) => {
                ctx.recorder.record(
                    object_ref(job),
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created pod: {}", pod.name_any()),
                );
                created.push(pod.name_any());
            }
            Err(err) => {
                warn!(job = %job.name_any(), "creating a pod: {err}");
                ctx.recorder.record(
                    object_ref(job),
                    EventType::Warning,
                    "FailedCreate",
                    format!("Error creating: {}", message_of(&err)),
                );
            }
        }
    }
    ctx.expectations.expect(&key, Change::Create, &created);
    created.len()
}

/// Deletes `pods` of the Job.
async fn delete_pods(
    ctx: &Context,
    job: &Job,
    pods: &[&Arc<CachedPod>],
) -> Result<(), kube::Error> {
    let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    delete_owned_pods(&ctx.client, &ctx.recorder, &ctx.expectations, job, &names).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_read_and_write_as_kubernetes_writes_them() {
        let set = parse_indexes(Some("0-2,4,7-8"));
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), [0, 1, 2, 4, 7, 8]);
        assert_eq!(format_indexes(&set), "0-2,4,7-8");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
        // What does not parse, is backwards or is out of range is left out.
        let odd = parse_indexes(Some("x,3-1,-2,5,99999999999,1-999999"));
        assert_eq!(odd.iter().copied().collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn indexed_pods_carry_their_index() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "sum", "namespace": "default", "uid": "u1"},
            "spec": {"template": {"metadata": {"labels": {"app": "sum"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}
        }))
        .expect("job");
        let pod = pod_for(&job, Some(2));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("sum-2-"));
        assert_eq!(
            pod.labels().get(COMPLETION_INDEX).map(String::as_str),
            Some("2")
        );
        assert_eq!(pod_index(&CachedPod::from(&pod)), Some(2));
        let spec = pod.spec.expect("spec");
        assert_eq!(spec.hostname.as_deref(), Some("sum-2"));
        let env = spec.containers[0].env.as_ref().expect("env");
        assert_eq!(env[0].name, "JOB_COMPLETION_INDEX");
        let plain = pod_for(&job, None);
        assert_eq!(plain.metadata.generate_name.as_deref(), Some("sum-"));
        assert_eq!(pod_index(&CachedPod::from(&plain)), None);
    }

    #[test]
    fn the_backoff_doubles_from_the_last_failure() {
        let failed_at = |seconds_ago: i64| {
            let at = Utc::now() - chrono::TimeDelta::seconds(seconds_ago);
            Arc::new(
                serde_json::from_value::<CachedPod>(json!({
                    "metadata": {"name": "p"},
                    "status": {"phase": "Failed", "containerStatuses": [{
                        "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                        "state": {"terminated": {"exitCode": 1, "finishedAt": at.to_rfc3339()}}}]}
                }))
                .expect("pod"),
            )
        };
        let pod = failed_at(5);
        let now = Utc::now();
        let left = backoff_left(&[&pod], 1, now).expect("waiting");
        assert!(
            left <= Duration::from_secs(5) && left > Duration::from_secs(3),
            "{left:?}"
        );
        let left = backoff_left(&[&pod], 2, now).expect("waiting");
        assert!(left > Duration::from_secs(14), "{left:?}");
        assert_eq!(backoff_left(&[&failed_at(30)], 1, now), None);
        assert_eq!(backoff_left(&[&pod], 0, now), None);
        // Never longer than 10 minutes, however many failures.
        let left = backoff_left(&[&pod], i32::MAX, now).expect("waiting");
        assert!(left <= MAX_BACKOFF);
    }
}
