//! AUTOMATIC1111 / Forge: `POST /sdapi/v1/txt2img`, or `POST /sdapi/v1/img2img` with
//! `init_images: [base64 PNG]` and `denoising_strength` (LoRAs as `<lora:name:weight>` prompt tags,
//! the model as `override_settings.sd_model_checkpoint`), progress polled from
//! `/sdapi/v1/progress` while it runs, base64 images in the answer, cancel via
//! `POST /sdapi/v1/interrupt`.

use std::time::Duration;

use seidra_core::job::ImageRequest;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::http::{self, Http};
use super::{decode_b64, image_output, remote_error};
use crate::{EngineError, EngineOutput, InitImage, Progress, ProgressSink};

/// Interval of `/sdapi/v1/progress` polls.
const POLL: Duration = Duration::from_millis(250);

/// The A1111 protocol.
#[derive(Debug, Clone, Copy)]
pub struct A1111;

impl A1111 {
    /// The txt2img body for a request.
    pub fn body(model: &str, request: &ImageRequest) -> Value {
        let mut prompt = request.prompt.clone();
        for lora in &request.loras {
            prompt.push_str(&format!(" <lora:{}:{}>", lora.name, lora.weight));
        }
        // A1111 seeds are signed 64-bit; -1 means random, so keep within the positive range.
        let seed = i64::try_from(request.seed.unwrap_or(0) & (i64::MAX as u64)).unwrap_or(0);
        json!({
            "prompt": prompt,
            "negative_prompt": request.negative_prompt,
            "width": request.width,
            "height": request.height,
            "steps": request.num_inference_steps,
            "cfg_scale": request.guidance_scale,
            "seed": seed,
            "sampler_name": sampler(&request.scheduler),
            "batch_size": request.num_images,
            "n_iter": 1,
            "override_settings": { "sd_model_checkpoint": model },
            "override_settings_restore_afterwards": true,
            "send_images": true,
            "save_images": false,
        })
    }

    /// The img2img body: the txt2img parameters plus the init image (base64 PNG, already at the
    /// requested size, so `resize_mode` 0 "just resize" is a no-op) and the denoising strength.
    pub fn img2img_body(model: &str, request: &ImageRequest, init_png: &[u8]) -> Value {
        use base64::Engine as _;
        let mut body = Self::body(model, request);
        if let Some(map) = body.as_object_mut() {
            let strength = request.img2img_strength().unwrap_or(seidra_core::job::DEFAULT_STRENGTH);
            map.insert("init_images".into(), json!([base64::engine::general_purpose::STANDARD.encode(init_png)]));
            map.insert("denoising_strength".into(), json!(strength));
            map.insert("resize_mode".into(), json!(0));
        }
        body
    }

    /// Runs one request (image-to-image when `init` is given); see the module docs.
    pub(crate) async fn run(
        &self,
        http: &Http,
        model: &str,
        request: &ImageRequest,
        init: Option<&InitImage>,
        progress: &dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<EngineOutput>, EngineError> {
        let (path, body) = match init {
            Some(image) => ("/sdapi/v1/img2img", Self::img2img_body(model, request, &image.png()?)),
            None => ("/sdapi/v1/txt2img", Self::body(model, request)),
        };
        let call = http::json::<Value>(http.post(path).json(&body));
        tokio::pin!(call);
        progress.report(Progress { fraction: 0.0, stage: "sent to AUTOMATIC1111".into(), preview: None });
        let mut ticker = tokio::time::interval(POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let answer = loop {
            tokio::select! {
                r = &mut call => break r?,
                () = cancel.cancelled() => {
                    let interrupt = http.post("/sdapi/v1/interrupt").timeout(Duration::from_secs(5));
                    if let Err(err) = http::send(interrupt).await {
                        tracing::warn!(%err, "could not interrupt the AUTOMATIC1111 job");
                    }
                    return Err(EngineError::Cancelled);
                }
                _ = ticker.tick() => report_progress(http, progress).await,
            }
        };
        let images = answer.get("images").and_then(Value::as_array).cloned().unwrap_or_default();
        let wanted = usize::try_from(request.num_images).unwrap_or(1);
        if images.len() < wanted {
            return Err(remote_error(format!("AUTOMATIC1111 returned {} image(s), {wanted} expected", images.len())));
        }
        // With a batch, a grid image may come first: the last `wanted` are the individual images.
        let mut outputs = Vec::new();
        for (i, image) in images[images.len() - wanted..].iter().enumerate() {
            let bytes = decode_b64(image.as_str().unwrap_or_default())?;
            outputs.push(image_output(bytes, request, i));
        }
        progress.report(Progress { fraction: 1.0, stage: "done".into(), preview: None });
        Ok(outputs)
    }
}

/// One poll of `/sdapi/v1/progress`; failures are ignored (the generation call decides the outcome).
async fn report_progress(http: &Http, progress: &dyn ProgressSink) {
    let req = http.get("/sdapi/v1/progress?skip_current_image=true").timeout(Duration::from_secs(2));
    let Ok(answer) = http::json::<Value>(req).await else { return };
    let fraction = answer.get("progress").and_then(Value::as_f64).unwrap_or(0.0).clamp(0.0, 1.0);
    let state = answer.get("state").cloned().unwrap_or(Value::Null);
    let step = state.get("sampling_step").and_then(Value::as_u64).unwrap_or(0);
    let steps = state.get("sampling_steps").and_then(Value::as_u64).unwrap_or(0);
    if fraction > 0.0 {
        progress.report(Progress { fraction: fraction as f32, stage: format!("step {step}/{steps}"), preview: None });
    }
}

/// A1111 sampler names.
fn sampler(scheduler: &str) -> &'static str {
    match scheduler {
        "euler" => "Euler",
        "euler_a" => "Euler a",
        "dpmpp_2m" => "DPM++ 2M",
        _ => "DDIM",
    }
}
