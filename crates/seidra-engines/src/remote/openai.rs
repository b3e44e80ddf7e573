//! OpenAI-compatible images API: `POST /v1/images/generations` with `response_format:
//! b64_json`; there is no progress nor a cancel call, so cancelling drops the request.

use seidra_core::job::ImageRequest;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::http::{self, Http};
use super::{decode_b64, image_output, remote_error};
use crate::{EngineError, EngineOutput, Progress, ProgressSink};

/// The OpenAI protocol.
#[derive(Debug, Clone, Copy)]
pub struct OpenAi;

impl OpenAi {
    /// The request body.
    pub fn body(model: &str, request: &ImageRequest) -> Value {
        json!({
            "model": model,
            "prompt": request.prompt,
            "n": request.num_images,
            "size": format!("{}x{}", request.width, request.height),
            "response_format": "b64_json",
        })
    }

    /// Runs one request; see the module docs.
    pub(crate) async fn run(
        &self,
        http: &Http,
        model: &str,
        request: &ImageRequest,
        progress: &dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<EngineOutput>, EngineError> {
        progress.report(Progress { fraction: 0.0, stage: "sent to the images API".into(), preview: None });
        let answer: Value = tokio::select! {
            r = http::json(http.post("/v1/images/generations").json(&Self::body(model, request))) => r?,
            () = cancel.cancelled() => return Err(EngineError::Cancelled),
        };
        let data = answer.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        if data.is_empty() {
            return Err(remote_error("the images API returned no image"));
        }
        let mut outputs = Vec::new();
        for (i, item) in data.iter().enumerate() {
            let Some(b64) = item.get("b64_json").and_then(Value::as_str) else {
                return Err(remote_error("the images API answered without `b64_json` (URL answers are not supported)"));
            };
            outputs.push(image_output(decode_b64(b64)?, request, i));
        }
        progress.report(Progress { fraction: 1.0, stage: "done".into(), preview: None });
        Ok(outputs)
    }
}
