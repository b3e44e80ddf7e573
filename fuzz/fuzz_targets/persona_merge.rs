//! An arbitrary persona merged into an arbitrary image request, as `POST /api/generate/single`
//! does with a `persona_id`: the input is JSON `{"persona": PersonaSpec, "request":
//! ImageRequest}` and, as in the API, the keys of the request object are the fields the client
//! sent. `seidra_core::persona::merge_image_request` never panics and keeps its documented
//! contract: the user's prompt survives (in the `{prompt}` slot, after the template and `, `,
//! or alone when the template is empty), both negative prompts survive, fields the client
//! sent win over the persona's defaults, the request's seed wins, and every LoRA of either side
//! is present with the request's (last) weight winning.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seidra_core::job::ImageRequest;
use seidra_core::persona::{PersonaSpec, SeedPolicy, merge_image_request};

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(mut input)) = serde_json::from_slice(data) else { return };
    let (Some(persona), Some(raw)) = (input.remove("persona"), input.remove("request")) else { return };
    let Ok(spec) = serde_json::from_value::<PersonaSpec>(persona) else { return };
    let explicit: Vec<String> = raw.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    let Ok(request) = serde_json::from_value::<ImageRequest>(raw) else { return };
    // Stored personas passed validation; the merge must hold up for any, though.
    let _ = spec.validate();
    let keys: Vec<&str> = explicit.iter().map(String::as_str).collect();

    let merged = merge_image_request(&spec, request.clone(), &keys);

    let user_prompt = request.prompt.trim();
    let template = spec.prompt_template.trim();
    assert!(merged.prompt.contains(user_prompt), "merged prompt {:?} lost {user_prompt:?}", merged.prompt);
    if template.is_empty() {
        assert_eq!(merged.prompt, request.prompt, "an empty template leaves the prompt alone");
    } else if template.contains("{prompt}") {
        assert_eq!(merged.prompt, template.replace("{prompt}", user_prompt), "the prompt goes in the slot");
    } else {
        assert_eq!(merged.prompt, format!("{template}, {user_prompt}"), "the prompt follows a slotless template");
    }
    assert!(merged.negative_prompt.contains(request.negative_prompt.trim()));
    assert!(merged.negative_prompt.contains(spec.negative_prompt.trim()));
    let sent = |k: &str| keys.contains(&k);
    let d = &spec.image;
    let expect = |key: &str, requested: u32, default: Option<u32>| {
        if sent(key) { requested } else { default.unwrap_or(requested) }
    };
    assert_eq!(merged.width, expect("width", request.width, d.width), "width");
    assert_eq!(merged.height, expect("height", request.height, d.height), "height");
    assert_eq!(
        merged.num_inference_steps,
        expect("num_inference_steps", request.num_inference_steps, d.num_inference_steps)
    );
    if sent("guidance_scale") {
        assert_eq!(merged.guidance_scale.to_bits(), request.guidance_scale.to_bits(), "explicit guidance wins");
    }
    if sent("scheduler") {
        assert_eq!(merged.scheduler, request.scheduler, "an explicit scheduler wins");
    }
    if request.model_name.is_some() {
        assert_eq!(merged.model_name, request.model_name, "the request's model wins");
    }
    match (request.seed, d.seed_policy) {
        (Some(seed), _) | (None, SeedPolicy::Fixed { seed }) => assert_eq!(merged.seed, Some(seed), "seed"),
        (None, SeedPolicy::Random) => {
            assert_eq!(merged.seed, None, "a random-seed persona leaves the seed to the server")
        }
    }
    for l in d.loras.iter().chain(&request.loras) {
        assert!(merged.loras.iter().any(|m| m.name == l.name), "LoRA {:?} lost", l.name);
    }
    for l in &request.loras {
        let last = request.loras.iter().rev().find(|r| r.name == l.name).map(|r| r.weight.to_bits());
        let got = merged.loras.iter().find(|m| m.name == l.name).map(|m| m.weight.to_bits());
        assert_eq!(got, last, "the request's weight wins for LoRA {:?}", l.name);
    }
    // The API validates after the merge (an over-long merged prompt is a 422): never a panic.
    let _ = merged.validate("");
});
