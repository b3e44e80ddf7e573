//! Routing between remote engines: a [`RoutedEngine`] is the registry's face of one remote
//! engine; its `run` tries that engine first, then (unless the request named its engine) every
//! other available engine serving the same model, moving on only after connection-level
//! failures. Engines with an open breaker or a failed health check are skipped or tried last.
//! Talking-head renders ([`RemotePool::talking_head`]) fail over the same way between the
//! talking-head engines serving the job's model.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use seidra_core::ValidationError;
use seidra_core::job::ImageRequest;
use tokio_util::sync::CancellationToken;

use super::{RemoteEngine, RemoteHealth, TalkingHeadInput, is_unavailable, unavailable};
use crate::{EngineCapabilities, EngineError, EngineOutput, GenerationEngine, InitImage, ModelInfo, ProgressSink};

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

    /// Renders a talking head on the engine `primary`, then, unless `pinned` (the client named
    /// the engine), on every other talking-head engine serving `model`, moving on only after
    /// connection-level failures. Returns the one MP4 output.
    pub async fn talking_head(
        &self,
        primary: &str,
        model: &str,
        pinned: bool,
        input: &TalkingHeadInput,
        progress: &dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<EngineOutput>, EngineError> {
        let Some(first) = self.get(primary).filter(|e| e.is_talking_head()) else {
            return Err(EngineError::Failed {
                code: "engine_missing".into(),
                message: format!("this process has no talking-head engine `{primary}`"),
                retryable: true,
            });
        };
        let mut list = vec![Arc::clone(first)];
        if !pinned {
            list.extend(
                self.members.iter().filter(|m| m.name() != primary && m.is_talking_head() && m.serves(model)).cloned(),
            );
        }
        list.sort_by_key(|m| m.is_down());
        fail_over(primary, model, list, cancel, |engine| async move {
            engine.talking_head_once(input, progress, cancel).await
        })
        .await
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

    /// Tries the candidates in order (image-to-image when `init` is given); see the module docs.
    async fn run_routed(
        &self,
        request: &ImageRequest,
        init: Option<&InitImage>,
        progress: &dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<EngineOutput>, EngineError> {
        let primary = self.primary();
        let model = request.model_name.clone().or_else(|| primary.config().models.first().cloned()).unwrap_or_default();
        let mut request = request.clone();
        request.model_name = Some(model.clone());
        let candidates = self.pool.candidates(primary, &request, &model);
        let request = &request;
        fail_over(primary.name(), &model, candidates, cancel, |engine| async move {
            engine.run_once(request, init, progress, cancel).await
        })
        .await
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
        Box::pin(self.run_routed(request, None, progress, cancel))
    }

    fn run_img2img<'a>(
        &'a self,
        request: &'a ImageRequest,
        init: &'a InitImage,
        progress: &'a dyn ProgressSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Vec<EngineOutput>, EngineError>> {
        Box::pin(self.run_routed(request, Some(init), progress, cancel))
    }
}

/// Tries `call` on each candidate in order (skipping open breakers) until one answers with
/// something other than a connection-level failure; outputs of a fallback engine name it.
async fn fail_over<F, Fut>(
    primary: &str,
    model: &str,
    candidates: Vec<Arc<RemoteEngine>>,
    cancel: &CancellationToken,
    mut call: F,
) -> Result<Vec<EngineOutput>, EngineError>
where
    F: FnMut(Arc<RemoteEngine>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<EngineOutput>, EngineError>>,
{
    let mut last: Option<EngineError> = None;
    for engine in candidates {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        if !engine.breaker().try_acquire() {
            last.get_or_insert_with(|| unavailable(format!("engine `{}`: circuit breaker open", engine.name())));
            continue;
        }
        let name = engine.name().to_owned();
        match call(engine).await {
            Err(err) if is_unavailable(&err) => {
                tracing::warn!(engine = %name, %err, "remote engine unavailable; trying the next one");
                metrics::counter!("seidra_engine_failovers_total", "engine" => name).increment(1);
                last = Some(err);
            }
            Ok(mut outputs) => {
                if name != primary {
                    for out in &mut outputs {
                        out.engine = Some(name.clone());
                    }
                }
                return Ok(outputs);
            }
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| unavailable(format!("no engine serving `{model}` is available"))))
}
