//! Users: names, argon2id password hashes, the administrator flag.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use subtle::ConstantTimeEq;

use super::{blocking, invalid, random_bytes};
use crate::error::{Error, Result};
use crate::layout::keys;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{now_millis, Millis};
use crate::Registry;

/// A stored user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    /// Argon2id hash in PHC string form (`$argon2id$v=19$...`).
    pub password_hash: String,
    /// Registry administrator: every right everywhere.
    #[serde(default)]
    pub admin: bool,
    /// Created.
    pub created_at: Millis,
    /// Last change (password or admin flag).
    #[serde(default)]
    pub updated_at: Millis,
    /// Random identity, new for every user created: a user deleted and
    /// created again under the same name is a different user (records
    /// written before it existed are identified by their creation time).
    #[serde(default)]
    pub id: String,
}

/// A user as the rest of the program sees it (no hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// Name.
    pub name: String,
    /// Registry administrator.
    pub admin: bool,
    /// Created.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
    /// A fingerprint of the stored hash: changes whenever the password
    /// does, so that caches of verified credentials can tell.
    pub secret_version: u64,
    /// Identity of this user (see [`UserRecord::id`]); differs between a
    /// user and a later one of the same name.
    pub id: String,
}

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (argon2 cost is bounded, but bodies are not).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Validates a user name: 1 to 64 lower-case letters, digits, `.`, `_`,
/// `-`, starting and ending with a letter or digit.
pub fn validate_user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "name",
            format!("{name:?} is not a user name: 1 to 64 lower-case letters, digits, '.', '_' or '-', starting and ending with a letter or digit"),
        ))
    }
}

/// Validates a new password.
pub fn validate_password(pw: &str) -> Result<()> {
    let n = pw.chars().count();
    if n < MIN_PASSWORD_LEN || pw.len() > MAX_PASSWORD_LEN {
        return Err(invalid(
            "password",
            format!("a password has {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

fn hash_password(pw: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>())
        .map_err(|source| Error::PasswordHash { source })?;
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|source| Error::PasswordHash { source })
}

/// Argon2's working memory (about 19 MiB at the default cost), kept by a
/// thread that verifies passwords again and again: allocating it afresh
/// each time lets the allocator keep freed blocks around, and a burst of
/// logins would leave the process hundreds of MiB larger.
#[derive(Default)]
pub struct PasswordMemory(Vec<argon2::Block>);

/// Largest working memory a stored hash may ask for (blocks of 1 KiB).
const MAX_ARGON2_BLOCKS: usize = 256 << 10;

fn verify_password(pw: &str, phc: &str, mem: &mut PasswordMemory) -> bool {
    let Ok(h) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(h.algorithm) else {
        return false;
    };
    let version = match h.version.map(argon2::Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = argon2::Params::try_from(&h) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_ARGON2_BLOCKS {
        return false;
    }
    if mem.0.len() < blocks {
        mem.0.resize(blocks, argon2::Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(pw.as_bytes(), salt, &mut out, &mut mem.0[..blocks])
        .is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// A hash of a random password, verified against when the user does not
/// exist so that unknown and known names take the same time.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash_password(&hex::encode(random_bytes::<16>())).expect("argon2 hashes a random password")
});

fn secret_version(phc: &str) -> u64 {
    let d = sha2::Sha256::digest(phc.as_bytes());
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

fn user_info(name: &str, r: &UserRecord) -> UserInfo {
    UserInfo {
        name: name.to_string(),
        admin: r.admin,
        created_at: r.created_at,
        updated_at: r.updated_at.max(r.created_at),
        secret_version: secret_version(&r.password_hash),
        id: if r.id.is_empty() {
            format!("c{}", r.created_at)
        } else {
            r.id.clone()
        },
    }
}

impl Registry {
    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserInfo>> {
        self.meta(move |r| r.users_blocking()).await
    }

    /// [`Registry::users`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn users_blocking(&self) -> Result<Vec<UserInfo>> {
        self.db()
            .scan(Table::Users, b"", None, usize::MAX)?
            .into_iter()
            .map(|(k, v)| {
                let r: UserRecord = meta::decode(Table::Users, &v)?;
                Ok(user_info(&keys::parse_user(&k), &r))
            })
            .collect()
    }

    /// Number of users.
    pub async fn user_count(&self) -> Result<usize> {
        self.meta(move |r| r.user_count_blocking()).await
    }

    /// [`Registry::user_count`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn user_count_blocking(&self) -> Result<usize> {
        self.db().count(Table::Users, b"")
    }

    /// One user.
    pub async fn user(&self, name: &str) -> Result<Option<UserInfo>> {
        let name = name.to_owned();
        self.meta(move |r| r.user_blocking(&name)).await
    }

    /// [`Registry::user`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn user_blocking(&self, name: &str) -> Result<Option<UserInfo>> {
        Ok(self
            .db()
            .get_json::<UserRecord>(Table::Users, &keys::user(name))?
            .map(|r| user_info(name, &r)))
    }

    /// On a blocking thread (inside [`Registry::meta`]).
    pub(super) fn user_or_404(&self, name: &str) -> Result<UserInfo> {
        self.user_blocking(name)?.ok_or_else(|| Error::NotFound {
            what: format!("user {name}"),
        })
    }

    /// Creates a user; the password is hashed with argon2id.
    pub async fn user_create(&self, name: &str, password: &str, admin: bool) -> Result<UserInfo> {
        validate_user_name(name)?;
        validate_password(password)?;
        let pw = password.to_string();
        let hash = blocking(move || hash_password(&pw)).await??;
        let now = now_millis();
        let rec = UserRecord {
            password_hash: hash,
            admin,
            created_at: now,
            updated_at: now,
            id: hex::encode(random_bytes::<12>()),
        };
        let owned = name.to_owned();
        self.meta(move |r| {
            let name = owned.as_str();
            r.db().transact(|tx| {
                if tx.get(Table::Users, &keys::user(name))?.is_some() {
                    return Err(Error::Exists {
                        what: format!("user {name}"),
                    }
                    .into());
                }
                meta::tx_put(tx, Table::Users, &keys::user(name), &rec)
            })
        })
        .await?;
        self.durable().await?;
        self.user_or_404_async(name).await
    }

    /// [`Registry::user_or_404`] through the gate.
    async fn user_or_404_async(&self, name: &str) -> Result<UserInfo> {
        let name = name.to_owned();
        self.meta(move |r| r.user_or_404(&name)).await
    }

    /// Changes a password.
    pub async fn user_set_password(&self, name: &str, password: &str) -> Result<UserInfo> {
        validate_password(password)?;
        self.user_or_404_async(name).await?;
        let pw = password.to_string();
        let hash = blocking(move || hash_password(&pw)).await??;
        self.update_user(name, move |r| r.password_hash = hash.clone())
            .await
    }

    /// Makes a user a registry administrator or not.
    pub async fn user_set_admin(&self, name: &str, admin: bool) -> Result<UserInfo> {
        self.update_user(name, move |r| r.admin = admin).await
    }

    async fn update_user(
        &self,
        name: &str,
        f: impl Fn(&mut UserRecord) + Send + 'static,
    ) -> Result<UserInfo> {
        let owned = name.to_owned();
        self.meta(move |reg| {
            let name = owned.as_str();
            reg.db().transact(|tx| {
                let Some(mut r) = meta::tx_get::<UserRecord>(tx, Table::Users, &keys::user(name))?
                else {
                    return Err(Error::NotFound {
                        what: format!("user {name}"),
                    }
                    .into());
                };
                f(&mut r);
                r.updated_at = now_millis();
                meta::tx_put(tx, Table::Users, &keys::user(name), &r)
            })
        })
        .await?;
        self.durable().await?;
        self.user_or_404_async(name).await
    }

    /// Deletes a user and every role granted to them.
    pub async fn user_delete(&self, name: &str) -> Result<()> {
        let owned = name.to_owned();
        self.meta(move |r| {
            let name = owned.as_str();
            let grants = r
                .db()
                .scan(Table::Grants, &keys::grants_of(name), None, usize::MAX)?;
            r.db().transact(|tx| {
                if tx.get(Table::Users, &keys::user(name))?.is_none() {
                    return Err(Error::NotFound {
                        what: format!("user {name}"),
                    }
                    .into());
                }
                tx.delete(Table::Users, &keys::user(name))?;
                for (k, _) in &grants {
                    tx.delete(Table::Grants, k)?;
                }
                Ok(())
            })
        })
        .await?;
        self.durable().await
    }

    /// Checks a password; `None` when the user does not exist or the
    /// password is wrong (both take the time of one argon2 verification).
    pub async fn user_verify(&self, name: &str, password: &str) -> Result<Option<UserInfo>> {
        let (reg, name, pw) = (self.clone(), name.to_string(), password.to_string());
        blocking(move || reg.user_verify_blocking(&name, &pw, &mut PasswordMemory::default()))
            .await?
    }

    /// [`Registry::user_verify`] on the calling thread: for a server
    /// that runs verifications on a bounded pool of its own threads (each
    /// costs about 19 MiB and tens of milliseconds of CPU).
    pub fn user_verify_blocking(
        &self,
        name: &str,
        password: &str,
        mem: &mut PasswordMemory,
    ) -> Result<Option<UserInfo>> {
        let rec = if validate_user_name(name).is_ok() {
            self.db()
                .get_json::<UserRecord>(Table::Users, &keys::user(name))?
        } else {
            None
        };
        if password.len() > MAX_PASSWORD_LEN {
            return Ok(None);
        }
        let phc = rec
            .as_ref()
            .map(|r| r.password_hash.as_str())
            .unwrap_or(DUMMY_HASH.as_str());
        let ok = verify_password(password, phc, mem);
        Ok(match rec {
            Some(r) if ok => Some(user_info(name, &r)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords() {
        assert!(validate_user_name("alice").is_ok());
        assert!(validate_user_name("ci-bot.2").is_ok());
        assert!(validate_user_name("Alice").is_err());
        assert!(validate_user_name("-x").is_err());
        assert!(validate_user_name("a:b").is_err());
        assert!(validate_user_name("").is_err());
        assert!(validate_password("short").is_err());
        assert!(validate_password("long enough").is_ok());
    }

    #[test]
    fn argon2_with_reused_memory_verifies_like_the_crate() {
        let phc = hash_password("correct horse").unwrap();
        let mut mem = PasswordMemory::default();
        assert!(verify_password("correct horse", &phc, &mut mem));
        assert!(!verify_password("wrong horse", &phc, &mut mem));
        assert!(verify_password("correct horse", &phc, &mut mem));
        assert!(!verify_password("correct horse", "not a phc", &mut mem));
    }
}
