//! Behaviour of the procedural engine through the public trait.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seidra_core::job::{ImageRequest, LoraRef};
use seidra_engines::{
    CancellationToken, EngineError, EngineOutput, GenerationEngine, InitImage, ProceduralEngine, Progress, ProgressSink,
};
use sha2::{Digest, Sha256};

fn request(prompt: &str) -> ImageRequest {
    ImageRequest {
        prompt: prompt.to_owned(),
        negative_prompt: String::new(),
        width: 128,
        height: 128,
        num_inference_steps: 8,
        guidance_scale: 7.5,
        num_images: 1,
        seed: Some(1),
        model_name: None,
        engine: None,
        scheduler: "ddim".to_owned(),
        loras: Vec::new(),
        persona_id: None,
        priority: None,
        metadata: None,
        init_image: None,
        strength: None,
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Progress>>);

impl ProgressSink for Recorder {
    fn report(&self, progress: Progress) {
        self.0.lock().unwrap().push(progress);
    }
}

impl Recorder {
    fn take(&self) -> Vec<Progress> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

async fn run(req: &ImageRequest) -> Vec<EngineOutput> {
    ProceduralEngine::new().run(req, &Recorder::default(), &CancellationToken::new()).await.unwrap()
}

async fn one(req: &ImageRequest) -> Vec<u8> {
    run(req).await.remove(0).bytes
}

/// Decodes a PNG into (width, height, RGB8 pixels).
fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Mean absolute difference per channel between two same-sized PNGs, 0..=255.
fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    let (pa, pb) = (decode(a).2, decode(b).2);
    assert_eq!(pa.len(), pb.len());
    let sum: u64 = pa.iter().zip(&pb).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    sum as f64 / pa.len() as f64
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test]
async fn same_request_gives_identical_bytes() {
    let mut req = request("a red fox in the snow");
    req.negative_prompt = "blurry, dark".to_owned();
    req.num_images = 2;
    req.scheduler = "dpmpp_2m".to_owned();
    let a = run(&req).await;
    let b = run(&req).await;
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(sha256_hex(&x.bytes), sha256_hex(&y.bytes));
    }
    // The blocking entry point produces the same bytes as the async one.
    let c = ProceduralEngine::new().generate_blocking(&req, &Recorder::default(), &CancellationToken::new()).unwrap();
    assert_eq!(a, c);
    // Every scheduler is deterministic, the stochastic one included.
    for scheduler in ["ddim", "euler", "euler_a"] {
        let req = ImageRequest { scheduler: scheduler.to_owned(), ..request("storm over the sea") };
        assert_eq!(one(&req).await, one(&req).await, "{scheduler}");
    }
}

#[tokio::test]
async fn different_prompts_look_clearly_different() {
    let a = one(&request("a red fox in the snow")).await;
    let b = one(&request("blue ocean waves under a purple sky")).await;
    let diff = mean_abs_diff(&a, &b);
    assert!(diff > 25.0, "mean abs diff {diff}");
}

#[tokio::test]
async fn different_seeds_differ() {
    let a = one(&request("a red fox")).await;
    let b = one(&ImageRequest { seed: Some(2), ..request("a red fox") }).await;
    let diff = mean_abs_diff(&a, &b);
    assert!(diff > 10.0, "mean abs diff {diff}");
}

#[tokio::test]
async fn every_parameter_changes_the_output() {
    let base = request("golden mountains at sunset");
    let reference = one(&base).await;
    let variants = [
        ("negative_prompt", ImageRequest { negative_prompt: "people".to_owned(), ..base.clone() }),
        ("guidance_scale", ImageRequest { guidance_scale: 12.0, ..base.clone() }),
        ("num_inference_steps", ImageRequest { num_inference_steps: 3, ..base.clone() }),
        ("seed", ImageRequest { seed: Some(99), ..base.clone() }),
    ];
    for (field, req) in variants {
        let out = one(&req).await;
        assert_ne!(out, reference, "{field} did not change the image");
        let diff = mean_abs_diff(&out, &reference);
        assert!(diff > 1.0, "{field}: mean abs diff only {diff}");
    }
}

#[tokio::test]
async fn schedulers_have_visibly_different_styles() {
    let mut images = Vec::new();
    for scheduler in ["ddim", "euler", "euler_a", "dpmpp_2m"] {
        let req = ImageRequest { scheduler: scheduler.to_owned(), ..request("emerald forest") };
        images.push((scheduler, one(&req).await));
    }
    for (i, (sa, a)) in images.iter().enumerate() {
        for (sb, b) in &images[i + 1..] {
            let diff = mean_abs_diff(a, b);
            assert!(diff > 4.0, "{sa} vs {sb}: mean abs diff only {diff}");
        }
    }
}

#[tokio::test]
async fn negative_prompt_removes_the_colours_it_names() {
    let base = request("red");
    let with = one(&base).await;
    let without = one(&ImageRequest { negative_prompt: "red".to_owned(), ..base }).await;
    let redness = |png: &[u8]| {
        let px = decode(png).2;
        let n = px.len() / 3;
        let red = px.chunks_exact(3).filter(|p| p[0] > 100 && u32::from(p[0]) > 2 * u32::from(p[1].max(p[2]))).count();
        red as f64 / n as f64
    };
    assert!(redness(&with) > 0.2, "a red prompt should be red: {}", redness(&with));
    assert!(redness(&without) < redness(&with) / 4.0, "{} vs {}", redness(&without), redness(&with));
}

#[tokio::test]
async fn guidance_raises_contrast_and_saturation() {
    let base = request("teal and orange abstract");
    let stats = |png: &[u8]| {
        let px = decode(png).2;
        let n = (px.len() / 3) as f64;
        let luma: Vec<f64> = px
            .chunks_exact(3)
            .map(|p| 0.2126 * f64::from(p[0]) + 0.7152 * f64::from(p[1]) + 0.0722 * f64::from(p[2]))
            .collect();
        let mean = luma.iter().sum::<f64>() / n;
        let sd = (luma.iter().map(|l| (l - mean) * (l - mean)).sum::<f64>() / n).sqrt();
        let chroma =
            px.chunks_exact(3).map(|p| f64::from(p.iter().max().unwrap() - p.iter().min().unwrap())).sum::<f64>() / n;
        (sd, chroma)
    };
    let low = stats(&one(&ImageRequest { guidance_scale: 1.0, ..base.clone() }).await);
    let high = stats(&one(&ImageRequest { guidance_scale: 15.0, ..base }).await);
    assert!(high.0 > low.0 && high.1 > low.1, "low {low:?} high {high:?}");
}

#[tokio::test]
async fn images_are_real_pictures_not_flat_fills() {
    let png = one(&ImageRequest { width: 256, height: 256, ..request("a lighthouse on a cliff") }).await;
    let px = decode(&png).2;
    let mut colours: Vec<[u8; 3]> = px.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 2000, "only {} distinct colours", colours.len());
}

#[tokio::test]
async fn outputs_have_requested_count_size_and_seeds() {
    let req = ImageRequest { width: 192, height: 96, num_images: 3, seed: Some(u64::MAX - 1), ..request("a fox") };
    let outputs = run(&req).await;
    assert_eq!(outputs.len(), 3);
    let seeds: Vec<Option<u64>> = outputs.iter().map(|o| o.seed).collect();
    assert_eq!(seeds, vec![Some(u64::MAX - 1), Some(u64::MAX), Some(0)]);
    for out in &outputs {
        assert_eq!(out.mime, "image/png");
        assert_eq!((out.width, out.height), (Some(192), Some(96)));
        let (w, h, px) = decode(&out.bytes);
        assert_eq!((w, h, px.len()), (192, 96, 192 * 96 * 3));
    }
    assert_ne!(outputs[0].bytes, outputs[1].bytes);
    // Image i of a batch is the single image of seed + i.
    let single = one(&ImageRequest { num_images: 1, seed: Some(u64::MAX), ..req.clone() }).await;
    assert_eq!(single, outputs[1].bytes);
}

#[tokio::test]
async fn progress_is_reported_once_per_step() {
    let recorder = Recorder::default();
    let req = ImageRequest { num_inference_steps: 7, ..request("progress") };
    ProceduralEngine::new().run(&req, &recorder, &CancellationToken::new()).await.unwrap();
    let reports = recorder.take();
    assert_eq!(reports.len(), 7);
    for (i, p) in reports.iter().enumerate() {
        assert_eq!(p.stage, format!("step {}/7", i + 1));
        assert_eq!(p.fraction, (i + 1) as f32 / 7.0);
    }
    assert_eq!(reports.last().map(|p| p.fraction), Some(1.0));

    // A batch keeps one rising fraction across its images.
    let req = ImageRequest { num_inference_steps: 5, num_images: 3, ..request("progress") };
    ProceduralEngine::new().run(&req, &recorder, &CancellationToken::new()).await.unwrap();
    let reports = recorder.take();
    assert_eq!(reports.len(), 15);
    assert!(reports.windows(2).all(|w| w[0].fraction < w[1].fraction));
    assert_eq!(reports.last().map(|p| p.fraction), Some(1.0));
    assert_eq!(reports[6].stage, "image 2/3, step 2/5");
}

#[tokio::test]
async fn previews_are_small_pngs() {
    let recorder = Recorder::default();
    let req = ImageRequest { width: 256, height: 128, num_inference_steps: 20, ..request("preview") };
    ProceduralEngine::new().run(&req, &recorder, &CancellationToken::new()).await.unwrap();
    let previews: Vec<Vec<u8>> = recorder.take().into_iter().filter_map(|p| p.preview).collect();
    assert_eq!(previews.len(), 3, "steps 5, 10 and 15");
    for p in previews {
        let (w, h, _) = decode(&p);
        assert_eq!((w, h), (64, 32));
    }
}

/// Wakes another task (which cancels) on every report.
struct NotifyOnReport(Arc<tokio::sync::Notify>);

impl ProgressSink for NotifyOnReport {
    fn report(&self, _: Progress) {
        self.0.notify_one();
    }
}

#[tokio::test]
async fn cancelling_from_another_task_stops_the_run() {
    let cancel = CancellationToken::new();
    let notify = Arc::new(tokio::sync::Notify::new());
    let canceller = {
        let (cancel, notify) = (cancel.clone(), notify.clone());
        tokio::spawn(async move {
            notify.notified().await;
            cancel.cancel();
        })
    };
    // Far too long to finish before the cancel lands (8 large images of 150 steps).
    let req = ImageRequest { width: 1024, height: 1024, num_inference_steps: 150, num_images: 8, ..request("long") };
    let started = Instant::now();
    let result = ProceduralEngine::new().run(&req, &NotifyOnReport(notify), &cancel).await;
    assert_eq!(result, Err(EngineError::Cancelled));
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    canceller.await.unwrap();

    // Already cancelled: nothing runs.
    let result = ProceduralEngine::new().run(&request("x"), &Recorder::default(), &cancel).await;
    assert_eq!(result, Err(EngineError::Cancelled));
}

#[test]
fn check_names_the_offending_field() {
    let engine = ProceduralEngine::new();
    let field = |req: ImageRequest| engine.check(&req).err().map(|e| e.field);
    assert_eq!(field(request("ok")), None);
    assert_eq!(field(ImageRequest { model_name: Some("procedural-v1".to_owned()), ..request("ok") }), None);
    for scheduler in ["ddim", "euler", "euler_a", "dpmpp_2m"] {
        assert_eq!(field(ImageRequest { scheduler: scheduler.to_owned(), ..request("ok") }), None);
    }

    let err = engine.check(&ImageRequest { scheduler: "lms".to_owned(), ..request("x") }).unwrap_err();
    assert_eq!(err.field, "scheduler");
    assert_eq!(err.message, "must be one of: ddim, euler, euler_a, dpmpp_2m");

    let lora = LoraRef { name: "style".to_owned(), weight: 1.0 };
    let err = engine.check(&ImageRequest { loras: vec![lora], ..request("x") }).unwrap_err();
    assert_eq!((err.field.as_str(), err.message.as_str()), ("loras", "the procedural engine cannot apply LoRAs"));

    let wrong_model = ImageRequest { model_name: Some("sdxl-base".to_owned()), ..request("x") };
    assert_eq!(field(wrong_model), Some("model_name".to_owned()));
    assert_eq!(field(ImageRequest { engine: Some("comfyui".to_owned()), ..request("x") }), Some("engine".to_owned()));
    assert_eq!(field(ImageRequest { width: 100, ..request("x") }), Some("width".to_owned()));
    assert_eq!(field(ImageRequest { width: 56, ..request("x") }), Some("width".to_owned()));
    assert_eq!(field(ImageRequest { height: 4096, ..request("x") }), Some("height".to_owned()));
    assert_eq!(field(ImageRequest { num_images: 9, ..request("x") }), Some("num_images".to_owned()));
    let too_many_steps = ImageRequest { num_inference_steps: 151, ..request("x") };
    assert_eq!(field(too_many_steps), Some("num_inference_steps".to_owned()));
}

#[tokio::test]
async fn run_refuses_what_check_refuses() {
    let req = ImageRequest { scheduler: "lms".to_owned(), ..request("x") };
    let result = ProceduralEngine::new().run(&req, &Recorder::default(), &CancellationToken::new()).await;
    assert!(matches!(result, Err(EngineError::Invalid(e)) if e.field == "scheduler"));
    let req = ImageRequest { seed: None, ..request("x") };
    let result = ProceduralEngine::new().run(&req, &Recorder::default(), &CancellationToken::new()).await;
    assert!(matches!(result, Err(EngineError::Invalid(e)) if e.field == "seed"));
}

#[test]
fn advertises_name_model_and_capabilities() {
    let engine = ProceduralEngine::default();
    assert_eq!(engine.name(), "procedural");
    let models = engine.models();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].name, "procedural-v1");
    assert!(models[0].description.contains("not a diffusion model"));
    let caps = engine.capabilities();
    assert_eq!(caps.job_types, vec!["image"]);
    assert_eq!(caps.schedulers, vec!["ddim", "euler", "euler_a", "dpmpp_2m"]);
    assert_eq!((caps.min_size, caps.max_size, caps.size_multiple), (64, 2048, 8));
    assert_eq!((caps.max_images, caps.max_steps), (8, 150));
    assert!(!caps.supports_loras);
    assert!(caps.supports_negative_prompt);
    assert!(caps.supports_img2img);
}

/// A 128×128 init image unlike anything the engine draws: a blue-to-yellow diagonal gradient.
fn init_image() -> InitImage {
    let mut rgb = Vec::with_capacity(128 * 128 * 3);
    for y in 0..128u32 {
        for x in 0..128u32 {
            let t = ((x + y) * 255 / 254) as u8;
            rgb.extend_from_slice(&[t, t, 255 - t]);
        }
    }
    InitImage::from_rgb(128, 128, rgb).unwrap()
}

fn img2img_request(strength: f32) -> ImageRequest {
    ImageRequest { init_image: Some(uuid::Uuid::nil()), strength: Some(strength), ..request("a red fox in the snow") }
}

async fn img2img(req: &ImageRequest, init: &InitImage, recorder: &Recorder) -> Vec<u8> {
    ProceduralEngine::new().run_img2img(req, init, recorder, &CancellationToken::new()).await.unwrap().remove(0).bytes
}

/// Mean absolute difference of two equally long RGB buffers.
fn pixel_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.len() as f64
}

#[tokio::test]
async fn img2img_is_deterministic_and_follows_strength() {
    let init = init_image();
    let rec = Recorder::default();
    let a = img2img(&img2img_request(0.5), &init, &rec).await;
    let b = img2img(&img2img_request(0.5), &init, &rec).await;
    assert_eq!(hex::encode(Sha256::digest(&a)), hex::encode(Sha256::digest(&b)), "same inputs, same bytes");
    let txt = one(&request("a red fox in the snow")).await;
    assert_ne!(a, txt, "img2img differs from text-to-image");

    let (w, h, low) = decode(&img2img(&img2img_request(0.1), &init, &rec).await);
    assert_eq!((w, h), (128, 128));
    let (_, _, high) = decode(&img2img(&img2img_request(0.95), &init, &rec).await);
    let (_, _, pure) = decode(&txt);
    let low_diff = pixel_diff(&low, init.rgb());
    let high_diff = pixel_diff(&high, init.rgb());
    assert!(low_diff < 12.0, "strength 0.1 stays close to the init image: {low_diff}");
    assert!(high_diff > 4.0 * low_diff, "strength 0.95 moves far from it: {high_diff} vs {low_diff}");
    assert!(pixel_diff(&high, &pure) < 10.0, "strength → 1 is close to the text-to-image render");
    // Strength 1 is exactly the text-to-image render.
    assert_eq!(img2img(&img2img_request(1.0), &init, &rec).await, txt);
}

#[tokio::test]
async fn img2img_reports_its_steps_and_stops_on_cancel() {
    let init = init_image();
    let recorder = Recorder::default();
    // 8 steps at strength 0.5: 4 steps run, like a diffusion model skipping the noisiest half.
    img2img(&img2img_request(0.5), &init, &recorder).await;
    let fractions: Vec<f32> = recorder.take().iter().map(|p| p.fraction).collect();
    assert_eq!(fractions, vec![0.25, 0.5, 0.75, 1.0]);
    let cancel = CancellationToken::new();
    cancel.cancel();
    let result = ProceduralEngine::new().run_img2img(&img2img_request(0.5), &init, &Recorder::default(), &cancel).await;
    assert_eq!(result, Err(EngineError::Cancelled));
    // Text-to-image `run` does not accept an image-to-image request (the image would be lost).
    let result =
        ProceduralEngine::new().run(&img2img_request(0.5), &Recorder::default(), &CancellationToken::new()).await;
    assert!(matches!(result, Err(EngineError::Invalid(e)) if e.field == "init_image"));
}
