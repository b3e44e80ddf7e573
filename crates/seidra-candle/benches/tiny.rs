//! candle engine on the tiny random-weight model, CPU, one 64×64 image: sampler steps per
//! second (criterion's "elements/s") as a regression guard for the pipeline's overhead, not a
//! measure of real-model speed: `cargo bench -p seidra-candle -- --warm-up-time 1 --measurement-time 5`.

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

fn request(steps: u32, scheduler: &str) -> ImageRequest {
    let mut r: ImageRequest = serde_json::from_value(serde_json::json!({
        "prompt": "a red fox in a snowy forest at dawn",
        "negative_prompt": "blurry",
        "width": 64, "height": 64, "num_inference_steps": steps, "guidance_scale": 7.5,
        "scheduler": scheduler, "engine": "candle",
    }))
    .unwrap();
    r.seed = Some(42);
    r
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    tiny::write_model(&dir.path().join("tiny-sd")).unwrap();
    let engine = CandleEngine::new(CandleConfig {
        models_dir: dir.path().to_path_buf(),
        device: "cpu".into(),
        cache_bytes: 1 << 30,
    })
    .unwrap();
    let cancel = CancellationToken::new();
    let mut group = c.benchmark_group("candle_tiny");
    group.sample_size(10);
    for scheduler in ["ddim", "euler_a"] {
        let steps = 10;
        let req = request(steps, scheduler);
        group.throughput(Throughput::Elements(u64::from(steps)));
        group.bench_with_input(BenchmarkId::new(scheduler, "64x64"), &req, |b, req| {
            b.iter(|| black_box(engine.generate_blocking(black_box(req), &Discard, &cancel).unwrap().len()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
