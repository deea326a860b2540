//! What several fuzz targets share: a request body taken through the API server's create
//! path (`apiserver::create`), the way the server takes it, with the invariants that path
//! promises checked on the way.

use serde_json::Value;
use skiff_master::apiserver::protobuf::{self, ProtobufError};
use skiff_master::apiserver::request;
use skiff_master::apiserver::resources::{RESOURCES, Resource};

/// Decodes `body` as a create request of `media_type`; when it names a served kind, admits it
/// (decode into the kind's type, defaults, validation) and writes the answer in JSON and
/// protobuf. Returns the decoded object. Panics when the server would (a fuzzer's finding)
/// or when an invariant breaks:
/// - an admitted object is admitted again unchanged (defaults are idempotent, a valid object
///   stays valid, as Kubernetes' defaulting and validation are);
/// - an admitted object of a kind with a protobuf form can be answered in protobuf (a Go
///   client would otherwise get a 500 for an object the server accepted).
pub fn create(body: &[u8], media_type: &str) -> Option<Value> {
    let object = request::decode_object(body, media_type).ok()?;
    let Some(resource) = served_resource(&object) else {
        return Some(object);
    };
    let Ok(admitted) = resource.schema.admit(object.clone(), None) else {
        return Some(object);
    };
    let again = match resource.schema.admit(admitted.object.clone(), None) {
        Ok(again) => again.object,
        Err(_) => panic!(
            "{} admitted once but not again: {}",
            resource.kind, admitted.object
        ),
    };
    assert_eq!(
        again, admitted.object,
        "admitting an admitted {} changed it",
        resource.kind
    );
    match protobuf::encode::body(&admitted.object) {
        Ok(_) | Err(ProtobufError::UnsupportedKind { .. }) => {}
        Err(err) => panic!(
            "admitted {} has no protobuf answer: {err}: {}",
            resource.kind, admitted.object
        ),
    }
    Some(object)
}

/// The served resource of an object's `apiVersion` and `kind` (the URL a client posts it to).
fn served_resource(object: &Value) -> Option<&'static Resource> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// Splits a patch target's input at its first `0xFF` byte (never part of UTF-8, so never of
/// a JSON document) into the stored object and the patch body; without one, the whole input
/// is the patch of an empty object.
pub fn object_and_patch(data: &[u8]) -> (Value, &[u8]) {
    match data.iter().position(|&b| b == 0xFF) {
        Some(at) => {
            let object = serde_json::from_slice(&data[..at]).unwrap_or(Value::Null);
            (object, &data[at + 1..])
        }
        None => (Value::Object(Default::default()), data),
    }
}

/// The `kind` of a stored object ("" when it has none).
pub fn kind_of(object: &Value) -> &str {
    object.get("kind").and_then(Value::as_str).unwrap_or("")
}
