//! Access control in the management API: who may call each existing
//! route, and the routes for users, namespace grants, scoped tokens, the
//! signing key, the audit log and `GET /api/v1/me`.

use crate::body::Incoming;
use berth_store::{Action, AuditEntry as StoreAudit, Role, TokenInfo, TokenScope, UserInfo};
use http::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{OpenApi, ToSchema};

use super::dto::ErrorBody;
use super::{json_response, no_content, paginate, read_json, rfc3339, Query};
use crate::auth::{self, AuthMode, Caller, Principal};
use crate::endpoint::Api;
use crate::error::MgmtError;
use crate::{AppState, Body};

type Result<T> = std::result::Result<T, MgmtError>;

// ---------------------------------------------------------------------
// What handlers decide themselves: what listings show, and the namespace a
// creation names in its body. Everything else is decided before the body
// is read, in `crate::authorize`.

/// Whether the caller may see a namespace in listings.
pub(super) fn sees_namespace(state: &AppState, caller: &Caller, ns: &str) -> bool {
    auth::may_namespace(&state.registry, &caller.principal, ns, Action::Pull).unwrap_or(false)
}

/// Whether the caller may see a repository in listings.
pub(super) fn sees_repo(state: &AppState, caller: &Caller, repo: &str) -> bool {
    match repo.parse() {
        Ok(r) => auth::may_repo_live(&state.registry, &caller.principal, &r, Action::Pull)
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Creating a namespace needs `manage` on it: registry administrators, or
/// tokens whose scopes cover it.
pub(super) fn may_create_namespace(state: &AppState, caller: &Caller, ns: &str) -> Result<()> {
    if caller.principal.is_admin() {
        return Ok(());
    }
    crate::authorize::require_ns(state, caller, ns, Action::Manage)
}

// ---------------------------------------------------------------------
// Routes

/// Handles an access-control operation, authorised already.
pub(super) async fn handle(
    state: &AppState,
    caller: &Caller,
    op: Api,
    req: Request<Incoming>,
) -> Result<Response<Body>> {
    let q = Query::parse(req.uri().query());
    match op {
        Api::Me => me(state, caller),
        Api::UserCreate => create_user(state, read_json(req).await?).await,
        Api::UserList => list_users(state, &q),
        Api::UserUpdate(u) => update_user(state, &u, read_json(req).await?).await,
        Api::UserDelete(u) => delete_user(state, &u).await,
        Api::UserGet(u) => get_user(state, &u),
        Api::PasswordChange(u) => change_password(state, caller, &u, read_json(req).await?).await,
        Api::GrantList(ns) => list_grants(state, &ns),
        Api::GrantPut(ns, u) => put_grant(state, caller, &ns, &u, read_json(req).await?).await,
        Api::GrantDelete(ns, u) => delete_grant(state, caller, &ns, &u).await,
        Api::GrantGet(ns, u) => get_grant(state, &ns, &u),
        Api::TokenCreate => create_token(state, caller, read_json(req).await?).await,
        Api::TokenList => list_tokens(state, &q),
        Api::TokenDelete(id) => delete_token(state, &id).await,
        Api::TokenGet(id) => get_token(state, &id),
        Api::SigningKeyRotate => rotate_signing_key(state).await,
        Api::SigningKeyGet => get_signing_key(state).await,
        Api::AuditList => list_audit(state, &q),
        other => Err(MgmtError::internal(format!(
            "{} is not an access-control operation",
            crate::endpoint::Endpoint::Api(other).route_label()
        ))),
    }
}

// ---------------------------------------------------------------------
// DTOs

/// An action a scoped token may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenAction {
    /// Pull.
    Pull,
    /// Push.
    Push,
    /// Delete manifests, tags, blobs, repositories.
    Delete,
    /// Namespace settings and members (management API).
    Manage,
}

impl From<TokenAction> for Action {
    fn from(a: TokenAction) -> Action {
        match a {
            TokenAction::Pull => Action::Pull,
            TokenAction::Push => Action::Push,
            TokenAction::Delete => Action::Delete,
            TokenAction::Manage => Action::Manage,
        }
    }
}

impl From<Action> for TokenAction {
    fn from(a: Action) -> TokenAction {
        match a {
            Action::Pull => TokenAction::Pull,
            Action::Push => TokenAction::Push,
            Action::Delete => TokenAction::Delete,
            Action::Manage => TokenAction::Manage,
        }
    }
}

/// A role on a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// Pull.
    Reader,
    /// Pull and push.
    Writer,
    /// Pull, push, delete, namespace settings and members.
    Admin,
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Role {
        match r {
            RoleName::Reader => Role::Reader,
            RoleName::Writer => Role::Writer,
            RoleName::Admin => Role::Admin,
        }
    }
}

impl From<Role> for RoleName {
    fn from(r: Role) -> RoleName {
        match r {
            Role::Reader => RoleName::Reader,
            Role::Writer => RoleName::Writer,
            Role::Admin => RoleName::Admin,
        }
    }
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    /// Name.
    pub name: String,
    /// Registry administrator.
    pub admin: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// This page.
    pub users: Vec<User>,
    /// Over all pages.
    pub total_count: u64,
}

/// Body of `POST /api/v1/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// 1 to 64 lower-case letters, digits, `.`, `_`, `-`.
    #[schema(pattern = "^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$", example = "alice")]
    pub name: String,
    /// 8 to 1024 characters.
    #[schema(min_length = 8, max_length = 1024, example = "correct horse battery")]
    pub password: String,
    /// Registry administrator.
    #[serde(default)]
    pub admin: bool,
}

/// Body of `PATCH /api/v1/users/{user}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// Make the user a registry administrator, or not.
    #[serde(default)]
    pub admin: Option<bool>,
}

/// Body of `PUT /api/v1/users/{user}/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The new password, 8 to 1024 characters.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    /// The current password: required when users change their own.
    #[serde(default)]
    pub current_password: Option<String>,
}

/// A role granted on a namespace.
#[derive(Debug, Serialize, ToSchema)]
pub struct Grant {
    /// Namespace.
    pub namespace: String,
    /// User.
    pub user: String,
    /// Role.
    pub role: RoleName,
    /// RFC 3339.
    pub granted_at: String,
    /// Who granted it.
    pub granted_by: String,
}

/// The grants of a namespace.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantList {
    /// Grants, by user.
    pub grants: Vec<Grant>,
    /// Number of grants.
    pub total_count: u64,
}

/// Body of `PUT /api/v1/namespaces/{namespace}/grants/{user}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutGrant {
    /// The role.
    pub role: RoleName,
}

/// One scope of a token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Repository-name pattern: `*` matches any characters, slashes
    /// included (`acme/*`, `acme/web`, `*`).
    #[schema(example = "acme/*", pattern = "^[a-z0-9._/*-]{1,256}$")]
    pub repository: String,
    /// Allowed actions (at least one).
    #[schema(min_items = 1)]
    pub actions: Vec<TokenAction>,
}

/// A scoped token (robot account / API key); the secret is never shown
/// again after creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// RFC 3339; null = never.
    pub expires_at: Option<String>,
    /// Whether it has expired.
    pub expired: bool,
    /// RFC 3339.
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// RFC 3339, to the minute; null = never used.
    pub last_used_at: Option<String>,
}

/// A page of tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// This page.
    pub tokens: Vec<Token>,
    /// Over all pages.
    pub total_count: u64,
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Display name.
    #[schema(min_length = 1, max_length = 128, example = "ci")]
    pub name: String,
    /// Scopes (at least one).
    #[schema(min_items = 1)]
    pub scopes: Vec<Scope>,
    /// RFC 3339 expiry; omit (with `expires_in_seconds`) for none.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Expiry relative to now, instead of `expires_at`.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub expires_in_seconds: Option<u64>,
}

/// A token just created, with its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    pub token: Token,
    /// The secret: the password for `docker login` (any user name), or a
    /// Bearer token on /api/v1. Shown only now.
    pub secret: String,
}

/// The key signing bearer tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyInfo {
    /// Key id (JWT `kid`).
    pub kid: String,
    /// RFC 3339.
    pub created_at: String,
    /// The previous key, still accepted for tokens it signed.
    pub previous_kid: Option<String>,
}

/// One audit-log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// RFC 3339.
    pub at: String,
    /// A user name, `token:<name>` or `anonymous`.
    pub actor: String,
    /// `push`, `delete`, `namespace.update`, `grant`, `login.failed`, ...
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// Client address.
    pub address: String,
    /// Status code or detail.
    pub detail: String,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    /// This page.
    pub entries: Vec<AuditEntry>,
    /// Entries over all pages.
    pub total_count: u64,
}

/// A role of the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct NamespaceRole {
    /// Namespace.
    pub namespace: String,
    /// Role.
    pub role: RoleName,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `user`, `token`, `anonymous`, or `open` (authentication off).
    pub kind: String,
    /// User or token name; empty for anonymous.
    pub name: String,
    /// Registry administrator.
    pub admin: bool,
    /// `none` or `token`.
    pub auth_mode: String,
    /// The caller's roles (users).
    pub roles: Vec<NamespaceRole>,
    /// The caller's scopes (tokens).
    pub scopes: Vec<Scope>,
}

fn user_dto(u: UserInfo) -> User {
    User {
        name: u.name,
        admin: u.admin,
        created_at: rfc3339(u.created_at),
        updated_at: rfc3339(u.updated_at),
    }
}

fn scope_dto(s: &TokenScope) -> Scope {
    Scope {
        repository: s.repository.clone(),
        actions: s.actions.iter().map(|a| (*a).into()).collect(),
    }
}

fn token_dto(t: TokenInfo) -> Token {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Token {
        expired: t.expired(now),
        id: t.id,
        name: t.record.name,
        scopes: t.record.scopes.iter().map(scope_dto).collect(),
        expires_at: t.record.expires_at.map(rfc3339),
        created_at: rfc3339(t.record.created_at),
        created_by: t.record.created_by,
        last_used_at: t.record.last_used_at.map(rfc3339),
    }
}

fn grant_dto(g: berth_store::Grant) -> Grant {
    Grant {
        namespace: g.namespace,
        user: g.user,
        role: g.record.role.into(),
        granted_at: rfc3339(g.record.granted_at),
        granted_by: g.record.granted_by,
    }
}

// ---------------------------------------------------------------------
// Handlers

#[utoipa::path(get, path = "/api/v1/me", tag = "access",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No credentials", body = ErrorBody)))]
fn me(state: &AppState, caller: &Caller) -> Result<Response<Body>> {
    let mode = match state.config.auth.mode {
        AuthMode::None => "none",
        AuthMode::Token => "token",
    };
    let p = caller.principal.effective();
    let mut me = Me {
        kind: String::new(),
        name: String::new(),
        admin: caller.principal.is_admin(),
        auth_mode: mode.into(),
        roles: Vec::new(),
        scopes: Vec::new(),
    };
    match p {
        Principal::Open => me.kind = "open".into(),
        // Refused by the authorisation already (`SignedIn`).
        Principal::Anonymous => {
            return Err(MgmtError::unauthorized(crate::authorize::UNAUTHORIZED))
        }
        Principal::User(u) => {
            me.kind = "user".into();
            me.name = u.name.clone();
            me.roles = state
                .registry
                .grants(None)?
                .into_iter()
                .filter(|g| g.user == u.name)
                .map(|g| NamespaceRole {
                    namespace: g.namespace,
                    role: g.record.role.into(),
                })
                .collect();
        }
        Principal::Token(t) => {
            me.kind = "token".into();
            me.name = t.record.name.clone();
            me.scopes = t.record.scopes.iter().map(scope_dto).collect();
        }
        // `effective` never is a bearer token.
        Principal::Bearer { .. } => {
            return Err(MgmtError::unauthorized(crate::authorize::UNAUTHORIZED))
        }
    }
    Ok(json_response(StatusCode::OK, &me))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "access",
    params(
        ("page" = Option<u64>, Query, description = "Page number, from 1", minimum = 1),
        ("page_size" = Option<u64>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100)),
    responses(
        (status = 200, description = "Users by name", body = UserList),
        (status = 400, description = "Invalid pagination", body = ErrorBody)))]
fn list_users(state: &AppState, q: &Query) -> Result<Response<Body>> {
    let page = q.page()?;
    let all = state.registry.users()?;
    let total_count = all.len() as u64;
    let users = paginate(all, page).into_iter().map(user_dto).collect();
    Ok(json_response(
        StatusCode::OK,
        &UserList { users, total_count },
    ))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "access", request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = User),
        (status = 400, description = "Invalid name or password", body = ErrorBody),
        (status = 409, description = "A user of that name exists", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
async fn create_user(state: &AppState, c: CreateUser) -> Result<Response<Body>> {
    let u = state
        .registry
        .user_create(&c.name, &c.password, c.admin)
        .await?;
    Ok(json_response(StatusCode::CREATED, &user_dto(u)))
}

#[utoipa::path(get, path = "/api/v1/users/{user}", tag = "access",
    params(("user" = String, Path, description = "User name", example = "alice")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 404, description = "No such user", body = ErrorBody)))]
fn get_user(state: &AppState, user: &str) -> Result<Response<Body>> {
    let u = state
        .registry
        .user(user)?
        .ok_or_else(|| MgmtError::not_found(format!("user {user} does not exist")))?;
    Ok(json_response(StatusCode::OK, &user_dto(u)))
}

#[utoipa::path(patch, path = "/api/v1/users/{user}", tag = "access", request_body = UpdateUser,
    params(("user" = String, Path, description = "User name", example = "alice")),
    responses(
        (status = 200, description = "Updated", body = User),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
async fn update_user(state: &AppState, user: &str, u: UpdateUser) -> Result<Response<Body>> {
    let reg = &state.registry;
    let mut info = reg
        .user(user)?
        .ok_or_else(|| MgmtError::not_found(format!("user {user} does not exist")))?;
    if let Some(a) = u.admin {
        info = reg.user_set_admin(user, a).await?;
    }
    Ok(json_response(StatusCode::OK, &user_dto(info)))
}

#[utoipa::path(delete, path = "/api/v1/users/{user}", tag = "access",
    params(("user" = String, Path, description = "User name", example = "alice")),
    responses(
        (status = 204, description = "Deleted with the roles granted to them"),
        (status = 404, description = "No such user", body = ErrorBody)))]
async fn delete_user(state: &AppState, user: &str) -> Result<Response<Body>> {
    state.registry.user_delete(user).await?;
    state.auth.forget_logins();
    Ok(no_content())
}

#[utoipa::path(put, path = "/api/v1/users/{user}/password", tag = "access", request_body = ChangePassword,
    params(("user" = String, Path, description = "User name", example = "alice")),
    responses(
        (status = 200, description = "Changed", body = User),
        (status = 400, description = "Invalid password, or the current one is missing or wrong", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
async fn change_password(
    state: &AppState,
    caller: &Caller,
    user: &str,
    c: ChangePassword,
) -> Result<Response<Body>> {
    let reg = &state.registry;
    // Others' passwords are administrators' business, decided before the
    // body was read; one's own needs the current password too.
    if crate::authorize::is_self(caller, user) {
        // Counted and audited like a login: otherwise this would be an
        // unthrottled oracle for the password.
        let current = c.current_password.as_deref().unwrap_or("");
        match auth::check_password(state, caller.addr, user, current).await {
            Ok(_) => {}
            Err(f) => {
                return Err(match f.throttle() {
                    Some((msg, after)) => MgmtError::throttled(msg, after),
                    None => MgmtError::invalid(
                        "current_password",
                        "give your current password to change it",
                    ),
                })
            }
        }
    }
    let u = reg.user_set_password(user, &c.password).await?;
    state.auth.forget_logins();
    Ok(json_response(StatusCode::OK, &user_dto(u)))
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/grants", tag = "access",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    responses(
        (status = 200, description = "Roles granted on the namespace", body = GrantList),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
fn list_grants(state: &AppState, ns: &str) -> Result<Response<Body>> {
    state.registry.namespace(ns)?;
    let grants: Vec<Grant> = state
        .registry
        .grants(Some(ns))?
        .into_iter()
        .map(grant_dto)
        .collect();
    let total_count = grants.len() as u64;
    Ok(json_response(
        StatusCode::OK,
        &GrantList {
            grants,
            total_count,
        },
    ))
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/grants/{user}", tag = "access",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("user" = String, Path, description = "User name", example = "alice")),
    responses(
        (status = 200, description = "The user's role", body = Grant),
        (status = 404, description = "No such namespace, user or role", body = ErrorBody)))]
fn get_grant(state: &AppState, ns: &str, user: &str) -> Result<Response<Body>> {
    let g = state
        .registry
        .grants(Some(ns))?
        .into_iter()
        .find(|g| g.user == user)
        .ok_or_else(|| MgmtError::not_found(format!("{user} has no role on {ns}")))?;
    Ok(json_response(StatusCode::OK, &grant_dto(g)))
}

#[utoipa::path(put, path = "/api/v1/namespaces/{namespace}/grants/{user}", tag = "access", request_body = PutGrant,
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("user" = String, Path, description = "User name", example = "alice")),
    responses(
        (status = 200, description = "Granted (replaces any earlier role)", body = Grant),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace or user", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
async fn put_grant(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    user: &str,
    p: PutGrant,
) -> Result<Response<Body>> {
    let g = state
        .registry
        .grant(ns, user, p.role.into(), &caller.principal.actor())
        .await?;
    auth::record(
        state,
        caller,
        "grant",
        &format!("{ns}:{user}"),
        g.record.role.as_str(),
    );
    Ok(json_response(StatusCode::OK, &grant_dto(g)))
}

#[utoipa::path(delete, path = "/api/v1/namespaces/{namespace}/grants/{user}", tag = "access",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("user" = String, Path, description = "User name", example = "alice")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such role", body = ErrorBody)))]
async fn delete_grant(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    user: &str,
) -> Result<Response<Body>> {
    state.registry.revoke(ns, user).await?;
    auth::record(state, caller, "revoke", &format!("{ns}:{user}"), "");
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "access",
    params(
        ("page" = Option<u64>, Query, description = "Page number, from 1", minimum = 1),
        ("page_size" = Option<u64>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100)),
    responses(
        (status = 200, description = "Tokens, oldest first (no secrets)", body = TokenList),
        (status = 400, description = "Invalid pagination", body = ErrorBody)))]
fn list_tokens(state: &AppState, q: &Query) -> Result<Response<Body>> {
    let page = q.page()?;
    let all = state.registry.tokens()?;
    let total_count = all.len() as u64;
    let tokens = paginate(all, page).into_iter().map(token_dto).collect();
    Ok(json_response(
        StatusCode::OK,
        &TokenList {
            tokens,
            total_count,
        },
    ))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "access", request_body = CreateToken,
    responses(
        (status = 201, description = "Created; the secret is shown only in this answer", body = CreatedToken),
        (status = 400, description = "Invalid name, scope or expiry", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
async fn create_token(state: &AppState, caller: &Caller, c: CreateToken) -> Result<Response<Body>> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let expires_at = match (&c.expires_at, c.expires_in_seconds) {
        (Some(_), Some(_)) => {
            return Err(MgmtError::invalid(
                "expires_at",
                "give expires_at or expires_in_seconds, not both",
            ))
        }
        (Some(t), None) => {
            let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| MgmtError::invalid("expires_at", format!("not RFC 3339: {e}")))?;
            Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
        }
        (None, Some(0)) => {
            return Err(MgmtError::invalid(
                "expires_in_seconds",
                "must be at least 1",
            ))
        }
        (None, Some(s)) => Some(now_ms.saturating_add((s.min(1 << 40) as i64) * 1000)),
        (None, None) => None,
    };
    let scopes = c
        .scopes
        .into_iter()
        .map(|s| {
            let mut actions: Vec<Action> = s.actions.into_iter().map(Into::into).collect();
            actions.sort();
            actions.dedup();
            TokenScope {
                repository: s.repository,
                actions,
            }
        })
        .collect();
    let (t, secret) = state
        .registry
        .token_create(&c.name, scopes, expires_at, &caller.principal.actor())
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &CreatedToken {
            token: token_dto(t),
            secret,
        },
    ))
}

#[utoipa::path(get, path = "/api/v1/tokens/{id}", tag = "access",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 200, description = "The token (no secret)", body = Token),
        (status = 404, description = "No such token", body = ErrorBody)))]
fn get_token(state: &AppState, id: &str) -> Result<Response<Body>> {
    Ok(json_response(
        StatusCode::OK,
        &token_dto(state.registry.token(id)?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "access",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked: the secret stops working at once"),
        (status = 404, description = "No such token", body = ErrorBody)))]
async fn delete_token(state: &AppState, id: &str) -> Result<Response<Body>> {
    state.registry.token_delete(id).await?;
    Ok(no_content())
}

fn key_dto(k: berth_store::SigningKeys) -> SigningKeyInfo {
    SigningKeyInfo {
        kid: k.current.kid,
        created_at: rfc3339(k.current.created_at),
        previous_kid: k.previous.map(|p| p.kid),
    }
}

#[utoipa::path(get, path = "/api/v1/signing-key", tag = "access",
    responses((status = 200, description = "The current key's id (never the key)", body = SigningKeyInfo)))]
async fn get_signing_key(state: &AppState) -> Result<Response<Body>> {
    let k = state.auth.keys(&state.registry).await?;
    Ok(json_response(StatusCode::OK, &key_dto(k)))
}

#[utoipa::path(post, path = "/api/v1/signing-key", tag = "access",
    responses((status = 200, description = "Rotated: new tokens are signed with a new key; tokens signed with the previous one stop working at once (clients get 401 and fetch new ones)", body = SigningKeyInfo)))]
async fn rotate_signing_key(state: &AppState) -> Result<Response<Body>> {
    let k = state.auth.rotate(&state.registry).await?;
    Ok(json_response(StatusCode::OK, &key_dto(k)))
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "access",
    params(
        ("page" = Option<u64>, Query, description = "Page number, from 1", minimum = 1),
        ("page_size" = Option<u64>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100)),
    responses(
        (status = 200, description = "Audit log, newest first", body = AuditList),
        (status = 400, description = "Invalid pagination", body = ErrorBody)))]
fn list_audit(state: &AppState, q: &Query) -> Result<Response<Body>> {
    let (page, size) = q.page()?;
    let skip = ((page - 1).saturating_mul(size)) as usize;
    let (rows, total) = state.registry.audit_page(skip, size as usize)?;
    let entries = rows
        .into_iter()
        .map(|e: StoreAudit| AuditEntry {
            at: rfc3339(e.at),
            actor: e.actor,
            action: e.action,
            target: e.target,
            address: e.address,
            detail: e.detail,
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &AuditList {
            entries,
            total_count: total as u64,
        },
    ))
}

// ---------------------------------------------------------------------
// OpenAPI

/// The access-control part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(
    me,
    list_users,
    create_user,
    get_user,
    update_user,
    delete_user,
    change_password,
    list_grants,
    get_grant,
    put_grant,
    delete_grant,
    list_tokens,
    create_token,
    get_token,
    delete_token,
    get_signing_key,
    rotate_signing_key,
    list_audit
))]
pub struct AccessApiDoc;

/// Adds the security schemes and the 401/403/429 answers that every
/// operation may give when authentication is on.
pub(super) fn add_security(doc: &mut utoipa::openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "basic",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
    );
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A scoped-token secret (berth_...) or a JWT from /auth/token. A JWT acts only within its access claim (what it may pull, push, delete) and never administers: managing users, tokens, grants, the signing key and registry settings needs Basic credentials or a scoped token with manage.",
                ))
                .build(),
        ),
    );
    doc.security = Some(vec![
        SecurityRequirement::default(),
        SecurityRequirement::new("basic", Vec::<String>::new()),
        SecurityRequirement::new("bearer", Vec::<String>::new()),
    ]);
    let answer = |d: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(d)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let r = &mut op.responses.responses;
            for (code, d) in [
                ("401", "Authentication required (auth mode token), or bad credentials"),
                ("403", "The credentials do not allow this, or the client address is not in the allow-list"),
                ("429", "Too many failed logins from this address or for this user"),
            ] {
                r.entry(code.to_string()).or_insert_with(|| answer(d));
            }
        }
    }
}
