//! The one API error type: `{"error":{"code","message","field"?}}` with the right status.
//!
//! `IntoResponse` is pure; internal details are logged where the error is created and never
//! sent to the client.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use seidra_core::ValidationError;
use seidra_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// Error envelope returned by every endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (snake_case).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Structured context for some codes (`content_policy`: the rule that matched).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// An error that becomes an HTTP response.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// Message for the client.
    pub message: String,
    /// Field at fault.
    pub field: Option<String>,
    /// Structured context sent with the error (boxed: keeps `ApiError` small).
    pub details: Option<Box<serde_json::Value>>,
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`…).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, details: None, headers: Vec::new() }
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Attaches structured context.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 422 for a field that failed validation.
    pub fn validation(err: ValidationError) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", err.message).with_field(err.field)
    }

    /// 400 for a request that cannot be understood.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no or invalid credentials.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
            .with_header(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404 for a resource the caller cannot see.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// For `map_err`: a missing row becomes a 404 naming `what`, other store errors map as usual.
    pub fn or_not_found(what: &'static str) -> impl Fn(StoreError) -> ApiError {
        move |e| match e {
            StoreError::NotFound => ApiError::not_found(what),
            other => other.into(),
        }
    }

    /// 409: the request conflicts with current state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 503: a dependency is down; the client may retry.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
            .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("5"))
    }

    /// 507: the server's disk (database or media storage) is full. The cause is logged; the
    /// client learns that nothing was saved and why. Retryable once space is freed.
    #[track_caller]
    pub fn storage_full(what: &str, cause: impl std::fmt::Display) -> Self {
        let location = std::panic::Location::caller();
        tracing::error!(%cause, %location, "{what}: no space left");
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "storage_full",
            format!("{what}: the server's disk is full (no space left on device); nothing was saved. Retry once space has been freed"),
        )
        .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("60"))
    }

    /// An I/O error while writing server-side files: 507 when the disk is full, else a 500.
    #[track_caller]
    pub fn io(what: &str, err: &std::io::Error) -> Self {
        if seidra_storage::is_disk_full(err) {
            Self::storage_full(what, err)
        } else {
            Self::internal(format!("{what}: {err}"))
        }
    }

    /// A storage error while writing objects: 507 when the store is full, else a 500.
    #[track_caller]
    pub fn storage(what: &str, err: &seidra_storage::StorageError) -> Self {
        if err.is_storage_full() { Self::storage_full(what, err) } else { Self::internal(format!("{what}: {err}")) }
    }

    /// 500: logs the cause, tells the client nothing internal.
    #[track_caller]
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let location = std::panic::Location::caller();
        tracing::error!(%cause, %location, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal server error")
    }
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> Self {
        ApiError::validation(err)
    }
}

impl From<StoreError> for ApiError {
    #[track_caller]
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::not_found("resource"),
            StoreError::Conflict { constraint } => {
                ApiError::conflict("conflict", format!("already exists ({constraint})"))
            }
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                ApiError::unavailable("database_unavailable", "the database is unavailable; retry shortly")
            }
            StoreError::StorageFull(cause) => ApiError::storage_full("the database could not save this change", cause),
            StoreError::Schema(cause) => {
                tracing::error!(%cause, "database schema mismatch");
                ApiError::unavailable("database_schema_mismatch", "the database schema does not match this server")
            }
            StoreError::Other(cause) => ApiError::internal(cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
                details: self.details.map(|d| *d),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {} ({})", field, self.message, self.code),
            None => write!(f, "{} ({})", self.message, self.code),
        }
    }
}

impl std::error::Error for ApiError {}
