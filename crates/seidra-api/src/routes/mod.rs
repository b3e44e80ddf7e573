//! HTTP handlers, one module per resource.

pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod exports;
pub mod files;
pub mod health;
pub mod jobs;
pub mod media;
pub mod models;
pub mod notifications;
pub mod personas;
pub mod settings;
pub mod speech;
pub mod talking_head;
pub mod uploads;
pub mod video;
pub mod webhooks;
