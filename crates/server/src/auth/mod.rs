//! Who is calling, and what they may do: authentication and the policy.
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
use std::time::{Duration, Instant};

use base64::Engine as _;
use berth_oci::{Digest, ErrorCode, RepoName};
use berth_store::{
    Action, AuditEntry, Error as StoreError, NamespaceAccess, Registry, Role, SigningKeys,
    TokenInfo, UserInfo, TOKEN_PREFIX,
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
    // Why a RwLock: read on every bearer-token verification, written when
    // the keys are read again from the store (at most every KEYS_TTL, as
    // another replica may have rotated them) and on rotation.
    keys: RwLock<Option<(SigningKeys, std::time::Instant)>>,
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
    /// The request's id: a trusted proxy's `X-Request-Id`, or generated.
    pub request_id: String,
}

impl Caller {
    /// What the events this caller's changes write record of it.
    pub fn event_context(&self) -> berth_store::EventContext {
        berth_store::EventContext {
            actor: Some(self.principal.actor()),
            client_addr: Some(self.addr.to_string()),
            request_id: Some(self.request_id.clone()),
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

mod client_addr;
mod credentials;
mod policy;

pub use client_addr::*;
pub use credentials::*;
pub use policy::*;

// ---------------------------------------------------------------------
// Audit

/// Appends an audit entry for `caller`.
pub async fn record(state: &AppState, caller: &Caller, action: &str, target: &str, detail: &str) {
    let e = AuditEntry {
        at: credentials::now_millis(),
        actor: caller.principal.actor(),
        action: action.to_string(),
        target: target.to_string(),
        address: caller.addr.to_string(),
        detail: detail.to_string(),
    };
    if let Err(err) = state.registry.audit(&e).await {
        tracing::warn!(error = %err, "could not write the audit log");
    }
}
