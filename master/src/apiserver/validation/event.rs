//! core/v1 Events: the involved object's namespace and the reporting fields.

use k8s_openapi::api::core::v1::Event;

use skiff_api::names::NameRule;
use skiff_api::selectors;

use crate::apiserver::field_error::FieldError;

use super::metadata::object_meta;

/// A core/v1 Event, as Kubernetes checks it for the v1 API: a name usable in a path, the
/// involved object's namespace agrees with the event's, and events with `eventTime` carry
/// reportingComponent, reportingInstance, action and reason.
pub fn event(ev: &Event) -> Vec<FieldError> {
    let mut errs = object_meta(&ev.metadata, true, NameRule::PathSegment);
    let namespace = ev.metadata.namespace.as_deref().unwrap_or("");
    let involved_ns = ev.involved_object.namespace.as_deref().unwrap_or("");
    let mismatch = || {
        FieldError::invalid(
            "involvedObject.namespace",
            involved_ns,
            "does not match event.namespace",
        )
    };
    if ev.event_time.is_none() {
        let ok = if involved_ns.is_empty() {
            namespace.is_empty() || namespace == "default"
        } else {
            namespace == involved_ns
        };
        if !ok {
            errs.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            errs.push(mismatch());
        }
        let component = ev.reporting_component.as_deref().unwrap_or("");
        if component.is_empty() {
            errs.push(FieldError::required("reportingComponent", ""));
        } else if let Err(msg) = selectors::validate_label_key(component) {
            errs.push(FieldError::invalid("reportingComponent", component, msg));
        }
        let limited = [
            (
                "reportingInstance",
                ev.reporting_instance.as_deref(),
                128,
                true,
            ),
            ("action", ev.action.as_deref(), 128, true),
            ("reason", ev.reason.as_deref(), 128, true),
            ("message", ev.message.as_deref(), 1024, false),
        ];
        for (field, value, max, required) in limited {
            let value = value.unwrap_or("");
            if required && value.is_empty() {
                errs.push(FieldError::required(field, ""));
            }
            if value.len() > max {
                errs.push(FieldError::invalid(
                    field,
                    "",
                    format!("can have at most {max} characters"),
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{fields, from, only};
    use super::*;

    #[test]
    fn event_rules() {
        let ev: Event = from(json!({
            "metadata": {"name": "web.17a9c2", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "Scheduled", "message": "assigned", "type": "Normal"
        }));
        assert_eq!(event(&ev), vec![]);
        let mut other = ev.clone();
        other.involved_object.namespace = Some("kube-system".into());
        assert_eq!(
            only(&event(&other), "involvedObject.namespace").detail,
            "does not match event.namespace"
        );

        let new_style: Event = from(json!({
            "metadata": {"name": "web.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "eventTime": "2024-01-01T00:00:00.000000Z"
        }));
        assert_eq!(
            fields(&event(&new_style)),
            [
                "reportingComponent",
                "reportingInstance",
                "action",
                "reason"
            ]
        );
    }
}
