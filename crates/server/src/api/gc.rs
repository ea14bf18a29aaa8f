//! `/api/v1/gc`: starting garbage collection and reading its runs.

use super::*;

#[utoipa::path(post, path = "/api/v1/gc", tag = "garbage-collection", request_body = StartGc,
    responses(
        (status = 202, description = "Run started; poll GET /api/v1/gc/runs/{id}", body = GcRun),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 409, description = "A run is in progress", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
pub(super) async fn start_gc(state: &AppState, s: StartGc) -> Result<Response<Body>> {
    let run = state
        .registry
        .gc_start(
            berth_store::GcOptions {
                dry_run: s.dry_run,
                delete_untagged: s.delete_untagged,
                apply_retention: s.apply_retention,
            },
            "api",
        )
        .await?;
    Ok(json_response(StatusCode::ACCEPTED, &gc_run_dto(run)))
}

#[utoipa::path(get, path = "/api/v1/gc/runs", tag = "garbage-collection",
    params(
        ("page" = Option<u64>, Query, description = "Page number, from 1", minimum = 1),
        ("page_size" = Option<u64>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100)),
    responses(
        (status = 200, description = "Runs, most recent first", body = GcRunList),
        (status = 400, description = "Invalid pagination", body = ErrorBody)))]
pub(super) async fn list_gc_runs(state: &AppState, q: &Query) -> Result<Response<Body>> {
    let page = q.page()?;
    let all = state.registry.gc_runs().await?;
    let total_count = all.len() as u64;
    let runs = paginate(all, page).into_iter().map(gc_run_dto).collect();
    Ok(json_response(
        StatusCode::OK,
        &GcRunList { runs, total_count },
    ))
}

#[utoipa::path(get, path = "/api/v1/gc/runs/{id}", tag = "garbage-collection",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run", body = GcRun),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub(super) async fn get_gc_run(state: &AppState, id: &str) -> Result<Response<Body>> {
    Ok(json_response(
        StatusCode::OK,
        &gc_run_dto(state.registry.gc_run_get(id).await?),
    ))
}
