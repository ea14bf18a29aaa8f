//! Repositories, their artifacts and their tags.

use super::*;

pub(super) const REPO_ORDERS: [&str; 8] = [
    "name_asc",
    "name_desc",
    "created_at_asc",
    "created_at_desc",
    "last_push_asc",
    "last_push_desc",
    "size_asc",
    "size_desc",
];

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/repositories", tag = "repositories",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("page" = Option<u64>, Query, description = "Page number, from 1", minimum = 1),
        ("page_size" = Option<u64>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("order_by" = Option<String>, Query, description = "name_asc (default), name_desc, created_at_asc, created_at_desc, last_push_asc, last_push_desc, size_asc, size_desc")),
    responses(
        (status = 200, description = "A page of repositories", body = RepositoryList),
        (status = 400, description = "Invalid pagination or order", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
pub(super) async fn list_repositories(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    q: &Query,
) -> Result<Response<Body>> {
    let page = q.page()?;
    let order = q.order_by(&REPO_ORDERS, "name_asc")?;
    let records = state.registry.repository_records(ns).await?;
    let records = access::seen_repos(state, caller, records, |(r, _)| r.as_str()).await;
    // Figures cost scans of each repository's tags and links: computed for
    // the page only, unless the order is by size.
    let by_size = order.starts_with("size_");
    let mut sizes = std::collections::HashMap::new();
    if by_size {
        for s in state.registry.repository_summaries(records.clone()).await? {
            sizes.insert(s.name.clone(), s);
        }
    }
    let size = |r: &RepoName| sizes.get(r.as_str()).map_or(0, |s| s.size);
    let mut all = records;
    all.sort_by(|(a, ar), (b, br)| {
        let by_name = a.as_str().cmp(b.as_str());
        match order.as_str() {
            "name_desc" => by_name.reverse(),
            "created_at_asc" => ar.created_at.cmp(&br.created_at).then(by_name),
            "created_at_desc" => br.created_at.cmp(&ar.created_at).then(by_name),
            "last_push_asc" => ar.last_push.cmp(&br.last_push).then(by_name),
            "last_push_desc" => br.last_push.cmp(&ar.last_push).then(by_name),
            "size_asc" => size(a).cmp(&size(b)).then(by_name),
            "size_desc" => size(b).cmp(&size(a)).then(by_name),
            _ => by_name,
        }
    });
    let total_count = all.len() as u64;
    let page = paginate(all, page);
    let summaries = match by_size {
        // Already computed; a repository deleted meanwhile has none.
        true => page
            .into_iter()
            .filter_map(|(r, _)| sizes.remove(r.as_str()))
            .collect(),
        false => state.registry.repository_summaries(page).await?,
    };
    let repositories = summaries.into_iter().map(repository_dto).collect();
    Ok(json_response(
        StatusCode::OK,
        &RepositoryList {
            repositories,
            total_count,
        },
    ))
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/repositories/{repository}", tag = "repositories",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("repository" = String, Path, description = "Repository name, relative to the namespace or in full; slashes raw or as %2F", example = "web")),
    responses(
        (status = 200, description = "The repository with tags, artifacts and sizes", body = RepositoryDetail),
        (status = 404, description = "No such namespace or repository", body = ErrorBody)))]
pub(super) async fn get_repository(
    state: &AppState,
    ns: &str,
    repo: &str,
) -> Result<Response<Body>> {
    let name = resolve_repo(state, ns, repo).await?;
    let d = state.registry.repository(&name).await?;
    let size_breakdown = SizeBreakdown {
        total: d.summary.size,
        artifacts: d
            .artifacts
            .iter()
            .map(|a| ArtifactSize {
                digest: a.digest.to_string(),
                size: a.size,
            })
            .collect(),
    };
    Ok(json_response(
        StatusCode::OK,
        &RepositoryDetail {
            repository: repository_dto(d.summary),
            tags: d.tags.into_iter().map(tag_dto).collect(),
            artifacts: d.artifacts.into_iter().map(artifact_dto).collect(),
            size_breakdown,
        },
    ))
}

#[utoipa::path(delete, path = "/api/v1/namespaces/{namespace}/repositories/{repository}", tag = "repositories",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("repository" = String, Path, description = "Repository name, relative or in full", example = "web")),
    responses(
        (status = 204, description = "Deleted with all its tags and artifacts"),
        (status = 404, description = "No such namespace or repository", body = ErrorBody)))]
pub(super) async fn delete_repository(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    repo: &str,
) -> Result<Response<Body>> {
    let name = resolve_repo(state, ns, repo).await?;
    state
        .registry
        .repository_delete_by(&name, &caller.event_context())
        .await?;
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/repositories/{repository}/artifacts", tag = "artifacts",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("repository" = String, Path, description = "Repository name, relative or in full", example = "web"),
        ("page" = Option<u64>, Query, description = "Page number, from 1", minimum = 1),
        ("page_size" = Option<u64>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100)),
    responses(
        (status = 200, description = "Artifacts, most recently pushed first", body = ArtifactList),
        (status = 400, description = "Invalid pagination", body = ErrorBody),
        (status = 404, description = "No such namespace or repository", body = ErrorBody)))]
pub(super) async fn list_artifacts(
    state: &AppState,
    ns: &str,
    repo: &str,
    q: &Query,
) -> Result<Response<Body>> {
    let page = q.page()?;
    let name = resolve_repo(state, ns, repo).await?;
    let all = state.registry.artifacts(&name).await?;
    let total_count = all.len() as u64;
    let artifacts = paginate(all, page).into_iter().map(artifact_dto).collect();
    Ok(json_response(
        StatusCode::OK,
        &ArtifactList {
            artifacts,
            total_count,
        },
    ))
}

pub(super) async fn find_artifact(
    state: &AppState,
    name: &RepoName,
    digest: &str,
) -> Result<ArtifactInfo> {
    let d = parse_digest(digest)?;
    state
        .registry
        .artifacts(name)
        .await?
        .into_iter()
        .find(|a| a.digest == d)
        .ok_or_else(|| MgmtError::not_found(format!("artifact {d} does not exist in {name}")))
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/repositories/{repository}/artifacts/{digest}", tag = "artifacts",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("repository" = String, Path, description = "Repository name, relative or in full", example = "web"),
        ("digest" = String, Path, description = "Manifest digest, sha256:<hex>")),
    responses(
        (status = 200, description = "The artifact", body = Artifact),
        (status = 400, description = "Invalid digest", body = ErrorBody),
        (status = 404, description = "No such namespace, repository or artifact", body = ErrorBody)))]
pub(super) async fn get_artifact(
    state: &AppState,
    ns: &str,
    repo: &str,
    digest: &str,
) -> Result<Response<Body>> {
    let name = resolve_repo(state, ns, repo).await?;
    Ok(json_response(
        StatusCode::OK,
        &artifact_dto(find_artifact(state, &name, digest).await?),
    ))
}

pub(super) async fn remove_artifact(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    repo: &str,
    digest: &str,
) -> Result<Response<Body>> {
    let name = resolve_repo(state, ns, repo).await?;
    let d = parse_digest(digest)?;
    state
        .registry
        .manifest_delete_by(&name, &Reference::Digest(d), &caller.event_context())
        .await?;
    Ok(no_content())
}

#[utoipa::path(delete, path = "/api/v1/namespaces/{namespace}/repositories/{repository}/artifacts/{digest}", tag = "artifacts",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("repository" = String, Path, description = "Repository name, relative or in full", example = "web"),
        ("digest" = String, Path, description = "Manifest digest, sha256:<hex>")),
    responses(
        (status = 204, description = "The artifact and every tag pointing at it are deleted"),
        (status = 400, description = "Invalid digest", body = ErrorBody),
        (status = 404, description = "No such namespace, repository or artifact", body = ErrorBody)))]
pub(super) async fn delete_artifact(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    repo: &str,
    digest: &str,
) -> Result<Response<Body>> {
    remove_artifact(state, caller, ns, repo, digest).await
}

#[utoipa::path(delete, path = "/api/v1/namespaces/{namespace}/repositories/{repository}/delete-request", tag = "artifacts",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("repository" = String, Path, description = "Repository name, relative or in full", example = "web"),
        ("digest" = String, Query, description = "Manifest digest, sha256:<hex>")),
    responses(
        (status = 204, description = "The artifact and every tag pointing at it are deleted"),
        (status = 400, description = "Missing or invalid digest", body = ErrorBody),
        (status = 404, description = "No such namespace, repository or artifact", body = ErrorBody)))]
pub(super) async fn delete_request(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    repo: &str,
    digest: &str,
) -> Result<Response<Body>> {
    remove_artifact(state, caller, ns, repo, digest).await
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/repositories/{repository}/tags", tag = "tags",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("repository" = String, Path, description = "Repository name, relative or in full", example = "web"),
        ("page" = Option<u64>, Query, description = "Page number, from 1", minimum = 1),
        ("page_size" = Option<u64>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100)),
    responses(
        (status = 200, description = "Tags in lexical order", body = TagList),
        (status = 400, description = "Invalid pagination", body = ErrorBody),
        (status = 404, description = "No such namespace or repository", body = ErrorBody)))]
pub(super) async fn list_tags(
    state: &AppState,
    ns: &str,
    repo: &str,
    q: &Query,
) -> Result<Response<Body>> {
    let page = q.page()?;
    let name = resolve_repo(state, ns, repo).await?;
    let all = state.registry.tag_list(&name).await?;
    let total_count = all.len() as u64;
    let tags = paginate(all, page).into_iter().map(tag_dto).collect();
    Ok(json_response(
        StatusCode::OK,
        &TagList { tags, total_count },
    ))
}

pub(super) fn parse_tag(t: &str) -> Result<OciTag> {
    t.parse::<OciTag>()
        .map_err(|e| MgmtError::invalid("tag", e.to_string()))
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/repositories/{repository}/tags/{tag}", tag = "tags",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("repository" = String, Path, description = "Repository name, relative or in full", example = "web"),
        ("tag" = String, Path, description = "Tag name", example = "1")),
    responses(
        (status = 200, description = "The tag", body = Tag),
        (status = 400, description = "Invalid tag", body = ErrorBody),
        (status = 404, description = "No such namespace, repository or tag", body = ErrorBody)))]
pub(super) async fn get_tag(
    state: &AppState,
    ns: &str,
    repo: &str,
    tag: &str,
) -> Result<Response<Body>> {
    let name = resolve_repo(state, ns, repo).await?;
    let t = parse_tag(tag)?;
    let found = state
        .registry
        .tag_list(&name)
        .await?
        .into_iter()
        .find(|x| x.name == t.as_str())
        .ok_or_else(|| MgmtError::not_found(format!("tag {t} does not exist in {name}")))?;
    Ok(json_response(StatusCode::OK, &tag_dto(found)))
}

#[utoipa::path(delete, path = "/api/v1/namespaces/{namespace}/repositories/{repository}/tags/{tag}", tag = "tags",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("repository" = String, Path, description = "Repository name, relative or in full", example = "web"),
        ("tag" = String, Path, description = "Tag name", example = "1")),
    responses(
        (status = 204, description = "The tag is deleted; the artifact stays"),
        (status = 400, description = "Invalid tag", body = ErrorBody),
        (status = 404, description = "No such namespace, repository or tag", body = ErrorBody)))]
pub(super) async fn delete_tag(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    repo: &str,
    tag: &str,
) -> Result<Response<Body>> {
    let name = resolve_repo(state, ns, repo).await?;
    let t = parse_tag(tag)?;
    state
        .registry
        .manifest_delete_by(&name, &Reference::Tag(t), &caller.event_context())
        .await?;
    Ok(no_content())
}
