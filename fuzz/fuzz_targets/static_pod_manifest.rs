//! A static pod manifest (a YAML or JSON file in the agent's `--manifests-dir`) as the node
//! agent reads it: `static_pods::parse`, then the mirror pod it publishes.
//!
//! Invariant: reading the same file twice gives the same pod (the uid is a hash of the
//! content: a restarted agent must find the containers of an unchanged manifest).

#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_node::kubelet::static_pods;

const NODE: &str = "node-1";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pod) = static_pods::parse(text, NODE) else {
        return;
    };
    assert_eq!(
        static_pods::parse(text, NODE).ok(),
        Some(pod.clone()),
        "read twice, {text:?} gave two pods"
    );
    let _ = static_pods::mirror_pod(&pod, NODE, "0a4d4b5e-node-uid");
});
