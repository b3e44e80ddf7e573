#![allow(clippy::unwrap_used, reason = "temporary timing tool")]
use std::time::Instant;
use seidra_core::job::ImageRequest;
use seidra_engines::{CancellationToken, ProceduralEngine, Progress, ProgressSink};
struct Q;
impl ProgressSink for Q { fn report(&self, _: Progress) {} }
fn main() {
    let e = ProceduralEngine::new();
    for sched in ["ddim", "euler", "euler_a", "dpmpp_2m"] {
    let req: ImageRequest = ImageRequest { prompt: "a red fox in a snowy forest at dawn, golden light, mountains".into(), negative_prompt: "blurry".into(), width: 1024, height: 1024, num_inference_steps: 30, guidance_scale: 7.5, num_images: 1, seed: Some(42), model_name: None, engine: None, scheduler: sched.into(), loras: vec![], persona_id: None, priority: None, metadata: None };
    let mut best = f64::MAX; let mut out = vec![];
    for _ in 0..5 { let t = Instant::now(); out = e.generate_blocking(&req, &Q, &CancellationToken::new()).unwrap(); best = best.min(t.elapsed().as_secs_f64()); }
    let bytes = &out[0].bytes;
    let dec = png::Decoder::new(std::io::Cursor::new(bytes.clone()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    r.next_frame(&mut buf).unwrap();
    println!("{sched}: total {:.1} ms, png {} KB", best * 1e3, bytes.len() / 1024);
    for (name, comp, filt) in [("fast+adaptive", png::Compression::Fast, png::Filter::Adaptive), ("fast+sub", png::Compression::Fast, png::Filter::Sub), ("fast+up", png::Compression::Fast, png::Filter::Up), ("fast+paeth", png::Compression::Fast, png::Filter::Paeth), ("balanced+adaptive", png::Compression::Balanced, png::Filter::Adaptive)] {
        let mut bt = f64::MAX; let mut len = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let mut o = Vec::new();
            { let mut enc = png::Encoder::new(&mut o, 1024, 1024); enc.set_color(png::ColorType::Rgb); enc.set_depth(png::BitDepth::Eight); enc.set_compression(comp); enc.set_filter(filt); let mut w = enc.write_header().unwrap(); w.write_image_data(&buf).unwrap(); w.finish().unwrap(); }
            bt = bt.min(t.elapsed().as_secs_f64()); len = o.len();
        }
        println!("  {name}: {:.1} ms, {} KB", bt * 1e3, len / 1024);
    }
    }
}
