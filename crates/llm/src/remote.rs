//! Any OpenAI-compatible `/v1/chat/completions` endpoint (Ollama, vLLM, llama.cpp server,
//! OpenAI): timeouts, bounded retries with backoff, JSON schema mode where the server takes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::{CancelToken, ChatRequest, Completion, FinishReason, LlmError, ResponseFormat, Usage};

/// Where and how to reach a remote model.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Base URL up to and including `/v1`, e.g. `http://localhost:11434/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// The server's model name.
    pub model: String,
    /// Whole-request timeout (generation included).
    pub timeout: Duration,
    /// Retries after timeouts, connection errors, 429 and 5xx.
    pub retries: usize,
    /// Send `response_format` for structured requests (turned off automatically when the
    /// server rejects it).
    pub send_response_format: bool,
}

impl RemoteConfig {
    /// Defaults: 120 s timeout, 2 retries, response_format on.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            timeout: Duration::from_secs(120),
            retries: 2,
            send_response_format: true,
        }
    }
}

/// A remote chat model.
pub struct RemoteModel {
    cfg: RemoteConfig,
    url: String,
    http: reqwest::Client,
    /// Cleared when the server refuses `response_format`; later calls leave it out.
    response_format_ok: AtomicBool,
}

impl RemoteModel {
    /// A client for `cfg`; no request is made until the first chat.
    pub fn new(cfg: RemoteConfig) -> Result<Self, LlmError> {
        let base = cfg.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(LlmError::invalid(
                "llm_url",
                format!("{base:?} is not an http(s) URL"),
            ));
        }
        let url = format!("{base}/chat/completions");
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(Duration::from_secs(10).min(cfg.timeout))
            .build()
            .map_err(|e| LlmError::Remote {
                url: url.clone(),
                message: e.to_string(),
            })?;
        Ok(Self {
            response_format_ok: AtomicBool::new(cfg.send_response_format),
            cfg,
            url,
            http,
        })
    }

    /// The server's model name.
    pub fn model(&self) -> &str {
        &self.cfg.model
    }

    fn body(&self, req: &ChatRequest, with_format: bool) -> Value {
        let p = &req.params;
        let mut body = json!({
            "model": self.cfg.model,
            "messages": req.messages,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "stream": false,
        });
        if let Some(seed) = p.seed {
            body["seed"] = json!(seed);
        }
        if !p.stop.is_empty() {
            body["stop"] = json!(p.stop);
        }
        if with_format {
            match &req.format {
                ResponseFormat::Text => {}
                ResponseFormat::JsonObject => {
                    body["response_format"] = json!({"type": "json_object"})
                }
                ResponseFormat::JsonSchema { name, schema } => {
                    body["response_format"] = json!({
                        "type": "json_schema",
                        "json_schema": {"name": name, "schema": schema},
                    })
                }
            }
        }
        body
    }

    fn err(&self, message: impl Into<String>) -> LlmError {
        LlmError::Remote {
            url: self.url.clone(),
            message: message.into(),
        }
    }

    /// One completion, retried on transient failures.
    pub async fn chat(
        &self,
        req: &ChatRequest,
        cancel: &CancelToken,
    ) -> Result<Completion, LlmError> {
        req.params.validate()?;
        let mut attempt = 0;
        loop {
            let with_format = self.response_format_ok.load(Ordering::Relaxed)
                && req.format != ResponseFormat::Text;
            let mut rb = self.http.post(&self.url).json(&self.body(req, with_format));
            if let Some(k) = &self.cfg.api_key {
                rb = rb.bearer_auth(k);
            }
            let sent = tokio::select! {
                r = rb.send() => r,
                _ = wait_cancel(cancel) => return Err(LlmError::Cancelled),
            };
            let (transient, message, retry_after) = match sent {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let text = tokio::select! {
                        t = resp.text() => t.map_err(|e| self.err(format!("reading the answer: {e}"))),
                        _ = wait_cancel(cancel) => return Err(LlmError::Cancelled),
                    };
                    match text {
                        Ok(text) if status.is_success() => return self.parse(&text),
                        Ok(text) => {
                            let msg = error_message(&text);
                            if status.as_u16() == 400
                                && with_format
                                && msg.to_lowercase().contains("response_format")
                            {
                                tracing::warn!(url = %self.url, "the server refuses response_format; validating answers instead");
                                self.response_format_ok.store(false, Ordering::Relaxed);
                                continue;
                            }
                            let transient = status.as_u16() == 429 || status.is_server_error();
                            (transient, format!("HTTP {status}: {msg}"), retry_after)
                        }
                        Err(e) => (true, e.to_string(), None),
                    }
                }
                Err(e) => (
                    e.is_timeout() || e.is_connect() || e.is_request(),
                    e.to_string(),
                    None,
                ),
            };
            if !transient || attempt >= self.cfg.retries {
                let tries = attempt + 1;
                return Err(self.err(format!("{message} (after {tries} attempt(s))")));
            }
            let backoff = retry_after
                .map(|s| Duration::from_secs(s.min(30)))
                .unwrap_or_else(|| Duration::from_millis(500 << attempt.min(4)));
            tracing::warn!(url = %self.url, attempt, %message, ?backoff, "remote model failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {},
                _ = wait_cancel(cancel) => return Err(LlmError::Cancelled),
            }
            attempt += 1;
        }
    }

    fn parse(&self, text: &str) -> Result<Completion, LlmError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| self.err(format!("answer is not JSON: {e}")))?;
        let choice = v
            .get("choices")
            .and_then(|c| c.get(0))
            .ok_or_else(|| self.err("answer has no choices"))?;
        let content = choice
            .pointer("/message/content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let finish_reason = match choice.get("finish_reason").and_then(Value::as_str) {
            Some("length") => FinishReason::Length,
            _ => FinishReason::Stop,
        };
        let n = |k: &str| {
            v.pointer(&format!("/usage/{k}"))
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize
        };
        Ok(Completion {
            text: content,
            finish_reason,
            usage: Usage {
                prompt_tokens: n("prompt_tokens"),
                completion_tokens: n("completion_tokens"),
            },
        })
    }
}

/// The `error.message` of an OpenAI-style error body, else the body itself (shortened).
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.chars().take(300).collect())
}

async fn wait_cancel(cancel: &CancelToken) {
    while !cancel.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
