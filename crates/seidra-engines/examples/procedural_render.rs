//! Renders one procedural image to a PNG file, to look at what the engine draws.
//!
//! `cargo run -p seidra-engines --example procedural_render -- OUT.png "prompt" [negative]
//!  [scheduler] [seed] [size] [steps] [guidance]`

use std::process::ExitCode;

use seidra_core::job::ImageRequest;
use seidra_engines::{CancellationToken, GenerationEngine, ProceduralEngine, Progress, ProgressSink};

struct Quiet;

impl ProgressSink for Quiet {
    fn report(&self, _: Progress) {}
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let num = |i: usize, default: f64| args.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(default);
    if args.len() < 2 {
        eprintln!("usage: procedural_render OUT.png PROMPT [NEGATIVE] [SCHEDULER] [SEED] [SIZE] [STEPS] [GUIDANCE]");
        return ExitCode::FAILURE;
    }
    let size = num(5, 512.0) as u32;
    let request = ImageRequest {
        prompt: arg(1),
        negative_prompt: arg(2),
        width: size,
        height: size,
        num_inference_steps: num(6, 30.0) as u32,
        guidance_scale: num(7, 7.5) as f32,
        num_images: 1,
        seed: Some(num(4, 42.0) as u64),
        model_name: None,
        engine: None,
        scheduler: args.get(3).filter(|s| !s.is_empty()).cloned().unwrap_or_else(|| "ddim".to_owned()),
        loras: Vec::new(),
        persona_id: None,
        priority: None,
        metadata: None,
        init_image: None,
        strength: None,
    };
    let engine = ProceduralEngine::new();
    if let Err(e) = engine.check(&request) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    match engine.generate_blocking(&request, &Quiet, &CancellationToken::new()) {
        Ok(outputs) => {
            for out in outputs {
                if let Err(e) = std::fs::write(arg(0), &out.bytes) {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
