//! Serving the built web app: hashed assets with a long cache, other paths fall back to
//! `index.html` (client-side routing). Unknown API paths stay JSON 404s.

use std::convert::Infallible;
use std::path::Path;

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower::service_fn;
use tower::util::BoxCloneSyncService;
use tower_http::services::{ServeDir, ServeFile};

use crate::error::ApiError;

/// Paths that belong to the server, never to the app.
const SERVER_PREFIXES: &[&str] = &["/api/", "/ws", "/files/", "/metrics", "/healthz", "/readyz"];

fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route").into_response()
}

/// The fallback service: the app when `dir/index.html` exists, else JSON 404s.
pub fn fallback(dir: &Path) -> BoxCloneSyncService<Request<Body>, Response, Infallible> {
    let index = dir.join("index.html");
    // The build writes `.br` and `.gz` beside each asset (frontend/vite.config.ts); they are sent
    // to browsers that accept them, so the app costs its compressed size without compressing
    // on every request.
    let app = index.is_file().then(|| {
        ServeDir::new(dir)
            .precompressed_br()
            .precompressed_gzip()
            .fallback(ServeFile::new(&index).precompressed_br().precompressed_gzip())
    });
    if app.is_some() {
        tracing::info!(dir = %dir.display(), "serving the web app");
    }
    BoxCloneSyncService::new(service_fn(move |req: Request<Body>| {
        let app = app.clone();
        async move {
            let path = req.uri().path().to_owned();
            let is_server_path = SERVER_PREFIXES.iter().any(|p| path.starts_with(p) || path == p.trim_end_matches('/'));
            let Some(app) = app.filter(|_| {
                !is_server_path && (req.method() == http::Method::GET || req.method() == http::Method::HEAD)
            }) else {
                return Ok(not_found());
            };
            let mut response = match app.oneshot(req).await {
                Ok(r) => r.map(Body::new),
                Err(_) => return Ok(not_found()),
            };
            // Vite puts content-hashed files under /assets: cache them forever; never cache the shell.
            let cache = if path.starts_with("/assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            Ok(response)
        }
    }))
}
