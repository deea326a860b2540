//! A protobuf request body (`application/vnd.kubernetes.protobuf`, what Go clients send)
//! through the API server's create path: `request::decode_object` (the `k8s\0` envelope and
//! the kind's message), then admission of the kind it names.
//!
//! Invariant: a decoded object written back as protobuf (as the server answers Go clients)
//! decodes to the same object.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_master::apiserver::protobuf;

fuzz_target!(|body: &[u8]| {
    let Some(object) = skiff_fuzz::create(body, protobuf::MEDIA_TYPE) else {
        return;
    };
    let encoded = match protobuf::encode::body(&object) {
        Ok(encoded) => encoded,
        Err(err) => panic!("a decoded object does not encode: {err}: {object}"),
    };
    match protobuf::decode(&encoded) {
        Ok(decoded) => assert_eq!(decoded, object, "protobuf round trip changed the object"),
        Err(err) => panic!("an encoded object does not decode: {err}: {object}"),
    }
});
