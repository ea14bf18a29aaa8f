//! Authentication and authorisation.
//!
//! Every request is authenticated once, in `handle`, before it reaches
//! `/v2`, `/api/v1` or `/auth/token`: the client address is worked out
//! (socket, or `X-Forwarded-For` from a trusted proxy), the subnet
//! allow-list is enforced, and the `Authorization` header becomes a
//! [`Caller`] handed to the handlers. The one authorisation decision
//! (`crate::authorize`) asks the policy functions here whether the caller
//! may do an [`Action`] on a repository or namespace.
//!
//! Auth modes: `none` (everyone may do everything: the zero-config
//! default for loopback) and `token` (Docker token authentication, Basic
//! on `/v2` and `/api/v1`, scoped tokens, roles per namespace).
//!
//! Policy in `token` mode:
//!
//! | principal | may |
//! |---|---|
//! | anonymous | pull from public namespaces |
//! | registry admin | everything |
//! | user with a role on the namespace | reader: pull; writer: + push; admin: + delete, manage |
//! | scoped token | the actions of its scopes on repositories its patterns match |
//! | bearer JWT (from `/auth/token`) | what its `access` claim lists, while its subject still may (on `/v2` and `/api/v1`); never administration |
//!
//! Anything anonymous may do, every authenticated caller may do too.

use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;
use std::time::Duration;

use base64::Engine as _;
use berth_oci::{Digest, ErrorCode, RepoName};
use berth_store::{
    Action, AuditEntry, Error as StoreError, Registry, Role, SigningKeys, TokenInfo, UserInfo,
    TOKEN_PREFIX,
};
use http::header::{AUTHORIZATION, HOST};
use http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::AppState;

/// How clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// No authentication: everyone may do everything.
    #[default]
    None,
    /// Docker token authentication, Basic, scoped tokens.
    Token,
}

/// Authentication settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Mode.
    pub mode: AuthMode,
    /// Service name in challenges and the JWT audience.
    pub service: String,
    /// Token endpoint URL in challenges; `None` derives it from the
    /// request (`<scheme>://<Host>/auth/token`).
    pub realm: Option<String>,
    /// Lifetime of bearer tokens issued by `/auth/token`.
    pub token_ttl: Duration,
    /// Proxies whose `X-Forwarded-For` (and `X-Forwarded-Proto`) is
    /// believed.
    pub trusted_proxies: Vec<(IpAddr, u8)>,
    /// Failed logins per client address, and per user name, within
    /// [`FAILURE_WINDOW`] before further attempts are refused with 429.
    pub max_failed_logins: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::None,
            service: "berth".into(),
            realm: None,
            token_ttl: Duration::from_secs(300),
            trusted_proxies: Vec::new(),
            max_failed_logins: 10,
        }
    }
}

/// Window over which failed logins are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// Runtime authentication state shared by all requests.
#[derive(Default)]
pub struct AuthState {
    // Why a RwLock: read on every bearer-token verification, written only
    // on first use and on rotation.
    keys: RwLock<Option<SigningKeys>>,
    /// Failed-login counters, remembered logins, the hashing pool.
    pub(crate) logins: crate::login::Logins,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Authentication is off: may do everything.
    Open,
    /// No credentials.
    Anonymous,
    /// A user (Basic, or the subject of a bearer token on /api/v1).
    User(UserInfo),
    /// A scoped token (Basic password or Bearer secret).
    Token(TokenInfo),
    /// A JWT from `/auth/token`; on `/v2` it may do what it lists.
    Bearer {
        /// Its claims.
        claims: Box<Claims>,
        /// Whom it was issued to, resolved now (for `_catalog` and /api/v1).
        subject: Box<Principal>,
    },
}

impl Principal {
    /// Audit-log name.
    pub fn actor(&self) -> String {
        match self {
            Principal::Open | Principal::Anonymous => "anonymous".into(),
            Principal::User(u) => u.name.clone(),
            Principal::Token(t) => format!("token:{}", t.record.name),
            Principal::Bearer { subject, .. } => subject.actor(),
        }
    }

    /// What decides on /api/v1 and for `_catalog`: a bearer token's
    /// subject, otherwise the principal itself.
    pub fn effective(&self) -> &Principal {
        match self {
            Principal::Bearer { subject, .. } => subject,
            p => p,
        }
    }

    /// Whether no credentials were given (in token mode).
    pub fn is_anonymous(&self) -> bool {
        matches!(self.effective(), Principal::Anonymous)
    }

    /// Registry administrator (or auth off). A bearer token never is: it
    /// acts within its access claim, which holds no administration.
    pub fn is_admin(&self) -> bool {
        match self {
            Principal::Open => true,
            Principal::User(u) => u.admin,
            _ => false,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// From where (after trusted proxies).
    pub addr: IpAddr,
    /// `https` or `http`, as the client sees it.
    pub scheme: &'static str,
}

impl Caller {
    /// A caller with every right (auth off, or internal use).
    pub fn open(addr: IpAddr) -> Caller {
        Caller {
            principal: Principal::Open,
            addr,
            scheme: "http",
        }
    }
}

/// JWT claims of a bearer token (Docker token specification).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer (the service name).
    pub iss: String,
    /// Subject: a user name, `token:<id>`, or empty for anonymous.
    pub sub: String,
    /// Audience: the service name.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Not before.
    pub nbf: i64,
    /// Issued at.
    pub iat: i64,
    /// Unique id.
    pub jti: String,
    /// Granted access.
    pub access: Vec<AccessEntry>,
    /// For a user subject: the user's identity, so that a user deleted and
    /// created again under the same name is not the subject.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// For a user subject: the credential generation (a fingerprint of the
    /// password hash) it was issued under; a password change ends it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gen: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One entry of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub typ: String,
    /// Repository name, or `catalog`.
    pub name: String,
    /// `pull`, `push`, `delete`, `*`.
    pub actions: Vec<String>,
}

/// Why authentication failed.
#[derive(Debug)]
pub enum AuthFailure {
    /// Bad or expired credentials.
    Unauthorized(String),
    /// Too many failed logins; retry after this many seconds.
    Throttled(u64),
    /// Too many logins being checked at once; retry after this many
    /// seconds.
    Busy(u64),
}

impl AuthFailure {
    /// For a 429: the message and the `Retry-After` seconds.
    pub fn throttle(&self) -> Option<(String, u64)> {
        match self {
            AuthFailure::Unauthorized(_) => None,
            AuthFailure::Throttled(after) => Some((
                format!("too many failed logins; retry in {after} s"),
                *after,
            )),
            AuthFailure::Busy(after) => Some((
                format!("too many logins are being checked at once; retry in {after} s"),
                *after,
            )),
        }
    }
}

// ---------------------------------------------------------------------
// Client address and allow-list

/// Whether `ip` is inside the CIDR `(net, len)`. An IPv4-mapped network
/// (`::ffff:a.b.c.d/N`, N >= 96) is the IPv4 network `a.b.c.d/(N - 96)`;
/// any other IPv6 network contains IPv6 addresses only, so `::/0` admits
/// every IPv6 client and no IPv4 one.
pub fn cidr_contains((net, len): (IpAddr, u8), ip: IpAddr) -> bool {
    let (net, len) = match net {
        IpAddr::V6(n) if len >= 96 && n.to_ipv4_mapped().is_some() => (
            IpAddr::V4(
                n.to_ipv4_mapped()
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            ),
            len - 96,
        ),
        n => (n, len),
    };
    match (net, ip.to_canonical()) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

fn trusted(cfg: &AuthConfig, ip: IpAddr) -> bool {
    cfg.trusted_proxies.iter().any(|c| cidr_contains(*c, ip))
}

fn parse_forwarded_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.split_once(']').map(|(a, _)| a))
        .unwrap_or(s);
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The client's address: the socket's, or, when the socket's is a trusted
/// proxy, the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy. Also says whether the client used HTTPS.
pub fn client_addr(
    cfg: &AuthConfig,
    peer: SocketAddr,
    headers: &HeaderMap,
    tls: bool,
) -> (IpAddr, &'static str) {
    let peer_ip = peer.ip().to_canonical();
    let mut scheme = if tls { "https" } else { "http" };
    if !trusted(cfg, peer_ip) {
        return (peer_ip, scheme);
    }
    if let Some(p) = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        match p.trim() {
            "https" => scheme = "https",
            "http" => scheme = "http",
            _ => {}
        }
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        let Ok(v) = v.to_str() else {
            return (peer_ip, scheme);
        };
        for part in v.split(',') {
            match parse_forwarded_ip(part) {
                Some(ip) => hops.push(ip.to_canonical()),
                // A malformed list cannot be trusted at all.
                None => return (peer_ip, scheme),
            }
        }
    }
    let client = hops
        .iter()
        .rev()
        .find(|ip| !trusted(cfg, **ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer_ip);
    (client, scheme)
}

/// Whether the registry's subnet allow-list admits `ip` (empty = all).
pub fn allow_listed(reg: &Registry, ip: IpAddr) -> Result<bool, StoreError> {
    Ok(list_admits(&reg.settings()?.api_subnet_allow_list, ip))
}

/// Whether an allow-list admits `ip`: an empty list admits everyone, a
/// list holding `0.0.0.0/0` no one (IPv4 or IPv6), otherwise the
/// addresses inside one of its CIDRs.
pub fn list_admits(list: &[String], ip: IpAddr) -> bool {
    if list.is_empty() {
        return true;
    }
    let cidrs: Vec<(IpAddr, u8)> = list
        .iter()
        .filter_map(|c| berth_store::parse_cidr(c))
        .collect();
    let deny_all = cidrs
        .iter()
        .any(|(n, len)| *len == 0 && *n == IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    !deny_all && cidrs.iter().any(|c| cidr_contains(*c, ip))
}

// ---------------------------------------------------------------------
// Signing keys

impl AuthState {
    /// Forgets remembered passwords (after a password change or a
    /// user's deletion the cache would notice anyway; this frees memory).
    pub fn forget_logins(&self) {
        self.logins.forget();
    }

    /// The signing keys, loaded from the store on first use.
    pub async fn keys(&self, reg: &Registry) -> Result<SigningKeys, StoreError> {
        if let Some(k) = self.keys.read().expect("keys lock poisoned").clone() {
            return Ok(k);
        }
        let k = reg.signing_keys().await?;
        *self.keys.write().expect("keys lock poisoned") = Some(k.clone());
        Ok(k)
    }

    /// Rotates the signing key.
    pub async fn rotate(&self, reg: &Registry) -> Result<SigningKeys, StoreError> {
        let k = reg.signing_key_rotate().await?;
        *self.keys.write().expect("keys lock poisoned") = Some(k.clone());
        Ok(k)
    }
}

// ---------------------------------------------------------------------
// Credentials

/// Records a failed login in the audit log.
pub(crate) fn audit_failure(state: &AppState, addr: IpAddr, who: &str, why: &str) {
    let e = AuditEntry {
        at: now_millis(),
        actor: who.to_string(),
        action: "login.failed".into(),
        target: String::new(),
        address: addr.to_string(),
        detail: why.to_string(),
    };
    if let Err(err) = state.registry.audit(&e) {
        tracing::warn!(error = %err, "could not write the audit log");
    }
}

fn now_millis() -> i64 {
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
    let subject = resolve_subject(&state.registry, &claims)?;
    Ok(Principal::Bearer {
        claims: Box::new(claims),
        subject: Box::new(subject),
    })
}

/// Whom a verified JWT was issued to, as they are now: a user must still
/// exist as the same user (identity) with the same password (generation),
/// a scoped token must still exist and not have expired. Otherwise the JWT
/// stops working at once, whatever its expiry.
fn resolve_subject(reg: &Registry, claims: &Claims) -> Result<Principal, AuthFailure> {
    let sub = claims.sub.as_str();
    if sub.is_empty() {
        return Ok(Principal::Anonymous);
    }
    if let Some(id) = sub.strip_prefix("token:") {
        return match reg.token(id) {
            Ok(t) if !t.expired(now_millis()) => Ok(Principal::Token(t)),
            _ => Err(AuthFailure::Unauthorized(
                "the scoped token this bearer token was issued for is revoked or expired".into(),
            )),
        };
    }
    match reg.user(sub) {
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
    let keys = state
        .auth
        .keys(&state.registry)
        .await
        .map_err(store_failure)?;
    // Only the current key verifies: rotating the key (after a leak, say)
    // ends every token signed before, and clients fetch new ones.
    let kid = header.kid.unwrap_or_default();
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

// ---------------------------------------------------------------------
// Policy

fn role_allows(role: Role, action: Action) -> bool {
    match role {
        Role::Reader => action == Action::Pull,
        Role::Writer => matches!(action, Action::Pull | Action::Push),
        Role::Admin => true,
    }
}

fn ns_public(reg: &Registry, ns: &str) -> Result<bool, StoreError> {
    Ok(reg.namespace_record(ns)?.is_some_and(|r| r.is_public))
}

/// Whether a JWT's access claim allows `action` on `repo`.
fn claims_allow(claims: &Claims, repo: &str, action: Action) -> bool {
    let want = action.as_str();
    claims.access.iter().any(|a| {
        a.typ == "repository" && a.name == repo && a.actions.iter().any(|x| x == want || x == "*")
    })
}

/// Whether `p` may do `action` on `repo`. A bearer token is judged by its
/// claims here (on `/v2`).
pub fn may_repo(
    reg: &Registry,
    p: &Principal,
    repo: &RepoName,
    action: Action,
) -> Result<bool, StoreError> {
    let ns = repo.namespace();
    let public_pull =
        || -> Result<bool, StoreError> { Ok(action == Action::Pull && ns_public(reg, ns)?) };
    Ok(match p {
        Principal::Open => true,
        Principal::Anonymous => public_pull()?,
        Principal::User(u) => {
            u.admin
                || reg
                    .role_of(&u.name, ns)?
                    .is_some_and(|r| role_allows(r, action))
                || public_pull()?
        }
        Principal::Token(t) => t.allows(repo.as_str(), action) || public_pull()?,
        // Within its access claim, and only while its subject still has
        // the right: removing a grant takes effect at once.
        Principal::Bearer { claims, subject } => {
            claims_allow(claims, repo.as_str(), action) && may_repo(reg, subject, repo, action)?
        }
    })
}

/// [`may_repo`] as the management API and token issuance use it: a bearer
/// token is judged by its access claim and its subject's current rights
/// together, as on `/v2`.
pub fn may_repo_live(
    reg: &Registry,
    p: &Principal,
    repo: &RepoName,
    action: Action,
) -> Result<bool, StoreError> {
    may_repo(reg, p, repo, action)
}

/// The part of a pattern before its first `*`.
fn literal_prefix(pattern: &str) -> &str {
    pattern.split('*').next().unwrap_or("")
}

/// Whether a token pattern may match some repository of namespace `ns`.
fn pattern_touches(pattern: &str, ns: &str) -> bool {
    let lit = literal_prefix(pattern);
    let ns_slash = format!("{ns}/");
    // The pattern is the namespace's own single-component repository, or
    // its literal part reaches into the namespace, or stops before the
    // namespace's end and a `*` can complete it.
    pattern == ns
        || lit.starts_with(&ns_slash)
        || (lit.len() < ns_slash.len() && ns_slash.starts_with(lit) && pattern.contains('*'))
}

/// Whether a token pattern matches every repository of namespace `ns`.
fn pattern_covers(pattern: &str, ns: &str) -> bool {
    // '\u{1}' never occurs in a pattern: only a trailing run of `*` can
    // match it, and that run matches any rest of a name.
    berth_store::glob_match(pattern, &format!("{ns}/\u{1}"))
}

/// Whether `p` may do `action` on namespace `ns` itself (management API):
/// `Pull` = see it and list what is in it; `Manage` = change its settings
/// and members, delete it; `Push` = create it.
pub fn may_namespace(
    reg: &Registry,
    p: &Principal,
    ns: &str,
    action: Action,
) -> Result<bool, StoreError> {
    let public_pull =
        || -> Result<bool, StoreError> { Ok(action == Action::Pull && ns_public(reg, ns)?) };
    Ok(match p {
        Principal::Open => true,
        Principal::Anonymous => public_pull()?,
        Principal::User(u) => {
            u.admin
                || reg
                    .role_of(&u.name, ns)?
                    .is_some_and(|r| role_allows(r, action))
                || public_pull()?
        }
        // A bearer token sees a namespace its access claim reaches into
        // (while its subject still may); it never manages anything.
        Principal::Bearer { claims, subject } => {
            (action == Action::Pull
                && claims.access.iter().any(|a| {
                    a.typ == "repository"
                        && a.name
                            .parse::<RepoName>()
                            .is_ok_and(|r| r.namespace() == ns)
                        && a.actions.iter().any(|x| x == "pull" || x == "*")
                })
                && may_namespace(reg, subject, ns, Action::Pull)?)
                || public_pull()?
        }
        Principal::Token(t) => {
            t.record.scopes.iter().any(|s| {
                s.actions.contains(&action)
                    && if action == Action::Pull {
                        pattern_touches(&s.repository, ns)
                    } else {
                        pattern_covers(&s.repository, ns)
                    }
            }) || public_pull()?
        }
    })
}

/// The OCI error for a refused `/v2` request: 401 with a challenge for
/// anonymous callers and bearer tokens (so that clients fetch a token with
/// the right scope), 403 `DENIED` for callers whose credentials are known.
pub fn v2_refusal(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    scope: Option<String>,
) -> ApiError {
    match &caller.principal {
        Principal::Anonymous | Principal::Bearer { .. } => {
            let insufficient = matches!(caller.principal, Principal::Bearer { .. });
            let mut e = ApiError::new(
                ErrorCode::Unauthorized,
                "authentication required: log in (docker login) or get a token from the realm",
            );
            e = e.with_header(
                http::header::WWW_AUTHENTICATE,
                challenge(state, caller, headers, scope.as_deref(), insufficient),
            );
            e
        }
        _ => ApiError::new(
            ErrorCode::Denied,
            "your credentials do not allow this; ask an administrator for a role on the namespace",
        ),
    }
}

/// `Bearer realm="...",service="...",scope="..."`.
pub fn challenge(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    scope: Option<&str>,
    insufficient: bool,
) -> String {
    let cfg = &state.config.auth;
    let realm = match &cfg.realm {
        Some(r) => r.clone(),
        None => {
            let host = headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
                })
                .unwrap_or("localhost");
            format!("{}://{host}/auth/token", caller.scheme)
        }
    };
    let mut c = format!("Bearer realm=\"{realm}\",service=\"{}\"", cfg.service);
    if let Some(s) = scope {
        c.push_str(&format!(",scope=\"{s}\""));
    }
    if insufficient {
        c.push_str(",error=\"insufficient_scope\"");
    }
    c
}

/// Where a cross-repository mount may take a blob from, for this caller:
/// `Ok(None)` = do not mount (fall back to an upload session);
/// `Ok(Some(None))` = any holder (auth off).
pub fn mount_source(
    state: &AppState,
    caller: &Caller,
    digest: &Digest,
    from: Option<&str>,
) -> Result<Option<Option<RepoName>>, StoreError> {
    let reg = &state.registry;
    let open = matches!(caller.principal, Principal::Open);
    match from {
        Some(f) => {
            // A `from` that is not a valid name cannot hold the blob.
            let Ok(f) = f.parse::<RepoName>() else {
                return Ok(None);
            };
            if open || may_repo(reg, &caller.principal, &f, Action::Pull)? {
                Ok(Some(Some(f)))
            } else {
                Ok(None)
            }
        }
        None if open => Ok(Some(None)),
        None => {
            for holder in reg.blob_holders(digest, 256)? {
                if may_repo(reg, &caller.principal, &holder, Action::Pull)? {
                    return Ok(Some(Some(holder)));
                }
            }
            Ok(None)
        }
    }
}

/// `_catalog`: the repositories the caller may pull, in lexical order,
/// after `last`, at most `n`.
pub fn catalog(
    state: &AppState,
    caller: &Caller,
    last: Option<&str>,
    n: usize,
) -> Result<berth_store::Page, StoreError> {
    let reg = &state.registry;
    let p = caller.principal.effective();
    if p.is_admin() {
        return reg.catalog(last, n);
    }
    let mut items = Vec::new();
    let mut after = last.map(str::to_string);
    loop {
        let page = reg.catalog(after.as_deref(), 1000)?;
        for name in &page.items {
            if let Ok(r) = name.parse::<RepoName>() {
                if may_repo(reg, p, &r, Action::Pull)? {
                    if items.len() == n {
                        return Ok(berth_store::Page { items, more: true });
                    }
                    items.push(name.clone());
                }
            }
        }
        if !page.more {
            return Ok(berth_store::Page { items, more: false });
        }
        after = page.items.last().cloned();
    }
}

/// Grants for a token request: the intersection of what is asked (Docker
/// `scope` strings) and what the caller may do.
pub fn grant_scopes(
    reg: &Registry,
    p: &Principal,
    scopes: &[String],
) -> Result<Vec<AccessEntry>, StoreError> {
    let mut out: Vec<AccessEntry> = Vec::new();
    for s in scopes.iter().flat_map(|s| s.split(' ')) {
        let Some((typ, rest)) = s.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        if typ == "registry" && name == "catalog" {
            // The catalog is filtered per caller; anyone may ask for it.
            // Asked twice, granted once.
            if out
                .iter()
                .any(|e| e.typ == "registry" && e.name == "catalog")
            {
                continue;
            }
            out.push(AccessEntry {
                typ: "registry".into(),
                name: "catalog".into(),
                actions: vec!["*".into()],
            });
            continue;
        }
        if typ != "repository" {
            continue;
        }
        let Ok(repo) = name.parse::<RepoName>() else {
            continue;
        };
        let mut granted: Vec<String> = Vec::new();
        for a in actions.split(',') {
            let wanted: &[Action] = match a {
                "pull" => &[Action::Pull],
                "push" => &[Action::Push],
                "delete" => &[Action::Delete],
                "*" => &[Action::Pull, Action::Push, Action::Delete],
                _ => &[],
            };
            for w in wanted {
                if may_repo_live(reg, p, &repo, *w)? && !granted.iter().any(|g| g == w.as_str()) {
                    granted.push(w.as_str().to_string());
                }
            }
        }
        if granted.is_empty() {
            continue;
        }
        match out
            .iter_mut()
            .find(|e| e.typ == "repository" && e.name == repo.as_str())
        {
            Some(e) => {
                for g in granted {
                    if !e.actions.contains(&g) {
                        e.actions.push(g);
                    }
                }
            }
            None => out.push(AccessEntry {
                typ: "repository".into(),
                name: repo.to_string(),
                actions: granted,
            }),
        }
    }
    Ok(out)
}

/// The JWT subject for a principal.
pub fn subject_of(p: &Principal) -> String {
    match p.effective() {
        Principal::User(u) => u.name.clone(),
        Principal::Token(t) => format!("token:{}", t.id),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------
// Audit

/// Appends an audit entry for `caller`.
pub fn record(state: &AppState, caller: &Caller, action: &str, target: &str, detail: &str) {
    let e = AuditEntry {
        at: now_millis(),
        actor: caller.principal.actor(),
        action: action.to_string(),
        target: target.to_string(),
        address: caller.addr.to_string(),
        detail: detail.to_string(),
    };
    if let Err(err) = state.registry.audit(&e) {
        tracing::warn!(error = %err, "could not write the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> (IpAddr, u8) {
        berth_store::parse_cidr(s).unwrap()
    }

    #[test]
    fn cidrs() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(cidr_contains(cidr("10.0.0.0/8"), ip("10.1.2.3")));
        assert!(!cidr_contains(cidr("10.0.0.0/8"), ip("11.1.2.3")));
        assert!(cidr_contains(cidr("0.0.0.0/0"), ip("1.2.3.4")));
        assert!(cidr_contains(cidr("127.0.0.1/32"), ip("::ffff:127.0.0.1")));
        assert!(cidr_contains(cidr("2001:db8::/32"), ip("2001:db8:1::5")));
        assert!(!cidr_contains(cidr("2001:db8::/32"), ip("2001:db9::5")));
        assert!(!cidr_contains(cidr("2001:db8::/32"), ip("10.0.0.1")));
        assert!(cidr_contains(cidr("::/0"), ip("::1")));
        assert!(!cidr_contains(cidr("::/0"), ip("10.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_cidrs_use_the_prefix_minus_96() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let net = cidr("::ffff:10.0.0.0/104");
        assert!(cidr_contains(net, ip("10.200.3.4")));
        assert!(cidr_contains(net, ip("::ffff:10.200.3.4")));
        assert!(!cidr_contains(net, ip("11.0.0.1")));
        assert!(cidr_contains(cidr("::ffff:0.0.0.0/96"), ip("192.0.2.1")));
        assert!(!cidr_contains(cidr("::ffff:10.0.0.1/128"), ip("10.0.0.2")));
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let cfg = AuthConfig {
            trusted_proxies: vec![cidr("127.0.0.1/32"), cidr("10.0.0.0/8")],
            ..AuthConfig::default()
        };
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7, 10.0.0.2".parse().unwrap(),
        );
        let proxy: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let other: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        assert_eq!(
            client_addr(&cfg, proxy, &h, false).0,
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_addr(&cfg, other, &h, false).0, other.ip());
        h.insert("x-forwarded-for", "not an ip".parse().unwrap());
        assert_eq!(client_addr(&cfg, proxy, &h, false).0, proxy.ip());
        h.insert("x-forwarded-for", "[2001:db8::1]:555".parse().unwrap());
        assert_eq!(
            client_addr(&cfg, proxy, &h, false).0,
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn patterns_and_namespaces() {
        assert!(pattern_covers("acme/*", "acme"));
        assert!(pattern_covers("*", "acme"));
        assert!(pattern_covers("ac*", "acme"));
        assert!(!pattern_covers("acme/web", "acme"));
        assert!(!pattern_covers("acme/*x", "acme"));
        assert!(pattern_touches("acme/web", "acme"));
        assert!(pattern_touches("acme/*", "acme"));
        assert!(pattern_touches("*", "acme"));
        assert!(pattern_touches("a*", "acme"));
        assert!(pattern_touches("acme", "acme"));
        assert!(!pattern_touches("other/*", "acme"));
        assert!(!pattern_touches("acmex/*", "acme"));
    }

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
