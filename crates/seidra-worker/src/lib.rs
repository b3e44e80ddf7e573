//! Workers: the loop that claims jobs, runs them on an engine with heartbeats and
//! cancellation, stores outputs and publishes events — plus the maintenance loop (exactly one
//! across all processes) that reclaims expired leases, reaps dead workers and prunes old jobs.

pub mod av_tasks;
mod completion;
pub mod events;
pub mod maintenance;
pub mod media_tasks;
pub mod model_tasks;
pub mod registry;
mod runner;
pub mod sweeper;

pub use registry::EngineRegistry;
pub use runner::{Worker, WorkerConfig, WorkerDeps};
