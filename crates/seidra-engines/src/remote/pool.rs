//! Routing between remote engines: a [`RoutedEngine`] is the registry's face of one remote
//! engine; its `run` tries that engine first, then (unless the request named its engine) every
//! other available engine serving the same model, moving on only after connection-level
//! failures. Engines with an open breaker or a failed health check are skipped or tried last.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use seidra_core::ValidationError;
use seidra_core::job::ImageRequest;
use tokio_util::sync::CancellationToken;

use super::{RemoteEngine, RemoteHealth, is_unavailable, unavailable};
use crate::{EngineCapabilities, EngineError, EngineOutput, GenerationEngine, ModelInfo, ProgressSink};

/// Every remote engine of a process.
#[derive(Debug, Default)]
pub struct RemotePool {
    members: Vec<Arc<RemoteEngine>>,
}

impl RemotePool {
    /// A pool over `members` (in preference order).
    pub fn new(members: Vec<RemoteEngine>) -> Arc<Self> {
        Arc::new(Self { members: members.into_iter().map(Arc::new).collect() })
    }

    /// The members.
    pub fn members(&self) -> &[Arc<RemoteEngine>] {
        &self.members
    }

    /// The member called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<RemoteEngine>> {
        self.members.iter().find(|m| m.name() == name)
    }

    /// One routed engine per member, for the registry.
    pub fn routed(self: &Arc<Self>) -> Vec<RoutedEngine> {
        (0..self.members.len()).map(|index| RoutedEngine { pool: Arc::clone(self), index }).collect()
    }

    /// Health of every member.
    pub fn health(&self) -> Vec<RemoteHealth> {
        self.members.iter().map(|m| m.health()).collect()
    }

    /// Checks every member once, concurrently.
    pub async fn check_all(&self) {
        futures_util::future::join_all(self.members.iter().map(|m| m.check_health())).await;
    }

    /// Checks every member now and then every `interval` until the pool is dropped or `stop` fires.
    pub fn spawn_health_checks(self: &Arc<Self>, interval: Duration, stop: CancellationToken) {
        if self.members.is_empty() {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(pool) = weak.upgrade() else { return };
                pool.check_all().await;
                drop(pool);
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = stop.cancelled() => return,
                }
            }
        });
    }

    /// Fail-over order for a request first routed to `primary`.
    fn candidates(&self, primary: &Arc<RemoteEngine>, request: &ImageRequest, model: &str) -> Vec<Arc<RemoteEngine>> {
        let mut list = vec![Arc::clone(primary)];
        if request.engine.is_none() {
            list.extend(
                self.members
                    .iter()
                    .filter(|m| m.name() != primary.name() && m.serves(model) && m.check(request).is_ok())
                    .cloned(),
            );
        }
        // Engines whose last health check failed go last (stable: configuration order otherwise).
        list.sort_by_key(|m| m.is_down());
        list
    }
}

/// One remote engine as the registry sees it; see the module docs.
#[derive(Debug, Clone)]
pub struct RoutedEngine {
    pool: Arc<RemotePool>,
    index: usize,
}

impl RoutedEngine {
    fn primary(&self) -> &Arc<RemoteEngine> {
        &self.pool.members[self.index]
    }
}

impl GenerationEngine for RoutedEngine {
    fn name(&self) -> &str {
        self.primary().name()
    }

    fn capabilities(&self) -> &EngineCapabilities {
        self.primary().capabilities()
    }

    fn models(&self) -> Vec<ModelInfo> {
        self.primary().models()
    }

    fn check(&self, request: &ImageRequest) -> Result<(), ValidationError> {
        self.primary().check(request)
    }

    fn run<'a>(
        &'a self,
        request: &'a ImageRequest,
        progress: &'a dyn ProgressSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Vec<EngineOutput>, EngineError>> {
        Box::pin(async move {
            let primary = self.primary();
            let model =
                request.model_name.clone().or_else(|| primary.config().models.first().cloned()).unwrap_or_default();
            let mut request = request.clone();
            request.model_name = Some(model.clone());
            let mut last: Option<EngineError> = None;
            for engine in self.pool.candidates(primary, &request, &model) {
                if cancel.is_cancelled() {
                    return Err(EngineError::Cancelled);
                }
                if !engine.breaker().try_acquire() {
                    last.get_or_insert_with(|| {
                        unavailable(format!("engine `{}`: circuit breaker open", engine.name()))
                    });
                    continue;
                }
                match engine.run_once(&request, progress, cancel).await {
                    Err(err) if is_unavailable(&err) => {
                        tracing::warn!(engine = engine.name(), %err, "remote engine unavailable; trying the next one");
                        metrics::counter!("seidra_engine_failovers_total", "engine" => engine.name().to_owned())
                            .increment(1);
                        last = Some(err);
                    }
                    Ok(mut outputs) => {
                        if engine.name() != primary.name() {
                            for out in &mut outputs {
                                out.engine = Some(engine.name().to_owned());
                            }
                        }
                        return Ok(outputs);
                    }
                    other => return other,
                }
            }
            Err(last.unwrap_or_else(|| unavailable(format!("no engine serving `{model}` is available"))))
        })
    }
}
