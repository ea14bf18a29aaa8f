//! `/api/v1/namespaces/{namespace}/grants`: roles on a namespace.

use super::*;

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/grants", tag = "access",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    responses(
        (status = 200, description = "Roles granted on the namespace", body = GrantList),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
pub(super) async fn list_grants(state: &AppState, ns: &str) -> Result<Response<Body>> {
    state.registry.namespace(ns).await?;
    let grants: Vec<Grant> = state
        .registry
        .grants(Some(ns))
        .await?
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
pub(super) async fn get_grant(state: &AppState, ns: &str, user: &str) -> Result<Response<Body>> {
    let g = state
        .registry
        .grants(Some(ns))
        .await?
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
pub(super) async fn put_grant(
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
    )
    .await;
    Ok(json_response(StatusCode::OK, &grant_dto(g)))
}

#[utoipa::path(delete, path = "/api/v1/namespaces/{namespace}/grants/{user}", tag = "access",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("user" = String, Path, description = "User name", example = "alice")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such role", body = ErrorBody)))]
pub(super) async fn delete_grant(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    user: &str,
) -> Result<Response<Body>> {
    state.registry.revoke(ns, user).await?;
    auth::record(state, caller, "revoke", &format!("{ns}:{user}"), "").await;
    Ok(no_content())
}
