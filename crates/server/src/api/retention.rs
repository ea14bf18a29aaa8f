//! A namespace's retention policies: reading, replacing, previewing and
//! running them.

use super::*;

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/retention", tag = "retention",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    responses(
        (status = 200, description = "The namespace's retention policies", body = RetentionPolicies),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
pub(super) async fn get_retention(state: &AppState, ns: &str) -> Result<Response<Body>> {
    let policies = state
        .registry
        .retention_policies(ns)
        .await?
        .into_iter()
        .map(policy_dto)
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &RetentionPolicies { policies },
    ))
}

#[utoipa::path(put, path = "/api/v1/namespaces/{namespace}/retention", tag = "retention",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    request_body = RetentionPolicies,
    responses(
        (status = 200, description = "Policies replaced", body = RetentionPolicies),
        (status = 400, description = "Invalid policy; the field is named", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
pub(super) async fn put_retention(
    state: &AppState,
    ns: &str,
    body: RetentionPolicies,
) -> Result<Response<Body>> {
    validate::policies(&body.policies)?;
    let policies: Vec<_> = body.policies.into_iter().map(policy_to_store).collect();
    state.registry.retention_set(ns, &policies).await?;
    get_retention(state, ns).await
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/retention/preview", tag = "retention",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    responses(
        (status = 200, description = "Exactly what a run would delete now", body = RetentionPlan),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
pub(super) async fn preview_retention(
    state: &AppState,
    caller: &Caller,
    ns: &str,
) -> Result<Response<Body>> {
    let mut plan = state.registry.retention_preview(ns).await?;
    // Only what the caller may pull: a preview names tags and digests.
    plan.tags = access::seen_repos(state, caller, plan.tags, |t| &t.repository).await;
    plan.untagged = access::seen_repos(state, caller, plan.untagged, |a| &a.repository).await;
    Ok(json_response(StatusCode::OK, &plan_dto(plan)))
}

#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/retention/run", tag = "retention",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    responses(
        (status = 200, description = "What was deleted; garbage collection reclaims the bytes", body = RetentionPlan),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
pub(super) async fn run_retention(state: &AppState, ns: &str) -> Result<Response<Body>> {
    Ok(json_response(
        StatusCode::OK,
        &plan_dto(state.registry.retention_run(ns).await?),
    ))
}
