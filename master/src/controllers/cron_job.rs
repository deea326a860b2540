//! The CronJob controller: makes each CronJob's Jobs on its schedule, as
//! kube-controller-manager's `cronjob` controller does:
//! - the schedule is standard cron (five fields, names of months and days) or one of
//!   `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`, read in
//!   `spec.timeZone` (UTC when unset);
//! - at each scheduled time it creates the Job `<cronjob>-<minutes since the epoch>` from the
//!   job template, owned by the CronJob and annotated with the time it was scheduled for,
//!   unless that time is further back than `startingDeadlineSeconds` (a missed start, an
//!   event `MissSchedule`), the CronJob is suspended, or `concurrencyPolicy` says otherwise:
//!   `Forbid` skips a run while a Job runs, `Replace` deletes the running Jobs first;
//! - `status.active` lists the running Jobs, `lastScheduleTime` and `lastSuccessfulTime` say
//!   when it last made one and when one last completed;
//! - finished Jobs beyond `successfulJobsHistoryLimit` (3) and `failedJobsHistoryLimit` (1)
//!   are deleted, oldest first, with their pods.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use serde_json::json;
use tracing::{info, warn};

use super::informers::Informers;
use skiff_api::events::{EventType, Recorder, object_ref};
use skiff_api::meta::{controller_of, controller_ref};

/// Objects reconciled at once (kube-controller-manager's `--concurrent-cron-job-syncs`).
const CONCURRENT_SYNCS: u16 = 5;

/// The annotation with the time a Job was scheduled for.
const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Missed start times past which the controller warns (Kubernetes' limit).
const MAX_MISSED: usize = 100;
/// Most scheduled times one reconcile walks through to the latest one due.
const MAX_WALK: usize = 600_000;

/// A parsed schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Five-field cron.
    cron: String,
}

impl Schedule {
    /// Parses a CronJob's schedule; the error says why not, as Kubernetes' parser would.
    pub fn parse(schedule: &str) -> Result<Schedule, String> {
        let cron = match schedule.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(format!("unrecognized descriptor: {other}"));
            }
            other => other,
        };
        let fields = cron.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {fields}: [{}]",
                cron.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
        let schedule = Schedule {
            cron: cron.to_owned(),
        };
        schedule
            .next_after(Utc::now(), chrono_tz::UTC)
            .map(|_| schedule.clone())
    }

    /// The first scheduled time after `after`, read in `zone`. When both the day of the month
    /// and the day of the week are restricted, either one matching will do, as in cron.
    fn next_after(
        &self,
        after: DateTime<Utc>,
        zone: chrono_tz::Tz,
    ) -> Result<DateTime<Utc>, String> {
        let next = |cron: &str| {
            cron_parser::parse(cron, &after.with_timezone(&zone))
                .map(|next| next.with_timezone(&Utc))
                .map_err(|err| err.to_string())
        };
        let fields: Vec<&str> = self.cron.split_whitespace().collect();
        match fields.as_slice() {
            [minute, hour, day, month, weekday] if *day != "*" && *weekday != "*" => {
                let by_day = next(&format!("{minute} {hour} {day} {month} *"));
                let by_weekday = next(&format!("{minute} {hour} * {month} {weekday}"));
                match (by_day, by_weekday) {
                    (Ok(a), Ok(b)) => Ok(a.min(b)),
                    (Ok(a), Err(_)) => Ok(a),
                    (Err(_), Ok(b)) => Ok(b),
                    (Err(err), Err(_)) => Err(err),
                }
            }
            _ => next(&self.cron),
        }
    }
}

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
    let cron_jobs = informers.cron_jobs.reader();
    let changes = informers.cron_jobs.subscribe();
    let jobs = informers.jobs.reader();
    let job_changes = informers.jobs.subscribe();
    let context = Arc::new(Context {
        recorder: super::recorder(&client, "cronjob-controller"),
        client,
        jobs,
    });
    async move {
        info!("cronjob controller started");
        let results = Controller::for_shared_stream(changes, cron_jobs)
            .owns_shared_stream(job_changes)
            .with_config(super::concurrent_syncs(CONCURRENT_SYNCS))
            .run(reconcile, error_policy, context);
        super::drive("cronjob", results, shutdown).await;
    }
}

struct Context {
    client: kube::Client,
    recorder: Recorder,
    jobs: Store<Job>,
}

fn error_policy(_cron_job: Arc<CronJob>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!("syncing a cronjob: {err}");
    Action::requeue(Duration::from_secs(5))
}

/// Whether a Job finished, and how: `Some(true)` Complete, `Some(false)` Failed.
fn finished(job: &Job) -> Option<bool> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_ == "Complete")
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some(String::from("batch/v1")),
        kind: Some(String::from("Job")),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

async fn reconcile(cron_job: Arc<CronJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    if cron_job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if !super::informers::synced(&ctx.jobs).await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let namespace = cron_job.namespace().unwrap_or_default();
    let name = cron_job.name_any();
    let uid = cron_job.uid().unwrap_or_default();
    let spec = cron_job.spec.clone().unwrap_or_default();
    let now = Utc::now();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);

    let mut jobs: Vec<Arc<Job>> = ctx
        .jobs
        .state()
        .into_iter()
        .filter(|j| {
            j.namespace().as_deref() == Some(namespace.as_str())
                && controller_of(j.as_ref()).is_some_and(|owner| owner.uid == uid)
        })
        .collect();
    jobs.sort_by_key(|j| j.creation_timestamp());
    let mut active: Vec<Arc<Job>> = jobs
        .iter()
        .filter(|j| finished(j).is_none() && j.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    let last_successful = jobs
        .iter()
        .filter(|j| finished(j) == Some(true))
        .filter_map(|j| j.status.as_ref()?.completion_time.clone())
        .chain(
            cron_job
                .status
                .as_ref()
                .and_then(|s| s.last_successful_time.clone()),
        )
        .max_by_key(|t| t.0);

    // Finished Jobs beyond the history limits go, oldest first.
    for (succeeded, limit) in [
        (true, spec.successful_jobs_history_limit.unwrap_or(3)),
        (false, spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let done: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| finished(j) == Some(succeeded) && j.metadata.deletion_timestamp.is_none())
            .collect();
        let keep = usize::try_from(limit.max(0)).unwrap_or(0);
        for job in done.iter().take(done.len().saturating_sub(keep)) {
            delete_job(&ctx, &jobs_api, &cron_job, job).await?;
        }
    }

    let zone = spec
        .time_zone
        .as_deref()
        .map_or(Ok(chrono_tz::UTC), str::parse::<chrono_tz::Tz>);
    let schedule = Schedule::parse(&spec.schedule);
    let (zone, schedule) = match (zone, schedule) {
        (Ok(zone), Ok(schedule)) => (zone, schedule),
        (Err(_), _) => {
            ctx.recorder.record(
                object_ref(cron_job.as_ref()),
                EventType::Warning,
                "UnknownTimeZone",
                format!("invalid timeZone: {:?}", spec.time_zone),
            );
            return Ok(Action::await_change());
        }
        (_, Err(message)) => {
            ctx.recorder.record(
                object_ref(cron_job.as_ref()),
                EventType::Warning,
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {message}", spec.schedule),
            );
            return Ok(Action::await_change());
        }
    };

    let old_status = cron_job.status.clone().unwrap_or_default();
    let mut last_schedule = old_status.last_schedule_time.clone();
    if spec.suspend != Some(true) {
        // The latest scheduled time since the last one made (or the CronJob's creation).
        let mut since = last_schedule
            .as_ref()
            .or(cron_job.metadata.creation_timestamp.as_ref())
            .map_or(now, |t| t.0);
        if let Some(deadline) = spec.starting_deadline_seconds {
            since = since.max(skiff_api::time::plus_seconds(
                now,
                deadline.saturating_neg(),
            ));
        }
        // The latest time that is due: a walk through the missed ones, bounded (a year of
        // minutes), warned about past 100 as Kubernetes warns.
        let mut due = None;
        let mut walked = 0usize;
        while let Ok(next) = schedule.next_after(since, zone) {
            if next > now || walked >= MAX_WALK {
                break;
            }
            due = Some(next);
            since = next;
            walked += 1;
        }
        if walked > MAX_MISSED {
            ctx.recorder.record(
                object_ref(cron_job.as_ref()),
                EventType::Warning,
                "TooManyMissedTimes",
                format!("too many missed start times: > {MAX_MISSED}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"),
            );
        }
        // A time that has its Job already (made by an earlier reconcile) is done.
        let made_already = |at: DateTime<Utc>| {
            let job_name = job_for(&cron_job, at, zone).name_any();
            jobs.iter().any(|j| j.name_any() == job_name)
                || last_schedule.as_ref().is_some_and(|t| t.0 == at)
        };
        if let Some(at) = due.filter(|at| !made_already(*at)) {
            let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
            if policy == "Forbid" && !active.is_empty() {
                // lastScheduleTime stays: the run starts once the running Job ends.
                info!(cronjob = %name, "a job still runs: this run waits (concurrencyPolicy Forbid)");
            } else {
                if policy == "Replace" {
                    for job in std::mem::take(&mut active) {
                        delete_job(&ctx, &jobs_api, &cron_job, &job).await?;
                    }
                }
                let job = job_for(&cron_job, at, zone);
                let job_name = job.name_any();
                match jobs_api.create(&PostParams::default(), &job).await {
                    Ok(created) => {
                        ctx.recorder.record(
                            object_ref(cron_job.as_ref()),
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!("Created job {job_name}"),
                        );
                        active.push(Arc::new(created));
                    }
                    // Made already (a reconcile before this one, whose status write was lost).
                    Err(kube::Error::Api(status)) if status.code == 409 => {}
                    Err(err) => {
                        ctx.recorder.record(
                            object_ref(cron_job.as_ref()),
                            EventType::Warning,
                            "FailedCreate",
                            format!("Error creating job: {err}"),
                        );
                        return Err(err.into());
                    }
                }
                last_schedule = Some(Time(at));
            }
        }
    }

    active.sort_by_key(|j| j.name_any());
    let status = CronJobStatus {
        active: (!active.is_empty()).then(|| active.iter().map(|j| reference(j)).collect()),
        last_schedule_time: last_schedule,
        last_successful_time: last_successful,
    };
    if cron_job.status.as_ref() != Some(&status) {
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &namespace);
        let mut status_json = serde_json::to_value(&status).unwrap_or_default();
        // A merge patch keeps what it leaves out: no active Jobs is a null.
        if status.active.is_none()
            && let Some(fields) = status_json.as_object_mut()
        {
            fields.insert(String::from("active"), serde_json::Value::Null);
        }
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status_json })),
        )
        .await?;
    }
    // Back at the next scheduled time.
    let next = schedule
        .next_after(now, zone)
        .ok()
        .and_then(|next| (next - now).to_std().ok())
        .unwrap_or(Duration::from_secs(300));
    Ok(Action::requeue(next + Duration::from_millis(100)))
}

/// The CronJob's Job for the time `at`: its job template, named by the minute, the time in
/// its annotation written in the CronJob's `zone`.
fn job_for(cron_job: &CronJob, at: DateTime<Utc>, zone: chrono_tz::Tz) -> Job {
    let template = cron_job
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_AT.to_owned(),
        at.with_timezone(&zone)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{}",
                cron_job.name_any(),
                at.timestamp().div_euclid(60)
            )),
            namespace: cron_job.namespace(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cron_job)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Deletes one of the CronJob's Jobs with its pods.
async fn delete_job(
    ctx: &Context,
    api: &Api<Job>,
    cron_job: &CronJob,
    job: &Job,
) -> Result<(), kube::Error> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match api.delete(&job.name_any(), &params).await {
        Ok(_) => {
            ctx.recorder.record(
                object_ref(cron_job),
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted job {}", job.name_any()),
            );
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schedules_parse_as_kubernetes_reads_them() {
        assert!(Schedule::parse("*/5 * * * *").is_ok());
        assert!(Schedule::parse("0 9 * * MON-FRI").is_ok());
        assert!(Schedule::parse("@hourly").is_ok());
        assert_eq!(
            Schedule::parse("bad").unwrap_err(),
            "expected exactly 5 fields, found 1: [bad]"
        );
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("@fortnightly").is_err());
        // Day of month or day of week, as in cron: the 1st, or any Monday.
        let either = Schedule::parse("0 0 1 * MON").expect("schedule");
        let at = Utc
            .with_ymd_and_hms(2026, 12, 2, 0, 0, 0)
            .single()
            .expect("time");
        assert_eq!(
            either.next_after(at, chrono_tz::UTC),
            Ok(Utc
                .with_ymd_and_hms(2026, 12, 7, 0, 0, 0)
                .single()
                .expect("t"))
        );
    }

    #[test]
    fn the_next_time_is_read_in_the_time_zone() {
        let schedule = Schedule::parse("0 9 * * *").expect("schedule");
        let at = Utc
            .with_ymd_and_hms(2026, 7, 1, 0, 0, 0)
            .single()
            .expect("time");
        let utc = schedule.next_after(at, chrono_tz::UTC).expect("next");
        assert_eq!(
            utc,
            Utc.with_ymd_and_hms(2026, 7, 1, 9, 0, 0)
                .single()
                .expect("t")
        );
        // 09:00 in Lisbon in summer is 08:00 UTC.
        let lisbon = schedule
            .next_after(at, "Europe/Lisbon".parse().expect("zone"))
            .expect("next");
        assert_eq!(
            lisbon,
            Utc.with_ymd_and_hms(2026, 7, 1, 8, 0, 0)
                .single()
                .expect("t")
        );
    }

    #[test]
    fn a_job_is_named_by_its_minute_and_owned_by_its_cron_job() {
        let cron_job: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "every", "namespace": "default", "uid": "u1"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"metadata": {"labels": {"a": "b"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "i"}]}}}}}
        }))
        .expect("cronjob");
        let at = Utc
            .with_ymd_and_hms(2026, 12, 3, 10, 1, 0)
            .single()
            .expect("time");
        let job = job_for(&cron_job, at, chrono_tz::UTC);
        assert_eq!(job.name_any(), format!("every-{}", at.timestamp() / 60));
        assert_eq!(job.labels().get("a").map(String::as_str), Some("b"));
        assert_eq!(
            job.annotations().get(SCHEDULED_AT).map(String::as_str),
            Some("2026-12-03T10:01:00Z")
        );
        assert_eq!(controller_of(&job).map(|o| o.uid.as_str()), Some("u1"));
    }
}
