//! The access-control API's request and response bodies.

use super::*;

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

pub(super) fn user_dto(u: UserInfo) -> User {
    User {
        name: u.name,
        admin: u.admin,
        created_at: rfc3339(u.created_at),
        updated_at: rfc3339(u.updated_at),
    }
}

pub(super) fn scope_dto(s: &TokenScope) -> Scope {
    Scope {
        repository: s.repository.clone(),
        actions: s.actions.iter().map(|a| (*a).into()).collect(),
    }
}

pub(super) fn token_dto(t: TokenInfo) -> Token {
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

pub(super) fn grant_dto(g: berth_store::Grant) -> Grant {
    Grant {
        namespace: g.namespace,
        user: g.user,
        role: g.record.role.into(),
        granted_at: rfc3339(g.record.granted_at),
        granted_by: g.record.granted_by,
    }
}
