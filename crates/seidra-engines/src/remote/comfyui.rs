//! ComfyUI: the request fills an API-format workflow (built-in txt2img or an admin's template
//! with `{{slot}}` parameters), LoRAs become `LoraLoader` nodes after the checkpoint loader,
//! the prompt is queued with `POST /prompt`, progress comes from `/ws?clientId=` (`progress`
//! value/max, `executing` with `node: null` = done, `execution_error`, `execution_interrupted`),
//! outputs are listed by `/history/{prompt_id}` and fetched from `/view`. Cancel sends
//! `POST /interrupt` and deletes the prompt from `/queue`. If the WebSocket cannot be opened or
//! drops, completion is polled from `/history` instead.
//!
//! Image-to-image first uploads the init image with `POST /upload/image` (multipart `image`,
//! `overwrite`, `type=input`) and fills `{{image}}` with the name ComfyUI answers (LoadImage →
//! VAEEncode → KSampler with `denoise` = strength); see `comfyui_img2img.json`. A custom
//! template serves image-to-image only if it has an `{{image}}` slot (and then only that).

use std::time::Duration;

use futures_util::StreamExt;
use seidra_core::job::ImageRequest;
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

use super::http::{self, Http};
use super::{image_output, remote_error};
use crate::{EngineError, EngineOutput, InitImage, Progress, ProgressSink};

/// The built-in txt2img workflow.
pub const BUILTIN_WORKFLOW: &str = include_str!("comfyui_txt2img.json");
/// The built-in img2img workflow.
pub const BUILTIN_IMG2IMG_WORKFLOW: &str = include_str!("comfyui_img2img.json");
/// Parameter slots a template may use, each written `"{{name}}"`. `image` (the uploaded init
/// image's name for `LoadImage`) and `denoise` (the strength) make an img2img template.
pub const SLOTS: [&str; 13] = [
    "prompt",
    "negative_prompt",
    "model",
    "width",
    "height",
    "batch_size",
    "seed",
    "steps",
    "cfg",
    "sampler",
    "scheduler",
    "image",
    "denoise",
];
/// Interval of `/history` polling when the WebSocket is not available.
const POLL: Duration = Duration::from_millis(250);

/// The ComfyUI protocol with its workflow templates.
#[derive(Debug, Clone)]
pub struct ComfyUi {
    /// Text-to-image template (`None`: a custom img2img-only template).
    txt2img: Option<Map<String, Value>>,
    /// Image-to-image template (`None`: a custom text-to-image-only template).
    img2img: Option<Map<String, Value>>,
}

impl ComfyUi {
    /// Checks the template: a JSON object of nodes using only known slots, `{{prompt}}` included.
    /// Without one, the built-in txt2img and img2img workflows serve both kinds of request.
    pub fn new(template: Option<Value>) -> Result<Self, String> {
        let Some(template) = template else {
            let builtin = |text: &str| -> Result<Map<String, Value>, String> {
                checked(serde_json::from_str(text).map_err(|e| format!("built-in workflow: {e}"))?)
            };
            return Ok(Self {
                txt2img: Some(builtin(BUILTIN_WORKFLOW)?),
                img2img: Some(builtin(BUILTIN_IMG2IMG_WORKFLOW)?),
            });
        };
        let template = checked(template)?;
        let mut used = Vec::new();
        collect_slots(&Value::Object(template.clone()), &mut used);
        if used.iter().any(|s| s == "image") {
            Ok(Self { txt2img: None, img2img: Some(template) })
        } else {
            Ok(Self { txt2img: Some(template), img2img: None })
        }
    }

    /// Whether it can run image-to-image requests.
    pub fn supports_img2img(&self) -> bool {
        self.img2img.is_some()
    }

    /// Whether it can run text-to-image requests (a custom img2img template cannot).
    pub fn supports_txt2img(&self) -> bool {
        self.txt2img.is_some()
    }

    /// The workflow for a request: slots filled (`image`: the uploaded init image's name for an
    /// image-to-image request), LoRA loaders inserted.
    pub fn workflow(
        &self,
        model: &str,
        request: &ImageRequest,
        image: Option<&str>,
    ) -> Result<Map<String, Value>, EngineError> {
        let template = match image {
            Some(_) => self.img2img.as_ref(),
            None => self.txt2img.as_ref(),
        };
        let Some(template) = template else {
            return Err(EngineError::Invalid(seidra_core::ValidationError::new(
                "init_image",
                if image.is_some() {
                    "this engine's ComfyUI workflow cannot start from an image"
                } else {
                    "this engine's ComfyUI workflow needs an init image"
                },
            )));
        };
        let (sampler, scheduler) = sampler(&request.scheduler);
        let values: Map<String, Value> = [
            ("prompt", json!(request.prompt)),
            ("negative_prompt", json!(request.negative_prompt)),
            ("model", json!(model)),
            ("width", json!(request.width)),
            ("height", json!(request.height)),
            ("batch_size", json!(request.num_images)),
            ("seed", json!(request.seed.unwrap_or(0))),
            ("steps", json!(request.num_inference_steps)),
            ("cfg", json!(request.guidance_scale)),
            ("sampler", json!(sampler)),
            ("scheduler", json!(scheduler)),
            ("image", json!(image.unwrap_or_default())),
            ("denoise", json!(request.img2img_strength().unwrap_or(1.0))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut filled = Value::Object(template.clone());
        fill(&mut filled, &values);
        let Value::Object(mut nodes) = filled else { return Err(remote_error("workflow is not an object")) };
        if !request.loras.is_empty() {
            insert_loras(&mut nodes, request)?;
        }
        Ok(nodes)
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
        let image = match init {
            Some(init) => {
                let png = init.png()?;
                tokio::select! {
                    r = upload(http, png) => Some(r?),
                    () = cancel.cancelled() => return Err(EngineError::Cancelled),
                }
            }
            None => None,
        };
        let workflow = self.workflow(model, request, image.as_deref())?;
        let client_id = uuid::Uuid::new_v4().to_string();
        // Open the socket before queueing so no message of this prompt is missed.
        let mut ws = match connect_ws(http, &client_id).await {
            Ok(ws) => Some(ws),
            Err(err) => {
                tracing::debug!(%err, "ComfyUI WebSocket unavailable; polling /history");
                None
            }
        };
        let queued: Value = tokio::select! {
            r = http::json(http.post("/prompt").json(&json!({ "prompt": workflow, "client_id": client_id }))) => r?,
            () = cancel.cancelled() => return Err(EngineError::Cancelled),
        };
        let Some(prompt_id) = queued.get("prompt_id").and_then(Value::as_str).map(str::to_owned) else {
            return Err(remote_error(format!("ComfyUI did not queue the prompt: {queued}")));
        };
        progress.report(Progress { fraction: 0.0, stage: "queued on ComfyUI".into(), preview: None });

        let finished = tokio::select! {
            r = wait(http, ws.as_mut(), &prompt_id, progress) => r,
            () = cancel.cancelled() => Err(EngineError::Cancelled),
        };
        if let Some(mut ws) = ws {
            let _ = ws.close(None).await;
        }
        if let Err(err) = finished {
            if matches!(err, EngineError::Cancelled) {
                stop(http, &prompt_id).await;
            }
            return Err(err);
        }
        let outputs = fetch_outputs(http, &prompt_id, request).await?;
        progress.report(Progress { fraction: 1.0, stage: "done".into(), preview: None });
        Ok(outputs)
    }
}

/// Uploads an init image to ComfyUI's input folder; returns the value for `LoadImage.image`
/// (`subfolder/name` as ComfyUI answered, which may differ from the name sent).
async fn upload(http: &Http, png: Vec<u8>) -> Result<String, EngineError> {
    let file_name = format!("seidra_init_{}.png", uuid::Uuid::new_v4().simple());
    let part = reqwest::multipart::Part::bytes(png)
        .file_name(file_name)
        .mime_str("image/png")
        .map_err(|e| remote_error(format!("cannot build the upload: {e}")))?;
    let form = reqwest::multipart::Form::new().part("image", part).text("overwrite", "true").text("type", "input");
    let answer: Value = http::json(http.post("/upload/image").multipart(form).timeout(Duration::from_secs(60))).await?;
    let field = |k: &str| answer.get(k).and_then(Value::as_str).unwrap_or_default();
    let name = field("name");
    if name.is_empty() {
        return Err(remote_error(format!("ComfyUI did not name the uploaded image: {answer}")));
    }
    let subfolder = field("subfolder");
    Ok(if subfolder.is_empty() { name.to_owned() } else { format!("{subfolder}/{name}") })
}

/// A template as a JSON object of nodes using only known slots, `{{prompt}}` included.
fn checked(template: Value) -> Result<Map<String, Value>, String> {
    let Value::Object(template) = template else {
        return Err("the workflow must be an API-format JSON object of nodes".into());
    };
    let mut used = Vec::new();
    collect_slots(&Value::Object(template.clone()), &mut used);
    if let Some(unknown) = used.iter().find(|s| !SLOTS.contains(&s.as_str())) {
        return Err(format!("the workflow uses the unknown slot `{{{{{unknown}}}}}`; known: {}", SLOTS.join(", ")));
    }
    if !used.iter().any(|s| s == "prompt") {
        return Err("the workflow has no `{{prompt}}` slot".into());
    }
    Ok(template)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect_ws(http: &Http, client_id: &str) -> Result<Ws, String> {
    let base = http.base();
    let ws_base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        return Err(format!("unsupported URL {base}"));
    };
    let mut req = format!("{ws_base}/ws?clientId={client_id}").into_client_request().map_err(|e| e.to_string())?;
    if let Some(key) = http.api_key()
        && let Ok(value) = format!("Bearer {key}").parse()
    {
        req.headers_mut().insert("authorization", value);
    }
    let connect = tokio_tungstenite::connect_async(req);
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Waits for the prompt to finish: from the socket while it lasts, then from `/history`.
async fn wait(
    http: &Http,
    ws: Option<&mut Ws>,
    prompt_id: &str,
    progress: &dyn ProgressSink,
) -> Result<(), EngineError> {
    if let Some(ws) = ws {
        let mut preview: Option<Vec<u8>> = None;
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Text(text)) => {
                    let Ok(event) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    if let Some(done) = on_event(&event, prompt_id, progress, &mut preview)? {
                        return done;
                    }
                }
                // Binary frames are previews: u32 event (1 = preview image), u32 format (2 = PNG), image.
                Ok(Message::Binary(bytes)) => {
                    if bytes.len() > 8 && bytes[0..4] == [0, 0, 0, 1] && bytes[4..8] == [0, 0, 0, 2] {
                        preview = Some(bytes[8..].to_vec());
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        tracing::debug!(prompt_id, "ComfyUI WebSocket closed before the prompt finished; polling /history");
    }
    loop {
        if let Some(entry) = history_entry(http, prompt_id).await? {
            let status = entry.get("status").cloned().unwrap_or(Value::Null);
            match status.get("status_str").and_then(Value::as_str) {
                Some("error") => return Err(remote_error(history_error(&status))),
                _ if status.get("completed").and_then(Value::as_bool) == Some(true) => return Ok(()),
                // Old servers record no status: outputs present means done.
                _ if status.is_null()
                    && entry.get("outputs").is_some_and(|o| o.as_object().is_some_and(|m| !m.is_empty())) =>
                {
                    return Ok(());
                }
                _ => {}
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Handles one WebSocket event; `Some(result)` when the prompt is over.
fn on_event(
    event: &Value,
    prompt_id: &str,
    progress: &dyn ProgressSink,
    preview: &mut Option<Vec<u8>>,
) -> Result<Option<Result<(), EngineError>>, EngineError> {
    let data = event.get("data").cloned().unwrap_or(Value::Null);
    if data.get("prompt_id").and_then(Value::as_str) != Some(prompt_id) {
        return Ok(None); // `status` broadcasts and other clients' prompts
    }
    let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok(match event.get("type").and_then(Value::as_str).unwrap_or_default() {
        "execution_start" => {
            progress.report(Progress { fraction: 0.0, stage: "running on ComfyUI".into(), preview: None });
            None
        }
        "progress" => {
            let value = data.get("value").and_then(Value::as_f64).unwrap_or(0.0);
            let max = data.get("max").and_then(Value::as_f64).unwrap_or(0.0);
            if max > 0.0 {
                progress.report(Progress {
                    fraction: (value / max).clamp(0.0, 1.0) as f32,
                    stage: format!("step {value}/{max}"),
                    preview: preview.take(),
                });
            }
            None
        }
        "executing" if data.get("node").is_some_and(Value::is_null) => Some(Ok(())),
        "execution_success" => Some(Ok(())),
        "execution_error" => Some(Err(remote_error(format!(
            "ComfyUI node {} ({}) failed: {}",
            text("node_id"),
            text("node_type"),
            text("exception_message").trim()
        )))),
        "execution_interrupted" => Some(Err(EngineError::Failed {
            code: "engine_interrupted".into(),
            message: "the prompt was interrupted on the ComfyUI server".into(),
            retryable: true,
        })),
        _ => None,
    })
}

async fn history_entry(http: &Http, prompt_id: &str) -> Result<Option<Value>, EngineError> {
    let history: Value =
        http::json(http.get(&format!("/history/{prompt_id}")).timeout(Duration::from_secs(30))).await?;
    Ok(history.get(prompt_id).cloned())
}

fn history_error(status: &Value) -> String {
    let messages = status.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    messages
        .iter()
        .filter_map(|m| m.as_array())
        .find(|m| m.first().and_then(Value::as_str) == Some("execution_error"))
        .and_then(|m| m.get(1))
        .map(|d| {
            format!(
                "ComfyUI node {} ({}) failed: {}",
                d.get("node_id").and_then(Value::as_str).unwrap_or_default(),
                d.get("node_type").and_then(Value::as_str).unwrap_or_default(),
                d.get("exception_message").and_then(Value::as_str).unwrap_or_default().trim()
            )
        })
        .unwrap_or_else(|| "ComfyUI reported an execution error".into())
}

/// Lists the saved images of the prompt (type `output`, by node id) and downloads each.
async fn fetch_outputs(http: &Http, prompt_id: &str, request: &ImageRequest) -> Result<Vec<EngineOutput>, EngineError> {
    let entry = history_entry(http, prompt_id)
        .await?
        .ok_or_else(|| remote_error(format!("ComfyUI has no history for prompt {prompt_id}")))?;
    let mut nodes: Vec<(String, Value)> =
        entry.get("outputs").and_then(Value::as_object).map(|m| m.clone().into_iter().collect()).unwrap_or_default();
    nodes.sort_by_key(|a| natural_key(&a.0));
    let mut outputs = Vec::new();
    for (_, node) in nodes {
        for image in node.get("images").and_then(Value::as_array).cloned().unwrap_or_default() {
            let field = |k: &str| image.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            if field("type") != "output" {
                continue; // previews saved as `temp`
            }
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("filename", &field("filename"))
                .append_pair("subfolder", &field("subfolder"))
                .append_pair("type", &field("type"))
                .finish();
            let req = http.get(&format!("/view?{query}"));
            let bytes = http::send(req).await?.bytes().await.map_err(http::from_reqwest)?;
            outputs.push(image_output(bytes.to_vec(), request, outputs.len()));
        }
    }
    if outputs.is_empty() {
        return Err(remote_error("the ComfyUI workflow saved no image (it needs a SaveImage node)"));
    }
    Ok(outputs)
}

fn natural_key(id: &str) -> (u64, String) {
    (id.parse().unwrap_or(u64::MAX), id.to_owned())
}

/// Best-effort stop: interrupt it if running, remove it if still queued.
async fn stop(http: &Http, prompt_id: &str) {
    let t = Duration::from_secs(5);
    let interrupt = http.post("/interrupt").timeout(t).json(&json!({ "prompt_id": prompt_id }));
    let delete = http.post("/queue").timeout(t).json(&json!({ "delete": [prompt_id] }));
    let (a, b) = tokio::join!(http::send(interrupt), http::send(delete));
    if let Err(err) = a.and(b) {
        tracing::warn!(prompt_id, %err, "could not stop the ComfyUI prompt");
    }
}

/// ComfyUI `sampler_name` and `scheduler` for a SEIDRA scheduler.
fn sampler(scheduler: &str) -> (&'static str, &'static str) {
    match scheduler {
        "euler" => ("euler", "normal"),
        "euler_a" => ("euler_ancestral", "normal"),
        "dpmpp_2m" => ("dpmpp_2m", "karras"),
        _ => ("ddim", "ddim_uniform"),
    }
}

fn slot_name(s: &str) -> Option<&str> {
    s.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")).map(str::trim)
}

fn collect_slots(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find("{{") {
                let Some(end) = rest[start..].find("}}") else { break };
                out.push(rest[start + 2..start + end].trim().to_owned());
                rest = &rest[start + end + 2..];
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_slots(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_slots(v, out)),
        _ => {}
    }
}

/// `"{{steps}}"` becomes the typed value; `"a {{prompt}}"` interpolates as text.
fn fill(value: &mut Value, values: &Map<String, Value>) {
    match value {
        Value::String(s) => {
            if let Some(v) = slot_name(s).and_then(|n| values.get(n)) {
                *value = v.clone();
            } else if s.contains("{{") {
                let mut text = s.clone();
                for (k, v) in values {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    text = text.replace(&format!("{{{{{k}}}}}"), &v);
                }
                *value = Value::String(text);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| fill(v, values)),
        Value::Object(map) => map.values_mut().for_each(|v| fill(v, values)),
        _ => {}
    }
}

/// Chains one `LoraLoader` per LoRA after the checkpoint loader and rewires its MODEL (0) and
/// CLIP (1) consumers to the last loader.
fn insert_loras(nodes: &mut Map<String, Value>, request: &ImageRequest) -> Result<(), EngineError> {
    let Some(ckpt) = nodes
        .iter()
        .find(|(_, n)| n.get("class_type").and_then(Value::as_str).is_some_and(|c| c.starts_with("CheckpointLoader")))
        .map(|(id, _)| id.clone())
    else {
        return Err(remote_error("the ComfyUI workflow has no CheckpointLoader node to attach LoRAs to"));
    };
    let mut prev = ckpt.clone();
    let mut added = Vec::new();
    for (i, lora) in request.loras.iter().enumerate() {
        let id = format!("seidra_lora_{i}");
        let file = if lora.name.contains('.') { lora.name.clone() } else { format!("{}.safetensors", lora.name) };
        added.push((
            id.clone(),
            json!({
                "class_type": "LoraLoader",
                "inputs": {
                    "lora_name": file, "strength_model": lora.weight, "strength_clip": lora.weight,
                    "model": [prev, 0], "clip": [prev, 1]
                }
            }),
        ));
        prev = id;
    }
    for node in nodes.values_mut() {
        let Some(inputs) = node.get_mut("inputs").and_then(Value::as_object_mut) else { continue };
        for input in inputs.values_mut() {
            if let Value::Array(link) = input
                && link.len() == 2
                && link[0].as_str() == Some(ckpt.as_str())
                && matches!(link[1].as_u64(), Some(0 | 1))
            {
                link[0] = Value::String(prev.clone());
            }
        }
    }
    nodes.extend(added);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn builtin_workflow_is_filled_and_loras_are_chained() {
        let comfy = ComfyUi::new(None).unwrap();
        let mut req: ImageRequest = serde_json::from_value(json!({
            "prompt": "a fox", "negative_prompt": "blur", "width": 512, "height": 768, "num_inference_steps": 12,
            "guidance_scale": 5.5, "num_images": 2, "seed": 42, "scheduler": "euler_a",
            "loras": [{ "name": "ink", "weight": 0.8 }, { "name": "film.safetensors", "weight": 0.3 }]
        }))
        .unwrap();
        let wf = comfy.workflow("sdxl.safetensors", &req, None).unwrap();
        assert_eq!(wf["4"]["inputs"]["ckpt_name"], "sdxl.safetensors");
        assert_eq!(wf["5"]["inputs"]["width"], 512);
        assert_eq!(wf["5"]["inputs"]["batch_size"], 2);
        assert_eq!(wf["3"]["inputs"]["seed"], 42);
        assert_eq!(wf["3"]["inputs"]["sampler_name"], "euler_ancestral");
        assert_eq!(wf["6"]["inputs"]["text"], "a fox");
        assert_eq!(wf["7"]["inputs"]["text"], "blur");
        assert_eq!(wf["seidra_lora_0"]["inputs"]["model"], json!(["4", 0]));
        assert_eq!(wf["seidra_lora_0"]["inputs"]["lora_name"], "ink.safetensors");
        assert_eq!(wf["seidra_lora_1"]["inputs"]["clip"], json!(["seidra_lora_0", 1]));
        assert_eq!(wf["3"]["inputs"]["model"], json!(["seidra_lora_1", 0]));
        assert_eq!(wf["6"]["inputs"]["clip"], json!(["seidra_lora_1", 1]));
        assert_eq!(wf["8"]["inputs"]["vae"], json!(["4", 2]), "the VAE still comes from the checkpoint");
        req.loras.clear();
        assert!(!comfy.workflow("m", &req, None).unwrap().contains_key("seidra_lora_0"));
    }

    #[test]
    fn builtin_img2img_workflow() {
        let comfy = ComfyUi::new(None).unwrap();
        assert!(comfy.supports_img2img() && comfy.supports_txt2img());
        let req: ImageRequest = serde_json::from_value(json!({
            "prompt": "a fox", "width": 512, "height": 512, "num_images": 2, "seed": 7,
            "init_image": uuid::Uuid::nil(), "strength": 0.4, "loras": [{ "name": "ink", "weight": 0.5 }]
        }))
        .unwrap();
        let wf = comfy.workflow("sd15.safetensors", &req, Some("seidra_init_1.png")).unwrap();
        assert_eq!(wf["10"]["class_type"], "LoadImage");
        assert_eq!(wf["10"]["inputs"]["image"], "seidra_init_1.png");
        assert_eq!(wf["11"]["inputs"]["pixels"], json!(["10", 0]));
        assert_eq!(wf["12"]["inputs"]["amount"], 2);
        assert_eq!(wf["3"]["inputs"]["latent_image"], json!(["12", 0]));
        assert_eq!(wf["3"]["inputs"]["denoise"].as_f64().map(|d| (d * 10.0).round()), Some(4.0));
        assert_eq!(wf["3"]["inputs"]["model"], json!(["seidra_lora_0", 0]));
        assert_eq!(wf["11"]["inputs"]["vae"], json!(["4", 2]), "the VAE still comes from the checkpoint");
        // Default strength when none is given.
        let req = ImageRequest { strength: None, ..req };
        let wf = comfy.workflow("m", &req, Some("x.png")).unwrap();
        assert_eq!(wf["3"]["inputs"]["denoise"].as_f64().map(|d| (d * 100.0).round()), Some(75.0));
    }

    #[test]
    fn custom_templates_serve_one_kind() {
        let txt =
            ComfyUi::new(Some(json!({ "1": { "class_type": "X", "inputs": { "text": "{{prompt}}" } } }))).unwrap();
        assert!(txt.supports_txt2img() && !txt.supports_img2img());
        let img = ComfyUi::new(Some(
            json!({ "1": { "class_type": "X", "inputs": { "text": "{{prompt}}", "image": "{{image}}", "d": "{{denoise}}" } } }),
        ))
        .unwrap();
        assert!(!img.supports_txt2img() && img.supports_img2img());
        let req: ImageRequest = serde_json::from_value(json!({ "prompt": "a cat" })).unwrap();
        assert!(matches!(img.workflow("m", &req, None), Err(EngineError::Invalid(e)) if e.field == "init_image"));
        assert!(
            matches!(txt.workflow("m", &req, Some("a.png")), Err(EngineError::Invalid(e)) if e.field == "init_image")
        );
    }

    #[test]
    fn custom_templates_declare_known_slots() {
        assert!(ComfyUi::new(Some(json!({ "1": { "inputs": { "text": "{{prompt}}", "x": "{{nope}}" } } }))).is_err());
        assert!(ComfyUi::new(Some(json!({ "1": { "inputs": { "text": "{{negative_prompt}}" } } }))).is_err());
        let c = ComfyUi::new(Some(
            json!({ "1": { "class_type": "X", "inputs": { "text": "style, {{prompt}}", "n": "{{steps}}" } } }),
        ))
        .unwrap();
        let req: ImageRequest = serde_json::from_value(json!({ "prompt": "a cat", "num_inference_steps": 9 })).unwrap();
        let wf = c.workflow("m", &req, None).unwrap();
        assert_eq!(
            (wf["1"]["inputs"]["text"].as_str(), wf["1"]["inputs"]["n"].as_u64()),
            (Some("style, a cat"), Some(9))
        );
    }
}
