//! API keys and secrets.
//!
//! A key reads `atl_<key_id>_<secret>`. Only SHA-256 of the secret is stored; the key id is
//! public and selects the row, and the hash comparison is constant-time.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Result;
use crate::store::JobStore;

fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh Standard Webhooks secret (`whsec_` + base64 of 24 random bytes).
pub fn new_webhook_secret() -> String {
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b)
    )
}

/// Creates a key for `tenant` (creating the tenant if needed) and returns the full key, which
/// is shown once and never stored.
pub async fn create_key(store: &dyn JobStore, tenant: &str, now: i64) -> Result<String> {
    let t = store.ensure_tenant(tenant, now).await?;
    let key_id = random_token(6);
    let secret = random_token(24);
    store.add_key(&key_id, &t.id, &hash(&secret), now).await?;
    Ok(format!("atl_{key_id}_{secret}"))
}

/// Resolves a presented key to its tenant id; `None` for malformed, unknown or revoked keys.
pub async fn verify_key(store: &dyn JobStore, presented: &str) -> Result<Option<String>> {
    let Some(rest) = presented.strip_prefix("atl_") else {
        return Ok(None);
    };
    let Some((key_id, secret)) = rest.split_once('_') else {
        return Ok(None);
    };
    let Some((tenant, stored)) = store.key(key_id).await? else {
        return Ok(None);
    };
    let ok: bool = hash(secret).as_bytes().ct_eq(stored.as_bytes()).into();
    Ok(ok.then_some(tenant))
}

/// A random secret for signing share links, kept in the data directory.
pub fn new_link_secret() -> String {
    random_token(32)
}
