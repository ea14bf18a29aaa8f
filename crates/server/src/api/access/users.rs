//! `/api/v1/me` and `/api/v1/users`: who the caller is, and the users.

use super::*;

#[utoipa::path(get, path = "/api/v1/me", tag = "access",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No credentials", body = ErrorBody)))]
pub(super) async fn me(state: &AppState, caller: &Caller) -> Result<Response<Body>> {
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
                .grants(None)
                .await?
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
pub(super) async fn list_users(state: &AppState, q: &Query) -> Result<Response<Body>> {
    let page = q.page()?;
    let all = state.registry.users().await?;
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
pub(super) async fn create_user(state: &AppState, c: CreateUser) -> Result<Response<Body>> {
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
pub(super) async fn get_user(state: &AppState, user: &str) -> Result<Response<Body>> {
    let u = state
        .registry
        .user(user)
        .await?
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
pub(super) async fn update_user(
    state: &AppState,
    user: &str,
    u: UpdateUser,
) -> Result<Response<Body>> {
    let reg = &state.registry;
    let mut info = reg
        .user(user)
        .await?
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
pub(super) async fn delete_user(state: &AppState, user: &str) -> Result<Response<Body>> {
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
pub(super) async fn change_password(
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
