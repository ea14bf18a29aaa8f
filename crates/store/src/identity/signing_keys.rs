//! The keys that sign bearer tokens: the current one and, after a
//! rotation, the previous one.

use serde::{Deserialize, Serialize};

use super::random_bytes;
use crate::error::Result;
use crate::layout::keys::SIGNING_KEY;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{now_millis, Millis};
use crate::Registry;

/// One HMAC key for bearer tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigningKey {
    /// Key id, sent as the JWT `kid`.
    pub kid: String,
    /// Hex of 32 random bytes.
    pub secret_hex: String,
    /// Created.
    pub created_at: Millis,
}

/// The current key and, after a rotation, the previous one (still accepted
/// until the tokens it signed have expired).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigningKeys {
    /// Signs new tokens.
    pub current: SigningKey,
    /// Verifies tokens signed before the last rotation.
    #[serde(default)]
    pub previous: Option<SigningKey>,
}

impl Registry {
    /// The bearer-token signing keys, generated on first use.
    pub async fn signing_keys(&self) -> Result<SigningKeys> {
        if let Some(k) = self
            .meta(|r| r.db().get_json(Table::Secrets, SIGNING_KEY))
            .await?
        {
            return Ok(k);
        }
        let fresh = SigningKeys {
            current: new_signing_key(),
            previous: None,
        };
        let keys = self
            .meta(move |r| {
                r.db().transact(|tx| {
                    if let Some(k) = meta::tx_get::<SigningKeys>(tx, Table::Secrets, SIGNING_KEY)? {
                        return Ok(k);
                    }
                    meta::tx_put(tx, Table::Secrets, SIGNING_KEY, &fresh)?;
                    Ok(fresh.clone())
                })
            })
            .await?;
        self.durable().await?;
        Ok(keys)
    }

    /// Replaces the signing key; the old one keeps verifying tokens it
    /// signed until they expire, the one before it stops at once.
    pub async fn signing_key_rotate(&self) -> Result<SigningKeys> {
        let next = new_signing_key();
        let keys = self
            .meta(move |r| {
                r.db().transact(|tx| {
                    let old = meta::tx_get::<SigningKeys>(tx, Table::Secrets, SIGNING_KEY)?;
                    let keys = SigningKeys {
                        current: next.clone(),
                        previous: old.map(|o| o.current),
                    };
                    meta::tx_put(tx, Table::Secrets, SIGNING_KEY, &keys)?;
                    Ok(keys)
                })
            })
            .await?;
        self.durable().await?;
        Ok(keys)
    }
}

fn new_signing_key() -> SigningKey {
    SigningKey {
        kid: hex::encode(random_bytes::<6>()),
        secret_hex: hex::encode(random_bytes::<32>()),
        created_at: now_millis(),
    }
}
