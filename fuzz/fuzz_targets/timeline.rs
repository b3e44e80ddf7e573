//! Arbitrary JSON as a video-studio timeline (`PUT /api/video/timelines/{id}`) and as a stored
//! render request: parsing and `TimelineSpec::validate` never panic; a valid timeline has a
//! finite duration in 0..=MAX_DURATION_SECS, finite media needs, and survives a serialise →
//! parse round trip unchanged and still valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seidra_core::timeline::{MAX_DURATION_SECS, RenderJobRequest, TimelineSpec};

fn check(spec: &TimelineSpec) {
    if spec.validate().is_err() {
        return;
    }
    let duration = spec.duration();
    assert!(duration.is_finite() && duration >= 0.0, "valid timeline with duration {duration}");
    assert!(duration <= MAX_DURATION_SECS, "valid timeline longer than the limit: {duration}");
    for r in spec.media_refs() {
        assert!(r.needs_secs.is_finite() && r.needs_secs > 0.0, "{}: needs {} s", r.field, r.needs_secs);
    }
    // validate_renderable only looks at the duration: it must not panic either.
    let _ = spec.validate_renderable();
    let json = serde_json::to_vec(spec).unwrap_or_else(|e| panic!("a valid timeline must serialise: {e}"));
    let back: TimelineSpec =
        serde_json::from_slice(&json).unwrap_or_else(|e| panic!("a valid timeline must parse back: {e}"));
    assert_eq!(&back, spec, "round trip changed the timeline");
    assert!(back.validate().is_ok(), "a valid timeline must validate after a round trip");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = serde_json::from_slice::<TimelineSpec>(data) {
        check(&spec);
    }
    if let Ok(render) = serde_json::from_slice::<RenderJobRequest>(data) {
        let _ = seidra_core::timeline::validate_format(render.width, render.height, render.fps, "");
        check(&render.timeline);
    }
});
