//! The `model_download` job type: an admin's download of a model file into the model
//! directory, run by the worker itself (engine `internal`) with leases, progress, cancel and
//! retries like any job. The file is verified by `seidra_models::download` before it becomes
//! visible; then it is catalogued, and only then is the job completed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use seidra_config::Settings;
use seidra_engines::{EngineError, Progress, ProgressSink};
use seidra_models::download::{self, DownloadOptions};
use seidra_models::{ModelError, classify, scan};
use seidra_net::OutboundPolicy;
use seidra_store::jobs::Job;
use seidra_store::models::{self, Model, NewModel};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::runner::WorkerDeps;

/// What a `model_download` job carries (written by the API, read here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadRequest {
    /// The URL, already checked by the API.
    pub url: String,
    /// File name in the model directory (`*.safetensors`).
    pub file_name: String,
    /// Expected hex SHA-256.
    pub sha256: Option<String>,
    /// Catalogue name (defaults to the file stem).
    pub name: Option<String>,
    /// Catalogue description.
    pub description: Option<String>,
}

/// How this process downloads models; built once from the settings.
#[derive(Clone)]
pub struct ModelDownloads {
    /// The model directory.
    pub dir: PathBuf,
    /// Whether plain http is allowed.
    pub allow_http: bool,
    /// Largest file.
    pub max_bytes: u64,
    client: reqwest::Client,
}

impl std::fmt::Debug for ModelDownloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelDownloads").field("dir", &self.dir).field("max_bytes", &self.max_bytes).finish()
    }
}

impl ModelDownloads {
    /// From the settings: the guarded HTTP client (internal addresses only when allow-listed).
    pub fn from_settings(settings: &Settings) -> Result<Arc<Self>, String> {
        let policy = OutboundPolicy::parse(&settings.models.allow_private)
            .map_err(|e| format!("SEIDRA_MODELS__ALLOW_PRIVATE: {e}"))?;
        let read_timeout = Duration::from_secs(settings.models.read_timeout_secs.max(1));
        let client = seidra_net::guarded_client(Arc::new(policy), concat!("seidra-models/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(read_timeout)
            .build()
            .map_err(|e| format!("cannot build the model download client: {e}"))?;
        Ok(Arc::new(Self {
            dir: settings.models_dir(),
            allow_http: settings.models.allow_http,
            max_bytes: settings.models.max_download_bytes,
            client,
        }))
    }
}

/// Runs a download job to a catalogued model (the caller completes the job, or removes the
/// model again when completion is refused).
pub(crate) async fn run_download<S: ProgressSink + Sync>(
    deps: &WorkerDeps,
    job: &Job,
    sink: &S,
    cancel: &CancellationToken,
) -> Result<Model, EngineError> {
    let request: DownloadRequest = job.request.parse().map_err(|e| EngineError::Failed {
        code: "invalid_stored_request".into(),
        message: format!("the stored download request cannot be read: {e}"),
        retryable: false,
    })?;
    let conf = &deps.models;
    let (url, file_name) =
        download::check_request(&request.url, Some(&request.file_name), conf.allow_http).map_err(failed)?;
    tokio::fs::create_dir_all(&conf.dir).await.map_err(|e| EngineError::Failed {
        code: "model_io_error".into(),
        message: format!("cannot create the model directory {}: {e}", conf.dir.display()),
        retryable: true,
    })?;
    let dest = conf.dir.join(&file_name);
    let options = DownloadOptions { max_bytes: conf.max_bytes, expected_sha256: request.sha256.clone() };
    let report = |done: u64, total: Option<u64>| {
        let mib = done as f64 / 1_048_576.0;
        let (fraction, stage) = match total {
            Some(t) if t > 0 => {
                (done as f32 / t as f32 * 0.98, format!("downloaded {mib:.1} of {:.1} MiB", t as f64 / 1_048_576.0))
            }
            _ => (0.0, format!("downloaded {mib:.1} MiB")),
        };
        sink.report(Progress { fraction, stage, preview: None });
    };
    let got = download::download(&conf.client, &url, &dest, &options, &report, cancel).await.map_err(failed)?;
    sink.report(Progress { fraction: 0.99, stage: "cataloguing".to_owned(), preview: None });
    let (kind, architecture) = classify::classify(&got.header);
    let stem = file_name.trim_end_matches(".safetensors").to_owned();
    let new = NewModel {
        name: request.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or(stem),
        kind: kind.as_str().to_owned(),
        architecture: architecture.as_str().to_owned(),
        format: "safetensors".to_owned(),
        rel_path: file_name,
        bytes: i64::try_from(got.bytes).unwrap_or(i64::MAX),
        sha256: Some(got.sha256),
        metadata: serde_json::to_value(&got.header.metadata).unwrap_or_default(),
        source: "download".to_owned(),
        source_url: Some(request.url.clone()),
        description: request.description.clone().unwrap_or_default(),
        file_modified: tokio::fs::metadata(&dest).await.map(|m| scan::modified_secs(&m)).unwrap_or(0),
    };
    match models::upsert(&deps.db, &new).await {
        Ok(model) => Ok(model),
        Err(err) => {
            remove_file(&dest).await;
            Err(EngineError::Failed { code: "database_error".into(), message: err.to_string(), retryable: true })
        }
    }
}

/// Undoes a download whose job could not be completed: the row and the file.
pub(crate) async fn discard(deps: &WorkerDeps, model: &Model) {
    if let Err(err) = models::delete(&deps.db, model.id).await {
        tracing::warn!(%err, model = %model.rel_path, "could not remove the catalogue row of a discarded download");
    }
    remove_file(&deps.models.dir.join(&model.rel_path)).await;
}

async fn remove_file(path: &std::path::Path) {
    if let Err(err) = tokio::fs::remove_file(path).await {
        tracing::warn!(%err, path = %path.display(), "could not remove a discarded model file");
    }
}

fn failed(e: ModelError) -> EngineError {
    match e {
        ModelError::Cancelled => EngineError::Cancelled,
        other => EngineError::Failed {
            code: other.code().to_owned(),
            message: other.to_string(),
            retryable: other.is_retryable(),
        },
    }
}
