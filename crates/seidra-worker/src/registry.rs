//! The engines a process knows, and how a request is routed to one.

use std::sync::Arc;

use seidra_config::{EngineSettings, Settings};
use seidra_core::ValidationError;
use seidra_core::job::ImageRequest;
use seidra_engines::{GenerationEngine, SharedEngine};

/// Engines by name, in preference order.
#[derive(Clone, Default)]
pub struct EngineRegistry {
    engines: Vec<SharedEngine>,
}

impl EngineRegistry {
    /// A registry over `engines` (first = default).
    pub fn new(engines: Vec<SharedEngine>) -> Self {
        Self { engines }
    }

    /// The built-in engines enabled in the settings (procedural first: it is the default).
    pub fn from_settings(settings: &EngineSettings) -> Self {
        let mut engines: Vec<SharedEngine> = Vec::new();
        if settings.procedural {
            engines.push(Arc::new(seidra_engines::procedural::ProceduralEngine::new()));
        }
        if settings.noop {
            engines.push(Arc::new(seidra_engines::noop::NoopEngine::new()));
        }
        Self::new(engines)
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
        let engine = match (&request.engine, &request.model_name) {
            (Some(name), _) => self.get(name).cloned().ok_or_else(|| {
                ValidationError::new(
                    format!("{prefix}engine"),
                    format!("unknown engine `{name}`; available: {}", self.names().join(", ")),
                )
            })?,
            (None, Some(model)) => {
                self.engines.iter().find(|e| e.models().iter().any(|m| &m.name == model)).cloned().ok_or_else(|| {
                    ValidationError::new(format!("{prefix}model_name"), format!("no engine serves the model `{model}`"))
                })?
            }
            (None, None) => {
                self.engines.first().cloned().ok_or_else(|| {
                    ValidationError::new(format!("{prefix}engine"), "no generation engine is configured")
                })?
            }
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
        engine.check(request).map_err(|mut e| {
            e.field = format!("{prefix}{}", e.field);
            e
        })?;
        Ok((engine, model))
    }
}

/// Shortcut for the trait object's name in logs.
pub fn engine_name(engine: &dyn GenerationEngine) -> &str {
    engine.name()
}
