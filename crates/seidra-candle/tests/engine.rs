//! The candle engine on a tiny random-weight diffusers directory: sizes, determinism, batch,
//! progress per step, cancellation between steps, schedulers, LoRAs and the model cache.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]

use std::sync::{Arc, Mutex};

use seidra_candle::{CandleConfig, CandleEngine, tiny};
use seidra_core::job::{ImageRequest, LoraRef};
use seidra_engines::{CancellationToken, EngineError, GenerationEngine, Progress, ProgressSink};

#[derive(Default)]
struct Recorder(Mutex<Vec<Progress>>);

impl ProgressSink for Recorder {
    fn report(&self, progress: Progress) {
        self.0.lock().unwrap().push(progress);
    }
}

/// Cancels the token once `after` step reports have arrived.
struct CancelAfter {
    after: usize,
    seen: Mutex<usize>,
    token: CancellationToken,
}

impl ProgressSink for CancelAfter {
    fn report(&self, progress: Progress) {
        if progress.stage.contains("step") {
            let mut seen = self.seen.lock().unwrap();
            *seen += 1;
            if *seen == self.after {
                self.token.cancel();
            }
        }
    }
}

fn setup() -> (tempfile::TempDir, CandleEngine) {
    let dir = tempfile::tempdir().unwrap();
    tiny::write_model(&dir.path().join("tiny-sd")).unwrap();
    let engine = CandleEngine::new(CandleConfig {
        models_dir: dir.path().to_path_buf(),
        device: "cpu".into(),
        cache_bytes: 1 << 30,
    })
    .unwrap();
    (dir, engine)
}

fn request(seed: u64) -> ImageRequest {
    let mut r: ImageRequest = serde_json::from_value(serde_json::json!({
        "prompt": "a red fox in the snow",
        "negative_prompt": "blurry",
        "width": 64,
        "height": 80,
        "num_inference_steps": 3,
        "guidance_scale": 5.0,
        "engine": "candle",
    }))
    .unwrap();
    r.seed = Some(seed);
    r
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    (info.width, info.height)
}

fn run(engine: &CandleEngine, request: &ImageRequest) -> Result<Vec<Vec<u8>>, EngineError> {
    let outputs = engine.generate_blocking(request, &Recorder::default(), &CancellationToken::new())?;
    Ok(outputs.into_iter().map(|o| o.bytes).collect())
}

#[test]
fn generates_deterministic_images_of_the_requested_size() {
    let (_dir, engine) = setup();
    assert_eq!(engine.models().iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["tiny-sd"]);
    let recorder = Recorder::default();
    let outputs = engine.generate_blocking(&request(7), &recorder, &CancellationToken::new()).unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!((outputs[0].width, outputs[0].height, outputs[0].seed), (Some(64), Some(80), Some(7)));
    assert_eq!(png_size(&outputs[0].bytes), (64, 80));
    let steps: Vec<f32> =
        recorder.0.lock().unwrap().iter().filter(|p| p.stage.starts_with("step")).map(|p| p.fraction).collect();
    assert_eq!(steps.len(), 3, "one progress report per step");
    assert!((steps[2] - 1.0).abs() < f32::EPSILON && steps[0] > 0.0);

    let again = run(&engine, &request(7)).unwrap();
    assert_eq!(again[0], outputs[0].bytes, "same seed, same bytes");
    let other = run(&engine, &request(8)).unwrap();
    assert_ne!(other[0], outputs[0].bytes, "another seed, other bytes");
    let negative = run(&engine, &ImageRequest { negative_prompt: "sharp".into(), ..request(7) }).unwrap();
    assert_ne!(negative[0], outputs[0].bytes, "the negative prompt is the unconditional side of guidance");

    // A batch: one image per seed + index, the first equal to the single image.
    let batch = engine
        .generate_blocking(
            &ImageRequest { num_images: 2, ..request(7) },
            &Recorder::default(),
            &CancellationToken::new(),
        )
        .unwrap();
    assert_eq!(batch.iter().map(|o| o.seed).collect::<Vec<_>>(), [Some(7), Some(8)]);
    assert_eq!(batch[0].bytes, outputs[0].bytes);
    assert_eq!(batch[1].bytes, other[0]);
}

#[test]
fn schedulers_are_distinct_and_reproducible() {
    let (_dir, engine) = setup();
    let mut seen = Vec::new();
    for scheduler in ["ddim", "euler", "euler_a"] {
        let r = ImageRequest { scheduler: scheduler.into(), ..request(3) };
        let a = run(&engine, &r).unwrap();
        assert_eq!(run(&engine, &r).unwrap(), a, "{scheduler} is deterministic for a seed");
        assert!(!seen.contains(&a[0]), "{scheduler} differs from the others");
        seen.push(a[0].clone());
    }
    let bad = engine.check(&ImageRequest { scheduler: "plms".into(), ..request(3) }).unwrap_err();
    assert_eq!(bad.field, "scheduler");
    let bad = engine.check(&ImageRequest { model_name: Some("nope".into()), ..request(3) }).unwrap_err();
    assert_eq!(bad.field, "model_name");
    let bad = engine.check(&ImageRequest { width: 100, ..request(3) }).unwrap_err();
    assert_eq!(bad.field, "width");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_between_steps() {
    let (_dir, engine) = setup();
    let r = ImageRequest { num_inference_steps: 50, ..request(1) };
    // On the engine's thread the cancel is seen right after the step that fired it.
    let token = CancellationToken::new();
    let sink = CancelAfter { after: 2, seen: Mutex::new(0), token: token.clone() };
    assert_eq!(engine.generate_blocking(&r, &sink, &token), Err(EngineError::Cancelled));
    assert_eq!(*sink.seen.lock().unwrap(), 2, "no step runs after the cancel");

    // Through `run` progress crosses a channel, so a step or two may finish before the cancel lands.
    let token = CancellationToken::new();
    let sink = CancelAfter { after: 2, seen: Mutex::new(0), token: token.clone() };
    assert_eq!(engine.run(&r, &sink, &token).await, Err(EngineError::Cancelled));
    assert!(*sink.seen.lock().unwrap() < 10, "stopped long before the 50 steps");

    // Through `run` (the worker's path) progress arrives and the result is an image.
    let recorder = Arc::new(Recorder::default());
    let outputs = engine.run(&request(1), recorder.as_ref(), &CancellationToken::new()).await.unwrap();
    assert_eq!(png_size(&outputs[0].bytes), (64, 80));
    assert_eq!(recorder.0.lock().unwrap().iter().filter(|p| p.stage.starts_with("step")).count(), 3);
}

#[test]
fn loras_merge_with_their_weight() {
    let (dir, engine) = setup();
    // A kohya-named rank-2 LoRA on one UNet attention projection and one CLIP projection.
    let device = candle_core::Device::Cpu;
    let t = |dims: &[usize]| candle_core::Tensor::randn(0f32, 1.0, dims, &device).unwrap();
    let mut tensors = std::collections::HashMap::new();
    let unet = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
    tensors.insert(format!("{unet}.lora_down.weight"), t(&[2, 32]));
    tensors.insert(format!("{unet}.lora_up.weight"), t(&[32, 2]));
    tensors.insert(format!("{unet}.alpha"), candle_core::Tensor::new(2f32, &device).unwrap());
    let te = "lora_te_text_model_encoder_layers_0_self_attn_v_proj";
    tensors.insert(format!("{te}.lora_down.weight"), t(&[2, 32]));
    tensors.insert(format!("{te}.lora_up.weight"), t(&[32, 2]));
    std::fs::create_dir_all(dir.path().join("loras")).unwrap();
    candle_core::safetensors::save(&tensors, dir.path().join("loras").join("fox-style.safetensors")).unwrap();

    let plain = run(&engine, &request(5)).unwrap();
    let lora = |weight: f32| ImageRequest { loras: vec![LoraRef { name: "fox-style".into(), weight }], ..request(5) };
    let styled = run(&engine, &lora(1.0)).unwrap();
    assert_ne!(styled, plain, "the LoRA changes the image");
    assert_eq!(run(&engine, &lora(1.0)).unwrap(), styled, "deterministic with a LoRA");
    assert_eq!(run(&engine, &lora(0.0)).unwrap(), plain, "weight 0 is the base model");
    assert_eq!(run(&engine, &request(5)).unwrap(), plain, "the cached base weights are untouched");
    let missing = ImageRequest { loras: vec![LoraRef { name: "absent".into(), weight: 1.0 }], ..request(5) };
    assert_eq!(engine.check(&missing).unwrap_err().field, "loras[0].name");
}

#[test]
fn the_cache_keeps_models_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write_model(&dir.path().join("a")).unwrap();
    tiny::write_model(&dir.path().join("b")).unwrap();
    // A budget smaller than two tiny models: loading the second evicts the first.
    let engine =
        CandleEngine::new(CandleConfig { models_dir: dir.path().to_path_buf(), device: "cpu".into(), cache_bytes: 1 })
            .unwrap();
    let one = |model: &str| ImageRequest { model_name: Some(model.into()), num_inference_steps: 1, ..request(1) };
    run(&engine, &one("a")).unwrap();
    assert_eq!(engine.cache().cached(), ["a"]);
    run(&engine, &one("b")).unwrap();
    assert_eq!(engine.cache().cached(), ["b"], "least recently used model evicted");

    let roomy = CandleEngine::new(CandleConfig {
        models_dir: dir.path().to_path_buf(),
        device: "cpu".into(),
        cache_bytes: 1 << 30,
    })
    .unwrap();
    for model in ["a", "b", "a"] {
        run(&roomy, &one(model)).unwrap();
    }
    assert_eq!(roomy.cache().cached(), ["b", "a"], "most recently used last");
    assert!(
        CandleEngine::new(CandleConfig { models_dir: dir.path().into(), device: "tpu".into(), cache_bytes: 1 })
            .is_err()
    );
}

fn setup_sdxl(turbo: bool) -> (tempfile::TempDir, CandleEngine) {
    let dir = tempfile::tempdir().unwrap();
    tiny::write_sdxl_model(&dir.path().join("tiny-sdxl"), turbo).unwrap();
    let engine = CandleEngine::new(CandleConfig {
        models_dir: dir.path().to_path_buf(),
        device: "cpu".into(),
        cache_bytes: 1 << 30,
    })
    .unwrap();
    (dir, engine)
}

fn step_reports(recorder: &Recorder) -> usize {
    recorder.0.lock().unwrap().iter().filter(|p| p.stage.starts_with("step")).count()
}

#[test]
fn sdxl_generates_deterministic_images_with_both_text_encoders() {
    let (_dir, engine) = setup_sdxl(false);
    let models = engine.models();
    assert_eq!(models[0].name, "tiny-sdxl");
    assert!(models[0].description.starts_with("Stable Diffusion XL"), "{}", models[0].description);
    let r = |seed| ImageRequest { scheduler: "euler".into(), ..request(seed) };
    let recorder = Recorder::default();
    let outputs = engine.generate_blocking(&r(7), &recorder, &CancellationToken::new()).unwrap();
    assert_eq!(png_size(&outputs[0].bytes), (64, 80));
    assert_eq!(step_reports(&recorder), 3);
    let first = outputs[0].bytes.clone();
    assert_eq!(run(&engine, &r(7)).unwrap()[0], first, "same seed, same bytes");
    assert_ne!(run(&engine, &r(8)).unwrap()[0], first, "another seed, other bytes");
    let prompt = run(&engine, &ImageRequest { prompt: "a blue whale".into(), ..r(7) }).unwrap();
    assert_ne!(prompt[0], first, "the prompt conditions the UNet");
    // The empty negative prompt is SDXL's zero embedding, not the encoding of "".
    let empty = run(&engine, &ImageRequest { negative_prompt: String::new(), ..r(7) }).unwrap();
    assert_ne!(empty[0], first);
    // Every sampler is deterministic on SDXL too.
    for scheduler in ["ddim", "euler_a"] {
        let a = run(&engine, &ImageRequest { scheduler: scheduler.into(), ..r(3) }).unwrap();
        assert_eq!(run(&engine, &ImageRequest { scheduler: scheduler.into(), ..r(3) }).unwrap(), a, "{scheduler}");
    }
}

#[test]
fn sdxl_turbo_runs_one_unguided_step() {
    let (_dir, engine) = setup_sdxl(true);
    assert!(engine.models()[0].description.starts_with("SDXL-Turbo"), "{}", engine.models()[0].description);
    let turbo = |negative: &str| ImageRequest {
        num_inference_steps: 1,
        guidance_scale: 0.0,
        scheduler: "euler_a".into(),
        negative_prompt: negative.into(),
        width: 64,
        height: 64,
        ..request(5)
    };
    let recorder = Recorder::default();
    let outputs = engine.generate_blocking(&turbo("blurry"), &recorder, &CancellationToken::new()).unwrap();
    assert_eq!(png_size(&outputs[0].bytes), (64, 64));
    assert_eq!(step_reports(&recorder), 1, "a single denoising step");
    // Guidance 0 skips the unconditional pass: the negative prompt cannot matter.
    assert_eq!(run(&engine, &turbo("sharp")).unwrap()[0], outputs[0].bytes);
    assert_eq!(run(&engine, &turbo("blurry")).unwrap()[0], outputs[0].bytes, "deterministic");
    let guided = run(&engine, &ImageRequest { guidance_scale: 2.0, ..turbo("blurry") }).unwrap();
    assert_ne!(guided[0], outputs[0].bytes, "guidance > 1 adds the unconditional pass");
}

fn save_lora(dir: &std::path::Path, name: &str, modules: &[(&str, usize, usize)], peft: bool) {
    let device = candle_core::Device::Cpu;
    let t = |dims: &[usize]| candle_core::Tensor::randn(0f32, 1.0, dims, &device).unwrap();
    let mut tensors = std::collections::HashMap::new();
    for &(module, out, input) in modules {
        let (down, up) = if peft { ("lora_A.weight", "lora_B.weight") } else { ("lora_down.weight", "lora_up.weight") };
        tensors.insert(format!("{module}.{down}"), t(&[2, input]));
        tensors.insert(format!("{module}.{up}"), t(&[out, 2]));
    }
    std::fs::create_dir_all(dir.join("loras")).unwrap();
    candle_core::safetensors::save(&tensors, dir.join("loras").join(format!("{name}.safetensors"))).unwrap();
}

#[test]
fn sdxl_loras_merge_or_are_refused() {
    let (dir, engine) = setup_sdxl(false);
    // diffusers/PEFT names on the UNet's cross-attention and the second text encoder, kohya te1.
    let attn = "unet.down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k";
    let te2 = "text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj";
    save_lora(dir.path(), "xl-style", &[(attn, 64, 64), (te2, 32, 32)], true);
    // Layer 0 of two: SDXL conditions on the penultimate layer's output, which the last layer does not reach.
    save_lora(dir.path(), "xl-te1", &[("lora_te1_text_model_encoder_layers_0_mlp_fc1", 64, 32)], false);
    save_lora(dir.path(), "xl-te1-last", &[("lora_te1_text_model_encoder_layers_1_mlp_fc1", 64, 32)], false);
    let lora = |name: &str, weight: f32| ImageRequest {
        loras: vec![LoraRef { name: name.into(), weight }],
        scheduler: "euler".into(),
        ..request(5)
    };
    let plain = run(&engine, &ImageRequest { scheduler: "euler".into(), ..request(5) }).unwrap();
    let styled = run(&engine, &lora("xl-style", 1.0)).unwrap();
    assert_ne!(styled, plain, "the LoRA changes the image");
    assert_eq!(run(&engine, &lora("xl-style", 0.0)).unwrap(), plain, "weight 0 is the base model");
    assert!(run(&engine, &lora("xl-te1", 1.0)).unwrap() != plain, "kohya te1 names reach the first encoder");
    assert!(run(&engine, &lora("xl-te1-last", 1.0)).unwrap() == plain, "SDXL skips the last CLIP layer");

    // kohya SDXL files in the original UNet layout: refused by the check (a 422), never half-applied.
    save_lora(dir.path(), "sgm", &[("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q", 64, 64)], false);
    let err = engine.check(&lora("sgm", 1.0)).unwrap_err();
    assert_eq!(err.field, "loras[0].name");
    assert!(err.message.contains("SGM"), "{}", err.message);
    // A module this model lacks (the first SDXL block has no attention): a 422 on `loras` at run time.
    save_lora(dir.path(), "sd15-ish", &[("unet.down_blocks.0.attentions.0.proj_in", 32, 32)], true);
    match engine.generate_blocking(&lora("sd15-ish", 1.0), &Recorder::default(), &CancellationToken::new()) {
        Err(EngineError::Invalid(e)) => assert_eq!(e.field, "loras", "{e:?}"),
        other => panic!("expected a 422, got {:?}", other.map(|o| o.len())),
    }
}

#[test]
fn an_sdxl_lora_on_sd_and_a_broken_sdxl_directory_are_clear_errors() {
    let (dir, engine) = setup();
    save_lora(dir.path(), "xl-only", &[("lora_te2_text_model_encoder_layers_0_mlp_fc1", 64, 32)], false);
    let r = ImageRequest { loras: vec![LoraRef { name: "xl-only".into(), weight: 1.0 }], ..request(1) };
    let err = engine.check(&r).unwrap_err();
    assert!(err.field == "loras[0].name" && err.message.contains("second text encoder"), "{err:?}");

    let (dir, engine) = setup_sdxl(false);
    std::fs::remove_file(dir.path().join("tiny-sdxl").join("tokenizer_2").join("merges.txt")).unwrap();
    match engine.generate_blocking(&request(1), &Recorder::default(), &CancellationToken::new()) {
        Err(EngineError::Failed { message, .. }) => assert!(message.contains("tokenizer_2/merges.txt"), "{message}"),
        other => panic!("expected a model error, got {:?}", other.map(|o| o.len())),
    }
}
