//! Accounts of the diary site: password hashing, session and CSRF tokens, the login rate
//! limit, avatars. Nothing here knows HTTP; the server turns these into cookies and headers.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use atelier_platform::PlatformError;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type Result<T, E = PlatformError> = std::result::Result<T, E>;

/// Shortest password accepted (NIST SP 800-63B's floor).
pub const PASSWORD_MIN: usize = 8;
/// Longest password accepted: Argon2 cost must not be a lever for denial of service.
pub const PASSWORD_MAX: usize = 128;
/// Longest display name, in characters.
pub const NAME_MAX: usize = 30;
/// Largest avatar upload.
pub const AVATAR_MAX_BYTES: usize = 2 << 20;
/// Largest avatar side accepted before decoding (a decompression bomb is refused unread).
pub const AVATAR_MAX_SIDE: u32 = 4096;
/// Side of stored avatars.
pub const AVATAR_SIDE: u32 = 256;
/// Session lifetime.
pub const SESSION_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

fn bad(field: &str, message: impl Into<String>) -> PlatformError {
    PlatformError::invalid(field, message)
}

/// An Argon2id PHC string of `password` (OWASP's default parameters: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PlatformError::Corrupt(format!("password hashing: {e}")))
}

/// Whether `password` matches a stored PHC string (a malformed hash never matches).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the account does not exist, so a login for an unknown
/// email costs the same time as a wrong password and does not reveal who has an account.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default())
}

/// Checks sign-up fields; errors name the field.
pub fn check_signup(email: &str, password: &str, display_name: &str) -> Result<()> {
    let e = email.trim();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(u, d)| {
            !u.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !e.chars().any(char::is_whitespace);
    if !ok {
        return Err(bad(
            "email",
            "must be an email address like name@example.com",
        ));
    }
    let n = password.chars().count();
    if n < PASSWORD_MIN {
        return Err(bad(
            "password",
            format!("must be at least {PASSWORD_MIN} characters"),
        ));
    }
    if n > PASSWORD_MAX {
        return Err(bad(
            "password",
            format!("must be at most {PASSWORD_MAX} characters"),
        ));
    }
    check_name(display_name)
}

/// Checks a display name.
pub fn check_name(name: &str) -> Result<()> {
    let n = name.trim().chars().count();
    if n == 0 {
        return Err(bad("display_name", "is required"));
    }
    if n > NAME_MAX {
        return Err(bad(
            "display_name",
            format!("must be at most {NAME_MAX} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("display_name", "must not contain control characters"));
    }
    Ok(())
}

/// Emails compare case-insensitively.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// 256 random bits, URL-safe: session and CSRF tokens.
pub fn new_token() -> String {
    let b: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// What the sessions table keeps of a session token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of a presented CSRF token with the session's.
pub fn csrf_matches(presented: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// Failed-login throttle: at most `max` failures per `window_ms` per key (the email, and the
/// client address when known). Successful logins clear the email's count.
#[derive(Debug)]
pub struct LoginLimiter {
    max: usize,
    window_ms: i64,
    failures: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(5, 15 * 60 * 1000)
    }
}

impl LoginLimiter {
    /// `max` failures per `window_ms`.
    pub fn new(max: usize, window_ms: i64) -> Self {
        Self {
            max,
            window_ms,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when any key is over its budget.
    pub fn check(&self, keys: &[String], now: i64) -> std::result::Result<(), i64> {
        let Ok(mut m) = self.failures.lock() else {
            return Ok(());
        };
        let mut wait = 0;
        for k in keys {
            if let Some(q) = m.get_mut(k) {
                while q.front().is_some_and(|t| *t <= now - self.window_ms) {
                    q.pop_front();
                }
                if q.len() >= self.max {
                    let oldest = q.front().copied().unwrap_or(now);
                    wait = wait.max((oldest + self.window_ms - now + 999) / 1000);
                }
            }
        }
        if m.len() > 100_000 {
            // Bounded memory under a spray of keys: forget entries with no recent failure.
            let cutoff = now - self.window_ms;
            m.retain(|_, q| q.back().is_some_and(|t| *t > cutoff));
        }
        if wait > 0 {
            Err(wait.max(1))
        } else {
            Ok(())
        }
    }

    /// Records a failure against every key.
    pub fn fail(&self, keys: &[String], now: i64) {
        if let Ok(mut m) = self.failures.lock() {
            for k in keys {
                m.entry(k.clone()).or_default().push_back(now);
            }
        }
    }

    /// Forgets a key's failures.
    pub fn clear(&self, key: &str) {
        if let Ok(mut m) = self.failures.lock() {
            m.remove(key);
        }
    }
}

/// A generated avatar: a 5×5 mirrored pattern in a colour derived from `seed` (the user id),
/// so every account has a distinct picture before uploading one.
pub fn generated_avatar(seed: &str) -> Result<Vec<u8>> {
    let d = Sha256::digest(seed.as_bytes());
    let hue = d[0] as f32 / 255.0 * 360.0;
    let (r, g, b) = hsl(hue, 0.55, 0.55);
    let bg = image::Rgba([245, 243, 238, 255]);
    let fg = image::Rgba([r, g, b, 255]);
    let side = AVATAR_SIDE;
    let cell = side / 6;
    let pad = (side - cell * 5) / 2;
    let mut img = image::RgbaImage::from_pixel(side, side, bg);
    for row in 0..5u32 {
        for col in 0..3u32 {
            let bit = d[1 + (row * 3 + col) as usize] & 1 == 1;
            if !bit {
                continue;
            }
            for c in [col, 4 - col] {
                for y in 0..cell {
                    for x in 0..cell {
                        img.put_pixel(pad + c * cell + x, pad + row * cell + y, fg);
                    }
                }
            }
        }
    }
    encode_png(&img)
}

fn hsl(h: f32, s: f32, l: f32) -> (u8, u8, u8) {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = l - c / 2.0;
    let (r, g, b) = match h as u32 {
        0..=59 => (c, x, 0.0),
        60..=119 => (x, c, 0.0),
        120..=179 => (0.0, c, x),
        180..=239 => (0.0, x, c),
        240..=299 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let u = |v: f32| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    (u(r), u(g), u(b))
}

use crate::upload::encode_png;

/// Checks an uploaded avatar (PNG, JPEG or WebP by content, not by name; at most
/// [`AVATAR_MAX_BYTES`] and [`AVATAR_MAX_SIDE`]) and returns it centre-cropped to a
/// [`AVATAR_SIDE`] square PNG: re-encoding drops metadata such as GPS positions.
pub fn avatar_from_upload(bytes: &[u8]) -> Result<Vec<u8>> {
    let img = crate::upload::decode_image(bytes, "avatar", AVATAR_MAX_BYTES, AVATAR_MAX_SIDE)?;
    let (w, h) = (img.width(), img.height());
    let side = w.min(h);
    let cropped = img.crop_imm((w - side) / 2, (h - side) / 2, side, side);
    let out = cropped
        .resize_exact(
            AVATAR_SIDE,
            AVATAR_SIDE,
            image::imageops::FilterType::Lanczos3,
        )
        .to_rgba8();
    encode_png(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct hors", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn signup_errors_name_the_field() {
        let f = |e: PlatformError| match e {
            PlatformError::InvalidInput { field, .. } => field,
            other => panic!("{other}"),
        };
        assert_eq!(
            f(check_signup("nope", "password1", "A").unwrap_err()),
            "email"
        );
        assert_eq!(
            f(check_signup("a@b.kr", "short", "A").unwrap_err()),
            "password"
        );
        assert_eq!(
            f(check_signup("a@b.kr", "password1", " ").unwrap_err()),
            "display_name"
        );
        assert!(check_signup("a@b.kr", "password1", "하루").is_ok());
    }

    #[test]
    fn limiter_blocks_after_the_budget_and_recovers() {
        let l = LoginLimiter::new(3, 1000);
        let k = vec!["a@b.kr".to_string()];
        for t in 0..3 {
            assert!(l.check(&k, t).is_ok());
            l.fail(&k, t);
        }
        let wait = l.check(&k, 10).unwrap_err();
        assert_eq!(wait, 1);
        assert!(
            l.check(&k, 1001).is_ok(),
            "the window slid past the failures"
        );
        l.fail(&k, 1001);
        l.clear("a@b.kr");
        assert!(l.check(&k, 1002).is_ok());
    }

    #[test]
    fn avatars_are_checked_and_normalised() {
        assert!(avatar_from_upload(b"GIF89a....").is_err());
        assert!(avatar_from_upload(&vec![0u8; AVATAR_MAX_BYTES + 1]).is_err());
        let img = image::RgbaImage::from_pixel(40, 20, image::Rgba([200, 10, 10, 255]));
        let png = encode_png(&img).unwrap();
        let out = image::load_from_memory(&avatar_from_upload(&png).unwrap()).unwrap();
        assert_eq!((out.width(), out.height()), (AVATAR_SIDE, AVATAR_SIDE));
        let a = generated_avatar("u1").unwrap();
        assert_ne!(a, generated_avatar("u2").unwrap());
    }
}
