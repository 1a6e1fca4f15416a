//! Request extractors: JSON with our error body, the caller's tenant, the public base URL.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body with our error shape: 415 without a JSON content type, 400 when it is not JSON,
/// 413 over the route's limit, 422 naming the field serde refused (`input.width`).
///
/// The body is read by [`atelier_platform::input::decode`]: a struct only from a JSON object
/// (never from an array of its fields), and `7.0` as the integer 7 wherever an integer is
/// expected.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("request body is not valid JSON: {e}"),
            )
        })?;
        atelier_platform::input::decode::<T>(&value)
            .map(Json)
            .map_err(|e| {
                let mut err = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_input",
                    e.to_string(),
                );
                if e.path != "." {
                    err = err.field(e.path);
                }
                err
            })
    }
}

/// The request body as bytes (uploads: CSV, images) with our error shape: 413
/// `body_too_large` over the route's limit, 400 `bad_body` when it could not be read.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "request body is larger than this route accepts",
            )),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                e.body_text(),
            )),
        }
    }
}

/// `application/json` or any `+json` type.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// `axum::extract::Query` whose rejections use our error shape: 422 naming the parameter serde
/// complained about (or `query`), never axum's plain-text 400.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => {
                let msg = e.body_text();
                let detail = msg
                    .split_once("Failed to deserialize query string: ")
                    .map(|(_, d)| d.to_owned())
                    .unwrap_or(msg);
                let field = detail
                    .split_once(':')
                    .map(|(f, _)| f.trim().to_owned())
                    .filter(|f| !f.is_empty() && !f.contains(' '))
                    .unwrap_or_else(|| "query".to_owned());
                Err(
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", detail)
                        .field(field),
                )
            }
        }
    }
}

/// `axum::extract::Path` whose rejections use our error shape: a path segment that cannot be
/// what the route expects (a version number past i64, bad UTF-8) names nothing that exists,
/// so 404 like any unknown id, never axum's plain-text 400.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no such resource: {}", e.body_text()),
            )),
        }
    }
}

/// Which key's limits a request spends (see [`crate::limits::key_id`]); set by [`Tenant`], so
/// handlers that take it must take `Tenant` first.
#[derive(Debug, Clone)]
pub struct KeyId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for KeyId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<KeyId>()
            .cloned()
            .unwrap_or_else(|| KeyId(crate::limits::key_id(&parts.headers))))
    }
}

/// The authenticated tenant of a request.
#[derive(Debug, Clone)]
pub struct Tenant(pub String);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (tenant, keyed) = Self::authenticate(parts, state).await?;
        // Rate limits are per API key; open mode (loopback, no keys: one local user, who may
        // send any token) has none to spend, and its streams share one count.
        let key = if keyed {
            let key = crate::limits::key_id(&parts.headers);
            state.http.check_rate(&key)?;
            key
        } else {
            "open".to_owned()
        };
        parts.extensions.insert(KeyId(key));
        Ok(tenant)
    }
}

impl Tenant {
    /// The tenant a request's key belongs to (any key, or none, in open mode), and whether a
    /// real key matched.
    async fn authenticate(parts: &Parts, state: &AppState) -> Result<(Self, bool), ApiError> {
        match crate::limits::bearer_token(&parts.headers) {
            Some(t) => {
                match atelier_platform::auth::verify_key(state.platform.store.as_ref(), t).await {
                    Ok(Some(tenant)) => Ok((Tenant(tenant), true)),
                    // Open mode has no keys to check against; clients such as openai's always
                    // send one, so any token means the single local user.
                    Ok(None) if state.open_mode().await => {
                        Ok((Tenant(state.default_tenant.clone()), false))
                    }
                    Ok(None) => Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "invalid API key",
                    )),
                    Err(e) => Err(e.into()),
                }
            }
            _ => {
                if state.open_mode().await {
                    Ok((Tenant(state.default_tenant.clone()), false))
                } else {
                    Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "missing API key: send Authorization: Bearer <key> (create one with `atelier keys create --tenant NAME`)",
                    ))
                }
            }
        }
    }
}

/// Scheme and authority clients reach us at, for absolute URLs in responses.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(u) = &state.public_url {
            return Ok(BaseUrl(u.clone()));
        }
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .filter(|h| {
                h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .map(str::to_owned)
            .unwrap_or_else(|| state.listen.clone());
        Ok(BaseUrl(format!("http://{host}")))
    }
}
