//! Fake remote generation servers that speak the real protocols (message shapes from the
//! ComfyUI, AUTOMATIC1111 and OpenAI documentation, and SEIDRA's SadTalker protocol), for tests
//! and the engine-overhead bench. Each records the calls it receives (`POST /interrupt`…) and
//! produces real PNGs (the SadTalker fake: real MP4s made by ffmpeg from the inputs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// How a fake behaves.
#[derive(Debug, Clone)]
pub struct Behavior {
    /// Progress steps reported per job.
    pub steps: u32,
    /// Pause between steps.
    pub step_delay: Duration,
    /// How the job fails, if it does.
    pub failure: Option<Failure>,
    /// ComfyUI: close the WebSocket after the first progress message.
    pub drop_ws: bool,
    /// OpenAI: required bearer key.
    pub api_key: Option<String>,
}

impl Default for Behavior {
    fn default() -> Self {
        Self { steps: 3, step_delay: Duration::from_millis(20), failure: None, drop_ws: false, api_key: None }
    }
}

/// Failure modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The job runs and fails (ComfyUI `execution_error`, A1111 500 with `errors`, OpenAI 500).
    Execution,
    /// The request is refused (ComfyUI 400 validation, A1111 422, OpenAI 400, SadTalker 400
    /// "no face detected").
    BadRequest,
    /// SadTalker: the server drops the connection halfway through sending the video.
    Disconnect,
}

#[derive(Default)]
struct Shared {
    calls: Vec<String>,
    bodies: Vec<(String, Value)>,
    interrupted: bool,
    ws: HashMap<String, mpsc::UnboundedSender<Message>>,
    history: HashMap<String, Value>,
    files: HashMap<String, Vec<u8>>,
    /// ComfyUI input folder: uploaded images by `subfolder/name`.
    uploads: HashMap<String, Vec<u8>>,
    progress: (u32, u32),
    counter: u64,
}

#[derive(Clone)]
struct Fake {
    behavior: Behavior,
    shared: Arc<Mutex<Shared>>,
}

impl Fake {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn record(&self, call: &str, body: Option<&Value>) {
        let mut s = self.lock();
        s.calls.push(call.to_owned());
        if let Some(b) = body {
            s.bodies.push((call.to_owned(), b.clone()));
        }
    }
}

/// A running fake server.
pub struct FakeEngine {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    fake: Fake,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeEngine {
    /// A fake ComfyUI.
    pub async fn comfyui(behavior: Behavior) -> anyhow::Result<Self> {
        let fake = Fake { behavior, shared: Arc::default() };
        let app = Router::new()
            .route("/ws", get(comfy_ws))
            .route("/prompt", post(comfy_prompt))
            .route("/upload/image", post(comfy_upload))
            .route("/history/{id}", get(comfy_history))
            .route("/view", get(comfy_view))
            .route("/interrupt", post(comfy_interrupt))
            .route("/queue", post(comfy_queue))
            .route("/system_stats", get(comfy_stats))
            .with_state(fake.clone());
        Self::serve(app, fake).await
    }

    /// A fake AUTOMATIC1111 / Forge.
    pub async fn a1111(behavior: Behavior) -> anyhow::Result<Self> {
        let fake = Fake { behavior, shared: Arc::default() };
        let app = Router::new()
            .route("/sdapi/v1/txt2img", post(a1111_txt2img))
            .route("/sdapi/v1/img2img", post(a1111_img2img))
            .route("/sdapi/v1/progress", get(a1111_progress))
            .route("/sdapi/v1/interrupt", post(a1111_interrupt))
            .route("/sdapi/v1/sd-models", get(a1111_models))
            .with_state(fake.clone());
        Self::serve(app, fake).await
    }

    /// A fake OpenAI-compatible images API.
    pub async fn openai(behavior: Behavior) -> anyhow::Result<Self> {
        let fake = Fake { behavior, shared: Arc::default() };
        let app = Router::new()
            .route("/v1/images/generations", post(openai_generate))
            .route("/v1/models", get(openai_models))
            .with_state(fake.clone());
        Self::serve(app, fake).await
    }

    /// A fake SadTalker-compatible server (SEIDRA's protocol, `seidra_engines::remote::sadtalker`):
    /// validates the multipart fields like the wrapper does (422 `{"detail"}` naming the field),
    /// "renders" for `steps × step_delay`, then answers with a real H.264/AAC MP4 made by ffmpeg
    /// from the source image looped over the driving audio (so it lasts as long as the audio).
    /// A client that disconnects mid-render is recorded as `ABORTED /generate`.
    pub async fn sadtalker(behavior: Behavior) -> anyhow::Result<Self> {
        let fake = Fake { behavior, shared: Arc::default() };
        let app = Router::new()
            .route("/generate", post(sadtalker_generate))
            .route("/health", get(sadtalker_health))
            .layer(DefaultBodyLimit::max(256 * 1024 * 1024))
            .with_state(fake.clone());
        Self::serve(app, fake).await
    }

    async fn serve(app: Router, fake: Fake) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, fake, task })
    }

    /// Calls received, as `METHOD /path`, in order.
    pub fn calls(&self) -> Vec<String> {
        self.fake.lock().calls.clone()
    }

    /// How many times `call` (`POST /interrupt`) was received.
    pub fn count(&self, call: &str) -> usize {
        self.fake.lock().calls.iter().filter(|c| *c == call).count()
    }

    /// The last JSON body received with `call`.
    pub fn last_body(&self, call: &str) -> Option<Value> {
        self.fake.lock().bodies.iter().rev().find(|(c, _)| c == call).map(|(_, b)| b.clone())
    }

    /// ComfyUI: the files received by `POST /upload/image`, by the name the fake answered.
    pub fn uploads(&self) -> HashMap<String, Vec<u8>> {
        self.fake.lock().uploads.clone()
    }
}

/// A URL on which nothing listens (a port bound then released).
pub async fn dead_url() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(format!("http://{addr}"))
}

/// A real RGB PNG of the given size.
pub fn png(width: u32, height: u32, shade: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width.max(1), height.max(1));
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let data = vec![shade; (width.max(1) * height.max(1) * 3) as usize];
    if let Ok(mut writer) = encoder.write_header() {
        let _ = writer.write_image_data(&data);
    }
    out
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// --- ComfyUI -----------------------------------------------------------------------------------

async fn comfy_ws(
    ws: WebSocketUpgrade,
    Query(q): Query<HashMap<String, String>>,
    State(fake): State<Fake>,
) -> Response {
    let client_id = q.get("clientId").cloned().unwrap_or_default();
    fake.record("GET /ws", None);
    ws.on_upgrade(move |socket| comfy_socket(socket, client_id, fake))
}

async fn comfy_socket(mut socket: WebSocket, client_id: String, fake: Fake) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    fake.lock().ws.insert(client_id.clone(), tx);
    let status =
        json!({ "type": "status", "data": { "status": { "exec_info": { "queue_remaining": 0 } }, "sid": client_id } });
    if socket.send(Message::Text(status.to_string().into())).await.is_err() {
        return;
    }
    while let Some(msg) = rx.recv().await {
        let close = matches!(msg, Message::Close(_));
        if socket.send(msg).await.is_err() || close {
            break;
        }
    }
    fake.lock().ws.remove(&client_id);
}

fn comfy_send(fake: &Fake, client_id: &str, kind: &str, data: Value) {
    if let Some(tx) = fake.lock().ws.get(client_id) {
        let _ = tx.send(Message::Text(json!({ "type": kind, "data": data }).to_string().into()));
    }
}

async fn comfy_prompt(State(fake): State<Fake>, Json(body): Json<Value>) -> Response {
    fake.record("POST /prompt", Some(&body));
    let workflow = body.get("prompt").cloned().unwrap_or(Value::Null);
    let valid =
        workflow.as_object().is_some_and(|m| !m.is_empty() && m.values().all(|n| n.get("class_type").is_some()));
    if !valid || fake.behavior.failure == Some(Failure::BadRequest) {
        let error = json!({
            "error": { "type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                       "details": "Value not in list: ckpt_name", "extra_info": {} },
            "node_errors": { "4": { "errors": [{ "type": "value_not_in_list", "message": "Value not in list" }],
                                     "dependent_outputs": ["9"], "class_type": "CheckpointLoaderSimple" } }
        });
        return (StatusCode::BAD_REQUEST, Json(error)).into_response();
    }
    // Like ComfyUI's validation of LoadImage: the image must exist in the input folder.
    let missing = workflow.as_object().and_then(|m| {
        m.iter().find_map(|(id, n)| {
            let image = n["inputs"]["image"].as_str().unwrap_or_default();
            (n["class_type"] == "LoadImage" && !fake.lock().uploads.contains_key(image))
                .then(|| (id.clone(), image.to_owned()))
        })
    });
    if let Some((id, image)) = missing {
        let error = json!({
            "error": { "type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                       "details": "", "extra_info": {} },
            "node_errors": { id: { "errors": [{ "type": "custom_validation_failed", "message": "Custom validation failed for node",
                                                "details": format!("image - Invalid image file: {image}"), "extra_info": {} }],
                                   "dependent_outputs": ["9"], "class_type": "LoadImage" } }
        });
        return (StatusCode::BAD_REQUEST, Json(error)).into_response();
    }
    let client_id = body.get("client_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let prompt_id = uuid::Uuid::new_v4().to_string();
    let number = {
        let mut s = fake.lock();
        s.interrupted = false;
        s.counter += 1;
        s.counter
    };
    tokio::spawn(comfy_execute(fake.clone(), client_id, prompt_id.clone(), workflow));
    Json(json!({ "prompt_id": prompt_id, "number": number, "node_errors": {} })).into_response()
}

async fn comfy_execute(fake: Fake, client_id: String, prompt_id: String, workflow: Value) {
    let b = fake.behavior.clone();
    let node = |class: &str| {
        workflow
            .as_object()
            .and_then(|m| m.values().find(|n| n.get("class_type").and_then(Value::as_str) == Some(class)).cloned())
    };
    let latent = node("EmptyLatentImage");
    let input = |k: &str, d: u64| latent.as_ref().and_then(|n| n["inputs"][k].as_u64()).unwrap_or(d);
    let (mut width, mut height, mut batch) =
        (input("width", 64) as u32, input("height", 64) as u32, input("batch_size", 1));
    // img2img: the size is the loaded image's, the batch RepeatLatentBatch's amount.
    if let Some(load) = node("LoadImage") {
        let name = load["inputs"]["image"].as_str().unwrap_or_default().to_owned();
        if let Some((w, h)) = fake.lock().uploads.get(&name).and_then(|bytes| png_size(bytes)) {
            (width, height) = (w, h);
        }
        batch = node("RepeatLatentBatch").and_then(|n| n["inputs"]["amount"].as_u64()).unwrap_or(1);
    }
    let ts = 1_700_000_000_000u64;
    comfy_send(&fake, &client_id, "execution_start", json!({ "prompt_id": prompt_id, "timestamp": ts }));
    comfy_send(&fake, &client_id, "execution_cached", json!({ "nodes": [], "prompt_id": prompt_id, "timestamp": ts }));
    comfy_send(&fake, &client_id, "executing", json!({ "node": "3", "display_node": "3", "prompt_id": prompt_id }));
    for step in 1..=b.steps {
        tokio::time::sleep(b.step_delay).await;
        if fake.lock().interrupted {
            let data = json!({ "prompt_id": prompt_id, "node_id": "3", "node_type": "KSampler", "executed": ["4", "5"], "timestamp": ts });
            comfy_send(&fake, &client_id, "execution_interrupted", data.clone());
            let status =
                json!({ "status_str": "error", "completed": false, "messages": [["execution_interrupted", data]] });
            fake.lock().history.insert(prompt_id.clone(), json!({ "prompt": [], "outputs": {}, "status": status }));
            return;
        }
        comfy_send(
            &fake,
            &client_id,
            "progress",
            json!({ "value": step, "max": b.steps, "prompt_id": prompt_id, "node": "3" }),
        );
        if b.drop_ws
            && step == 1
            && let Some(tx) = fake.lock().ws.get(&client_id)
        {
            let _ = tx.send(Message::Close(None));
        }
    }
    if b.failure == Some(Failure::Execution) {
        let data = json!({
            "prompt_id": prompt_id, "node_id": "3", "node_type": "KSampler", "executed": ["4", "5", "6", "7"],
            "exception_message": "CUDA out of memory. Tried to allocate 2.00 GiB\n", "exception_type": "torch.OutOfMemoryError",
            "traceback": ["..."], "current_inputs": {}, "current_outputs": {}, "timestamp": ts
        });
        comfy_send(&fake, &client_id, "execution_error", data.clone());
        let status = json!({ "status_str": "error", "completed": false, "messages": [["execution_start", {}], ["execution_error", data]] });
        fake.lock().history.insert(prompt_id.clone(), json!({ "prompt": [], "outputs": {}, "status": status }));
        return;
    }
    let mut images = Vec::new();
    for i in 0..batch {
        let filename = format!("seidra_{:05}_.png", fake.lock().counter * 10 + i);
        fake.lock().files.insert(filename.clone(), png(width, height, (i * 40) as u8));
        images.push(json!({ "filename": filename, "subfolder": "", "type": "output" }));
    }
    // A preview node's temp image must not be taken for an output.
    let temp = json!({ "filename": "ComfyUI_temp_00001_.png", "subfolder": "", "type": "temp" });
    let outputs = json!({ "9": { "images": images }, "12": { "images": [temp] } });
    comfy_send(
        &fake,
        &client_id,
        "executed",
        json!({ "node": "9", "display_node": "9", "output": outputs["9"], "prompt_id": prompt_id }),
    );
    let status = json!({ "status_str": "success", "completed": true, "messages": [["execution_start", {}], ["execution_success", {}]] });
    fake.lock().history.insert(
        prompt_id.clone(),
        json!({ "prompt": [1, prompt_id, workflow, {}, ["9"]], "outputs": outputs, "status": status }),
    );
    comfy_send(&fake, &client_id, "executing", json!({ "node": null, "prompt_id": prompt_id }));
    comfy_send(&fake, &client_id, "execution_success", json!({ "prompt_id": prompt_id, "timestamp": ts }));
}

/// `POST /upload/image`: multipart `image` (file), optional `overwrite`, `type`, `subfolder`;
/// answers `{name, subfolder, type}`. Without `overwrite=true` an existing name gets a ` (n)`
/// suffix, as on the real server.
async fn comfy_upload(State(fake): State<Fake>, mut form: axum::extract::Multipart) -> Response {
    fake.record("POST /upload/image", None);
    let (mut file, mut overwrite, mut kind, mut subfolder) = (None, false, "input".to_owned(), String::new());
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let Ok(bytes) = field.bytes().await else { return StatusCode::BAD_REQUEST.into_response() };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match name.as_str() {
            "image" => file = file_name.map(|n| (n, bytes.to_vec())),
            "overwrite" => overwrite = text == "true" || text == "1",
            "type" => kind = text,
            "subfolder" => subfolder = text,
            _ => {}
        }
    }
    let Some((mut name, bytes)) = file else { return StatusCode::BAD_REQUEST.into_response() };
    if kind != "input" && kind != "temp" && kind != "output" {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let key = |n: &str| if subfolder.is_empty() { n.to_owned() } else { format!("{subfolder}/{n}") };
    let mut s = fake.lock();
    if !overwrite {
        let (stem, ext) =
            name.rsplit_once('.').map_or((name.clone(), String::new()), |(a, b)| (a.to_owned(), format!(".{b}")));
        let mut i = 1;
        while s.uploads.contains_key(&key(&name)) {
            name = format!("{stem} ({i}){ext}");
            i += 1;
        }
    }
    s.uploads.insert(key(&name), bytes);
    Json(json!({ "name": name, "subfolder": subfolder, "type": kind })).into_response()
}

/// Width and height from a PNG header.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.len() < 24 {
        return None;
    }
    let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    Some((w, h))
}

async fn comfy_history(Path(id): Path<String>, State(fake): State<Fake>) -> Json<Value> {
    fake.record("GET /history", None);
    let entry = fake.lock().history.get(&id).cloned();
    Json(entry.map_or_else(|| json!({}), |e| json!({ id: e })))
}

async fn comfy_view(Query(q): Query<HashMap<String, String>>, State(fake): State<Fake>) -> Response {
    fake.record("GET /view", None);
    let name = q.get("filename").cloned().unwrap_or_default();
    match (q.get("type").map(String::as_str), fake.lock().files.get(&name).cloned()) {
        (Some("output"), Some(bytes)) => ([("content-type", "image/png")], bytes).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn comfy_interrupt(State(fake): State<Fake>, body: Option<Json<Value>>) -> StatusCode {
    fake.record("POST /interrupt", body.as_ref().map(|b| &b.0));
    fake.lock().interrupted = true;
    StatusCode::OK
}

async fn comfy_queue(State(fake): State<Fake>, Json(body): Json<Value>) -> StatusCode {
    fake.record("POST /queue", Some(&body));
    StatusCode::OK
}

async fn comfy_stats(State(fake): State<Fake>) -> Json<Value> {
    fake.record("GET /system_stats", None);
    Json(json!({
        "system": { "os": "posix", "ram_total": 68_719_476_736u64, "ram_free": 34_359_738_368u64, "comfyui_version": "0.3.40",
                    "python_version": "3.12.3", "pytorch_version": "2.7.0+cu128", "embedded_python": false, "argv": ["main.py"] },
        "devices": [{ "name": "cuda:0 Fake GPU", "type": "cuda", "index": 0, "vram_total": 25_769_803_776u64,
                      "vram_free": 20_000_000_000u64, "torch_vram_total": 0, "torch_vram_free": 0 }]
    }))
}

// --- AUTOMATIC1111 -----------------------------------------------------------------------------

async fn a1111_txt2img(State(fake): State<Fake>, Json(body): Json<Value>) -> Response {
    fake.record("POST /sdapi/v1/txt2img", Some(&body));
    a1111_generate(fake, body).await
}

/// The common part of txt2img and img2img: progress, failures, base64 PNGs.
async fn a1111_generate(fake: Fake, body: Value) -> Response {
    let b = fake.behavior.clone();
    if b.failure == Some(Failure::BadRequest) || body.get("width").and_then(Value::as_u64).is_none() {
        let detail = json!({ "detail": [{ "loc": ["body", "width"], "msg": "value is not a valid integer", "type": "type_error.integer" }] });
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(detail)).into_response();
    }
    fake.lock().interrupted = false;
    for step in 1..=b.steps {
        tokio::time::sleep(b.step_delay).await;
        let mut s = fake.lock();
        if s.interrupted {
            break;
        }
        s.progress = (step, b.steps);
    }
    fake.lock().progress = (0, 0);
    if b.failure == Some(Failure::Execution) {
        let err = json!({ "error": "OutOfMemoryError", "detail": "", "body": "", "errors": "CUDA out of memory. Tried to allocate 2.00 GiB" });
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(err)).into_response();
    }
    let (w, h) = (body["width"].as_u64().unwrap_or(64) as u32, body["height"].as_u64().unwrap_or(64) as u32);
    let batch = body["batch_size"].as_u64().unwrap_or(1);
    let seed = body["seed"].as_i64().unwrap_or(0);
    let mut images = Vec::new();
    if batch > 1 {
        images.push(b64(&png(w * 2, h, 255))); // the grid comes first
    }
    for i in 0..batch {
        images.push(b64(&png(w, h, (i * 40) as u8)));
    }
    let seeds: Vec<i64> = (0..batch as i64).map(|i| seed + i).collect();
    let info =
        json!({ "prompt": body["prompt"], "all_seeds": seeds, "seed": seed, "width": w, "height": h }).to_string();
    Json(json!({ "images": images, "parameters": body, "info": info })).into_response()
}

/// `POST /sdapi/v1/img2img`: like txt2img, plus `init_images` (base64, required: FastAPI answers
/// 422 without it) and `denoising_strength`; the output size is `width`×`height`.
async fn a1111_img2img(State(fake): State<Fake>, Json(body): Json<Value>) -> Response {
    fake.record("POST /sdapi/v1/img2img", Some(&body));
    let init = body.get("init_images").and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_str);
    let decodes = init.is_some_and(|b| {
        let data = b.split_once(";base64,").map_or(b, |(_, d)| d);
        base64::engine::general_purpose::STANDARD.decode(data).is_ok_and(|bytes| png_size(&bytes).is_some())
    });
    if init.is_none() {
        let detail = json!({ "detail": [{ "loc": ["body", "init_images"], "msg": "field required", "type": "value_error.missing" }] });
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(detail)).into_response();
    }
    if !decodes {
        let err = json!({ "error": "HTTPException", "detail": "Invalid encoded image", "body": "", "errors": "" });
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(err)).into_response();
    }
    let strength = body.get("denoising_strength").and_then(Value::as_f64).unwrap_or(0.75);
    if !(0.0..=1.0).contains(&strength) {
        let detail = json!({ "detail": [{ "loc": ["body", "denoising_strength"], "msg": "ensure this value is less than or equal to 1", "type": "value_error" }] });
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(detail)).into_response();
    }
    a1111_generate(fake, body).await
}

async fn a1111_progress(State(fake): State<Fake>) -> Json<Value> {
    fake.record("GET /sdapi/v1/progress", None);
    let (step, steps) = fake.lock().progress;
    let progress = if steps == 0 { 0.0 } else { f64::from(step) / f64::from(steps) };
    Json(json!({
        "progress": progress, "eta_relative": 0.5,
        "state": { "skipped": false, "interrupted": false, "job": "", "job_count": i32::from(steps > 0), "job_timestamp": "20250101000000",
                   "job_no": 0, "sampling_step": step, "sampling_steps": steps },
        "current_image": null, "textinfo": null
    }))
}

async fn a1111_interrupt(State(fake): State<Fake>) -> Json<Value> {
    fake.record("POST /sdapi/v1/interrupt", None);
    fake.lock().interrupted = true;
    Json(json!({}))
}

async fn a1111_models(State(fake): State<Fake>) -> Json<Value> {
    fake.record("GET /sdapi/v1/sd-models", None);
    Json(json!([{ "title": "sdxl.safetensors [31e35c80fc]", "model_name": "sdxl", "hash": "31e35c80fc",
                  "sha256": "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b",
                  "filename": "/models/Stable-diffusion/sdxl.safetensors", "config": null }]))
}

// --- OpenAI ------------------------------------------------------------------------------------

async fn openai_generate(State(fake): State<Fake>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    fake.record("POST /v1/images/generations", Some(&body));
    let b = fake.behavior.clone();
    let error = |status: StatusCode, message: &str, kind: &str| {
        (status, Json(json!({ "error": { "message": message, "type": kind, "param": null, "code": null } })))
            .into_response()
    };
    if let Some(key) = &b.api_key {
        let sent = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if sent != format!("Bearer {key}") {
            return error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.", "invalid_request_error");
        }
    }
    if b.failure == Some(Failure::BadRequest) {
        return error(
            StatusCode::BAD_REQUEST,
            "Your request was rejected by the safety system.",
            "invalid_request_error",
        );
    }
    if b.failure == Some(Failure::Execution) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request.",
            "server_error",
        );
    }
    if b.steps > 0 {
        tokio::time::sleep(b.step_delay * b.steps).await;
    }
    let size = body["size"].as_str().unwrap_or("64x64").to_owned();
    let (w, h) = size.split_once('x').map_or((64, 64), |(w, h)| (w.parse().unwrap_or(64), h.parse().unwrap_or(64)));
    let n = body["n"].as_u64().unwrap_or(1);
    let data: Vec<Value> = (0..n)
        .map(|i| json!({ "b64_json": b64(&png(w, h, (i * 40) as u8)), "revised_prompt": body["prompt"] }))
        .collect();
    Json(json!({ "created": 1_700_000_000, "data": data })).into_response()
}

async fn openai_models(State(fake): State<Fake>) -> Json<Value> {
    fake.record("GET /v1/models", None);
    Json(
        json!({ "object": "list", "data": [{ "id": "gpt-image-1", "object": "model", "created": 0, "owned_by": "system" }] }),
    )
}

// --- SadTalker ---------------------------------------------------------------------------------

async fn sadtalker_health(State(fake): State<Fake>) -> Json<Value> {
    fake.record("GET /health", None);
    Json(json!({ "status": "ok", "device": "cuda" }))
}

fn detail(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "detail": message.into() }))).into_response()
}

/// Records `ABORTED /generate` when dropped before `done` (the client went away mid-render).
struct AbortGuard {
    fake: Fake,
    done: bool,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if !self.done {
            self.fake.record("ABORTED /generate", None);
        }
    }
}

fn image_ext(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("jpg")
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("webp")
    } else {
        None
    }
}

fn audio_ext(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE" {
        Some("wav")
    } else if bytes.starts_with(b"ID3") || (bytes.len() > 1 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0) {
        Some("mp3")
    } else if bytes.starts_with(b"OggS") {
        Some("ogg")
    } else if bytes.starts_with(b"fLaC") {
        Some("flac")
    } else {
        None
    }
}

/// Checks one text field the way the wrapper's form declaration does.
fn sadtalker_field(name: &str, value: &str) -> Result<(), String> {
    let ok = match name {
        "preprocess" => ["crop", "resize", "full", "extcrop", "extfull"].contains(&value),
        "still" => ["true", "false"].contains(&value),
        "enhancer" => ["none", "gfpgan", "RestoreFormer"].contains(&value),
        "pose_style" => value.parse::<u32>().is_ok_and(|v| v <= 45),
        "expression_scale" => value.parse::<f64>().is_ok_and(f64::is_finite),
        "size" => ["256", "512"].contains(&value),
        "batch_size" => value.parse::<u32>().is_ok_and(|v| (1..=10).contains(&v)),
        _ => return Err(format!("unexpected field `{name}`")),
    };
    if ok { Ok(()) } else { Err(format!("{name}: invalid value `{value}`")) }
}

async fn sadtalker_generate(State(fake): State<Fake>, mut form: Multipart) -> Response {
    let mut fields = serde_json::Map::new();
    let mut image: Option<Vec<u8>> = None;
    let mut audio: Option<Vec<u8>> = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return detail(StatusCode::BAD_REQUEST, format!("malformed multipart body: {e}")),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let bytes = match field.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => return detail(StatusCode::BAD_REQUEST, format!("{name}: {e}")),
        };
        match name.as_str() {
            "source_image" | "driven_audio" => {
                if file_name.is_none() {
                    return detail(StatusCode::UNPROCESSABLE_ENTITY, format!("{name}: expected an uploaded file"));
                }
                fields.insert(
                    name.clone(),
                    json!({ "filename": file_name, "content_type": content_type, "bytes": bytes.len() }),
                );
                if name == "source_image" {
                    image = Some(bytes);
                } else {
                    audio = Some(bytes);
                }
            }
            _ => {
                let value = String::from_utf8_lossy(&bytes).into_owned();
                if let Err(message) = sadtalker_field(&name, &value) {
                    return detail(StatusCode::UNPROCESSABLE_ENTITY, message);
                }
                fields.insert(name, Value::String(value));
            }
        }
    }
    let body = Value::Object(fields);
    fake.record("POST /generate", Some(&body));
    let (Some(image), Some(audio)) = (image, audio) else {
        let missing = if body.get("source_image").is_none() { "source_image" } else { "driven_audio" };
        return detail(StatusCode::UNPROCESSABLE_ENTITY, format!("{missing}: field required"));
    };
    let Some(image_ext) = image_ext(&image) else {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, "source_image: not a PNG, JPEG or WebP image");
    };
    let Some(audio_ext) = audio_ext(&audio) else {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, "driven_audio: not a WAV, MP3, Ogg or FLAC file");
    };
    let b = fake.behavior.clone();
    if b.failure == Some(Failure::BadRequest) {
        return detail(StatusCode::BAD_REQUEST, "No face is detected in the input file");
    }
    let mut guard = AbortGuard { fake: fake.clone(), done: false };
    for _ in 0..b.steps {
        tokio::time::sleep(b.step_delay).await;
    }
    if b.failure == Some(Failure::Execution) {
        guard.done = true;
        return detail(StatusCode::INTERNAL_SERVER_ERROR, "CUDA out of memory. Tried to allocate 2.00 GiB");
    }
    let size = body.get("size").and_then(Value::as_str).unwrap_or("256").to_owned();
    let video = match render_mp4(&image, image_ext, &audio, audio_ext, &size).await {
        Ok(v) => v,
        Err(e) => {
            guard.done = true;
            return detail(StatusCode::INTERNAL_SERVER_ERROR, format!("ffmpeg failed: {e}"));
        }
    };
    guard.done = true;
    if b.failure == Some(Failure::Disconnect) {
        // Half the file, then the connection breaks (the declared length is never reached).
        let half = axum::body::Bytes::from(video[..video.len() / 2].to_vec());
        let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> =
            vec![Ok(half), Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "worker crashed"))];
        let mut response = axum::body::Body::from_stream(futures_util::stream::iter(chunks)).into_response();
        response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("video/mp4"));
        response.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(video.len()));
        return response;
    }
    ([(http::header::CONTENT_TYPE, "video/mp4")], video).into_response()
}

/// The still image looped over the audio: H.264 + AAC, `size`×`size`, as long as the audio.
async fn render_mp4(
    image: &[u8],
    image_ext: &str,
    audio: &[u8],
    audio_ext: &str,
    size: &str,
) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let img = dir.path().join(format!("source.{image_ext}"));
    let wav = dir.path().join(format!("audio.{audio_ext}"));
    let out = dir.path().join("out.mp4");
    tokio::fs::write(&img, image).await?;
    tokio::fs::write(&wav, audio).await?;
    let output = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-loop", "1", "-framerate", "25", "-i"])
        .arg(&img)
        .arg("-i")
        .arg(&wav)
        .args(["-vf", &format!("scale={size}:{size},format=yuv420p"), "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-tune", "stillimage", "-c:a", "aac", "-b:a", "64k", "-shortest", "-movflags", "+faststart", "-y"])
        .arg(&out)
        .kill_on_drop(true)
        .output()
        .await?;
    anyhow::ensure!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    Ok(tokio::fs::read(&out).await?)
}

/// Settings of a remote engine at `url` serving `models` (2 concurrent requests, 60 s timeout):
/// what the engine tests register their fakes with.
pub fn remote_engine(
    name: &str,
    kind: seidra_config::RemoteEngineKind,
    url: &str,
    models: &[&str],
) -> seidra_config::RemoteEngineSettings {
    seidra_config::RemoteEngineSettings {
        name: name.into(),
        kind,
        url: url.into(),
        api_key: None,
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        max_concurrency: 2,
        timeout_secs: 60,
        workflow: None,
    }
}
