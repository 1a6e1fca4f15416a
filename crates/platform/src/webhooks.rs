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
        // A trailing dot names the same host (`localhost.`).
        let h = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.');
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
            // Other spellings of loopback and metadata addresses.
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://017700000001/",
            "http://[::ffff:7f00:1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[fe80::1%25eth0]/",
            "http://100.64.0.1/",
            "http://api.localhost/",
            "http://LOCALHOST./",
        ] {
            assert!(check_url(u, false).is_err(), "{u} should be refused");
        }
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
    }

    /// A host name that passes the submit-time check but resolves to loopback when the
    /// webhook fires (DNS rebinding; here a name from /etc/hosts) is refused at delivery.
    #[tokio::test]
    async fn names_that_resolve_inside_are_refused_when_delivering() {
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let name = hosts
            .lines()
            .filter(|l| l.starts_with("127.") || l.starts_with("::1"))
            .flat_map(|l| l.split_whitespace().skip(1))
            .find(|n| !n.eq_ignore_ascii_case("localhost") && !n.ends_with(".localhost"));
        let Some(name) = name else {
            eprintln!("skipped: /etc/hosts names no loopback host besides localhost");
            return;
        };
        let url = format!("http://{name}:9/hook");
        assert!(
            check_url(&url, false).is_ok(),
            "a plain name passes the literal check"
        );
        let err = deliver(&url, false, "whsec_AAAA", "m1", "{}")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("private"), "{err}");
    }

    /// A receiver answering with a redirect to an inside address gets no second request.
    #[tokio::test]
    async fn redirects_are_not_followed() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let inside = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let inside_addr = inside.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = inside.accept().await {
                h.fetch_add(1, Ordering::SeqCst);
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let outside = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let outside_addr = outside.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = outside.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{inside_addr}/secret\r\ncontent-length: 0\r\n\r\n"
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        // Private targets allowed so the test can use loopback for the first hop.
        let status = deliver(
            &format!("http://{outside_addr}/hook"),
            true,
            "whsec_AAAA",
            "m1",
            "{}",
        )
        .await
        .unwrap();
        assert_eq!(status, 307, "the redirect is the answer");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
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
