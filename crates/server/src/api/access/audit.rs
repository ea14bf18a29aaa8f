//! `/api/v1/audit`: the audit log.

use super::*;

#[utoipa::path(get, path = "/api/v1/audit", tag = "access",
    params(
        ("page" = Option<u64>, Query, description = "Page number, from 1", minimum = 1),
        ("page_size" = Option<u64>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100)),
    responses(
        (status = 200, description = "Audit log, newest first", body = AuditList),
        (status = 400, description = "Invalid pagination", body = ErrorBody)))]
pub(super) async fn list_audit(state: &AppState, q: &Query) -> Result<Response<Body>> {
    let (page, size) = q.page()?;
    let skip = ((page - 1).saturating_mul(size)) as usize;
    let (rows, total) = state.registry.audit_page(skip, size as usize).await?;
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
