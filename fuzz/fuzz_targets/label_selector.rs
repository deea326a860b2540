//! A label selector (`?labelSelector=`, what `kubectl get -l` sends) as the API server parses
//! it (`LabelSelector::parse`, which `request::Query::label_selector` calls) and matches it.
//!
//! Invariant: a selector that parses prints (its canonical form) to a string that parses to
//! the same selector.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use skiff_api::selectors::LabelSelector;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(selector) = LabelSelector::parse(text) else {
        return;
    };
    let printed = selector.to_string();
    match LabelSelector::parse(&printed) {
        Ok(reparsed) => assert_eq!(reparsed, selector, "{text:?} printed as {printed:?}"),
        Err(err) => panic!("{text:?} printed as {printed:?}, which does not parse: {err}"),
    }
    // Matching against labels made of the selector's own keys and values.
    let mut labels = BTreeMap::new();
    selector.matches(&labels);
    for requirement in selector.requirements() {
        let value = requirement.values().next().unwrap_or("").to_owned();
        labels.insert(requirement.key().to_owned(), value);
        selector.matches(&labels);
        selector.requires_exact_match(requirement.key());
    }
});
