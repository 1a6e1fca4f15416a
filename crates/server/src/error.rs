//! One JSON error shape for every route: `{"error":{"code","message","field"}}`, mapped from
//! platform errors in one place.

use atelier_platform::PlatformError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// With the offending field named.
    pub fn field(mut self, f: impl Into<String>) -> Self {
        self.field = Some(f.into());
        self
    }

    /// 404 with the same body whether the thing is absent or belongs to someone else.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 422 naming a field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message).field(field)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "field": self.field}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<PlatformError> for ApiError {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::InvalidInput { field, message } => {
                let msg = format!("{field}: {message}");
                Self::invalid(field, msg)
            }
            PlatformError::Conflict { field, message } => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{field}: {message}"),
            )
            .field(field),
            PlatformError::UnknownApp(name) => Self::new(
                StatusCode::NOT_FOUND,
                "unknown_model",
                format!("model {name:?} not found"),
            )
            .field("model"),
            PlatformError::QueueFull {
                depth,
                retry_after_s,
            } => Self {
                retry_after: Some(retry_after_s),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "queue_full",
                    format!("the queue is full ({depth} jobs waiting); retry later"),
                )
            },
            PlatformError::ContentBlocked(b) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "content_blocked",
                format!("content blocked ({}): {}", b.category, b.message),
            )
            .field("input.prompt"),
            PlatformError::Failed { code, message } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "step_failed",
                format!("{code}: {message}"),
            ),
            PlatformError::Webhook { url, message } => {
                Self::invalid("webhook", format!("{url}: {message}"))
            }
            PlatformError::Engine(atelier_engine::EngineError::InvalidRequest {
                field,
                message,
            }) => Self::invalid(format!("input.{field}"), message),
            other => {
                tracing::error!("internal error: {other}");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                )
            }
        }
    }
}

/// Route result alias.
pub type ApiResult<T> = Result<T, ApiError>;
