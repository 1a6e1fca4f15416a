//! Webhook delivery with the Standard Webhooks scheme: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{ts}.{body}")>`.
//!
//! Targets are resolved once and the connection is pinned to the checked address, so a DNS
//! answer cannot swap in a private address after the check (rebinding); redirects are not
//! followed. Loopback, private, link-local and other non-public addresses are refused unless
//! the operator allows them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{PlatformError, Result};

/// The events a client can subscribe to (Replicate's names).
pub const EVENTS: [&str; 4] = ["start", "output", "logs", "completed"];

/// Whether an address is reachable on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Parses and checks a webhook URL at submission time (scheme, host, literal addresses).
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url> {
    let bad = |m: &str| PlatformError::Webhook {
        url: url.to_owned(),
        message: m.to_owned(),
    };
    let u = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(bad("only http and https webhooks are allowed"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("credentials in webhook URLs are not allowed"));
    }
    let host = u.host_str().ok_or_else(|| bad("no host"))?;
    if !allow_private {
        let h = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = h.parse::<IpAddr>() {
            if !is_public(ip) {
                return Err(bad(
                    "private, loopback and link-local addresses are not allowed",
                ));
            }
        }
        if h.eq_ignore_ascii_case("localhost") || h.ends_with(".localhost") {
            return Err(bad(
                "private, loopback and link-local addresses are not allowed",
            ));
        }
    }
    Ok(u)
}

/// Signs a payload. `secret` is `whsec_<base64>`.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &str) -> Result<String> {
    let raw = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|e| PlatformError::Corrupt(format!("webhook secret: {e}")))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|e| PlatformError::Corrupt(format!("webhook secret: {e}")))?;
    mac.update(format!("{msg_id}.{timestamp}.{body}").as_bytes());
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// One delivery attempt's result, recorded in the job's event log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attempt {
    pub event: String,
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// Sends one signed POST to `url`, resolving the host and pinning the checked address.
pub async fn deliver(
    url: &str,
    allow_private: bool,
    secret: &str,
    msg_id: &str,
    body: &str,
) -> Result<u16> {
    let u = check_url(url, allow_private)?;
    let host = u
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = u.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| PlatformError::Webhook {
            url: url.to_owned(),
            message: format!("cannot resolve host: {e}"),
        })?
        .collect();
    let addr = addrs
        .iter()
        .find(|a| allow_private || is_public(a.ip()))
        .copied()
        .ok_or_else(|| PlatformError::Webhook {
            url: url.to_owned(),
            message: "host resolves only to private, loopback or link-local addresses".into(),
        })?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .resolve(&host, addr)
        .build()
        .map_err(|e| PlatformError::Webhook {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
    let ts = crate::now_ms() / 1000;
    let sig = sign(secret, msg_id, ts, body)?;
    let resp = client
        .post(u)
        .header("content-type", "application/json")
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| PlatformError::Webhook {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
    Ok(resp.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_targets_are_refused() {
        for u in [
            "http://127.0.0.1/x",
            "http://localhost:8080/",
            "http://10.0.0.5/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "ftp://example.com/",
            "http://user:pw@example.com/",
        ] {
            assert!(check_url(u, false).is_err(), "{u} should be refused");
        }
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
    }

    #[test]
    fn signature_matches_the_spec_example() {
        // Example from the Standard Webhooks specification.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
