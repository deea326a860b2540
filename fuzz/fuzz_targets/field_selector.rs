//! A field selector (`?fieldSelector=`, e.g. the kubelet's `spec.nodeName=<node>`) as the API
//! server parses it (`FieldSelector::parse`, which `request::Query::field_selector` calls) and
//! matches it.
//!
//! Invariant: a selector that parses prints (its canonical form, values escaped) to a string
//! that parses to the same selector.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_api::selectors::FieldSelector;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(selector) = FieldSelector::parse(text) else {
        return;
    };
    let printed = selector.to_string();
    match FieldSelector::parse(&printed) {
        Ok(reparsed) => assert_eq!(reparsed, selector, "{text:?} printed as {printed:?}"),
        Err(err) => panic!("{text:?} printed as {printed:?}, which does not parse: {err}"),
    }
    // Matching against an object whose every field has the first term's value.
    let value = selector.requirements().first().map(|r| r.value.clone());
    selector.matches(|_| value.clone());
    selector.matches(|_| None);
    for field in selector.fields() {
        selector.requires_exact_match(field);
    }
});
