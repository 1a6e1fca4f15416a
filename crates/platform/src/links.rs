//! Signed, expiring links to files, usable without an API key (`?exp=…&sig=…`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks file links with a server-wide secret.
#[derive(Clone)]
pub struct LinkSigner {
    secret: Vec<u8>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(..)")
    }
}

impl LinkSigner {
    /// A signer over `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            secret: secret.to_vec(),
        }
    }

    fn mac(&self, file_id: &str, exp: i64) -> Option<HmacSha256> {
        let mut m = HmacSha256::new_from_slice(&self.secret).ok()?;
        m.update(file_id.as_bytes());
        m.update(b".");
        m.update(exp.to_string().as_bytes());
        Some(m)
    }

    /// The query string `exp=…&sig=…` granting access to `file_id` until `exp` (seconds).
    pub fn sign(&self, file_id: &str, exp: i64) -> String {
        let sig = self
            .mac(file_id, exp)
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .unwrap_or_default();
        format!("exp={exp}&sig={sig}")
    }

    /// Whether `sig` is valid for `file_id` and `exp` has not passed at `now` (seconds).
    pub fn verify(&self, file_id: &str, exp: i64, sig: &str, now: i64) -> bool {
        if exp < now {
            return false;
        }
        let Ok(raw) = hex::decode(sig) else {
            return false;
        };
        self.mac(file_id, exp)
            .is_some_and(|m| m.verify_slice(&raw).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_verifies_and_expires() {
        let s = LinkSigner::new(b"k");
        let q = s.sign("f1", 100);
        let sig = q.split("sig=").nth(1).unwrap();
        assert!(s.verify("f1", 100, sig, 99));
        assert!(!s.verify("f1", 100, sig, 101), "expired");
        assert!(!s.verify("f2", 100, sig, 99), "other file");
        assert!(!s.verify("f1", 200, sig, 99), "other expiry");
        assert!(
            !LinkSigner::new(b"other").verify("f1", 100, sig, 99),
            "other secret"
        );
    }
}
