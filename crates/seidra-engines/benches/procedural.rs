//! Procedural engine cost per image (render + PNG encoding) on one thread:
//! `cargo bench -p seidra-engines -- --warm-up-time 1 --measurement-time 5`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use seidra_core::job::ImageRequest;
use seidra_engines::{CancellationToken, ProceduralEngine, Progress, ProgressSink};

/// Discards progress; previews are still rendered, as in production.
struct Discard;

impl ProgressSink for Discard {
    fn report(&self, progress: Progress) {
        black_box(progress);
    }
}

fn request(size: u32, steps: u32) -> ImageRequest {
    ImageRequest {
        prompt: "a red fox in a snowy forest at dawn, golden light, mountains".to_owned(),
        negative_prompt: "blurry".to_owned(),
        width: size,
        height: size,
        num_inference_steps: steps,
        guidance_scale: 7.5,
        num_images: 1,
        seed: Some(42),
        model_name: None,
        engine: None,
        scheduler: "dpmpp_2m".to_owned(),
        loras: Vec::new(),
        persona_id: None,
        priority: None,
        metadata: None,
        init_image: None,
        strength: None,
    }
}

fn bench(c: &mut Criterion) {
    let engine = ProceduralEngine::new();
    let cancel = CancellationToken::new();
    let mut group = c.benchmark_group("procedural");
    group.sample_size(20);
    for (size, steps) in [(512, 30), (1024, 30), (1024, 150)] {
        let req = request(size, steps);
        let id = BenchmarkId::new(format!("{steps}_steps"), format!("{size}x{size}"));
        group.bench_with_input(id, &req, |b, req| {
            b.iter(|| {
                let out = engine.generate_blocking(black_box(req), &Discard, &cancel);
                black_box(out.map(|o| o.len()).unwrap_or(0))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
