//! The router and the serving loop with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::middleware::{LimitPolicy, authenticate_and_limit, http_metrics};
use crate::routes::{
    admin, api_keys, auth, exports, files, health, jobs, media, models, notifications, personas, settings, speech,
    talking_head, uploads, video, webhooks,
};
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest a regular API request may run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the full router.
pub fn router(state: AppState) -> Router {
    let auth_routes = Router::new()
        .route("/api/auth/register", post(auth::register))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/refresh", post(auth::refresh))
        .route("/api/auth/config", get(auth::config))
        .layer(from_fn_with_state((state.clone(), LimitPolicy::Auth), authenticate_and_limit));

    let api_routes = Router::new()
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/me", get(auth::me))
        .route("/api/auth/me/password", post(auth::change_password))
        .route("/api/auth/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/api/auth/api-keys/{id}", axum::routing::delete(api_keys::revoke))
        .route("/api/admin/users", get(admin::list_users).post(admin::create))
        .route("/api/admin/users/{id}", patch(admin::update))
        .route("/api/admin/audit", get(admin::audit_log))
        .route("/api/admin/content-policy", get(settings::get_policy).put(settings::put_policy))
        .route("/api/settings", get(settings::get).patch(settings::patch))
        .route("/api/system/health", get(health::system_health))
        .route("/api/generation/health", get(health::generation_health))
        .route("/api/generate/single", post(jobs::generate_single))
        .route("/api/generate/batch", post(jobs::generate_batch))
        .route("/api/generate/speech", post(speech::generate_speech))
        .route("/api/generate/video", post(talking_head::generate_video))
        .route("/api/video/timelines", get(video::list).post(video::create))
        .route("/api/video/timelines/{id}", get(video::get).put(video::update).delete(video::delete))
        .route("/api/video/timelines/{id}/render", post(video::render))
        .route("/api/video/timelines/{id}/proxy", post(video::proxy))
        .route("/api/media/{id}/waveform", get(video::waveform))
        .route("/api/jobs", get(jobs::list))
        .route("/api/jobs/stats", get(jobs::stats))
        .route("/api/jobs/{id}", get(jobs::get))
        .route("/api/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/jobs/{id}/retry", post(jobs::retry))
        .route("/api/personas", get(personas::list).post(personas::create))
        .route(
            "/api/personas/{id}",
            get(personas::get).put(personas::update).patch(personas::favorite).delete(personas::delete),
        )
        .route("/api/personas/{id}/duplicate", post(personas::duplicate))
        .route("/api/personas/{id}/versions", get(personas::versions))
        .route("/api/personas/{id}/preview", post(personas::preview))
        .route("/api/media", get(media::list))
        .route("/api/media/stats", get(media::stats))
        .route("/api/media/bulk", post(media::bulk))
        .route("/api/models", get(models::list).post(models::register))
        .route("/api/models/rescan", post(models::rescan))
        .route("/api/models/download", post(models::download))
        .route("/api/models/{id}", get(models::get).delete(models::delete))
        .route("/api/media/export", post(exports::create_export))
        .route("/api/media/export/{job_id}", get(exports::get_export))
        .route("/api/media/{id}", get(media::get).patch(media::update).delete(media::delete))
        .route("/api/notifications", get(notifications::list))
        .route("/api/notifications/read-all", post(notifications::mark_all_read))
        .route("/api/notifications/{id}", axum::routing::delete(notifications::delete))
        .route("/api/notifications/{id}/read", post(notifications::mark_read))
        .route("/api/admin/notifications/broadcast", post(notifications::broadcast))
        .route("/api/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/api/webhooks/{id}", get(webhooks::get).patch(webhooks::update).delete(webhooks::delete))
        .route("/api/webhooks/{id}/test", post(webhooks::test))
        .route("/api/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .layer(from_fn_with_state((state.clone(), LimitPolicy::Api), authenticate_and_limit));

    // Uploads stream large bodies: no request timeout, and the per-type limits are enforced
    // while streaming (`media.*` settings) instead of the JSON body limit.
    let upload_routes = Router::new()
        .route("/api/media/uploads", post(uploads::upload).layer(DefaultBodyLimit::disable()))
        .layer(from_fn_with_state((state.clone(), LimitPolicy::Api), authenticate_and_limit));

    // Signed links and the WebSocket authenticate themselves; no request timeout on /ws.
    let long_lived = Router::new().route("/ws", get(crate::ws::upgrade)).route("/files/{*key}", get(files::download));

    let ops_routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics));

    let docs = SwaggerUi::new("/api/docs").url("/api/openapi.json", crate::openapi::spec());

    let app = Router::new()
        .merge(auth_routes)
        .merge(api_routes)
        .merge(ops_routes)
        .merge(docs)
        .fallback_service(crate::ui::fallback(&state.settings.ui_dir))
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
        })
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .merge(long_lived)
        .merge(upload_routes)
        .with_state(state.clone());
    // Without a recorder the per-request accounting is skipped entirely (its cost is measured
    // against this by bench/metrics.sh).
    let app = if crate::metrics::enabled() { app.layer(axum::middleware::from_fn(http_metrics)) } else { app };
    app.layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(cors(&state.settings.cors_origins))
        .layer(axum::middleware::map_response_with_state(
            (state.settings.is_production(), content_security_policy(state.signer.download_origin().as_deref())),
            security_headers,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::internal("handler panicked"))
        }))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let request_id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                tracing::info_span!("http", method = %req.method(), uri = %req.uri().path(), request_id, user_id = tracing::field::Empty)
            }),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([http::header::AUTHORIZATION, http::header::COOKIE]))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

fn cors(origins: &[String]) -> CorsLayer {
    if origins.is_empty() {
        return CorsLayer::new();
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            http::Method::GET,
            http::Method::POST,
            http::Method::PATCH,
            http::Method::PUT,
            http::Method::DELETE,
        ])
        .allow_headers([
            http::header::AUTHORIZATION,
            http::header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([
            REQUEST_ID,
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
            http::header::RETRY_AFTER,
        ])
        .max_age(Duration::from_secs(600))
}

/// The CSP: nothing remote, except media from the object store's own origin when downloads
/// are presigned S3 URLs (images, audio and video load straight from the bucket).
fn content_security_policy(download_origin: Option<&str>) -> HeaderValue {
    const BASE: &str = "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; \
                        script-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'";
    let csp = match download_origin {
        Some(origin) => BASE.replace(
            "img-src 'self' data: blob:;",
            &format!("img-src 'self' data: blob: {origin}; media-src 'self' blob: {origin};"),
        ),
        None => BASE.to_owned(),
    };
    HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static(BASE))
}

/// Security headers on every response (the docs page needs inline styles, nothing remote).
async fn security_headers(State((production, csp)): State<(bool, HeaderValue)>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(http::header::CONTENT_SECURITY_POLICY) {
        headers.insert(http::header::CONTENT_SECURITY_POLICY, csp);
    }
    let mut set = |name: HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(http::header::X_FRAME_OPTIONS, "DENY");
    set(http::header::REFERRER_POLICY, "no-referrer");
    set(HeaderName::from_static("permissions-policy"), "camera=(), microphone=(), geolocation=()");
    if production {
        set(http::header::STRICT_TRANSPORT_SECURITY, "max-age=31536000; includeSubDomains");
    }
    response
}

/// The small HTTP surface of a `seidra worker` process: `/metrics` (this process's job,
/// engine and event counters) and `/healthz`.
pub fn worker_router() -> Router {
    Router::new().route("/healthz", get(health::healthz)).route(
        "/metrics",
        get(|| async {
            crate::metrics::record_process_metrics();
            match crate::metrics::handle() {
                Some(h) => ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response(),
                None => (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder unavailable\n").into_response(),
            }
        }),
    )
}

/// Serves `router` on `listener` until `shutdown` resolves, then gives in-flight requests
/// `grace` to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    // Small writes (WebSocket events, streamed chunks) go out at once instead of waiting up to
    // 40 ms for the client's delayed ACK of the previous one (Nagle).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY on a connection");
        }
    });
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = tx.send(true);
        });
    let server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = server => result,
        () = async {
            let _ = rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish within the grace period");
            Ok(())
        }
    }
}
