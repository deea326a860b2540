//! Content negotiation: which representation of its answer a request's `Accept` header asks
//! for, as kube-apiserver decides it.
//!
//! Media ranges are tried in Kubernetes' order (higher `q` first, then concrete types before
//! wildcards, then as written), and the first one the server can serve wins: JSON (also YAML,
//! `application/*` and `*/*`, all answered in JSON), Kubernetes' protobuf, or a
//! `meta.k8s.io` Table (v1 or v1beta1, in JSON), or the objects' metadata alone
//! (`as=PartialObjectMetadata[List]`, v1 or v1beta1, in JSON). Table ranges of another group, version or
//! encoding, other `as=` transforms and unknown types are skipped as unservable; a header with
//! nothing servable is refused with 406, and no header (or an empty one) means JSON.

use axum::http::{HeaderMap, header};

use super::protobuf::{self, MEDIA_TYPE as PROTOBUF};
use super::resources::Resource;
use super::status::ApiError;
use super::table::TableVersion;

/// How an answer is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    /// Objects in JSON.
    Json,
    /// Objects in Kubernetes' protobuf encoding. `or_json`: the header also allows JSON, for
    /// what has no protobuf form.
    Protobuf {
        /// JSON is acceptable too.
        or_json: bool,
    },
    /// A `meta.k8s.io` Table of the objects, in JSON.
    Table(TableVersion),
    /// Only the objects' metadata: `PartialObjectMetadata` (a list: `...List`) of the
    /// `meta.k8s.io` version named (`meta.k8s.io/v1`), in JSON. What kube-rs' and client-go's
    /// metadata clients and informers ask for.
    PartialMetadata(&'static str),
}

impl Representation {
    /// The representation of `resource`'s objects a request asks for: its `Accept` header's
    /// (see [`Representation::negotiate`]), answered in JSON where the kind has no protobuf
    /// form and the header allows JSON (406 if it does not).
    pub fn for_resource(headers: &HeaderMap, resource: &Resource) -> Result<Self, ApiError> {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
        match Self::negotiate(accept)? {
            Representation::Protobuf { or_json }
                if !protobuf::has_message(&resource.api_version(), resource.kind) =>
            {
                if or_json {
                    Ok(Representation::Json)
                } else {
                    Err(not_acceptable())
                }
            }
            representation => Ok(representation),
        }
    }

    /// The representation an `Accept` header asks for (406 when it allows none the server
    /// has).
    pub fn negotiate(accept: Option<&str>) -> Result<Self, ApiError> {
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
            return Ok(Representation::Json);
        };
        let mut ranges: Vec<MediaRange> = accept.split(',').filter_map(MediaRange::parse).collect();
        ranges.sort_by(|a, b| {
            b.q.total_cmp(&a.q)
                .then((a.type_ == "*").cmp(&(b.type_ == "*")))
                .then((a.subtype == "*").cmp(&(b.subtype == "*")))
        });
        ranges.retain(|range| range.q > 0.0);
        let or_json = ranges
            .iter()
            .any(|range| range.param("as").is_none() && range.is_json());
        for range in &ranges {
            match range.param("as") {
                None if range.is_protobuf() => return Ok(Representation::Protobuf { or_json }),
                None if range.is_json() => return Ok(Representation::Json),
                None => continue,
                Some("Table") if range.is_json() && range.param("g") == Some("meta.k8s.io") => {
                    match range.param("v") {
                        Some("v1") => return Ok(Representation::Table(TableVersion::V1)),
                        Some("v1beta1") => return Ok(Representation::Table(TableVersion::V1Beta1)),
                        _ => continue,
                    }
                }
                Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                    if range.is_json() && range.param("g") == Some("meta.k8s.io") =>
                {
                    match range.param("v") {
                        Some("v1") => return Ok(Representation::PartialMetadata("meta.k8s.io/v1")),
                        Some("v1beta1") => {
                            return Ok(Representation::PartialMetadata("meta.k8s.io/v1beta1"));
                        }
                        _ => continue,
                    }
                }
                Some(_) => continue,
            }
        }
        Err(not_acceptable())
    }
}

fn not_acceptable() -> ApiError {
    ApiError::NotAcceptable(format!(
        "only the following media types are accepted: application/json, application/yaml, \
         {PROTOBUF}"
    ))
}

/// One media range of an Accept header: `type/subtype;key=value;...`.
struct MediaRange {
    type_: String,
    subtype: String,
    params: Vec<(String, String)>,
    q: f32,
}

impl MediaRange {
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(';');
        let (type_, subtype) = parts.next()?.trim().split_once('/')?;
        let mut range = Self {
            type_: type_.trim().to_ascii_lowercase(),
            subtype: subtype.trim().to_ascii_lowercase(),
            params: Vec::new(),
            q: 1.0,
        };
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim().trim_matches('"').to_string();
            if key == "q" {
                range.q = value.parse().unwrap_or(0.0);
            } else {
                range.params.push((key, value));
            }
        }
        Some(range)
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// JSON, or a type answered in JSON (YAML, wildcards).
    fn is_json(&self) -> bool {
        matches!(
            (self.type_.as_str(), self.subtype.as_str()),
            ("application", "json" | "yaml" | "*") | ("*", "*")
        )
    }

    fn is_protobuf(&self) -> bool {
        self.type_ == "application" && self.subtype == "vnd.kubernetes.protobuf"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    const CLIENT_GO_PROTOBUF: &str = "application/vnd.kubernetes.protobuf, application/json";

    fn negotiate(accept: &str) -> Result<Representation, ApiError> {
        Representation::negotiate(Some(accept))
    }

    #[test]
    fn metadata_clients_ask_for_partial_object_metadata() {
        // kube-rs' `Api::list_metadata` and `metadata_watcher`.
        for accept in [
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        ] {
            assert_eq!(
                negotiate(accept).unwrap(),
                Representation::PartialMetadata("meta.k8s.io/v1")
            );
        }
        assert!(negotiate("application/json;as=PartialObjectMetadata;g=example.com;v=v1").is_err());
        assert!(
            negotiate(
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
            )
            .is_err()
        );
    }

    #[test]
    fn kubectl_accept_header_asks_for_a_v1_table() {
        assert_eq!(
            negotiate(KUBECTL_ACCEPT).unwrap(),
            Representation::Table(TableVersion::V1)
        );
    }

    #[test]
    fn go_clients_ask_for_protobuf_with_json_behind_it() {
        assert_eq!(
            negotiate(CLIENT_GO_PROTOBUF).unwrap(),
            Representation::Protobuf { or_json: true }
        );
        assert_eq!(
            negotiate(PROTOBUF).unwrap(),
            Representation::Protobuf { or_json: false }
        );
        // JSON first, or at a higher q, wins over protobuf.
        for accept in [
            "application/json, application/vnd.kubernetes.protobuf",
            "application/vnd.kubernetes.protobuf;q=0.5, application/json",
        ] {
            assert_eq!(negotiate(accept).unwrap(), Representation::Json, "{accept}");
        }
        // A protobuf Table cannot be served; the protobuf after it can.
        assert_eq!(
            negotiate(
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/vnd.kubernetes.protobuf"
            )
            .unwrap(),
            Representation::Protobuf { or_json: false }
        );
    }

    #[test]
    fn accept_headers_without_a_servable_table_ask_for_plain_objects() {
        for accept in [
            "application/json",
            "*/*",
            "application/yaml",
            // A plain JSON range listed first wins over a Table after it.
            "application/json, application/json;as=Table;v=v1;g=meta.k8s.io",
            // A transform of another group or version: not ours to answer, and plain JSON
            // follows.
            "application/json;as=PartialObjectMetadataList;v=v2;g=meta.k8s.io,application/json",
            "application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io,application/json",
            // Unknown Table versions and groups are skipped.
            "application/json;as=Table;v=v2;g=meta.k8s.io,application/json",
            "application/json;as=Table;v=v1;g=example.com,application/json",
            "",
            "  ",
        ] {
            assert_eq!(negotiate(accept).unwrap(), Representation::Json, "{accept}");
        }
        assert_eq!(
            Representation::negotiate(None).unwrap(),
            Representation::Json
        );
    }

    #[test]
    fn accept_header_picks_the_first_servable_table_version() {
        assert_eq!(
            negotiate("application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
                .unwrap(),
            Representation::Table(TableVersion::V1Beta1)
        );
        // A protobuf Table cannot be served; the JSON Table after it can.
        assert_eq!(
            negotiate(
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json;as=Table;v=v1;g=meta.k8s.io, application/json"
            )
            .unwrap(),
            Representation::Table(TableVersion::V1)
        );
        // Higher q wins over order; spaces and parameter case do not matter.
        assert_eq!(
            negotiate("application/json;q=0.5, application/json; as=Table; V=v1; g=meta.k8s.io")
                .unwrap(),
            Representation::Table(TableVersion::V1)
        );
        // A wildcard ranks after a concrete type of the same q.
        assert_eq!(
            negotiate("*/*, application/json;as=Table;v=v1;g=meta.k8s.io").unwrap(),
            Representation::Table(TableVersion::V1)
        );
        // q=0 means "not this".
        assert_eq!(
            negotiate("application/json;as=Table;v=v1;g=meta.k8s.io;q=0, application/json")
                .unwrap(),
            Representation::Json
        );
    }

    #[test]
    fn nothing_servable_is_not_acceptable() {
        for accept in [
            "text/html",
            "application/json;as=Table;v=v1",
            "application/json;q=0",
            "image/png, application/xml",
        ] {
            let err = negotiate(accept).unwrap_err();
            assert_eq!(err.code().as_u16(), 406, "{accept}");
        }
    }
}
