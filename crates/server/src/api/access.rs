//! Access control in the management API: who may call each existing
//! route, and the routes for users, namespace grants, scoped tokens, the
//! signing key, the audit log and `GET /api/v1/me`.

use crate::body::Incoming;
use berth_store::{Action, AuditEntry as StoreAudit, Role, TokenInfo, TokenScope, UserInfo};
use http::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{OpenApi, ToSchema};

use super::dto::ErrorBody;
use super::{json_response, no_content, paginate, read_json, rfc3339, MgmtError, Query, Route};
use crate::auth::{self, AuthMode, Caller, Principal};
use crate::{AppState, Body};

type Result<T> = std::result::Result<T, MgmtError>;

// ---------------------------------------------------------------------
// Authorisation of every management route

fn unauthorized() -> MgmtError {
    MgmtError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "authentication required: Basic credentials, or a Bearer token",
    )
}

fn denied(what: &str) -> MgmtError {
    MgmtError::new(
        StatusCode::FORBIDDEN,
        "denied",
        format!("your credentials do not allow {what}"),
    )
}

/// 401 for anonymous callers, 403 for others.
fn refuse(caller: &Caller, what: &str) -> MgmtError {
    if caller.principal.is_anonymous() {
        unauthorized()
    } else {
        denied(what)
    }
}

fn require_admin(caller: &Caller, what: &str) -> Result<()> {
    if caller.principal.is_admin() {
        Ok(())
    } else {
        Err(refuse(caller, what))
    }
}

fn require_ns(state: &AppState, caller: &Caller, ns: &str, action: Action) -> Result<()> {
    if auth::may_namespace(&state.registry, &caller.principal, ns, action)? {
        Ok(())
    } else {
        Err(refuse(
            caller,
            &format!("{} on namespace {ns}", action.as_str()),
        ))
    }
}

/// Checks a repository-level action: first that the caller may see the
/// namespace at all (so that nothing about private namespaces leaks),
/// then, if the repository exists, the action on it.
fn require_repo(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    repo: &str,
    action: Action,
) -> Result<()> {
    require_ns(state, caller, ns, Action::Pull)?;
    if let Ok(name) = super::resolve_repo(state, ns, repo) {
        // A repository the caller may not pull answers like a missing one.
        if !auth::may_repo_live(&state.registry, &caller.principal, &name, Action::Pull)? {
            return Err(super::repo_not_found(ns, repo));
        }
        if !auth::may_repo_live(&state.registry, &caller.principal, &name, action)? {
            return Err(refuse(caller, &format!("{} on {name}", action.as_str())));
        }
    }
    Ok(())
}

/// Decides an existing management route. Listing namespaces and
/// repositories is filtered by the handlers instead.
pub(super) fn authorize(
    state: &AppState,
    caller: &Caller,
    route: &Route,
    m: &Method,
) -> Result<()> {
    if matches!(caller.principal, Principal::Open) {
        return Ok(());
    }
    let read = *m == Method::GET || *m == Method::HEAD;
    match route {
        Route::OpenApi | Route::Namespaces => Ok(()),
        // The settings include the allow-list: administrators only.
        Route::Registry if read => require_admin(caller, "reading registry settings"),
        Route::Registry => require_admin(caller, "changing registry settings"),
        Route::Namespace(ns) | Route::Repositories(ns) if read => {
            require_ns(state, caller, ns, Action::Pull)
        }
        Route::Namespace(ns) => require_ns(state, caller, ns, Action::Manage),
        Route::Repository(ns, r)
        | Route::Artifacts(ns, r)
        | Route::Artifact(ns, r, _)
        | Route::Tags(ns, r)
        | Route::Tag(ns, r, _)
            if read =>
        {
            require_repo(state, caller, ns, r, Action::Pull)
        }
        Route::Repository(ns, r)
        | Route::Artifact(ns, r, _)
        | Route::DeleteRequest(ns, r)
        | Route::Tag(ns, r, _) => require_repo(state, caller, ns, r, Action::Delete),
        Route::Retention(ns) | Route::RetentionPreview(ns) if read => {
            require_ns(state, caller, ns, Action::Pull)
        }
        Route::Retention(ns) | Route::RetentionRun(ns) => {
            require_ns(state, caller, ns, Action::Manage)
        }
        Route::Gc | Route::GcRuns | Route::GcRunOne(_) => {
            require_admin(caller, "garbage collection")
        }
        // Routes added later default to registry administrators.
        #[allow(unreachable_patterns)]
        _ => require_admin(caller, "this operation"),
    }
}

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
    require_ns(state, caller, ns, Action::Manage)
}

// ---------------------------------------------------------------------
// Routes

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AccessRoute {
    Me,
    Users,
    User(String),
    Password(String),
    Grants(String),
    Grant(String, String),
    Tokens,
    Token(String),
    SigningKey,
    Audit,
}

impl AccessRoute {
    fn methods(&self) -> &'static [Method] {
        use AccessRoute::*;
        match self {
            Me | Grants(_) | Audit => &[Method::GET],
            Users | Tokens => &[Method::GET, Method::POST],
            User(_) => &[Method::GET, Method::PATCH, Method::DELETE],
            Password(_) => &[Method::PUT],
            Grant(..) => &[Method::GET, Method::PUT, Method::DELETE],
            Token(_) => &[Method::GET, Method::DELETE],
            SigningKey => &[Method::GET, Method::POST],
        }
    }
}

/// Parses the decoded path segments below `/api/v1/`.
pub(super) fn parse(s: &[&str]) -> Option<AccessRoute> {
    use AccessRoute::*;
    Some(match s {
        ["me"] => Me,
        ["users"] => Users,
        ["users", u] => User(u.to_string()),
        ["users", u, "password"] => Password(u.to_string()),
        ["namespaces", ns, "grants"] => Grants(ns.to_string()),
        ["namespaces", ns, "grants", u] => Grant(ns.to_string(), u.to_string()),
        ["tokens"] => Tokens,
        ["tokens", id] => Token(id.to_string()),
        ["signing-key"] => SigningKey,
        ["audit"] => Audit,
        _ => return None,
    })
}

/// Handles an access-control route.
pub(super) async fn handle(
    state: &AppState,
    caller: &Caller,
    route: AccessRoute,
    req: Request<Incoming>,
) -> Result<Response<Body>> {
    let m = req.method().clone();
    let ms = route.methods();
    let allowed = ms.contains(&m) || (m == Method::HEAD && ms.contains(&Method::GET));
    if !allowed {
        return Ok(super::method_not_allowed(
            &m,
            req.uri().path(),
            route.methods(),
        ));
    }
    let q = Query::parse(req.uri().query());
    use AccessRoute::*;
    match (route, m) {
        (Me, _) => me(state, caller),
        (Users, Method::POST) => create_user(state, caller, read_json(req).await?).await,
        (Users, _) => list_users(state, caller, &q),
        (User(u), Method::PATCH) => update_user(state, caller, &u, read_json(req).await?).await,
        (User(u), Method::DELETE) => delete_user(state, caller, &u).await,
        (User(u), _) => get_user(state, caller, &u),
        (Password(u), _) => change_password(state, caller, &u, read_json(req).await?).await,
        (Grants(ns), _) => list_grants(state, caller, &ns),
        (Grant(ns, u), Method::PUT) => {
            put_grant(state, caller, &ns, &u, read_json(req).await?).await
        }
        (Grant(ns, u), Method::DELETE) => delete_grant(state, caller, &ns, &u).await,
        (Grant(ns, u), _) => get_grant(state, caller, &ns, &u),
        (Tokens, Method::POST) => create_token(state, caller, read_json(req).await?).await,
        (Tokens, _) => list_tokens(state, caller, &q),
        (Token(id), Method::DELETE) => delete_token(state, caller, &id).await,
        (Token(id), _) => get_token(state, caller, &id),
        (SigningKey, Method::POST) => rotate_signing_key(state, caller).await,
        (SigningKey, _) => get_signing_key(state, caller).await,
        (Audit, _) => list_audit(state, caller, &q),
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
        Principal::Anonymous => return Err(unauthorized()),
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
        Principal::Bearer { .. } => return Err(unauthorized()),
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
fn list_users(state: &AppState, caller: &Caller, q: &Query) -> Result<Response<Body>> {
    require_admin(caller, "listing users")?;
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
async fn create_user(state: &AppState, caller: &Caller, c: CreateUser) -> Result<Response<Body>> {
    require_admin(caller, "creating users")?;
    let u = state
        .registry
        .user_create(&c.name, &c.password, c.admin)
        .await?;
    Ok(json_response(StatusCode::CREATED, &user_dto(u)))
}

/// Whether the caller is `user` with its own credentials (a bearer token
/// of that user is not: it acts only within its access claim).
fn is_self(caller: &Caller, user: &str) -> bool {
    matches!(&caller.principal, Principal::User(u) if u.name == user)
}

#[utoipa::path(get, path = "/api/v1/users/{user}", tag = "access",
    params(("user" = String, Path, description = "User name", example = "alice")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 404, description = "No such user", body = ErrorBody)))]
fn get_user(state: &AppState, caller: &Caller, user: &str) -> Result<Response<Body>> {
    if !is_self(caller, user) {
        require_admin(caller, "reading other users")?;
    }
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
async fn update_user(
    state: &AppState,
    caller: &Caller,
    user: &str,
    u: UpdateUser,
) -> Result<Response<Body>> {
    require_admin(caller, "changing users")?;
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
async fn delete_user(state: &AppState, caller: &Caller, user: &str) -> Result<Response<Body>> {
    require_admin(caller, "deleting users")?;
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
    if is_self(caller, user) {
        // Counted and audited like a login: otherwise this would be an
        // unthrottled oracle for the password.
        let current = c.current_password.as_deref().unwrap_or("");
        match auth::check_password(state, caller.addr, user, current).await {
            Ok(_) => {}
            Err(f) => {
                return Err(match f.throttle() {
                    Some((msg, after)) => {
                        let mut e =
                            MgmtError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", msg);
                        e.details = serde_json::json!({ "retry_after_secs": after });
                        e
                    }
                    None => MgmtError::invalid(
                        "current_password",
                        "give your current password to change it",
                    ),
                })
            }
        }
    } else {
        require_admin(caller, "changing other users' passwords")?;
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
fn list_grants(state: &AppState, caller: &Caller, ns: &str) -> Result<Response<Body>> {
    require_ns(state, caller, ns, Action::Manage)?;
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
fn get_grant(state: &AppState, caller: &Caller, ns: &str, user: &str) -> Result<Response<Body>> {
    require_ns(state, caller, ns, Action::Manage)?;
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
    require_ns(state, caller, ns, Action::Manage)?;
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
    require_ns(state, caller, ns, Action::Manage)?;
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
fn list_tokens(state: &AppState, caller: &Caller, q: &Query) -> Result<Response<Body>> {
    require_admin(caller, "listing tokens")?;
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
    require_admin(caller, "creating tokens")?;
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
fn get_token(state: &AppState, caller: &Caller, id: &str) -> Result<Response<Body>> {
    require_admin(caller, "reading tokens")?;
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
async fn delete_token(state: &AppState, caller: &Caller, id: &str) -> Result<Response<Body>> {
    require_admin(caller, "revoking tokens")?;
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
async fn get_signing_key(state: &AppState, caller: &Caller) -> Result<Response<Body>> {
    require_admin(caller, "reading the signing key")?;
    let k = state.auth.keys(&state.registry).await?;
    Ok(json_response(StatusCode::OK, &key_dto(k)))
}

#[utoipa::path(post, path = "/api/v1/signing-key", tag = "access",
    responses((status = 200, description = "Rotated: new tokens are signed with a new key; tokens signed with the previous one stop working at once (clients get 401 and fetch new ones)", body = SigningKeyInfo)))]
async fn rotate_signing_key(state: &AppState, caller: &Caller) -> Result<Response<Body>> {
    require_admin(caller, "rotating the signing key")?;
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
fn list_audit(state: &AppState, caller: &Caller, q: &Query) -> Result<Response<Body>> {
    require_admin(caller, "reading the audit log")?;
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
// Audit of management changes

/// The audit action for a successful management request, `None` for
/// reads and for routes whose handlers record their own entry.
pub(super) fn audit_action(segments: &[&str], m: &Method) -> Option<String> {
    if *m == Method::GET || *m == Method::HEAD {
        return None;
    }
    let verb = match *m {
        Method::POST => "create",
        Method::PATCH | Method::PUT => "update",
        Method::DELETE => "delete",
        _ => "call",
    };
    let kind = match segments {
        ["registry"] => "settings",
        ["gc"] => return Some("gc.start".into()),
        ["namespaces", _, "retention", "run"] => return Some("retention.run".into()),
        ["namespaces", _, "retention"] => "retention",
        ["namespaces"] | ["namespaces", _] => "namespace",
        ["namespaces", _, "grants", ..] => return None,
        ["namespaces", _, "repositories", .., "tags", _] => "tag",
        ["namespaces", _, "repositories", .., "artifacts", _]
        | ["namespaces", _, "repositories", .., "delete-request"] => "artifact",
        ["namespaces", _, "repositories", ..] => "repository",
        ["users", _, "password"] => return Some("user.password".into()),
        ["users"] | ["users", _] => "user",
        ["tokens"] | ["tokens", _] if *m == Method::DELETE => return Some("token.revoke".into()),
        ["tokens"] | ["tokens", _] => "token",
        ["signing-key"] => return Some("signing_key.rotate".into()),
        _ => "api",
    };
    Some(format!("{kind}.{verb}"))
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
