//! batch/v1 Jobs, checked as Kubernetes' `ValidateJob` checks them: counts that are not
//! negative, a selector that matches the template's labels, pods that restart `OnFailure` or
//! `Never`, a known completion mode (`Indexed` needs `completions`), and on update an
//! unchanged selector, template and completion mode.

use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};

use skiff_api::names::NameRule;

use crate::apiserver::field_error::FieldError;

use super::apps::{apps_selector, selector_immutable};
use super::metadata::{object_meta, object_meta_update};
use super::pod::pod_template_spec;
use super::{IMMUTABLE_MSG, nonnegative};

/// Most completions (and parallelism) an Indexed Job may have.
const MAX_INDEXED_COMPLETIONS: i32 = 100_000;

/// A Job.
pub fn job(job: &Job) -> Vec<FieldError> {
    let mut errs = object_meta(&job.metadata, true, NameRule::Dns1123Subdomain);
    let default_spec = JobSpec::default();
    errs.extend(job_spec(
        job.spec.as_ref().unwrap_or(&default_spec),
        "spec",
        true,
    ));
    errs
}

/// A Job's spec at `path` (`spec`, or a CronJob's `spec.jobTemplate.spec`, whose selector is
/// made when its Job is).
fn job_spec(spec: &JobSpec, path: &str, selector_required: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let at = |field: &str| format!("{path}.{field}");
    nonnegative(&mut errs, &at("parallelism"), spec.parallelism);
    nonnegative(&mut errs, &at("completions"), spec.completions);
    nonnegative(
        &mut errs,
        &at("activeDeadlineSeconds"),
        spec.active_deadline_seconds,
    );
    nonnegative(&mut errs, &at("backoffLimit"), spec.backoff_limit);
    nonnegative(
        &mut errs,
        &at("ttlSecondsAfterFinished"),
        spec.ttl_seconds_after_finished,
    );
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    match &spec.selector {
        None if selector_required => errs.push(FieldError::required(at("selector"), "")),
        Some(selector) if apps_selector(&mut errs, selector, template_labels) == Some(false) => {
            errs.push(FieldError::invalid_unquoted(
                at("template.metadata.labels"),
                super::go_string_map(template_labels),
                "`selector` does not match template `labels`",
            ));
        }
        None | Some(_) => {}
    }
    errs.extend(pod_template_spec(&spec.template, &at("template")));
    let restart = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or_default();
    // Pod defaults make an unset policy Always; Kubernetes says "required" for both.
    match restart {
        "OnFailure" | "Never" => {}
        "Always" | "" => errs.push(FieldError::required(
            at("template.spec.restartPolicy"),
            r#"valid values: "OnFailure", "Never""#,
        )),
        other => errs.push(FieldError::not_supported(
            at("template.spec.restartPolicy"),
            other,
            &["OnFailure", "Never"],
        )),
    }
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            match spec.completions {
                None => errs.push(FieldError::required(
                    at("completions"),
                    "when completion mode is Indexed",
                )),
                Some(n) if n > MAX_INDEXED_COMPLETIONS => errs.push(FieldError::invalid_unquoted(
                    at("completions"),
                    i64::from(n),
                    format!("must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode is Indexed"),
                )),
                Some(_) => {}
            }
            if let Some(n) = spec.parallelism.filter(|n| *n > MAX_INDEXED_COMPLETIONS) {
                errs.push(FieldError::invalid_unquoted(
                    at("parallelism"),
                    i64::from(n),
                    format!("must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode is Indexed"),
                ));
            }
        }
        Some(other) => errs.push(FieldError::not_supported(
            at("completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    match spec.pod_replacement_policy.as_deref() {
        None | Some("TerminatingOrFailed" | "Failed") => {}
        Some(other) => errs.push(FieldError::not_supported(
            at("podReplacementPolicy"),
            other,
            &["Failed", "TerminatingOrFailed"],
        )),
    }
    if spec.pod_failure_policy.is_some() {
        errs.push(FieldError::forbidden(
            at("podFailurePolicy"),
            "pod failure policies are not supported by this server yet",
        ));
    }
    if spec.success_policy.is_some() {
        errs.push(FieldError::forbidden(
            at("successPolicy"),
            "success policies are not supported by this server yet",
        ));
    }
    if spec.backoff_limit_per_index.is_some() {
        errs.push(FieldError::forbidden(
            at("backoffLimitPerIndex"),
            "a backoff limit per index is not supported by this server yet",
        ));
    }
    errs
}

/// A CronJob: a schedule that parses (standard cron, or `@hourly` and friends), a known time
/// zone (never `TZ=` in the schedule), a known concurrency policy, counts not negative, and
/// a job template that is a valid Job but for its selector.
pub fn cron_job(cron_job: &CronJob) -> Vec<FieldError> {
    // A CronJob's Jobs are named `<name>-<minutes>`: its name has room for that (52 bytes).
    let mut errs = object_meta(&cron_job.metadata, true, NameRule::Dns1123Subdomain);
    let name = cron_job.metadata.name.as_deref().unwrap_or_default();
    if name.len() > 52 {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be no more than 52 characters",
        ));
    }
    let default_spec = Default::default();
    let spec = cron_job.spec.as_ref().unwrap_or(&default_spec);
    if spec.schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else if spec.schedule.contains("TZ") {
        errs.push(FieldError::invalid(
            "spec.schedule",
            &spec.schedule,
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ));
    } else if let Err(message) = crate::controllers::cron_job::Schedule::parse(&spec.schedule) {
        errs.push(FieldError::invalid(
            "spec.schedule",
            &spec.schedule,
            message,
        ));
    }
    match spec.time_zone.as_deref() {
        None => {}
        Some("") => errs.push(FieldError::invalid(
            "spec.timeZone",
            "",
            "timeZone must be nil or non-empty string",
        )),
        Some("Local") => errs.push(FieldError::invalid(
            "spec.timeZone",
            "Local",
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        )),
        Some(zone) if zone.parse::<chrono_tz::Tz>().is_err() => errs.push(FieldError::invalid(
            "spec.timeZone",
            zone,
            format!("unknown time zone {zone}"),
        )),
        Some(_) => {}
    }
    match spec.concurrency_policy.as_deref() {
        None | Some("Allow" | "Forbid" | "Replace") => {}
        Some(other) => errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    nonnegative(
        &mut errs,
        "spec.startingDeadlineSeconds",
        spec.starting_deadline_seconds,
    );
    nonnegative(
        &mut errs,
        "spec.successfulJobsHistoryLimit",
        spec.successful_jobs_history_limit,
    );
    nonnegative(
        &mut errs,
        "spec.failedJobsHistoryLimit",
        spec.failed_jobs_history_limit,
    );
    let template_spec = spec.job_template.spec.clone().unwrap_or_default();
    errs.extend(job_spec(&template_spec, "spec.jobTemplate.spec", false));
    errs
}

/// CronJob update rules: those of the metadata.
pub fn cron_job_update(old: &CronJob, new: &CronJob) -> Vec<FieldError> {
    object_meta_update(&old.metadata, &new.metadata)
}

/// Job update rules: metadata; the selector, the completion mode and the pod template do not
/// change; completions only as an Indexed Job scales (equal to the new parallelism).
pub fn job_update(old: &Job, new: &Job) -> Vec<FieldError> {
    let mut errs = object_meta_update(&old.metadata, &new.metadata);
    let (Some(o), Some(n)) = (&old.spec, &new.spec) else {
        return errs;
    };
    if let (Some(os), Some(ns)) = (&o.selector, &n.selector) {
        selector_immutable(&mut errs, os, ns);
    }
    if o.template != n.template {
        errs.push(FieldError::invalid("spec.template", "{...}", IMMUTABLE_MSG));
    }
    if o.completion_mode != n.completion_mode {
        errs.push(FieldError::invalid(
            "spec.completionMode",
            n.completion_mode.as_deref().unwrap_or_default(),
            IMMUTABLE_MSG,
        ));
    }
    if o.completions != n.completions {
        let shown = n
            .completions
            .map_or_else(|| "null".to_owned(), |c| c.to_string());
        if n.completion_mode.as_deref() != Some("Indexed") {
            errs.push(FieldError::invalid(
                "spec.completions",
                shown,
                IMMUTABLE_MSG,
            ));
        } else if n.completions != n.parallelism {
            errs.push(FieldError::invalid(
                "spec.completions",
                shown,
                "can only be modified in tandem with spec.parallelism",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apiserver::defaults;

    /// A Job as the API server admits it: decoded, with its uid, defaulted.
    fn admitted(spec: serde_json::Value) -> Job {
        let mut job: Job = serde_json::from_value(json!({
            "metadata": {"name": "j", "namespace": "default", "uid": "u-1"},
            "spec": spec,
        }))
        .expect("a Job");
        defaults::job(&mut job);
        job
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_defaulted_job_selects_its_pods_by_uid_and_is_valid() {
        let job = admitted(json!({"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "i"}]}}}));
        assert_eq!(messages(&super::job(&job)), Vec::<String>::new());
        let spec = job.spec.expect("spec");
        assert_eq!((spec.completions, spec.parallelism), (Some(1), Some(1)));
        assert_eq!(spec.backoff_limit, Some(6));
        let labels = spec
            .template
            .metadata
            .and_then(|m| m.labels)
            .expect("labels");
        assert_eq!(labels["batch.kubernetes.io/controller-uid"], "u-1");
        assert_eq!(labels["job-name"], "j");
    }

    #[test]
    fn bad_jobs_get_kubernetes_messages() {
        let container = json!([{"name": "c", "image": "i"}]);
        for (spec, wanted) in [
            (
                json!({"completions": -1, "template": {"spec": {"restartPolicy": "Never", "containers": container}}}),
                "spec.completions: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                json!({"template": {"spec": {"containers": container}}}),
                "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
            ),
            (
                json!({"completionMode": "Indexed", "parallelism": 2, "template": {"spec": {"restartPolicy": "Never", "containers": container}}}),
                "spec.completions: Required value: when completion mode is Indexed",
            ),
            (
                json!({"manualSelector": true, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"restartPolicy": "Never", "containers": container}}}),
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"a":"c"}: `selector` does not match template `labels`"#,
            ),
        ] {
            let errs = messages(&job(&admitted(spec.clone())));
            assert!(errs.iter().any(|e| e == wanted), "{spec}: {errs:?}");
        }
    }

    #[test]
    fn the_template_and_selector_of_a_job_do_not_change() {
        let spec = json!({"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "i"}]}}});
        let old = admitted(spec);
        let mut new = old.clone();
        if let Some(spec) = new.spec.as_mut() {
            spec.template.spec.as_mut().expect("pod spec").containers[0].image = Some("j".into());
            spec.completions = Some(2);
        }
        let fields: Vec<String> = job_update(&old, &new)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["spec.template", "spec.completions"]);
    }
}
