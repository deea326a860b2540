//! The Event recorder (core/v1 Events, which `kubectl describe` and `kubectl get events`
//! show), one for every component: the scheduler, the controllers and the node agent.
//!
//! As client-go's `tools/record`: recording never blocks the caller; events go through a
//! bounded queue to one task that writes them, and are dropped, not waited for, when the
//! queue is full or the API server is out of reach (Events are best-effort in Kubernetes).
//! A Warning that repeats on the same object is counted on one Event (`count`,
//! `lastTimestamp`) instead of writing a new one each time. As client-go's
//! `EventSourceObjectSpamFilter`, each object may have 25 events in a burst, then one more
//! every 5 minutes: a controller making 10,000 pods for one owner records the first 25.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Utc;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::debug;

/// Events waiting to be written before new ones are dropped (client-go's queue length).
const MAX_QUEUED_EVENTS: usize = 1000;
/// Repeated Warnings remembered for counting.
const MAX_CORRELATED: usize = 4096;
/// Events one object may have at once (client-go's `defaultSpamBurst`).
const SPAM_BURST: f64 = 25.0;
/// Seconds for one more event of an object past the burst (client-go's `defaultSpamQPS`
/// is 1/300).
const SPAM_REFILL_SECONDS: f64 = 300.0;

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    /// The type's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// Who writes the events: `component` (`default-scheduler`, `kubelet`,
/// `replicaset-controller`), the host it runs on (kubelets name their node), and the
/// instance (`reportingInstance`).
#[derive(Clone, Debug, Default)]
pub struct Reporter {
    /// The component's name.
    pub component: String,
    /// The node, for node agents.
    pub host: Option<String>,
    /// This instance of the component.
    pub instance: String,
}

/// Hands events to the writing task; cheap to clone.
#[derive(Clone, Debug)]
pub struct Recorder {
    reporter: Arc<Reporter>,
    queue: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
    spam: Arc<Mutex<SpamFilter>>,
}

/// Per object, the events it may still have now (a token bucket), as client-go's spam filter.
#[derive(Debug, Default)]
struct SpamFilter {
    buckets: HashMap<String, (f64, std::time::Instant)>,
}

impl SpamFilter {
    /// Whether one more event of `key`'s may be written now (and takes it).
    fn allow(&mut self, key: String, now: std::time::Instant) -> bool {
        if self.buckets.len() >= MAX_CORRELATED && !self.buckets.contains_key(&key) {
            // Forget buckets that are full again; all of them if none is.
            self.buckets.retain(|_, (tokens, since)| {
                *tokens + now.duration_since(*since).as_secs_f64() / SPAM_REFILL_SECONDS
                    < SPAM_BURST
            });
            if self.buckets.len() >= MAX_CORRELATED {
                self.buckets.clear();
            }
        }
        let (tokens, since) = self.buckets.entry(key).or_insert((SPAM_BURST, now));
        *tokens = (*tokens + now.duration_since(*since).as_secs_f64() / SPAM_REFILL_SECONDS)
            .min(SPAM_BURST);
        *since = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Recorder {
    /// A recorder and the task that writes its events (the caller runs it).
    pub fn new(
        client: kube::Client,
        reporter: Reporter,
    ) -> (Self, impl Future<Output = ()> + Send + use<>) {
        let (recorder, queue) = Self::to_queue(reporter);
        (recorder, write_events(client, queue))
    }

    /// A recorder whose writing task runs on the current tokio runtime.
    pub fn start(client: kube::Client, reporter: Reporter) -> Self {
        let (recorder, writer) = Self::new(client, reporter);
        tokio::spawn(writer);
        recorder
    }

    /// A recorder whose events stay in the returned queue (for tests of what a component
    /// records, without an API server).
    pub fn to_queue(reporter: Reporter) -> (Self, mpsc::Receiver<Event>) {
        let (queue, events) = mpsc::channel(MAX_QUEUED_EVENTS);
        let recorder = Self {
            reporter: Arc::new(reporter),
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
            spam: Arc::new(Mutex::new(SpamFilter::default())),
        };
        (recorder, events)
    }

    /// Records an event about `object` (in its namespace; `default` for cluster-scoped
    /// objects such as Nodes).
    pub fn record(&self, object: ObjectReference, type_: EventType, reason: &str, message: String) {
        let spam_key = format!(
            "{}/{}/{}/{}/{}",
            object.api_version.as_deref().unwrap_or_default(),
            object.kind.as_deref().unwrap_or_default(),
            object.namespace.as_deref().unwrap_or_default(),
            object.name.as_deref().unwrap_or_default(),
            object.uid.as_deref().unwrap_or_default(),
        );
        let allowed = self
            .spam
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow(spam_key, std::time::Instant::now());
        if !allowed {
            return;
        }
        let now = Utc::now();
        let namespace = object
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| String::from("default"));
        let name = object.name.as_deref().unwrap_or("object");
        let reporter = &*self.reporter;
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{name}.{:x}",
                    now.timestamp_nanos_opt().unwrap_or_default()
                )),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: object,
            reason: Some(reason.to_owned()),
            message: Some(message),
            type_: Some(type_.as_str().to_owned()),
            source: Some(EventSource {
                component: Some(reporter.component.clone()),
                host: reporter.host.clone(),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            reporting_component: Some(reporter.component.clone()),
            reporting_instance: Some(reporter.instance.clone()),
            ..Default::default()
        };
        if self.queue.try_send(event).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                debug!(dropped, "event queue full, dropping events");
            }
        }
    }

    /// How many events were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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

/// What makes two Warnings the same: the object (and field), the reason and the message.
type Correlation = (String, Option<String>, String, String);

fn correlation(event: &Event) -> Correlation {
    let object = &event.involved_object;
    (
        object
            .uid
            .clone()
            .or_else(|| object.name.clone())
            .unwrap_or_default(),
        object.field_path.clone(),
        event.reason.clone().unwrap_or_default(),
        event.message.clone().unwrap_or_default(),
    )
}

/// Writes queued events until every recorder is gone.
async fn write_events(client: kube::Client, mut queue: mpsc::Receiver<Event>) {
    // Correlation -> (the Event's namespace and name, its count so far).
    let mut seen: HashMap<Correlation, (String, String, i32)> = HashMap::new();
    while let Some(event) = queue.recv().await {
        let warning = event.type_.as_deref() == Some(EventType::Warning.as_str());
        let key = correlation(&event);
        if warning && let Some((namespace, name, count)) = seen.get_mut(&key) {
            *count += 1;
            let patch = json!({"count": *count, "lastTimestamp": Time(Utc::now())});
            let events: Api<Event> = Api::namespaced(client.clone(), namespace);
            match events
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => continue,
                // Gone (expired or deleted): write it anew below.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    debug!(error = %e, "updating an event failed");
                    continue;
                }
            }
        }
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let name = event.metadata.name.clone().unwrap_or_default();
        let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
        match events.create(&PostParams::default(), &event).await {
            Ok(_) if warning => {
                if seen.len() >= MAX_CORRELATED {
                    seen.clear();
                }
                seen.insert(key, (namespace, name, 1));
            }
            Ok(_) => {}
            // The namespace is gone or terminating, or the master is out of reach: the event
            // is dropped, as client-go drops it.
            Err(e) => debug!(error = %e, reason = ?event.reason, "event not written"),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    #[tokio::test]
    async fn records_carry_the_reporter_and_the_object() {
        let (recorder, mut queue) = Recorder::to_queue(Reporter {
            component: "kubelet".into(),
            host: Some("node-1".into()),
            instance: "node-1".into(),
        });
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("apps".into());
        pod.metadata.uid = Some("uid-1".into());
        recorder.record(
            object_ref(&pod),
            EventType::Warning,
            "BackOff",
            "back-off".into(),
        );
        let event = queue.recv().await.expect("an event");
        assert_eq!(event.metadata.namespace.as_deref(), Some("apps"));
        assert!(
            event
                .metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("web."))
        );
        assert_eq!(event.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(event.involved_object.uid.as_deref(), Some("uid-1"));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.reason.as_deref(), Some("BackOff"));
        let source = event.source.expect("source");
        assert_eq!(source.component.as_deref(), Some("kubelet"));
        assert_eq!(source.host.as_deref(), Some("node-1"));
        assert_eq!(event.count, Some(1));

        // Cluster-scoped objects' events go to `default`.
        let node_ref = ObjectReference {
            kind: Some("Node".into()),
            name: Some("node-1".into()),
            ..Default::default()
        };
        recorder.record(node_ref, EventType::Normal, "NodeReady", "ready".into());
        let event = queue.recv().await.expect("an event");
        assert_eq!(event.metadata.namespace.as_deref(), Some("default"));
    }

    #[test]
    fn an_object_gets_a_burst_of_events_then_one_every_five_minutes() {
        let mut filter = SpamFilter::default();
        let start = std::time::Instant::now();
        let allowed = (0..30)
            .filter(|_| filter.allow("rs-a".to_owned(), start))
            .count();
        assert_eq!(allowed, 25);
        assert!(
            filter.allow("rs-b".to_owned(), start),
            "other objects are apart"
        );
        let later = start + std::time::Duration::from_secs(299);
        assert!(!filter.allow("rs-a".to_owned(), later));
        let refilled = start + std::time::Duration::from_secs(301);
        assert!(filter.allow("rs-a".to_owned(), refilled));
        assert!(!filter.allow("rs-a".to_owned(), refilled));
    }

    #[test]
    fn a_full_queue_drops_instead_of_blocking() {
        let (recorder, _queue) = Recorder::to_queue(Reporter::default());
        for i in 0..MAX_QUEUED_EVENTS + 5 {
            // Each about another object: none is held back as spam.
            recorder.record(
                ObjectReference {
                    name: Some(format!("pod-{i}")),
                    ..Default::default()
                },
                EventType::Normal,
                "R",
                String::new(),
            );
        }
        assert_eq!(recorder.dropped(), 5);
    }
}
