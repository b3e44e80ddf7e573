//! The SEIDRA HTTP API: routes, authentication, rate limiting, health, metrics and OpenAPI.

pub mod accounts;
pub mod auth;
pub mod error;
pub mod extract;
pub mod fanout;
pub mod metrics;
pub mod middleware;
pub mod net;
pub mod openapi;
pub mod policy;
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod startup;
pub mod state;
pub mod ui;
pub mod views;
pub mod ws;

pub use server::{router, serve, worker_router};
pub use state::AppState;
