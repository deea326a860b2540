//! Events the controllers write (core/v1, as `kubectl describe` lists them), each with the
//! controller's name as its source.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use tracing::warn;

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something went wrong.
    Warning,
}

/// Writes one Event about `object` (in its namespace; `default` for cluster objects). A
/// failure is logged, not returned: an Event is worth less than the work it reports.
pub async fn record(
    client: &kube::Client,
    component: &str,
    object: ObjectReference,
    type_: EventType,
    reason: &str,
    message: String,
) {
    let namespace = object
        .namespace
        .clone()
        .unwrap_or_else(|| String::from("default"));
    let now = Time(chrono::Utc::now());
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", object.name.as_deref().unwrap_or("object"))),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: object,
        reason: Some(reason.to_owned()),
        message: Some(message),
        type_: Some(String::from(match type_ {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        })),
        count: Some(1),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        source: Some(EventSource {
            component: Some(component.to_owned()),
            host: None,
        }),
        ..Default::default()
    };
    let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
    if let Err(err) = events.create(&PostParams::default(), &event).await {
        warn!("recording event {reason}: {err}");
    }
}

/// A reference to `object` for an Event.
pub fn object_ref<K>(object: &K) -> ObjectReference
where
    K: kube::Resource<DynamicType = ()>,
{
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: object.meta().name.clone(),
        namespace: object.meta().namespace.clone(),
        uid: object.meta().uid.clone(),
        resource_version: object.meta().resource_version.clone(),
        ..Default::default()
    }
}
