//! `/api/v1/namespaces`: creating, listing, changing and deleting
//! namespaces.

use super::*;

pub(super) const NS_ORDERS: [&str; 6] = [
    "created_at_asc",
    "created_at_desc",
    "name_asc",
    "name_desc",
    "status_asc",
    "status_desc",
];

#[utoipa::path(get, path = "/api/v1/namespaces", tag = "namespaces",
    params(
        ("page" = Option<u64>, Query, description = "Page number, from 1", minimum = 1),
        ("page_size" = Option<u64>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("order_by" = Option<String>, Query, description = "created_at_asc (default), created_at_desc, name_asc, name_desc, status_asc, status_desc"),
        ("name" = Option<String>, Query, description = "Only the namespace of this exact name"),
        ("project_id" = Option<String>, Query, description = "Only namespaces of this project")),
    responses(
        (status = 200, description = "A page of namespaces", body = NamespaceList),
        (status = 400, description = "Invalid pagination, order or filter", body = ErrorBody)))]
pub(super) async fn list_namespaces(
    state: &AppState,
    caller: &Caller,
    host: &str,
    q: &Query,
) -> Result<Response<Body>> {
    let page = q.page()?;
    let order = q.order_by(&NS_ORDERS, "created_at_asc")?;
    let region = region(state).await?;
    // Records only: figures cost a scan of each namespace's links, so they
    // are computed for the page, not for every namespace.
    let all: Vec<(String, berth_store::NamespaceRecord)> = state
        .registry
        .namespace_records()
        .await?
        .into_iter()
        .filter(|(name, _)| q.get("name").is_none_or(|f| name == f))
        .filter(|(_, rec)| q.get("project_id").is_none_or(|f| rec.project_id == f))
        .collect();
    let mut all = access::seen_namespaces(state, caller, all, |(name, _)| name.as_str()).await;
    all.sort_by(|(a, ar), (b, br)| {
        let by_name = a.cmp(b);
        match order.as_str() {
            "created_at_desc" => br.created_at.cmp(&ar.created_at).then(by_name),
            "name_asc" => by_name,
            "name_desc" => by_name.reverse(),
            "status_asc" => ar.status.cmp(&br.status).then(by_name),
            "status_desc" => br.status.cmp(&ar.status).then(by_name),
            _ => ar.created_at.cmp(&br.created_at).then(by_name),
        }
    });
    let total_count = all.len() as u64;
    let mut namespaces = Vec::new();
    let page = state
        .registry
        .namespace_figures(paginate(all, page))
        .await?;
    for mut n in page {
        visible_figures(state, caller, &mut n).await?;
        namespaces.push(namespace_dto(n, host, &region));
    }
    Ok(json_response(
        StatusCode::OK,
        &NamespaceList {
            namespaces,
            total_count,
        },
    ))
}

#[utoipa::path(post, path = "/api/v1/namespaces", tag = "namespaces", request_body = CreateNamespace,
    responses(
        (status = 201, description = "Created", body = Namespace),
        (status = 400, description = "Invalid name or body", body = ErrorBody),
        (status = 409, description = "A namespace of that name exists", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
pub(super) async fn create_namespace(
    state: &AppState,
    caller: &Caller,
    host: &str,
    c: CreateNamespace,
) -> Result<Response<Body>> {
    access::may_create_namespace(state, caller, &c.name).await?;
    if c.description.len() > 4096 {
        return Err(MgmtError::invalid("description", "at most 4096 bytes"));
    }
    if c.project_id.len() > 256 {
        return Err(MgmtError::invalid("project_id", "at most 256 bytes"));
    }
    let n = state
        .registry
        .namespace_create(&c.name, &c.description, &c.project_id, c.is_public)
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &namespace_dto(n, host, &region(state).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}", tag = "namespaces",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    responses(
        (status = 200, description = "The namespace", body = Namespace),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
pub(super) async fn get_namespace(
    state: &AppState,
    caller: &Caller,
    host: &str,
    ns: &str,
) -> Result<Response<Body>> {
    let mut n = state.registry.namespace(ns).await?;
    visible_figures(state, caller, &mut n).await?;
    Ok(json_response(
        StatusCode::OK,
        &namespace_dto(n, host, &region(state).await?),
    ))
}

#[utoipa::path(patch, path = "/api/v1/namespaces/{namespace}", tag = "namespaces",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    request_body = UpdateNamespace,
    responses(
        (status = 200, description = "Updated", body = Namespace),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 409, description = "The namespace is being deleted", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
pub(super) async fn update_namespace(
    state: &AppState,
    host: &str,
    ns: &str,
    u: UpdateNamespace,
) -> Result<Response<Body>> {
    if u.description.as_ref().is_some_and(|d| d.len() > 4096) {
        return Err(MgmtError::invalid("description", "at most 4096 bytes"));
    }
    let n = state
        .registry
        .namespace_update(ns, u.description.as_deref(), u.is_public)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &namespace_dto(n, host, &region(state).await?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/namespaces/{namespace}", tag = "namespaces",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    responses(
        (status = 202, description = "Deletion started: repositories are gone at once, the rest follows in the background", body = Namespace),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
pub(super) async fn delete_namespace(
    state: &AppState,
    caller: &Caller,
    host: &str,
    ns: &str,
) -> Result<Response<Body>> {
    let before = state.registry.namespace(ns).await?;
    state
        .registry
        .namespace_delete_by(ns, &caller.event_context())
        .await?;
    state.registry.grants_drop_namespace(ns).await?;
    let mut n = before;
    n.record.status = NamespaceStatus::Deleting;
    n.record.status_message = "deletion in progress".into();
    n.size = 0;
    n.repo_count = 0;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &namespace_dto(n, host, &region(state).await?),
    ))
}
