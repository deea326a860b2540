//! A JSON request body (`application/json`, what kubectl sends) through the API server's
//! create path: `request::decode_object`, then admission of the kind it names.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    skiff_fuzz::create(body, "application/json");
});
