//! A strategic merge patch (`application/strategic-merge-patch+json`, `kubectl apply` and
//! `kubectl patch`) as the API server applies it: `patch::parse_patch`, then `patch::apply`
//! with the stored object's kind. Input: the stored object's JSON, a `0xFF` byte, the patch.
//!
//! Invariants: the directives (`$patch`, `$retainKeys`, `$setElementOrder/...`,
//! `$deleteFromPrimitiveList/...`) never reach the result when the stored object had none,
//! and applying the same patch to its own result changes nothing (Kubernetes' patches are
//! idempotent: a client may retry one after a conflict).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use skiff_master::apiserver::patch::{self, PatchType};

fuzz_target!(|data: &[u8]| {
    let (current, body) = skiff_fuzz::object_and_patch(data);
    let Ok(parsed) = patch::parse_patch(PatchType::Strategic, body) else {
        return;
    };
    let kind = skiff_fuzz::kind_of(&current);
    let Ok(patched) = patch::apply(PatchType::Strategic, kind, &current, &parsed) else {
        return;
    };
    if !has_directive(&current) {
        assert!(
            !has_directive(&patched),
            "a directive is left in the result: {patched}"
        );
    }
    match patch::apply(PatchType::Strategic, kind, &patched, &parsed) {
        Ok(again) => assert_eq!(again, patched, "the patch applied twice differs from once"),
        Err(err) => panic!("the patch applied once but not twice: {}", err.message()),
    }
});

/// Whether a key of `value`, at any depth, is a strategic merge directive.
fn has_directive(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(key, value)| {
            key == "$patch"
                || key == "$retainKeys"
                || key.starts_with("$setElementOrder/")
                || key.starts_with("$deleteFromPrimitiveList/")
                || has_directive(value)
        }),
        Value::Array(items) => items.iter().any(has_directive),
        _ => false,
    }
}
