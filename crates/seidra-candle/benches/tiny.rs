//! candle engine on the tiny random-weight SD and SDXL models, CPU, one 64×64 image: sampler
//! steps per second (criterion's "elements/s") as a regression guard for the pipeline's
//! overhead, not a measure of real-model speed:
//! `cargo bench -p seidra-candle -- --warm-up-time 1 --measurement-time 5`.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "benchmark setup")]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use seidra_candle::{CandleConfig, CandleEngine, tiny};
use seidra_core::job::ImageRequest;
use seidra_engines::{CancellationToken, Progress, ProgressSink};

struct Discard;

impl ProgressSink for Discard {
    fn report(&self, progress: Progress) {
        black_box(progress);
    }
}

fn request(model: &str, steps: u32, scheduler: &str, guidance: f32) -> ImageRequest {
    let mut r: ImageRequest = serde_json::from_value(serde_json::json!({
        "prompt": "a red fox in a snowy forest at dawn",
        "negative_prompt": "blurry",
        "width": 64, "height": 64, "num_inference_steps": steps, "guidance_scale": guidance,
        "scheduler": scheduler, "engine": "candle", "model_name": model,
    }))
    .unwrap();
    r.seed = Some(42);
    r
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    tiny::write_model(&dir.path().join("tiny-sd")).unwrap();
    tiny::write_sdxl_model(&dir.path().join("tiny-sdxl"), false).unwrap();
    tiny::write_sdxl_model(&dir.path().join("tiny-sdxl-turbo"), true).unwrap();
    let engine = CandleEngine::new(CandleConfig {
        models_dir: dir.path().to_path_buf(),
        device: "cpu".into(),
        cache_bytes: 1 << 30,
    })
    .unwrap();
    let cancel = CancellationToken::new();
    let mut run = |group: &str, cases: &[(&str, &str, u32, f32)]| {
        let mut group = c.benchmark_group(group);
        group.sample_size(10);
        for &(model, scheduler, steps, guidance) in cases {
            let req = request(model, steps, scheduler, guidance);
            group.throughput(Throughput::Elements(u64::from(steps)));
            group.bench_with_input(BenchmarkId::new(scheduler, "64x64"), &req, |b, req| {
                b.iter(|| black_box(engine.generate_blocking(black_box(req), &Discard, &cancel).unwrap().len()))
            });
        }
        group.finish();
    };
    // SD: classifier-free guidance, both sides in one batch of two.
    run("candle_tiny", &[("tiny-sd", "ddim", 10, 7.5), ("tiny-sd", "euler_a", 10, 7.5)]);
    // SDXL: two text encoders, each side of guidance its own UNet pass (text_time folded in).
    run("candle_tiny_sdxl", &[("tiny-sdxl", "euler", 10, 7.5)]);
    // SDXL-Turbo: guidance 0 (one UNet pass per step), 4 steps.
    run("candle_tiny_sdxl_turbo", &[("tiny-sdxl-turbo", "euler_a", 4, 0.0)]);
}

criterion_group!(benches, bench);
criterion_main!(benches);
