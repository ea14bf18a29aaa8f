//! Scoped tokens: robot accounts and API keys. Only the SHA-256 of a
//! secret is stored; a presented secret is compared in constant time.

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use subtle::ConstantTimeEq;

use super::{invalid, random_bytes};
use crate::error::{Error, Result};
use crate::layout::keys;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{now_millis, Millis};
use crate::Registry;

/// What a scoped token may do on the repositories its pattern matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Read manifests, blobs, tags, referrers.
    Pull,
    /// Upload blobs, put manifests and tags.
    Push,
    /// Delete manifests, tags, blobs, repositories.
    Delete,
    /// Namespace settings and members through the management API.
    Manage,
}

impl Action {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::Manage => "manage",
        }
    }
}

/// One scope of a token: a repository pattern and actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenScope {
    /// Repository-name pattern; `*` matches any run of characters,
    /// slashes included (`acme/*`, `acme/web`, `*`).
    pub repository: String,
    /// Allowed actions.
    pub actions: Vec<Action>,
}

/// A stored token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Display name.
    pub name: String,
    /// Hex SHA-256 of the whole secret string.
    pub secret_sha256: String,
    /// What it may do.
    pub scopes: Vec<TokenScope>,
    /// Expiry, if any.
    #[serde(default)]
    pub expires_at: Option<Millis>,
    /// Created.
    pub created_at: Millis,
    /// Who created it.
    #[serde(default)]
    pub created_by: String,
    /// Last successful use (updated at most once a minute).
    #[serde(default)]
    pub last_used_at: Option<Millis>,
}

/// A token as listed (no hash).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// Id (also the middle part of the secret).
    pub id: String,
    /// Stored record.
    pub record: TokenRecord,
}

impl TokenInfo {
    /// Whether the token may do `action` on `repo`.
    pub fn allows(&self, repo: &str, action: Action) -> bool {
        self.record
            .scopes
            .iter()
            .any(|s| s.actions.contains(&action) && glob_match(&s.repository, repo))
    }

    /// Whether it has expired at `now`.
    pub fn expired(&self, now: Millis) -> bool {
        self.record.expires_at.is_some_and(|e| e <= now)
    }
}

/// The outcome of presenting a token secret.
#[derive(Debug, Clone)]
pub enum TokenCheck {
    /// Valid now.
    Valid(TokenInfo),
    /// It was valid but has expired.
    Expired(TokenInfo),
    /// Unknown, revoked, or the wrong secret.
    Invalid,
}

/// Secret prefix of scoped tokens, so that they are recognisable (and
/// findable by secret scanners).
pub const TOKEN_PREFIX: &str = "berth_";
/// A token's last-use time is written at most this often.
const LAST_USED_GRANULARITY_MS: Millis = 60_000;

/// `*` matches any run of characters (slashes included); everything else
/// matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matcher with backtracking to the last star: linear-ish,
    // no recursion whatever the pattern.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

impl Registry {
    /// Creates a scoped token. Returns it with its secret, which is not
    /// stored (only its SHA-256 is) and cannot be shown again.
    pub async fn token_create(
        &self,
        name: &str,
        scopes: Vec<TokenScope>,
        expires_at: Option<Millis>,
        created_by: &str,
    ) -> Result<(TokenInfo, String)> {
        if name.trim().is_empty() || name.len() > 128 {
            return Err(invalid("name", "a token name has 1 to 128 characters"));
        }
        if scopes.is_empty() {
            return Err(invalid("scopes", "give at least one scope"));
        }
        for s in &scopes {
            let ok_chars = !s.repository.is_empty()
                && s.repository.len() <= 256
                && s.repository
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/*".contains(&b));
            if !ok_chars {
                return Err(invalid(
                    "scopes.repository",
                    format!("{:?} is not a repository pattern: lower-case name characters and '*' (e.g. acme/*)", s.repository),
                ));
            }
            if s.actions.is_empty() {
                return Err(invalid("scopes.actions", "give at least one action"));
            }
        }
        let now = now_millis();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(invalid("expires_at", "the expiry is in the past"));
        }
        let id = hex::encode(random_bytes::<8>());
        let secret = format!("{TOKEN_PREFIX}{id}_{}", hex::encode(random_bytes::<32>()));
        let rec = TokenRecord {
            name: name.to_string(),
            secret_sha256: sha256_hex(&secret),
            scopes,
            expires_at,
            created_at: now,
            created_by: created_by.to_string(),
            last_used_at: None,
        };
        {
            let (id, rec) = (id.clone(), rec.clone());
            self.meta(move |r| {
                r.db()
                    .transact(|tx| meta::tx_put(tx, Table::Tokens, &keys::token(&id), &rec))
            })
            .await?;
        }
        self.durable().await?;
        Ok((TokenInfo { id, record: rec }, secret))
    }

    /// Every token, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>> {
        self.meta(move |r| r.tokens_blocking()).await
    }

    /// [`Registry::tokens`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn tokens_blocking(&self) -> Result<Vec<TokenInfo>> {
        let mut out: Vec<TokenInfo> = self
            .db()
            .scan(Table::Tokens, b"", None, usize::MAX)?
            .into_iter()
            .map(|(k, v)| {
                Ok(TokenInfo {
                    id: keys::parse_token(&k),
                    record: meta::decode(Table::Tokens, &v)?,
                })
            })
            .collect::<Result<_>>()?;
        out.sort_by(|a, b| {
            a.record
                .created_at
                .cmp(&b.record.created_at)
                .then(a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// One token.
    pub async fn token(&self, id: &str) -> Result<TokenInfo> {
        let id = id.to_owned();
        self.meta(move |r| r.token_blocking(&id)).await
    }

    /// [`Registry::token`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn token_blocking(&self, id: &str) -> Result<TokenInfo> {
        self.db()
            .get_json::<TokenRecord>(Table::Tokens, &keys::token(id))?
            .map(|record| TokenInfo {
                id: id.to_string(),
                record,
            })
            .ok_or_else(|| Error::NotFound {
                what: format!("token {id}"),
            })
    }

    /// Revokes (deletes) a token: its secret stops working at once.
    pub async fn token_delete(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.meta(move |r| {
            r.db().transact(|tx| {
                if tx.get(Table::Tokens, &keys::token(&id))?.is_none() {
                    return Err(Error::NotFound {
                        what: format!("token {id}"),
                    }
                    .into());
                }
                tx.delete(Table::Tokens, &keys::token(&id))
            })
        })
        .await?;
        self.durable().await
    }

    /// Checks a presented secret (constant-time comparison of hashes) and
    /// records the use.
    pub async fn token_verify(&self, secret: &str) -> Result<TokenCheck> {
        let secret = secret.to_owned();
        self.meta(move |r| r.token_verify_blocking(&secret)).await
    }

    /// [`Registry::token_verify`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn token_verify_blocking(&self, secret: &str) -> Result<TokenCheck> {
        let Some(rest) = secret.strip_prefix(TOKEN_PREFIX) else {
            return Ok(TokenCheck::Invalid);
        };
        let Some((id, _)) = rest.split_once('_') else {
            return Ok(TokenCheck::Invalid);
        };
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(TokenCheck::Invalid);
        }
        let Some(rec) = self
            .db()
            .get_json::<TokenRecord>(Table::Tokens, &keys::token(id))?
        else {
            return Ok(TokenCheck::Invalid);
        };
        let presented = sha256_hex(secret);
        if !bool::from(presented.as_bytes().ct_eq(rec.secret_sha256.as_bytes())) {
            return Ok(TokenCheck::Invalid);
        }
        let now = now_millis();
        let info = TokenInfo {
            id: id.to_string(),
            record: rec,
        };
        if info.expired(now) {
            return Ok(TokenCheck::Expired(info));
        }
        if info
            .record
            .last_used_at
            .is_none_or(|t| now - t >= LAST_USED_GRANULARITY_MS)
        {
            // Not flushed: a last-use time lost to a crash is harmless, and
            // the engine flushes every second anyway.
            self.db().transact(|tx| {
                if let Some(mut r) =
                    meta::tx_get::<TokenRecord>(tx, Table::Tokens, &keys::token(id))?
                {
                    r.last_used_at = Some(now);
                    meta::tx_put(tx, Table::Tokens, &keys::token(id), &r)?;
                }
                Ok(())
            })?;
        }
        Ok(TokenCheck::Valid(info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "a/b/c"));
        assert!(glob_match("acme/*", "acme/web"));
        assert!(glob_match("acme/*", "acme/team/web"));
        assert!(!glob_match("acme/*", "acme"));
        assert!(!glob_match("acme/*", "acmex/web"));
        assert!(glob_match("acme/web", "acme/web"));
        assert!(!glob_match("acme/web", "acme/web2"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("a*c*e", "abcd"));
        assert!(glob_match("**", ""));
    }
}
