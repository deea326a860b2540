//! A resource quantity (`500m`, `1.5Gi`, `2e3`) as skiff reads the ones users send (requests
//! and limits, quotas, capacities): `ParsedQuantity::parse` and the `quantity_nanos`,
//! `milli_value` and `value` that the scheduler, quota and the node agent add up.
//!
//! Invariants: a quantity that parses prints (its canonical form) to a string that parses to
//! the same value; the three readers agree with it; adding and subtracting never overflow.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_api::quantity::{self, ParsedQuantity};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Every reader takes every string; only the parsed form promises a range.
    let nanos = quantity::quantity_nanos(text);
    let _ = quantity::milli_value(text);
    let _ = quantity::value(text);
    let Ok(parsed) = ParsedQuantity::parse(text) else {
        return;
    };
    assert_eq!(nanos, Ok(parsed.nanos()), "{text:?}");
    let printed = parsed.to_string();
    match ParsedQuantity::parse(&printed) {
        Ok(reparsed) => assert_eq!(
            reparsed.nanos(),
            parsed.nanos(),
            "{text:?} printed as {printed:?}"
        ),
        Err(err) => panic!("{text:?} printed as {printed:?}, which does not parse: {err}"),
    }
    assert_eq!(quantity::quantity_nanos(&printed), Ok(parsed.nanos()));
    let mut sum = parsed;
    sum.add(&parsed);
    sum.sub(&parsed);
    sum.sub(&parsed);
    sum.sub(&parsed);
    let _ = sum.to_string();
});
