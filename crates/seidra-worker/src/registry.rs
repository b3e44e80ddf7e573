//! The engines a process knows, and how a request is routed to one.

use std::sync::Arc;

use std::time::Duration;

use seidra_config::{EngineSettings, RemoteEngineKind, RemoteEngineSettings, Settings};
use seidra_core::ValidationError;
use seidra_core::job::ImageRequest;
use seidra_engines::remote::{RemoteConfig, RemoteEngine, RemoteHealth, RemoteKind, RemotePool, TalkingHeadInput};
use seidra_engines::{CancellationToken, EngineError, EngineOutput, GenerationEngine, ProgressSink, SharedEngine};

/// Engines by name, in preference order.
#[derive(Clone, Default)]
pub struct EngineRegistry {
    engines: Vec<SharedEngine>,
    remote: Option<Arc<RemotePool>>,
}

impl EngineRegistry {
    /// A registry over `engines` (first = default).
    pub fn new(engines: Vec<SharedEngine>) -> Self {
        Self { engines, remote: None }
    }

    /// The engines enabled in the settings: procedural first (the default), noop, then the remote
    /// engines in configuration order. Health checks of remote engines start when a Tokio
    /// runtime is running and stop when the last clone of the registry is dropped.
    pub fn from_settings(settings: &EngineSettings) -> Self {
        let mut engines: Vec<SharedEngine> = Vec::new();
        if settings.procedural {
            engines.push(Arc::new(seidra_engines::procedural::ProceduralEngine::new()));
        }
        if settings.noop {
            engines.push(Arc::new(seidra_engines::noop::NoopEngine::new()));
        }
        let mut remotes = Vec::new();
        for remote in &settings.remote {
            match remote_engine(settings, remote) {
                Ok(engine) => remotes.push(engine),
                // Settings validation reads the workflow too, so this is a file changed since.
                Err(err) => tracing::error!(engine = %remote.name, %err, "remote engine disabled"),
            }
        }
        if remotes.is_empty() {
            return Self::new(engines);
        }
        let pool = RemotePool::new(remotes);
        for routed in pool.routed() {
            engines.push(Arc::new(routed));
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            let interval = Duration::from_secs(settings.health_interval_secs.max(1));
            pool.spawn_health_checks(interval, CancellationToken::new());
        }
        Self { engines, remote: Some(pool) }
    }

    /// Health of each remote engine (empty without remote engines).
    pub fn remote_health(&self) -> Vec<RemoteHealth> {
        self.remote.as_ref().map(|p| p.health()).unwrap_or_default()
    }

    /// Health of the remote engine called `name`.
    pub fn remote_health_of(&self, name: &str) -> Option<RemoteHealth> {
        self.remote.as_ref().and_then(|p| p.get(name)).map(|e| e.health())
    }

    /// Whether `name` can take a request now (built-in engines always; remote ones unless their
    /// breaker is open or their last health check failed).
    pub fn is_available(&self, name: &str) -> bool {
        self.remote.as_ref().and_then(|p| p.get(name)).is_none_or(|e| e.is_available())
    }

    /// [`Self::from_settings`] plus the engines that need the wider configuration: the candle
    /// engine (builds with the `candle` feature) serves the model directory.
    pub fn from_config(settings: &Settings) -> Self {
        #[allow(unused_mut, reason = "only the candle feature adds engines here")]
        let mut registry = Self::from_settings(&settings.engines);
        #[cfg(feature = "candle")]
        if settings.engines.candle.enabled {
            let c = &settings.engines.candle;
            let config = seidra_candle::CandleConfig {
                models_dir: settings.models_dir(),
                device: c.device.clone(),
                cache_bytes: c.cache_bytes,
            };
            match seidra_candle::CandleEngine::new(config) {
                Ok(engine) => registry.engines.push(Arc::new(engine)),
                Err(err) => tracing::error!(%err, "the candle engine is disabled: its device could not be opened"),
            }
        }
        #[cfg(not(feature = "candle"))]
        if settings.engines.candle.enabled {
            tracing::warn!("SEIDRA_ENGINES__CANDLE__ENABLED is set but this build has no `candle` feature");
        }
        registry
    }

    /// Names of the talking-head (SadTalker-compatible) engines, in configuration order.
    pub fn talking_head_names(&self) -> Vec<String> {
        self.remote
            .as_ref()
            .map(|p| p.members().iter().filter(|m| m.is_talking_head()).map(|m| m.name().to_owned()).collect())
            .unwrap_or_default()
    }

    /// Picks the talking-head engine for a request: the named one, else the first available,
    /// else the first configured. Returns `(engine, model)`; errors name the field `engine`.
    pub fn route_talking_head(&self, engine: Option<&str>) -> Result<(String, String), ValidationError> {
        let names = self.talking_head_names();
        let pool = self.remote.as_ref();
        let member = |name: &str| pool.and_then(|p| p.get(name)).filter(|m| m.is_talking_head());
        let chosen = match engine {
            Some(name) => member(name).ok_or_else(|| {
                let known = if names.is_empty() { "none is configured".to_owned() } else { names.join(", ") };
                ValidationError::new("engine", format!("`{name}` is not a talking-head engine; available: {known}"))
            })?,
            None => names
                .iter()
                .filter_map(|n| member(n))
                .find(|m| m.is_available())
                .or_else(|| names.first().and_then(|n| member(n)))
                .ok_or_else(|| {
                    ValidationError::new(
                        "engine",
                        "no talking-head engine is configured (add a `sadtalker` entry to engines.remote)",
                    )
                })?,
        };
        let model = chosen.config().models.first().cloned().unwrap_or_default();
        Ok((chosen.name().to_owned(), model))
    }

    /// Renders a talking head on `engine` (failing over to other talking-head engines serving
    /// `model` unless `pinned`).
    pub async fn talking_head(
        &self,
        engine: &str,
        model: &str,
        pinned: bool,
        input: &TalkingHeadInput,
        progress: &dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<EngineOutput>, EngineError> {
        let Some(pool) = &self.remote else {
            return Err(EngineError::Failed {
                code: "engine_missing".into(),
                message: format!("this worker has no engine `{engine}`"),
                retryable: true,
            });
        };
        pool.talking_head(engine, model, pinned, input, progress, cancel).await
    }

    /// Engine names.
    pub fn names(&self) -> Vec<String> {
        self.engines.iter().map(|e| e.name().to_owned()).collect()
    }

    /// All engines.
    pub fn engines(&self) -> &[SharedEngine] {
        &self.engines
    }

    /// The engine called `name`.
    pub fn get(&self, name: &str) -> Option<&SharedEngine> {
        self.engines.iter().find(|e| e.name() == name)
    }

    /// Picks the engine and model for a request: the named engine, else the first engine
    /// serving the named model, else the default engine; then lets it check the request.
    /// Returns `(engine, model)`; errors name the field at fault (`prefix` + field).
    pub fn route(&self, request: &ImageRequest, prefix: &str) -> Result<(SharedEngine, String), ValidationError> {
        let engine =
            match (&request.engine, &request.model_name) {
                (Some(name), _) => self.get(name).cloned().ok_or_else(|| {
                    ValidationError::new(
                        format!("{prefix}engine"),
                        format!("unknown engine `{name}`; available: {}", self.names().join(", ")),
                    )
                })?,
                (None, Some(model)) => {
                    // The first available engine serving the model, else the first serving it at all.
                    let serving: Vec<&SharedEngine> = self
                        .engines
                        .iter()
                        .filter(|e| makes_images(e.as_ref()) && e.models().iter().any(|m| &m.name == model))
                        .collect();
                    serving
                        .iter()
                        .find(|e| self.is_available(e.name()))
                        .or(serving.first())
                        .map(|e| Arc::clone(e))
                        .ok_or_else(|| {
                            ValidationError::new(
                                format!("{prefix}model_name"),
                                format!("no engine serves the model `{model}`"),
                            )
                        })?
                }
                (None, None) => self.engines.iter().find(|e| makes_images(e.as_ref())).cloned().ok_or_else(|| {
                    ValidationError::new(format!("{prefix}engine"), "no generation engine is configured")
                })?,
            };
        let model = match &request.model_name {
            Some(m) => m.clone(),
            None => engine.models().first().map(|m| m.name.clone()).unwrap_or_default(),
        };
        if !engine.models().iter().any(|m| m.name == model) {
            return Err(ValidationError::new(
                format!("{prefix}model_name"),
                format!("the engine `{}` does not serve the model `{model}`", engine.name()),
            ));
        }
        // Every engine, whatever its own `check` covers: an init image is never silently ignored.
        engine.capabilities().check_img2img(engine.name(), request).and_then(|()| engine.check(request)).map_err(
            |mut e| {
                e.field = format!("{prefix}{}", e.field);
                e
            },
        )?;
        Ok((engine, model))
    }
}

/// Whether an engine runs image jobs (talking-head engines do not).
fn makes_images(engine: &dyn GenerationEngine) -> bool {
    engine.capabilities().job_types.iter().any(|t| t == "image")
}

/// Shortcut for the trait object's name in logs.
pub fn engine_name(engine: &dyn GenerationEngine) -> &str {
    engine.name()
}

/// Builds one remote engine from its settings (reads the ComfyUI workflow file, if any).
fn remote_engine(settings: &EngineSettings, remote: &RemoteEngineSettings) -> Result<RemoteEngine, String> {
    let workflow = match &remote.workflow {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Some(serde_json::from_slice(&bytes).map_err(|e| format!("{} is not JSON: {e}", path.display()))?)
        }
        None => None,
    };
    let config = RemoteConfig {
        name: remote.name.clone(),
        kind: match remote.kind {
            RemoteEngineKind::Comfyui => RemoteKind::Comfyui,
            RemoteEngineKind::A1111 => RemoteKind::A1111,
            RemoteEngineKind::Openai => RemoteKind::Openai,
            RemoteEngineKind::Sadtalker => RemoteKind::Sadtalker,
        },
        base_url: remote.url.trim().to_owned(),
        api_key: remote.api_key.as_ref().map(|k| k.expose().to_owned()).filter(|k| !k.is_empty()),
        models: remote.models.clone(),
        max_concurrency: usize::try_from(remote.max_concurrency).unwrap_or(1),
        timeout: Duration::from_secs(remote.timeout_secs),
        workflow,
        breaker_failures: settings.breaker_failures,
        breaker_cooldown: Duration::from_secs(settings.breaker_cooldown_secs),
    };
    RemoteEngine::new(config).map_err(|e| e.to_string())
}
