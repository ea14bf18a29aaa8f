//! The access-control part of the management API: the routes for users,
//! namespace grants, scoped tokens, the signing key, the audit log and
//! `GET /api/v1/me`, and what listings let a caller see. Who may call what
//! is decided before any of this runs, in `crate::authorize`.

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

mod audit;
mod grants;
mod tokens;
mod types;
mod users;

use audit::*;
use grants::*;
use tokens::*;
pub use types::*;
use users::*;

type Result<T> = std::result::Result<T, MgmtError>;

// ---------------------------------------------------------------------
// What handlers decide themselves: what listings show, and the namespace a
// creation names in its body. Everything else is decided before the body
// is read, in `crate::authorize`.

/// The items naming a namespace the caller may see in listings, in order;
/// one cache for the listing, so each namespace costs one metadata hop.
pub(super) async fn seen_namespaces<T>(
    state: &AppState,
    caller: &Caller,
    items: Vec<T>,
    name: impl Fn(&T) -> &str,
) -> Vec<T> {
    let mut cache = auth::AccessCache::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let ns = name(&item);
        if auth::may_namespace_cached(
            &state.registry,
            &caller.principal,
            ns,
            Action::Pull,
            &mut cache,
        )
        .await
        .unwrap_or(false)
        {
            out.push(item);
        }
    }
    out
}

/// The items naming a repository the caller may see in listings, in order
/// (as [`seen_namespaces`]).
pub(super) async fn seen_repos<T>(
    state: &AppState,
    caller: &Caller,
    items: Vec<T>,
    name: impl Fn(&T) -> &str,
) -> Vec<T> {
    let mut cache = auth::AccessCache::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let seen = match name(&item).parse() {
            Ok(r) => auth::may_repo_cached(
                &state.registry,
                &caller.principal,
                &r,
                Action::Pull,
                &mut cache,
            )
            .await
            .unwrap_or(false),
            Err(_) => false,
        };
        if seen {
            out.push(item);
        }
    }
    out
}

/// Creating a namespace needs `manage` on it: registry administrators, or
/// tokens whose scopes cover it.
pub(super) async fn may_create_namespace(
    state: &AppState,
    caller: &Caller,
    ns: &str,
) -> Result<()> {
    if caller.principal.is_admin() {
        return Ok(());
    }
    crate::authorize::require_ns(state, caller, ns, Action::Manage).await
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
        Api::Me => me(state, caller).await,
        Api::UserCreate => create_user(state, read_json(req).await?).await,
        Api::UserList => list_users(state, &q).await,
        Api::UserUpdate(u) => update_user(state, &u, read_json(req).await?).await,
        Api::UserDelete(u) => delete_user(state, &u).await,
        Api::UserGet(u) => get_user(state, &u).await,
        Api::PasswordChange(u) => change_password(state, caller, &u, read_json(req).await?).await,
        Api::GrantList(ns) => list_grants(state, &ns).await,
        Api::GrantPut(ns, u) => put_grant(state, caller, &ns, &u, read_json(req).await?).await,
        Api::GrantDelete(ns, u) => delete_grant(state, caller, &ns, &u).await,
        Api::GrantGet(ns, u) => get_grant(state, &ns, &u).await,
        Api::TokenCreate => create_token(state, caller, read_json(req).await?).await,
        Api::TokenList => list_tokens(state, &q).await,
        Api::TokenDelete(id) => delete_token(state, &id).await,
        Api::TokenGet(id) => get_token(state, &id).await,
        Api::SigningKeyRotate => rotate_signing_key(state).await,
        Api::SigningKeyGet => get_signing_key(state).await,
        Api::AuditList => list_audit(state, &q).await,
        other => Err(MgmtError::internal(format!(
            "{} is not an access-control operation",
            crate::endpoint::Endpoint::Api(other).route_label()
        ))),
    }
}

// ---------------------------------------------------------------------
// Handlers

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
