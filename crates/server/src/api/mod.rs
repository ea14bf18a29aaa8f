//! The management API under `/api/v1`: namespaces, repositories,
//! artifacts, tags and registry settings, as JSON.
//!
//! Requests are parsed into a [`Route`] first, like `/v2`. Repository names
//! contain slashes: they may be given raw (`.../repositories/team/web/tags`)
//! or URL-encoded (`team%2Fweb`), and relative to the namespace (`web` in
//! namespace `acme` is `acme/web`) or in full (`acme/web`).

pub mod access;
pub mod dto;
mod gc_items;

use crate::body::Incoming;
use berth_oci::{Digest, Reference, RepoName, Tag as OciTag};
use berth_store::{
    ArtifactInfo, NamespaceInfo, NamespaceStatus, RegistrySettings as StoreSettings, RepoSummary,
    TagInfo,
};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde::Serialize;
use utoipa::OpenApi;

use crate::auth::Caller;
use crate::endpoint::Api;
use crate::error::MgmtError;
use crate::query::Query;
use crate::{full, AppState, Body};
use dto::*;

/// Largest accepted request body.
pub(crate) const MAX_BODY: usize = 1 << 20;
/// Largest page.
const MAX_PAGE_SIZE: u64 = 100;
const DEFAULT_PAGE_SIZE: u64 = 20;

type Result<T> = std::result::Result<T, MgmtError>;

/// Handles a management operation for `caller`, who was authenticated
/// from the request head and authorised for it. The caller is a parameter,
/// not looked up: a request cannot reach a handler without one.
pub(crate) async fn dispatch(
    state: &AppState,
    caller: &Caller,
    op: Api,
    req: Request<Incoming>,
) -> Response<Body> {
    match route(state, caller, op, req).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

/// The whole OpenAPI document: the routes below, access control, and the
/// security schemes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(access::AccessApiDoc::openapi());
    doc.merge(gc_items::GcItemsApiDoc::openapi());
    access::add_security(&mut doc);
    doc
}

async fn route(
    state: &AppState,
    caller: &Caller,
    op: Api,
    req: Request<Incoming>,
) -> Result<Response<Body>> {
    let q = Query::parse(req.uri().query());
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:5000")
        .to_string();
    let reg = &state.registry;
    match op {
        Api::OpenApi => Ok(json_response(StatusCode::OK, &openapi())),
        Api::RegistryUpdate => patch_registry(state, caller, read_json(req).await?).await,
        Api::RegistryGet => Ok(json_response(
            StatusCode::OK,
            &settings_dto(reg.settings()?),
        )),
        Api::NamespaceCreate => create_namespace(state, caller, &host, read_json(req).await?).await,
        Api::NamespaceList => list_namespaces(state, caller, &host, &q),
        Api::NamespaceUpdate(ns) => {
            update_namespace(state, &host, &ns, read_json(req).await?).await
        }
        Api::NamespaceDelete(ns) => delete_namespace(state, &host, &ns).await,
        Api::NamespaceGet(ns) => get_namespace(state, caller, &host, &ns),
        Api::RepositoryList(ns) => list_repositories(state, caller, &ns, &q),
        Api::RepositoryDelete(ns, repo) => delete_repository(state, &ns, &repo).await,
        Api::RepositoryGet(ns, repo) => get_repository(state, &ns, &repo),
        Api::ArtifactList(ns, repo) => list_artifacts(state, &ns, &repo, &q),
        Api::ArtifactDelete(ns, repo, d) => delete_artifact(state, &ns, &repo, &d).await,
        Api::ArtifactGet(ns, repo, d) => get_artifact(state, &ns, &repo, &d),
        Api::ArtifactDeleteRequest(ns, repo, d) => {
            let d = d.ok_or_else(|| {
                MgmtError::invalid("digest", "give the artifact as ?digest=sha256:<hex>")
            })?;
            delete_request(state, &ns, &repo, &d).await
        }
        Api::TagList(ns, repo) => list_tags(state, &ns, &repo, &q),
        Api::TagDelete(ns, repo, t) => delete_tag(state, &ns, &repo, &t).await,
        Api::TagGet(ns, repo, t) => get_tag(state, &ns, &repo, &t),
        Api::GcStart => start_gc(state, read_json(req).await?).await,
        Api::RetentionSet(ns) => put_retention(state, &ns, read_json(req).await?).await,
        Api::RetentionGet(ns) => get_retention(state, &ns),
        Api::RetentionPreview(ns) => preview_retention(state, caller, &ns),
        Api::RetentionRun(ns) => run_retention(state, &ns).await,
        Api::GcRunList => list_gc_runs(state, &q),
        Api::GcRunGet(id) => get_gc_run(state, &id),
        Api::GcRunManifests(id) => gc_items::list_gc_run_manifests(state, &id, &q),
        Api::GcRunBlobs(id) => gc_items::list_gc_run_blobs(state, &id, &q),
        // Served before the management API's dispatch (its samples are read
        // on the blocking pool).
        Api::UsageHistory => Ok(crate::usage::handle(state, caller).await),
        Api::Me
        | Api::UserList
        | Api::UserCreate
        | Api::UserGet(_)
        | Api::UserUpdate(_)
        | Api::UserDelete(_)
        | Api::PasswordChange(_)
        | Api::GrantList(_)
        | Api::GrantGet(..)
        | Api::GrantPut(..)
        | Api::GrantDelete(..)
        | Api::TokenList
        | Api::TokenCreate
        | Api::TokenGet(_)
        | Api::TokenDelete(_)
        | Api::SigningKeyGet
        | Api::SigningKeyRotate
        | Api::AuditList => access::handle(state, caller, op, req).await,
    }
}

/// The OpenAPI document, generated from the handlers and DTOs below.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Berth management API",
        description = "Namespaces, repositories, artifacts, tags and registry settings of a Berth registry.",
        license(name = "Apache-2.0")
    ),
    paths(
        get_registry_doc,
        patch_registry,
        list_namespaces,
        create_namespace,
        get_namespace,
        update_namespace,
        delete_namespace,
        list_repositories,
        get_repository,
        delete_repository,
        list_artifacts,
        get_artifact,
        delete_artifact,
        delete_request,
        list_tags,
        get_tag,
        delete_tag,
        start_gc,
        list_gc_runs,
        get_gc_run,
        get_retention,
        put_retention,
        preview_retention,
        run_retention
    )
)]
pub struct ApiDoc;

fn json_response<T: Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    let body = serde_json::to_vec(v).expect("serialisable");
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len())
        .body(full(body))
        .expect("valid response")
}

fn no_content() -> Response<Body> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(full(Bytes::new()))
        .expect("valid response")
}

async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    let bytes = limited
        .collect()
        .await
        .map_err(|e| {
            MgmtError::payload_too_large(format!(
                "request body rejected: {e} (limit {MAX_BODY} bytes)"
            ))
        })?
        .to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| MgmtError::invalid("body", format!("invalid JSON body: {e}")))?;
    // serde maps JSON arrays onto structs by position; bodies are objects.
    if !value.is_object() {
        return Err(MgmtError::invalid("body", "the body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| MgmtError::invalid("body", format!("invalid JSON body: {e}")))
}

impl Query {
    /// `page` (from 1) and `page_size` (1 to 100, default 20).
    fn page(&self) -> Result<(u64, u64)> {
        let num = |k: &str, default: u64| -> Result<u64> {
            match self.get(k) {
                None => Ok(default),
                Some(v) => v.parse::<u64>().map_err(|_| {
                    MgmtError::invalid(k, format!("{k} must be a positive integer, got {v:?}"))
                }),
            }
        };
        let page = num("page", 1)?;
        let size = num("page_size", DEFAULT_PAGE_SIZE)?;
        if page == 0 {
            return Err(MgmtError::invalid("page", "page starts at 1"));
        }
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(MgmtError::invalid(
                "page_size",
                format!("page_size must be between 1 and {MAX_PAGE_SIZE}, got {size}"),
            ));
        }
        Ok((page, size))
    }

    fn order_by(&self, allowed: &[&str], default: &str) -> Result<String> {
        let v = self.get("order_by").unwrap_or(default);
        if allowed.contains(&v) {
            Ok(v.to_string())
        } else {
            Err(MgmtError::invalid(
                "order_by",
                format!("order_by must be one of {}, got {v:?}", allowed.join(", ")),
            ))
        }
    }
}

fn paginate<T>(items: Vec<T>, (page, size): (u64, u64)) -> Vec<T> {
    let skip = ((page - 1).saturating_mul(size)) as usize;
    items.into_iter().skip(skip).take(size as usize).collect()
}

/// RFC 3339 from milliseconds since the epoch.
fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn namespace_dto(n: NamespaceInfo, host: &str, region: &str) -> Namespace {
    Namespace {
        id: n.record.id,
        endpoint: format!("{host}/{}", n.name),
        name: n.name,
        description: n.record.description,
        project_id: n.record.project_id,
        status: n.record.status.as_str().to_string(),
        status_message: n.record.status_message,
        is_public: n.record.is_public,
        size: n.size,
        image_count: n.repo_count,
        region: region.to_string(),
        created_at: rfc3339(n.record.created_at),
        updated_at: rfc3339(n.record.updated_at.max(n.record.created_at)),
    }
}

fn repository_dto(r: RepoSummary) -> Repository {
    let namespace = r.name.split('/').next().unwrap_or(&r.name).to_string();
    Repository {
        namespace,
        name: r.name,
        tag_count: r.tag_count,
        artifact_count: r.artifact_count,
        size: r.size,
        latest_tag: r.latest_tag,
        last_push: r.record.last_push.map(rfc3339),
        last_pull: r.record.last_pull.map(rfc3339),
        created_at: rfc3339(r.record.created_at),
    }
}

fn tag_dto(t: TagInfo) -> Tag {
    Tag {
        name: t.name,
        digest: t.digest.to_string(),
        pushed_at: rfc3339(t.pushed_at),
    }
}

fn artifact_dto(a: ArtifactInfo) -> Artifact {
    let r = a.record;
    let image = r.image;
    let history = |h: &berth_oci::HistoryEntry| History {
        created: h.created.clone(),
        created_by: h.created_by.clone(),
        comment: h.comment.clone(),
    };
    let layer = |b: &berth_store::BlobRef, h: Option<&berth_oci::HistoryEntry>| Layer {
        digest: b.digest.to_string(),
        media_type: b.media_type.clone(),
        size: b.size,
        annotations: b.annotations.clone(),
        history: h.map(history),
    };
    Artifact {
        digest: a.digest.to_string(),
        media_type: r.media_type,
        artifact_type: r.artifact_type,
        size: a.size,
        tags: a.tags,
        platforms: a
            .platforms
            .into_iter()
            .map(|p| Platform {
                os: p.os,
                architecture: p.architecture,
                variant: p.variant,
            })
            .collect(),
        subject: r.subject.map(|s| s.to_string()),
        pushed_at: rfc3339(r.pushed_at),
        last_pull: r.last_pull.map(rfc3339),
        image_id: r.config.as_ref().map(|c| c.digest.to_string()),
        config: r.config.as_ref().map(|c| layer(c, None)),
        platform: image.as_ref().map(|i| Platform {
            os: i.os.clone(),
            architecture: i.architecture.clone(),
            variant: i.variant.clone(),
        }),
        layers: r
            .layers
            .iter()
            .enumerate()
            .map(|(n, b)| layer(b, image.as_ref().and_then(|i| i.layer_history.get(n))))
            .collect(),
        empty_history: image
            .as_ref()
            .map(|i| i.empty_history.iter().map(history).collect())
            .unwrap_or_default(),
    }
}

fn settings_dto(s: StoreSettings) -> RegistrySettings {
    RegistrySettings {
        name: s.name,
        region: s.region,
        garbage_collection_schedule: s.garbage_collection_schedule.map(|g| GcSchedule {
            days: g.days,
            time: g.time,
        }),
        api_subnet_allow_list: s.api_subnet_allow_list,
        features: Features {
            vulnerability_scanning: Toggle {
                enabled: s.features.vulnerability_scanning.enabled,
            },
        },
    }
}

fn region(state: &AppState) -> Result<String> {
    Ok(state.registry.settings()?.region)
}

/// Finds a repository given relative to its namespace or in full.
pub(crate) fn resolve_repo(state: &AppState, ns: &str, repo: &str) -> Result<RepoName> {
    let reg = &state.registry;
    reg.namespace(ns)?;
    let mut candidates = vec![format!("{ns}/{repo}")];
    if repo == ns || repo.starts_with(&format!("{ns}/")) {
        candidates.push(repo.to_string());
    }
    for c in &candidates {
        if let Ok(name) = c.parse::<RepoName>() {
            if reg.repo_exists(&name)? {
                return Ok(name);
            }
        }
    }
    Err(repo_not_found(ns, repo))
}

/// The answer for a repository that does not exist, and, word for word,
/// for one the caller may not see.
pub(crate) fn repo_not_found(ns: &str, repo: &str) -> MgmtError {
    MgmtError::not_found(format!(
        "repository {repo:?} does not exist in namespace {ns:?}"
    ))
}

/// A namespace's figures as the caller may see them: over the repositories
/// it may pull. Callers who see every repository get the namespace's own
/// deduplicated size; others the sum over what they see, so nothing about
/// hidden repositories shows through.
fn visible_figures(state: &AppState, caller: &Caller, n: &mut NamespaceInfo) -> Result<()> {
    if caller.principal.is_admin() {
        return Ok(());
    }
    let repos = state.registry.repositories(&n.name)?;
    let total = repos.len();
    let seen: Vec<_> = repos
        .into_iter()
        .filter(|r| access::sees_repo(state, caller, &r.name))
        .collect();
    if seen.len() != total {
        n.repo_count = seen.len() as u64;
        n.size = seen.iter().map(|r| r.size).sum();
    }
    Ok(())
}

fn parse_digest(d: &str) -> Result<Digest> {
    d.parse::<Digest>()
        .map_err(|e| MgmtError::invalid("digest", e.to_string()))
}

#[utoipa::path(get, path = "/api/v1/registry", tag = "registry",
    description = "Registry administrators only (the settings include the allow-list).",
    responses((status = 200, description = "Current settings", body = RegistrySettings)))]
#[allow(dead_code)]
fn get_registry_doc() {}

#[utoipa::path(patch, path = "/api/v1/registry", tag = "registry", request_body = PatchRegistry,
    description = "Registry administrators only. `api_subnet_allow_list`: CIDRs allowed to reach the registry (every plane but /healthz); empty = everyone. A bare address means /32 or /128; host bits are cleared. WARNING: a list containing 0.0.0.0/0 DENIES ALL TRAFFIC, IPv4 and IPv6. `::/0` admits every IPv6 client and no IPv4 one; `::ffff:a.b.c.d/N` is the IPv4 network a.b.c.d/(N-96). A list that would shut out the caller's own address answers 409 unless the body has \"confirm_lockout\": true. Locked out: stop the server and run `berth auth clear-allow-list --data-dir <dir>`.",
    responses(
        (status = 200, description = "Updated settings", body = RegistrySettings),
        (status = 409, description = "The new allow-list would shut out the caller's own address; resend with confirm_lockout", body = ErrorBody),
        (status = 400, description = "Invalid value; the field is named", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
async fn patch_registry(
    state: &AppState,
    caller: &Caller,
    p: PatchRegistry,
) -> Result<Response<Body>> {
    let reg = &state.registry;
    let mut s = reg.settings()?;
    if let Some(n) = p.name {
        s.name = n;
    }
    if let Some(r) = p.region {
        s.region = r;
    }
    if let Some(g) = p.garbage_collection_schedule {
        s.garbage_collection_schedule = g.map(|g| berth_store::GcSchedule {
            days: g.days,
            time: g.time,
        });
    }
    if let Some(a) = p.api_subnet_allow_list {
        let a: Vec<String> = a
            .iter()
            .map(|c| berth_store::normalize_cidr(c).unwrap_or_else(|| c.clone()))
            .collect();
        // Refuse to lock the caller out by mistake: recovering needs the
        // server stopped and `berth auth clear-allow-list` on its data.
        if !p.confirm_lockout
            && a.iter().all(|c| berth_store::parse_cidr(c).is_some())
            && !crate::auth::list_admits(&a, caller.addr)
        {
            return Err(MgmtError::lockout(
                format!(
                    "this allow-list would shut out your own address {} (0.0.0.0/0 denies everyone; ::/0 admits IPv6 clients only); add your address, or send \"confirm_lockout\": true to apply it anyway (recovery: stop the server and run `berth auth clear-allow-list --data-dir <dir>`)",
                    caller.addr
                ),
            ));
        }
        s.api_subnet_allow_list = a;
    }
    if let Some(f) = p.features {
        s.features.vulnerability_scanning.enabled = f.vulnerability_scanning.enabled;
    }
    reg.settings_put(&s).await?;
    Ok(json_response(
        StatusCode::OK,
        &settings_dto(reg.settings()?),
    ))
}

const NS_ORDERS: [&str; 6] = [
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
fn list_namespaces(
    state: &AppState,
    caller: &Caller,
    host: &str,
    q: &Query,
) -> Result<Response<Body>> {
    let page = q.page()?;
    let order = q.order_by(&NS_ORDERS, "created_at_asc")?;
    let region = region(state)?;
    let mut all: Vec<NamespaceInfo> = state
        .registry
        .namespaces()?
        .into_iter()
        .filter(|n| q.get("name").is_none_or(|f| n.name == f))
        .filter(|n| q.get("project_id").is_none_or(|f| n.record.project_id == f))
        .filter(|n| access::sees_namespace(state, caller, &n.name))
        .collect();
    all.sort_by(|a, b| {
        let by_name = a.name.cmp(&b.name);
        match order.as_str() {
            "created_at_desc" => b.record.created_at.cmp(&a.record.created_at).then(by_name),
            "name_asc" => by_name,
            "name_desc" => by_name.reverse(),
            "status_asc" => a.record.status.cmp(&b.record.status).then(by_name),
            "status_desc" => b.record.status.cmp(&a.record.status).then(by_name),
            _ => a.record.created_at.cmp(&b.record.created_at).then(by_name),
        }
    });
    let total_count = all.len() as u64;
    let mut namespaces = Vec::new();
    for mut n in paginate(all, page) {
        visible_figures(state, caller, &mut n)?;
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
async fn create_namespace(
    state: &AppState,
    caller: &Caller,
    host: &str,
    c: CreateNamespace,
) -> Result<Response<Body>> {
    access::may_create_namespace(state, caller, &c.name)?;
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
        &namespace_dto(n, host, &region(state)?),
    ))
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}", tag = "namespaces",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    responses(
        (status = 200, description = "The namespace", body = Namespace),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
fn get_namespace(
    state: &AppState,
    caller: &Caller,
    host: &str,
    ns: &str,
) -> Result<Response<Body>> {
    let mut n = state.registry.namespace(ns)?;
    visible_figures(state, caller, &mut n)?;
    Ok(json_response(
        StatusCode::OK,
        &namespace_dto(n, host, &region(state)?),
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
async fn update_namespace(
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
        &namespace_dto(n, host, &region(state)?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/namespaces/{namespace}", tag = "namespaces",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    responses(
        (status = 202, description = "Deletion started: repositories are gone at once, the rest follows in the background", body = Namespace),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn delete_namespace(state: &AppState, host: &str, ns: &str) -> Result<Response<Body>> {
    let before = state.registry.namespace(ns)?;
    state.registry.namespace_delete(ns).await?;
    state.registry.grants_drop_namespace(ns).await?;
    let mut n = before;
    n.record.status = NamespaceStatus::Deleting;
    n.record.status_message = "deletion in progress".into();
    n.size = 0;
    n.repo_count = 0;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &namespace_dto(n, host, &region(state)?),
    ))
}

const REPO_ORDERS: [&str; 8] = [
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
fn list_repositories(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    q: &Query,
) -> Result<Response<Body>> {
    let page = q.page()?;
    let order = q.order_by(&REPO_ORDERS, "name_asc")?;
    let mut all = state.registry.repositories(ns)?;
    all.retain(|r| access::sees_repo(state, caller, &r.name));
    all.sort_by(|a, b| {
        let by_name = a.name.cmp(&b.name);
        match order.as_str() {
            "name_desc" => by_name.reverse(),
            "created_at_asc" => a.record.created_at.cmp(&b.record.created_at).then(by_name),
            "created_at_desc" => b.record.created_at.cmp(&a.record.created_at).then(by_name),
            "last_push_asc" => a.record.last_push.cmp(&b.record.last_push).then(by_name),
            "last_push_desc" => b.record.last_push.cmp(&a.record.last_push).then(by_name),
            "size_asc" => a.size.cmp(&b.size).then(by_name),
            "size_desc" => b.size.cmp(&a.size).then(by_name),
            _ => by_name,
        }
    });
    let total_count = all.len() as u64;
    let repositories = paginate(all, page)
        .into_iter()
        .map(repository_dto)
        .collect();
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
fn get_repository(state: &AppState, ns: &str, repo: &str) -> Result<Response<Body>> {
    let name = resolve_repo(state, ns, repo)?;
    let d = state.registry.repository(&name)?;
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
async fn delete_repository(state: &AppState, ns: &str, repo: &str) -> Result<Response<Body>> {
    let name = resolve_repo(state, ns, repo)?;
    state.registry.repository_delete(&name).await?;
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
fn list_artifacts(state: &AppState, ns: &str, repo: &str, q: &Query) -> Result<Response<Body>> {
    let page = q.page()?;
    let name = resolve_repo(state, ns, repo)?;
    let all = state.registry.artifacts(&name)?;
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

fn find_artifact(state: &AppState, name: &RepoName, digest: &str) -> Result<ArtifactInfo> {
    let d = parse_digest(digest)?;
    state
        .registry
        .artifacts(name)?
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
fn get_artifact(state: &AppState, ns: &str, repo: &str, digest: &str) -> Result<Response<Body>> {
    let name = resolve_repo(state, ns, repo)?;
    Ok(json_response(
        StatusCode::OK,
        &artifact_dto(find_artifact(state, &name, digest)?),
    ))
}

async fn remove_artifact(
    state: &AppState,
    ns: &str,
    repo: &str,
    digest: &str,
) -> Result<Response<Body>> {
    let name = resolve_repo(state, ns, repo)?;
    let d = parse_digest(digest)?;
    state
        .registry
        .manifest_delete(&name, &Reference::Digest(d))
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
async fn delete_artifact(
    state: &AppState,
    ns: &str,
    repo: &str,
    digest: &str,
) -> Result<Response<Body>> {
    remove_artifact(state, ns, repo, digest).await
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
async fn delete_request(
    state: &AppState,
    ns: &str,
    repo: &str,
    digest: &str,
) -> Result<Response<Body>> {
    remove_artifact(state, ns, repo, digest).await
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
fn list_tags(state: &AppState, ns: &str, repo: &str, q: &Query) -> Result<Response<Body>> {
    let page = q.page()?;
    let name = resolve_repo(state, ns, repo)?;
    let all = state.registry.tag_list(&name)?;
    let total_count = all.len() as u64;
    let tags = paginate(all, page).into_iter().map(tag_dto).collect();
    Ok(json_response(
        StatusCode::OK,
        &TagList { tags, total_count },
    ))
}

fn parse_tag(t: &str) -> Result<OciTag> {
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
fn get_tag(state: &AppState, ns: &str, repo: &str, tag: &str) -> Result<Response<Body>> {
    let name = resolve_repo(state, ns, repo)?;
    let t = parse_tag(tag)?;
    let found = state
        .registry
        .tag_list(&name)?
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
async fn delete_tag(state: &AppState, ns: &str, repo: &str, tag: &str) -> Result<Response<Body>> {
    let name = resolve_repo(state, ns, repo)?;
    let t = parse_tag(tag)?;
    state
        .registry
        .manifest_delete(&name, &Reference::Tag(t))
        .await?;
    Ok(no_content())
}

fn gc_run_dto(r: berth_store::GcRun) -> GcRun {
    GcRun {
        id: r.id,
        status: r.status,
        trigger: r.trigger,
        dry_run: r.options.dry_run,
        delete_untagged: r.options.delete_untagged,
        started_at: rfc3339(r.started_at),
        finished_at: r.finished_at.map(rfc3339),
        report: r.report.map(|g| GcReport {
            dry_run: g.dry_run,
            manifests_deleted: g.manifests_deleted,
            blobs_deleted: g.blobs_deleted,
            bytes_freed: g.bytes_freed,
            uploads_expired: g.uploads_expired,
            blobs_in_grace: g.blobs_in_grace,
            retention_deleted: g.retention_deleted,
            duration_ms: g.duration_ms,
        }),
        error: r.error,
    }
}

#[utoipa::path(post, path = "/api/v1/gc", tag = "garbage-collection", request_body = StartGc,
    responses(
        (status = 202, description = "Run started; poll GET /api/v1/gc/runs/{id}", body = GcRun),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 409, description = "A run is in progress", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
async fn start_gc(state: &AppState, s: StartGc) -> Result<Response<Body>> {
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
fn list_gc_runs(state: &AppState, q: &Query) -> Result<Response<Body>> {
    let page = q.page()?;
    let all = state.registry.gc_runs()?;
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
fn get_gc_run(state: &AppState, id: &str) -> Result<Response<Body>> {
    Ok(json_response(
        StatusCode::OK,
        &gc_run_dto(state.registry.gc_run_get(id)?),
    ))
}

fn policy_to_store(p: RetentionPolicy) -> berth_store::RetentionPolicy {
    berth_store::RetentionPolicy {
        repositories: p.repositories,
        keep_last: p.keep_last,
        older_than_days: p.older_than_days,
        include_tags: p.include_tags,
        exclude_tags: p.exclude_tags,
        untagged_older_than_days: p.untagged_older_than_days,
    }
}

fn policy_dto(p: berth_store::RetentionPolicy) -> RetentionPolicy {
    RetentionPolicy {
        repositories: p.repositories,
        keep_last: p.keep_last,
        older_than_days: p.older_than_days,
        include_tags: p.include_tags,
        exclude_tags: p.exclude_tags,
        untagged_older_than_days: p.untagged_older_than_days,
    }
}

fn plan_dto(p: berth_store::RetentionPlan) -> RetentionPlan {
    RetentionPlan {
        tags: p
            .tags
            .into_iter()
            .map(|t| RetentionTag {
                repository: t.repository,
                tag: t.tag,
                digest: t.digest.to_string(),
                pushed_at: rfc3339(t.pushed_at),
            })
            .collect(),
        untagged: p
            .untagged
            .into_iter()
            .map(|a| RetentionArtifact {
                repository: a.repository,
                digest: a.digest.to_string(),
                pushed_at: rfc3339(a.pushed_at),
            })
            .collect(),
    }
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/retention", tag = "retention",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    responses(
        (status = 200, description = "The namespace's retention policies", body = RetentionPolicies),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
fn get_retention(state: &AppState, ns: &str) -> Result<Response<Body>> {
    let policies = state
        .registry
        .retention_policies(ns)?
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
async fn put_retention(
    state: &AppState,
    ns: &str,
    body: RetentionPolicies,
) -> Result<Response<Body>> {
    let policies: Vec<_> = body.policies.into_iter().map(policy_to_store).collect();
    state.registry.retention_set(ns, &policies).await?;
    get_retention(state, ns)
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/retention/preview", tag = "retention",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    responses(
        (status = 200, description = "Exactly what a run would delete now", body = RetentionPlan),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
fn preview_retention(state: &AppState, caller: &Caller, ns: &str) -> Result<Response<Body>> {
    let mut plan = state.registry.retention_preview(ns)?;
    // Only what the caller may pull: a preview names tags and digests.
    plan.tags
        .retain(|t| access::sees_repo(state, caller, &t.repository));
    plan.untagged
        .retain(|a| access::sees_repo(state, caller, &a.repository));
    Ok(json_response(StatusCode::OK, &plan_dto(plan)))
}

#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/retention/run", tag = "retention",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    responses(
        (status = 200, description = "What was deleted; garbage collection reclaims the bytes", body = RetentionPlan),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
async fn run_retention(state: &AppState, ns: &str) -> Result<Response<Body>> {
    Ok(json_response(
        StatusCode::OK,
        &plan_dto(state.registry.retention_run(ns).await?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_covers_every_route() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/api/v1/registry",
            "/api/v1/namespaces",
            "/api/v1/namespaces/{namespace}",
            "/api/v1/namespaces/{namespace}/repositories",
            "/api/v1/namespaces/{namespace}/repositories/{repository}",
            "/api/v1/namespaces/{namespace}/repositories/{repository}/artifacts",
            "/api/v1/namespaces/{namespace}/repositories/{repository}/artifacts/{digest}",
            "/api/v1/namespaces/{namespace}/repositories/{repository}/delete-request",
            "/api/v1/namespaces/{namespace}/repositories/{repository}/tags",
            "/api/v1/namespaces/{namespace}/repositories/{repository}/tags/{tag}",
            "/api/v1/gc",
            "/api/v1/gc/runs",
            "/api/v1/gc/runs/{id}",
            "/api/v1/namespaces/{namespace}/retention",
            "/api/v1/namespaces/{namespace}/retention/preview",
            "/api/v1/namespaces/{namespace}/retention/run",
        ] {
            assert!(
                paths.contains_key(p),
                "{p} missing from the OpenAPI document"
            );
        }
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    }

    #[test]
    fn rfc3339_formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.5Z");
    }
}
