//! A JSON merge patch (RFC 7386, `application/merge-patch+json`) as the API server applies
//! it: `patch::parse_patch`, then `patch::apply`. Input: the stored object's JSON, a `0xFF`
//! byte, the patch.
//!
//! Invariant: a merge patch is idempotent (RFC 7386): applied to its own result it changes
//! nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_master::apiserver::patch::{self, PatchType};

fuzz_target!(|data: &[u8]| {
    let (current, body) = skiff_fuzz::object_and_patch(data);
    let Ok(parsed) = patch::parse_patch(PatchType::Merge, body) else {
        return;
    };
    let kind = skiff_fuzz::kind_of(&current);
    let Ok(patched) = patch::apply(PatchType::Merge, kind, &current, &parsed) else {
        return;
    };
    match patch::apply(PatchType::Merge, kind, &patched, &parsed) {
        Ok(again) => assert_eq!(again, patched, "the patch applied twice differs from once"),
        Err(err) => panic!("the patch applied once but not twice: {}", err.message()),
    }
});
