//! Per-key request limits, so one key (or a leaked one) cannot starve the others: a token
//! bucket on every keyed request and a cap on the event streams a key holds open. Also the
//! deadlines a client gets to send its request head and body, so slow senders cannot pin
//! connections (slowloris).

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// Settings for [`HttpLimits`]; the defaults suit one busy user or a script polling many jobs.
#[derive(Debug, Clone)]
pub struct HttpLimitSettings {
    /// Sustained requests per second per key; 0 turns rate limiting off.
    pub rate_per_s: u32,
    /// Requests a key may send at once above the sustained rate.
    pub burst: u32,
    /// Event streams (`/stream`, streamed chat) one key may hold open on this node.
    pub max_streams_per_key: usize,
    /// Longest a client may take to send a request body, start to end.
    pub body_timeout: Duration,
    /// Longest a client may take to send a request line and headers.
    pub header_timeout: Duration,
}

impl Default for HttpLimitSettings {
    fn default() -> Self {
        Self {
            rate_per_s: 100,
            burst: 1000,
            max_streams_per_key: 256,
            body_timeout: Duration::from_secs(120),
            header_timeout: Duration::from_secs(15),
        }
    }
}

/// The live limits of one server node (state is per process, like the connections it guards).
pub struct HttpLimits {
    settings: HttpLimitSettings,
    rate: Option<DefaultKeyedRateLimiter<String>>,
    streams: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Debug for HttpLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpLimits")
            .field("settings", &self.settings)
            .finish()
    }
}

impl HttpLimits {
    /// Limits with these settings.
    pub fn new(settings: HttpLimitSettings) -> Self {
        let rate = NonZeroU32::new(settings.rate_per_s).map(|per_s| {
            let burst = NonZeroU32::new(settings.burst.max(settings.rate_per_s)).unwrap_or(per_s);
            RateLimiter::keyed(Quota::per_second(per_s).allow_burst(burst))
        });
        Self {
            settings,
            rate,
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &HttpLimitSettings {
        &self.settings
    }

    /// Spends one request of `key`'s budget; a 429 with `Retry-After` when it is spent.
    pub fn check_rate(&self, key: &str) -> Result<(), ApiError> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        // Forget idle keys now and then so the table stays as small as the set of active keys.
        if rate.len() > 10_000 {
            rate.retain_recent();
        }
        match rate.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(ApiError {
                    retry_after: Some(secs.max(1)),
                    ..ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        format!(
                            "this API key is over {} requests per second; retry after {} ms",
                            self.settings.rate_per_s,
                            wait.as_millis()
                        ),
                    )
                })
            }
        }
    }

    /// Takes one of `key`'s stream slots until the returned permit is dropped (the stream
    /// ends or the client goes away); a 429 when the key already holds its maximum.
    pub fn open_stream(self: &Arc<Self>, key: &str) -> Result<StreamPermit, ApiError> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let n = streams.entry(key.to_owned()).or_insert(0);
        if *n >= self.settings.max_streams_per_key {
            return Err(ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_streams",
                    format!(
                        "this API key already holds {} open event streams on this server; close one first",
                        self.settings.max_streams_per_key
                    ),
                )
            });
        }
        *n += 1;
        Ok(StreamPermit {
            limits: self.clone(),
            key: key.to_owned(),
        })
    }

    /// Streams `key` holds open now.
    pub fn open_streams(&self, key: &str) -> usize {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.get(key).copied().unwrap_or(0)
    }
}

/// One open event stream of a key; dropping it gives the slot back.
#[derive(Debug)]
pub struct StreamPermit {
    limits: Arc<HttpLimits>,
    key: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut streams = self
            .limits
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = streams.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                streams.remove(&self.key);
            }
        }
    }
}

/// The API key a request sends (`Authorization: Bearer KEY`, or Replicate's `Token KEY`), if
/// any: the one parser behind authentication and the per-key limits.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let h = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    h.strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("Token "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Which key a request spends: a digest of its bearer token (the token itself never sits in
/// memory tables), or `open` for unkeyed requests in open mode.
pub fn key_id(headers: &HeaderMap) -> String {
    match bearer_token(headers) {
        Some(t) => {
            let d = Sha256::digest(t.as_bytes());
            d[..12].iter().map(|b| format!("{b:02x}")).collect()
        }
        None => "open".to_owned(),
    }
}

/// Middleware: the whole request body must arrive within the body deadline (408
/// `body_timeout` otherwise), so a client trickling bytes cannot hold a handler and its
/// connection for long.
///
/// The body is not buffered here: it streams on to the route, whose own size limit refuses an
/// oversize body as it arrives (an unauthenticated client cannot make the server hold the
/// largest upload any route takes). The deadline rides along in the body; when it fires, the
/// route's read fails and the answer is replaced by the 408.
pub async fn body_deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let deadline = state.http.settings.body_timeout;
    let fired = Arc::new(AtomicBool::new(false));
    let flag = fired.clone();
    let req = req.map(|inner| {
        axum::body::Body::new(DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep(deadline)),
            fired: flag,
        })
    });
    let mut resp = next.run(req).await;
    if fired.load(Ordering::Relaxed) {
        let mut resp = ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s",
                deadline.as_secs_f64()
            ),
        )
        .into_response();
        close_after(&mut resp);
        return resp;
    }
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
        close_after(&mut resp);
    }
    resp
}

/// The rest of a refused body may still be on its way: say the connection closes after this
/// answer, so a client does not send its next request down a connection the server drops.
fn close_after(resp: &mut Response) {
    resp.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
}

/// A request body that fails once its deadline passes, whether or not bytes are arriving.
struct DeadlineBody {
    inner: axum::body::Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    fired: Arc<AtomicBool>,
}

/// The error a late body ends with (the middleware answers 408 for it).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive before its deadline")]
struct BodyDeadline;

impl http_body::Body for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.inner.is_end_stream() {
            return Poll::Ready(None);
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.fired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new(BodyDeadline))));
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, burst: u32, streams: usize) -> Arc<HttpLimits> {
        Arc::new(HttpLimits::new(HttpLimitSettings {
            rate_per_s: rate,
            burst,
            max_streams_per_key: streams,
            ..Default::default()
        }))
    }

    #[test]
    fn a_key_past_its_burst_gets_429_and_other_keys_do_not() {
        let l = limits(1, 3, 1);
        for _ in 0..3 {
            assert!(l.check_rate("a").is_ok());
        }
        let e = l.check_rate("a").unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.code, "rate_limited");
        assert!(e.retry_after.is_some_and(|s| s >= 1));
        assert!(l.check_rate("b").is_ok(), "keys have separate buckets");
    }

    #[test]
    fn zero_rate_turns_limiting_off() {
        let l = limits(0, 0, 1);
        for _ in 0..10_000 {
            assert!(l.check_rate("a").is_ok());
        }
    }

    #[test]
    fn stream_slots_come_back_when_permits_drop() {
        let l = limits(0, 0, 2);
        let a = l.open_stream("k").unwrap();
        let _b = l.open_stream("k").unwrap();
        assert_eq!(l.open_stream("k").unwrap_err().code, "too_many_streams");
        assert!(l.open_stream("other").is_ok());
        drop(a);
        assert_eq!(l.open_streams("k"), 1);
        assert!(l.open_stream("k").is_ok());
    }

    #[test]
    fn key_ids_hide_the_token_and_tell_keys_apart() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(axum::http::header::AUTHORIZATION, v.parse().unwrap());
            key_id(&m)
        };
        assert_eq!(key_id(&HeaderMap::new()), "open");
        assert_ne!(h("Bearer one"), h("Bearer two"));
        assert_eq!(h("Bearer one"), h("Token one"));
        assert!(!h("Bearer secret-token").contains("secret"));
    }
}
