//! Extractors whose rejections use the API error envelope and name the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;

/// JSON body; unknown fields, wrong types and missing fields become 422 naming the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json =
            req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
                ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a JSON body with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body is too large")
            } else {
                ApiError::bad_request("invalid_body", "could not read the request body")
            }
        })?;
        parse_json(&bytes).map(AppJson)
    }
}

/// Parses JSON into `T`, mapping errors to 400 (malformed) or 422 (well-formed but wrong).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = result.map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request("malformed_json", format!("malformed JSON: {inner}"));
        }
        let message = strip_position(&inner.to_string());
        let field = field_from_message(&message, &path);
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message).with_field(field)
    })?;
    de.end().map_err(|e| ApiError::bad_request("malformed_json", format!("trailing data after JSON: {e}")))?;
    Ok(value)
}

/// serde reports unknown/missing fields in the message rather than the path; pull them out.
fn field_from_message(message: &str, path: &str) -> String {
    for marker in ["unknown field `", "missing field `"] {
        if let Some(rest) = message.split(marker).nth(1)
            && let Some(name) = rest.split('`').next()
        {
            // serde_path_to_error already ends the path with an unknown field's name, but not a missing one's.
            return if path == "." || path.is_empty() {
                name.to_owned()
            } else if path == name || path.ends_with(&format!(".{name}")) {
                path.to_owned()
            } else {
                format!("{path}.{name}")
            };
        }
    }
    if path == "." { "body".to_owned() } else { path.to_owned() }
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(idx) => message[..idx].to_owned(),
        None => message.to_owned(),
    }
}

/// Query string; bad values become 422 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de).map(AppQuery).map_err(|err| {
            let path = err.path().to_string();
            let message = err.into_inner().to_string();
            let field = field_from_message(&message, &path);
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_query", message).with_field(field)
        })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// Parses a path id, naming the parameter when it is not a UUID.
pub fn parse_uuid(field: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_path", format!("`{raw}` is not a valid UUID"))
            .with_field(field)
    })
}
