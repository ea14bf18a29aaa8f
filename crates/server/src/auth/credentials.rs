//! Credentials: the `Authorization` header, the signing keys, and the
//! bearer tokens (JWTs) issued by `/auth/token`.

use super::*;

/// How long the signing keys read from the store are used before they are
/// read again: the longest a rotation on another replica goes unnoticed.
const KEYS_TTL: Duration = Duration::from_secs(1);
/// How soon after a read a token with an unknown key id makes the keys be
/// read again.
const KEYS_RECHECK: Duration = Duration::from_millis(100);

impl AuthState {
    /// Forgets remembered passwords (after a password change or a
    /// user's deletion the cache would notice anyway; this frees memory).
    pub fn forget_logins(&self) {
        self.logins.forget();
    }

    /// The signing keys, read from the store again once they are older
    /// than [`KEYS_TTL`]: a rotation on another replica reaches this one
    /// within that time.
    pub async fn keys(&self, reg: &Registry) -> Result<SigningKeys, StoreError> {
        self.keys_younger_than(reg, KEYS_TTL).await
    }

    async fn keys_younger_than(
        &self,
        reg: &Registry,
        age: Duration,
    ) -> Result<SigningKeys, StoreError> {
        if let Some((k, at)) = self.keys.read().expect("keys lock poisoned").clone() {
            if at.elapsed() < age {
                return Ok(k);
            }
        }
        let k = reg.signing_keys().await?;
        *self.keys.write().expect("keys lock poisoned") = Some((k.clone(), Instant::now()));
        Ok(k)
    }

    /// The keys to verify a token signed with `kid`: a key id this process
    /// has not seen yet may come from a rotation on another replica, so the
    /// keys are read again (unless they were just read: a stream of forged
    /// ids costs one read per [`KEYS_RECHECK`], not one per request).
    async fn keys_for(&self, reg: &Registry, kid: &str) -> Result<SigningKeys, StoreError> {
        let k = self.keys(reg).await?;
        if k.current.kid == kid {
            return Ok(k);
        }
        self.keys_younger_than(reg, KEYS_RECHECK).await
    }

    /// Rotates the signing key.
    pub async fn rotate(&self, reg: &Registry) -> Result<SigningKeys, StoreError> {
        let k = reg.signing_key_rotate().await?;
        *self.keys.write().expect("keys lock poisoned") = Some((k.clone(), Instant::now()));
        Ok(k)
    }
}

// ---------------------------------------------------------------------
// Credentials

/// Records a failed login in the audit log.
pub(crate) async fn audit_failure(state: &AppState, addr: IpAddr, who: &str, why: &str) {
    state.metrics.login_failed();
    let e = AuditEntry {
        at: now_millis(),
        actor: who.to_string(),
        action: "login.failed".into(),
        target: String::new(),
        address: addr.to_string(),
        detail: why.to_string(),
    };
    if let Err(err) = state.registry.audit(&e).await {
        tracing::warn!(error = %err, "could not write the audit log");
    }
}

pub(super) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub use crate::login::{check_password, login};

fn store_failure(e: StoreError) -> AuthFailure {
    tracing::error!(error = %e, "credential check failed");
    AuthFailure::Unauthorized("credentials could not be checked; retry".into())
}

/// Decodes `Basic base64(user:password)`.
pub fn parse_basic(v: &str) -> Option<(String, String)> {
    let b64 = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Authenticates a request from its `Authorization` header.
pub async fn authenticate(
    state: &AppState,
    addr: IpAddr,
    headers: &HeaderMap,
) -> Result<Principal, AuthFailure> {
    if state.config.auth.mode == AuthMode::None {
        return Ok(Principal::Open);
    }
    let Some(h) = headers.get(AUTHORIZATION) else {
        return Ok(Principal::Anonymous);
    };
    let h = h
        .to_str()
        .map_err(|_| AuthFailure::Unauthorized("malformed Authorization header".into()))?;
    if let Some((u, p)) = parse_basic(h) {
        return login(state, addr, &u, &p).await;
    }
    let bearer = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            AuthFailure::Unauthorized(
                "unsupported Authorization scheme; use Basic or Bearer".into(),
            )
        })?;
    if bearer.starts_with(TOKEN_PREFIX) {
        return login(state, addr, "", bearer).await;
    }
    let claims = verify_jwt(state, bearer).await?;
    let subject = resolve_subject(&state.registry, &claims).await?;
    Ok(Principal::Bearer {
        claims: Box::new(claims),
        subject: Box::new(subject),
    })
}

/// Whom a verified JWT was issued to, as they are now: a user must still
/// exist as the same user (identity) with the same password (generation),
/// a scoped token must still exist and not have expired. Otherwise the JWT
/// stops working at once, whatever its expiry.
async fn resolve_subject(reg: &Registry, claims: &Claims) -> Result<Principal, AuthFailure> {
    let sub = claims.sub.as_str();
    if sub.is_empty() {
        return Ok(Principal::Anonymous);
    }
    if let Some(id) = sub.strip_prefix("token:") {
        return match reg.token(id).await {
            Ok(t) if !t.expired(now_millis()) => Ok(Principal::Token(t)),
            _ => Err(AuthFailure::Unauthorized(
                "the scoped token this bearer token was issued for is revoked or expired".into(),
            )),
        };
    }
    match reg.user(sub).await {
        Ok(Some(u)) if u.id == claims.uid && u.secret_version == claims.gen => {
            Ok(Principal::User(u))
        }
        Ok(_) => Err(AuthFailure::Unauthorized(
            "this bearer token's user changed their password or no longer exists; log in again"
                .into(),
        )),
        Err(e) => Err(store_failure(e)),
    }
}

// ---------------------------------------------------------------------
// JWT

/// Issues a bearer token for `p` with `access`.
pub async fn issue_jwt(
    state: &AppState,
    p: &Principal,
    access: Vec<AccessEntry>,
) -> Result<(String, Claims), StoreError> {
    let sub = subject_of(p);
    let (uid, gen) = match p {
        Principal::User(u) => (u.id.clone(), u.secret_version),
        _ => (String::new(), 0),
    };
    let cfg = &state.config.auth;
    let keys = state.auth.keys(&state.registry).await?;
    let now = now_millis() / 1000;
    let claims = Claims {
        iss: cfg.service.clone(),
        sub,
        aud: cfg.service.clone(),
        exp: now + cfg.token_ttl.as_secs() as i64,
        nbf: now - 1,
        iat: now,
        jti: hex::encode(berth_store::random_bytes::<12>()),
        access,
        uid,
        gen,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(keys.current.kid.clone());
    let secret = hex::decode(&keys.current.secret_hex).map_err(|_| StoreError::Corrupt {
        what: "signing key is not hex".into(),
    })?;
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .map_err(|e| StoreError::Corrupt {
        what: format!("signing a token failed: {e}"),
    })?;
    Ok((token, claims))
}

async fn verify_jwt(state: &AppState, token: &str) -> Result<Claims, AuthFailure> {
    let bad = || AuthFailure::Unauthorized("invalid bearer token".into());
    let header = jsonwebtoken::decode_header(token).map_err(|_| bad())?;
    if header.alg != jsonwebtoken::Algorithm::HS256 {
        return Err(bad());
    }
    let kid = header.kid.unwrap_or_default();
    let keys = state
        .auth
        .keys_for(&state.registry, &kid)
        .await
        .map_err(store_failure)?;
    // Only the current key verifies: rotating the key (after a leak, say)
    // ends every token signed before, and clients fetch new ones.
    let key = Some(&keys.current)
        .filter(|k| k.kid == kid)
        .ok_or_else(|| {
            AuthFailure::Unauthorized(
                "the bearer token was signed with a retired key; get a new one".into(),
            )
        })?;
    let secret = hex::decode(&key.secret_hex).map_err(|_| bad())?;
    let cfg = &state.config.auth;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&[&cfg.service]);
    v.set_issuer(&[&cfg.service]);
    v.leeway = 5;
    v.validate_nbf = true;
    match jsonwebtoken::decode::<Claims>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(&secret),
        &v,
    ) {
        Ok(d) => Ok(d.claims),
        Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => Err(
            AuthFailure::Unauthorized("the bearer token has expired; get a new one".into()),
        ),
        Err(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header() {
        assert_eq!(
            parse_basic("Basic YWxpY2U6cHc6d2l0aDpjb2xvbnM="),
            Some(("alice".into(), "pw:with:colons".into()))
        );
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }
}
