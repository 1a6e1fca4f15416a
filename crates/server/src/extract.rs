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
/// Numbers are read as JSON means them: `7.0` is the integer 7 wherever an integer is expected
/// (JSON has one number type and many clients and schema-driven generators write integers that
/// way), so integral floats are turned into integers before the body is read into `T`.
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
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "request body is larger than the server accepts",
                ))
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    e.body_text(),
                ))
            }
        };
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("request body is not valid JSON: {e}"),
            )
        })?;
        integral_floats_to_integers(&mut value);
        serde_path_to_error::deserialize::<_, T>(value)
            .map(Json)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = format!("{path}: {}", e.inner());
                let mut err =
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message);
                if path != "." {
                    err = err.field(path);
                }
                err
            })
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

/// Rewrites every number that is a whole float within i64/u64 range (`7.0`, `1e3`) as that
/// integer, in place.
pub fn integral_floats_to_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.is_finite() {
                    if f >= 0.0 && f < 18_446_744_073_709_551_616.0 {
                        *v = Value::from(f as u64);
                    } else if f < 0.0 && f >= -9_223_372_036_854_775_808.0 {
                        *v = Value::from(f as i64);
                    }
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(o) => o.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
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
