//! `/metrics`: request counts and latency histograms by verb and resource, in the Prometheus
//! text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CountLabels {
    verb: String,
    resource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DroppedLabels {
    request_kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: String,
    resource: String,
}

/// What the API server measures about its requests.
pub struct Metrics {
    registry: Registry,
    requests: Family<CountLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    dropped: Family<DroppedLabels, Counter>,
}

/// Which request a response belongs to; handlers attach it to the response so the metrics
/// layer can label the sample.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'static str,
    /// Resource (plural), with `/subresource` when there is one.
    pub resource: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register the request metrics.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<CountLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ])
        });
        registry.register(
            "apiserver_request",
            "Counter of API requests by verb, resource and HTTP code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds by verb and resource",
            latency.clone(),
        );
        let dropped = Family::<DroppedLabels, Counter>::default();
        registry.register(
            "apiserver_dropped_requests",
            "Requests refused with 429 for want of a seat, by kind (readOnly, mutating)",
            dropped.clone(),
        );
        registry.register(
            "skiff_controller_restarts",
            "Restarts of a controller or the scheduler after it panicked or stopped, by name",
            crate::supervisor::restarts().clone(),
        );
        Self {
            registry,
            requests,
            latency,
            dropped,
        }
    }

    /// Record one request refused for want of a seat.
    pub fn dropped(&self, mutating: bool) {
        let request_kind = if mutating { "mutating" } else { "readOnly" };
        self.dropped
            .get_or_create(&DroppedLabels { request_kind })
            .inc();
    }

    /// Record one finished request.
    pub fn observe(&self, info: &RequestInfo, code: u16, seconds: f64) {
        self.requests
            .get_or_create(&CountLabels {
                verb: info.verb.to_string(),
                resource: info.resource.clone(),
                code: code.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                verb: info.verb.to_string(),
                resource: info.resource.clone(),
            })
            .observe(seconds);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_requests_show_up_by_verb_and_resource() {
        let m = Metrics::new();
        let info = RequestInfo {
            verb: "create",
            resource: "pods".into(),
        };
        m.observe(&info, 201, 0.002);
        m.observe(&info, 201, 0.004);
        let text = m.render();
        assert!(
            text.contains(r#"apiserver_request_total{verb="create",resource="pods",code="201"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"apiserver_request_duration_seconds_count{verb="create",resource="pods"} 2"#
            ),
            "{text}"
        );
    }
}
