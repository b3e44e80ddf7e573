//! Arbitrary bytes as the body of `POST /api/generate/single` (an `ImageRequest`) and of
//! `POST /api/speech` (a `SpeechRequest`): parsing and validation never panic; a request that
//! validates survives a serialise → parse round trip unchanged and validates again (what the
//! API stores in `jobs.request` is what the worker reads back); errors name a prefixed field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seidra_core::job::ImageRequest;
use seidra_core::speech::SpeechRequest;

const PREFIX: &str = "requests[3].";

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<ImageRequest>(data) {
        match request.validate(PREFIX) {
            Ok(()) => {
                let json =
                    serde_json::to_vec(&request).unwrap_or_else(|e| panic!("a valid request must serialise: {e}"));
                let back: ImageRequest =
                    serde_json::from_slice(&json).unwrap_or_else(|e| panic!("a valid request must parse back: {e}"));
                assert_eq!(back, request, "round trip changed the request");
                assert!(back.validate(PREFIX).is_ok(), "a valid request must validate after a round trip");
            }
            Err(e) => assert!(e.field.starts_with(PREFIX), "field {:?} lacks the prefix", e.field),
        }
    }
    if let Ok(mut request) = serde_json::from_slice::<SpeechRequest>(data)
        && request.validate("").is_ok()
    {
        // The built-in defaults filled in after the persona merge are valid ones.
        request.resolve_defaults();
        assert!(request.validate("").is_ok(), "defaults made a valid speech request invalid: {request:?}");
        let json = serde_json::to_vec(&request).unwrap_or_else(|e| panic!("a valid request must serialise: {e}"));
        let back: SpeechRequest =
            serde_json::from_slice(&json).unwrap_or_else(|e| panic!("a valid request must parse back: {e}"));
        assert_eq!(back, request, "round trip changed the speech request");
    }
});
