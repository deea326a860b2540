//! A JSON patch (RFC 6902, `application/json-patch+json`) as the API server applies it:
//! `patch::parse_patch`, then `patch::apply` with its operation and size limits. Input: the
//! stored object's JSON, a `0xFF` byte, the patch.
//!
//! Invariant: an applied patch's result is no larger than a request body may be (the limit
//! that keeps a few `copy` operations from growing an object without bound).

#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_master::apiserver::patch::{self, PatchType};
use skiff_master::apiserver::request::MAX_BODY_BYTES;

fuzz_target!(|data: &[u8]| {
    let (current, body) = skiff_fuzz::object_and_patch(data);
    let Ok(parsed) = patch::parse_patch(PatchType::Json, body) else {
        return;
    };
    let kind = skiff_fuzz::kind_of(&current);
    if let Ok(patched) = patch::apply(PatchType::Json, kind, &current, &parsed) {
        let size = serde_json::to_vec(&patched).map_or(0, |json| json.len());
        assert!(size <= MAX_BODY_BYTES, "a patched object of {size} bytes");
    }
});
