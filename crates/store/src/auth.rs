//! Access-control data: users (argon2id password hashes), per-namespace
//! roles, scoped tokens (robot accounts / API keys, stored hashed), the
//! key that signs bearer tokens, and the audit log.
//!
//! Nothing here decides who may do what: the server owns the policy. This
//! module stores the facts and verifies secrets, in constant time.
//!
//! Metadata (tables added to the layout drawn in `crate::layout`):
//!
//! ```text
//! users    <user>                      -> UserRecord (argon2id PHC string, admin flag)
//! grants   <user>\0<namespace>         -> GrantRecord (role)
//! tokens   <token id>                  -> TokenRecord (sha256 of the secret, scopes, expiry)
//! audit    <inverted millis><seq>      -> AuditEntry; key order = newest first
//! secrets  signing_key                 -> SigningKeys (current and previous HMAC keys)
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use berth_oci::{Digest, RepoName};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::layout;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{now_millis, Millis, NamespaceRecord};
use crate::Registry;

/// A role on a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Pull.
    Reader,
    /// Pull and push.
    Writer,
    /// Pull, push, delete, and the namespace's settings and members.
    Admin,
}

impl Role {
    /// Lower-case name, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role> {
        match s {
            "reader" => Ok(Role::Reader),
            "writer" => Ok(Role::Writer),
            "admin" => Ok(Role::Admin),
            other => Err(invalid(
                "role",
                format!("{other:?} is not a role: reader, writer or admin"),
            )),
        }
    }
}

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

/// A role granted to a user on a namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantRecord {
    /// Role.
    pub role: Role,
    /// When granted.
    pub granted_at: Millis,
    /// Who granted it.
    #[serde(default)]
    pub granted_by: String,
}

/// A grant with its keys.
#[derive(Debug, Clone)]
pub struct Grant {
    /// User.
    pub user: String,
    /// Namespace.
    pub namespace: String,
    /// Record.
    pub record: GrantRecord,
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

/// One audit-log entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: Millis,
    /// Who: a user name, `token:<name>`, or `anonymous`.
    pub actor: String,
    /// What, e.g. `push`, `delete`, `namespace.update`, `grant`, `login.failed`.
    pub action: String,
    /// On what, e.g. `acme/web:1` or `/api/v1/registry`.
    pub target: String,
    /// Client address.
    pub address: String,
    /// Outcome or detail (status code, role granted, ...).
    #[serde(default)]
    pub detail: String,
}

/// Longest actor, target or detail stored in an audit entry, in bytes.
pub const MAX_AUDIT_FIELD: usize = 256;

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Secret prefix of scoped tokens, so that they are recognisable (and
/// findable by secret scanners).
pub const TOKEN_PREFIX: &str = "berth_";
/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (argon2 cost is bounded, but bodies are not).
pub const MAX_PASSWORD_LEN: usize = 1024;
const SIGNING_KEY: &[u8] = b"signing_key";
/// A token's last-use time is written at most this often.
const LAST_USED_GRANULARITY_MS: Millis = 60_000;

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random source works");
    b
}

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
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| Error::Corrupt {
        what: format!("argon2 salt: {e}"),
    })?;
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Corrupt {
            what: format!("argon2 hashing failed: {e}"),
        })
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

fn grant_key(user: &str, ns: &str) -> Vec<u8> {
    [user.as_bytes(), b"\0", ns.as_bytes()].concat()
}

fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Metadata {
            message: format!("background task failed: {e}"),
        })
}

/// Orders audit entries written within the same millisecond.
static AUDIT_SEQ: AtomicU32 = AtomicU32::new(0);

impl Registry {
    // ----- users -----

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<UserInfo>> {
        self.meta()
            .scan(Table::Users, b"", None, usize::MAX)?
            .into_iter()
            .map(|(k, v)| {
                let r: UserRecord = meta::decode(Table::Users, &v)?;
                Ok(user_info(&String::from_utf8_lossy(&k), &r))
            })
            .collect()
    }

    /// Number of users.
    pub fn user_count(&self) -> Result<usize> {
        self.meta().count(Table::Users, b"")
    }

    /// One user.
    pub fn user(&self, name: &str) -> Result<Option<UserInfo>> {
        Ok(self
            .meta()
            .get_json::<UserRecord>(Table::Users, name.as_bytes())?
            .map(|r| user_info(name, &r)))
    }

    fn user_or_404(&self, name: &str) -> Result<UserInfo> {
        self.user(name)?.ok_or_else(|| Error::NotFound {
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
        self.meta().transact(|tx| {
            if tx.get(Table::Users, name.as_bytes())?.is_some() {
                return Err(Error::Exists {
                    what: format!("user {name}"),
                }
                .into());
            }
            meta::tx_put(tx, Table::Users, name.as_bytes(), &rec)
        })?;
        self.durable().await?;
        self.user_or_404(name)
    }

    /// Changes a password.
    pub async fn user_set_password(&self, name: &str, password: &str) -> Result<UserInfo> {
        validate_password(password)?;
        self.user_or_404(name)?;
        let pw = password.to_string();
        let hash = blocking(move || hash_password(&pw)).await??;
        self.update_user(name, |r| r.password_hash = hash.clone())
            .await
    }

    /// Makes a user a registry administrator or not.
    pub async fn user_set_admin(&self, name: &str, admin: bool) -> Result<UserInfo> {
        self.update_user(name, |r| r.admin = admin).await
    }

    async fn update_user(&self, name: &str, f: impl Fn(&mut UserRecord)) -> Result<UserInfo> {
        self.meta().transact(|tx| {
            let Some(mut r) = meta::tx_get::<UserRecord>(tx, Table::Users, name.as_bytes())? else {
                return Err(Error::NotFound {
                    what: format!("user {name}"),
                }
                .into());
            };
            f(&mut r);
            r.updated_at = now_millis();
            meta::tx_put(tx, Table::Users, name.as_bytes(), &r)
        })?;
        self.durable().await?;
        self.user_or_404(name)
    }

    /// Deletes a user and every role granted to them.
    pub async fn user_delete(&self, name: &str) -> Result<()> {
        let mut prefix = name.as_bytes().to_vec();
        prefix.push(0);
        let grants = self.meta().scan(Table::Grants, &prefix, None, usize::MAX)?;
        self.meta().transact(|tx| {
            if tx.get(Table::Users, name.as_bytes())?.is_none() {
                return Err(Error::NotFound {
                    what: format!("user {name}"),
                }
                .into());
            }
            tx.delete(Table::Users, name.as_bytes())?;
            for (k, _) in &grants {
                tx.delete(Table::Grants, k)?;
            }
            Ok(())
        })?;
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
            self.meta()
                .get_json::<UserRecord>(Table::Users, name.as_bytes())?
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

    // ----- grants -----

    /// The role of a user on a namespace.
    pub fn role_of(&self, user: &str, ns: &str) -> Result<Option<Role>> {
        Ok(self
            .meta()
            .get_json::<GrantRecord>(Table::Grants, &grant_key(user, ns))?
            .map(|g| g.role))
    }

    /// Every grant, optionally only those on one namespace.
    pub fn grants(&self, namespace: Option<&str>) -> Result<Vec<Grant>> {
        let mut out = Vec::new();
        for (k, v) in self.meta().scan(Table::Grants, b"", None, usize::MAX)? {
            let k = String::from_utf8_lossy(&k).to_string();
            let Some((user, ns)) = k.split_once('\0') else {
                continue;
            };
            if namespace.is_some_and(|n| n != ns) {
                continue;
            }
            out.push(Grant {
                user: user.to_string(),
                namespace: ns.to_string(),
                record: meta::decode(Table::Grants, &v)?,
            });
        }
        out.sort_by(|a, b| a.namespace.cmp(&b.namespace).then(a.user.cmp(&b.user)));
        Ok(out)
    }

    /// Grants (or changes) a user's role on an existing namespace.
    pub async fn grant(&self, ns: &str, user: &str, role: Role, by: &str) -> Result<Grant> {
        self.namespace(ns)?;
        self.user_or_404(user)?;
        let rec = GrantRecord {
            role,
            granted_at: now_millis(),
            granted_by: by.to_string(),
        };
        self.meta().transact(|tx| {
            if tx.get(Table::Users, user.as_bytes())?.is_none() {
                return Err(Error::NotFound {
                    what: format!("user {user}"),
                }
                .into());
            }
            meta::tx_put(tx, Table::Grants, &grant_key(user, ns), &rec)
        })?;
        self.durable().await?;
        Ok(Grant {
            user: user.to_string(),
            namespace: ns.to_string(),
            record: rec,
        })
    }

    /// Removes a user's role on a namespace.
    pub async fn revoke(&self, ns: &str, user: &str) -> Result<()> {
        let key = grant_key(user, ns);
        self.meta().transact(|tx| {
            if tx.get(Table::Grants, &key)?.is_none() {
                return Err(Error::NotFound {
                    what: format!("a role for {user} on namespace {ns}"),
                }
                .into());
            }
            tx.delete(Table::Grants, &key)
        })?;
        self.durable().await
    }

    /// Removes every role granted on a namespace (when it is deleted, so
    /// that a namespace created later under the same name starts empty).
    pub async fn grants_drop_namespace(&self, ns: &str) -> Result<()> {
        let keys: Vec<Vec<u8>> = self
            .grants(Some(ns))?
            .iter()
            .map(|g| grant_key(&g.user, ns))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        self.meta().transact(|tx| {
            for k in &keys {
                tx.delete(Table::Grants, k)?;
            }
            Ok(())
        })?;
        self.durable().await
    }

    // ----- tokens -----

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
        self.meta()
            .transact(|tx| meta::tx_put(tx, Table::Tokens, id.as_bytes(), &rec))?;
        self.durable().await?;
        Ok((TokenInfo { id, record: rec }, secret))
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        let mut out: Vec<TokenInfo> = self
            .meta()
            .scan(Table::Tokens, b"", None, usize::MAX)?
            .into_iter()
            .map(|(k, v)| {
                Ok(TokenInfo {
                    id: String::from_utf8_lossy(&k).to_string(),
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
    pub fn token(&self, id: &str) -> Result<TokenInfo> {
        self.meta()
            .get_json::<TokenRecord>(Table::Tokens, id.as_bytes())?
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
        self.meta().transact(|tx| {
            if tx.get(Table::Tokens, id.as_bytes())?.is_none() {
                return Err(Error::NotFound {
                    what: format!("token {id}"),
                }
                .into());
            }
            tx.delete(Table::Tokens, id.as_bytes())
        })?;
        self.durable().await
    }

    /// Checks a presented secret (constant-time comparison of hashes) and
    /// records the use.
    pub fn token_verify(&self, secret: &str) -> Result<TokenCheck> {
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
            .meta()
            .get_json::<TokenRecord>(Table::Tokens, id.as_bytes())?
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
            self.meta().transact(|tx| {
                if let Some(mut r) = meta::tx_get::<TokenRecord>(tx, Table::Tokens, id.as_bytes())?
                {
                    r.last_used_at = Some(now);
                    meta::tx_put(tx, Table::Tokens, id.as_bytes(), &r)?;
                }
                Ok(())
            })?;
        }
        Ok(TokenCheck::Valid(info))
    }

    // ----- signing key -----

    /// The bearer-token signing keys, generated on first use.
    pub async fn signing_keys(&self) -> Result<SigningKeys> {
        if let Some(k) = self.meta().get_json(Table::Secrets, SIGNING_KEY)? {
            return Ok(k);
        }
        let fresh = SigningKeys {
            current: new_signing_key(),
            previous: None,
        };
        let keys = self.meta().transact(|tx| {
            if let Some(k) = meta::tx_get::<SigningKeys>(tx, Table::Secrets, SIGNING_KEY)? {
                return Ok(k);
            }
            meta::tx_put(tx, Table::Secrets, SIGNING_KEY, &fresh)?;
            Ok(fresh.clone())
        })?;
        self.durable().await?;
        Ok(keys)
    }

    /// Replaces the signing key; the old one keeps verifying tokens it
    /// signed until they expire, the one before it stops at once.
    pub async fn signing_key_rotate(&self) -> Result<SigningKeys> {
        let next = new_signing_key();
        let keys = self.meta().transact(|tx| {
            let old = meta::tx_get::<SigningKeys>(tx, Table::Secrets, SIGNING_KEY)?;
            let keys = SigningKeys {
                current: next.clone(),
                previous: old.map(|o| o.current),
            };
            meta::tx_put(tx, Table::Secrets, SIGNING_KEY, &keys)?;
            Ok(keys)
        })?;
        self.durable().await?;
        Ok(keys)
    }

    // ----- audit -----

    /// Appends to the audit log. Actor, target and detail are cut to
    /// [`MAX_AUDIT_FIELD`] bytes: a client chooses the user name it tries,
    /// and the log must not store whatever length it sends.
    pub fn audit(&self, e: &AuditEntry) -> Result<()> {
        let capped;
        let e = if [&e.actor, &e.target, &e.detail]
            .iter()
            .any(|f| f.len() > MAX_AUDIT_FIELD)
        {
            capped = AuditEntry {
                actor: truncate(&e.actor, MAX_AUDIT_FIELD).to_string(),
                target: truncate(&e.target, MAX_AUDIT_FIELD).to_string(),
                detail: truncate(&e.detail, MAX_AUDIT_FIELD).to_string(),
                ..e.clone()
            };
            &capped
        } else {
            e
        };
        let seq = AUDIT_SEQ.fetch_add(1, Ordering::Relaxed);
        // Newest first in key order: invert the time, then invert the
        // sequence so that later entries of one millisecond come first.
        let key = format!(
            "{:016x}{:08x}",
            u64::MAX - e.at.max(0) as u64,
            u32::MAX - seq
        );
        self.meta()
            .transact(|tx| meta::tx_put(tx, Table::Audit, key.as_bytes(), e))
    }

    /// Deletes audit entries written before `before` (milliseconds since
    /// the epoch), at most `limit` of them; returns how many went.
    pub async fn audit_prune(&self, before: Millis, limit: usize) -> Result<usize> {
        // Keys hold the inverted time: older entries sort after this key.
        let after = format!("{:016x}ffffffff", u64::MAX - before.max(0) as u64);
        let rows = self
            .meta()
            .scan(Table::Audit, b"", Some(after.as_bytes()), limit)?;
        if rows.is_empty() {
            return Ok(0);
        }
        self.meta().transact(|tx| {
            for (k, _) in &rows {
                tx.delete(Table::Audit, k)?;
            }
            Ok(())
        })?;
        self.durable().await?;
        Ok(rows.len())
    }

    /// A page of the audit log, newest first, and the number of entries.
    pub fn audit_page(&self, skip: usize, limit: usize) -> Result<(Vec<AuditEntry>, usize)> {
        let total = self.meta().count(Table::Audit, b"")?;
        let rows = self
            .meta()
            .scan(Table::Audit, b"", None, skip.saturating_add(limit))?;
        let entries = rows
            .into_iter()
            .skip(skip)
            .map(|(_, v)| meta::decode(Table::Audit, &v))
            .collect::<Result<_>>()?;
        Ok((entries, total))
    }

    // ----- namespaces and blobs, for authorisation -----

    /// A namespace's stored record without the figures (cheap: one point
    /// read), `None` when it does not exist.
    pub fn namespace_record(&self, ns: &str) -> Result<Option<NamespaceRecord>> {
        self.meta().get_json(Table::Namespaces, ns.as_bytes())
    }

    /// Repositories that link a blob (at most `limit`), for a mount without
    /// `from`: the server picks one the caller may read.
    pub fn blob_holders(&self, digest: &Digest, limit: usize) -> Result<Vec<RepoName>> {
        let d = digest.to_string();
        Ok(self
            .meta()
            .scan(
                Table::BlobLinks,
                &layout::blob_links_prefix(digest),
                None,
                limit,
            )?
            .iter()
            .filter_map(|(k, _)| std::str::from_utf8(&k[d.len() + 1..]).ok()?.parse().ok())
            .collect())
    }
}

fn new_signing_key() -> SigningKey {
    SigningKey {
        kid: hex::encode(random_bytes::<6>()),
        secret_hex: hex::encode(random_bytes::<32>()),
        created_at: now_millis(),
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

    #[tokio::test]
    async fn users_tokens_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(crate::StoreConfig::new(dir.path()))
            .await
            .unwrap();
        let u = reg
            .user_create("alice", "correct horse", false)
            .await
            .unwrap();
        assert!(!u.admin);
        assert!(matches!(
            reg.user_create("alice", "another one", false).await,
            Err(Error::Exists { .. })
        ));
        assert!(reg
            .user_verify("alice", "correct horse")
            .await
            .unwrap()
            .is_some());
        assert!(reg
            .user_verify("alice", "wrong horse")
            .await
            .unwrap()
            .is_none());
        assert!(reg
            .user_verify("bob", "correct horse")
            .await
            .unwrap()
            .is_none());
        let u2 = reg
            .user_set_password("alice", "battery staple")
            .await
            .unwrap();
        assert_ne!(u.secret_version, u2.secret_version);
        assert!(reg
            .user_verify("alice", "correct horse")
            .await
            .unwrap()
            .is_none());

        reg.namespace_create("acme", "", "", false).await.unwrap();
        reg.grant("acme", "alice", Role::Writer, "root")
            .await
            .unwrap();
        assert_eq!(reg.role_of("alice", "acme").unwrap(), Some(Role::Writer));
        reg.user_delete("alice").await.unwrap();
        assert_eq!(reg.role_of("alice", "acme").unwrap(), None);

        let (t, secret) = reg
            .token_create(
                "ci",
                vec![TokenScope {
                    repository: "acme/*".into(),
                    actions: vec![Action::Pull],
                }],
                None,
                "root",
            )
            .await
            .unwrap();
        assert!(secret.starts_with("berth_"));
        assert!(!reg
            .token(&t.id)
            .unwrap()
            .record
            .secret_sha256
            .contains(&secret));
        match reg.token_verify(&secret).unwrap() {
            TokenCheck::Valid(i) => {
                assert!(i.allows("acme/web", Action::Pull));
                assert!(!i.allows("acme/web", Action::Push));
                assert!(!i.allows("other/web", Action::Pull));
            }
            other => panic!("{other:?}"),
        }
        assert!(reg.token(&t.id).unwrap().record.last_used_at.is_some());
        let mut wrong = secret.clone();
        wrong.pop();
        wrong.push('x');
        assert!(matches!(
            reg.token_verify(&wrong).unwrap(),
            TokenCheck::Invalid
        ));
        reg.token_delete(&t.id).await.unwrap();
        assert!(matches!(
            reg.token_verify(&secret).unwrap(),
            TokenCheck::Invalid
        ));

        let k1 = reg.signing_keys().await.unwrap();
        assert_eq!(
            reg.signing_keys().await.unwrap().current.kid,
            k1.current.kid
        );
        let k2 = reg.signing_key_rotate().await.unwrap();
        assert_ne!(k2.current.kid, k1.current.kid);
        assert_eq!(k2.previous.unwrap().kid, k1.current.kid);

        for i in 0..3 {
            reg.audit(&AuditEntry {
                at: 1000 + i,
                actor: "a".into(),
                action: format!("act{i}"),
                target: "t".into(),
                address: "127.0.0.1".into(),
                detail: String::new(),
            })
            .unwrap();
        }
        let (page, total) = reg.audit_page(0, 2).unwrap();
        assert_eq!(total, 3);
        assert_eq!(page[0].action, "act2");
        assert_eq!(page[1].action, "act1");
    }

    #[tokio::test]
    async fn audit_entries_older_than_retention_are_pruned_and_fields_capped() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(crate::StoreConfig::new(dir.path()))
            .await
            .unwrap();
        let now = now_millis();
        let day = 86_400_000;
        for (i, at) in [now - 100 * day, now - 91 * day, now - 89 * day, now]
            .iter()
            .enumerate()
        {
            reg.audit(&AuditEntry {
                at: *at,
                actor: "x".repeat(if i == 3 { 45_000 } else { 3 }),
                action: format!("act{i}"),
                target: String::new(),
                address: "127.0.0.1".into(),
                detail: String::new(),
            })
            .unwrap();
        }
        assert_eq!(reg.audit_prune(now - 90 * day, 1).await.unwrap(), 1);
        assert_eq!(reg.audit_prune(now - 90 * day, 1000).await.unwrap(), 1);
        assert_eq!(reg.audit_prune(now - 90 * day, 1000).await.unwrap(), 0);
        let (page, total) = reg.audit_page(0, 10).unwrap();
        assert_eq!(total, 2);
        assert_eq!(page[0].action, "act3");
        assert_eq!(page[0].actor.len(), MAX_AUDIT_FIELD);
        assert_eq!(page[1].action, "act2");
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
