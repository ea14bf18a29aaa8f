//! The management API under `/api/v1`: namespaces, repositories,
//! artifacts, tags and registry settings, as JSON.
//!
//! Operations arrive parsed ([`crate::endpoint::Api`]) and authorised;
//! repository names are resolved here: given relative to the namespace
//! (`web` in namespace `acme` is `acme/web`) or in full (`acme/web`).

pub mod access;
mod convert;
pub mod dto;
mod gc;
mod gc_items;
pub(crate) mod lookup;
mod namespaces;
mod registry;
mod repositories;
mod retention;
mod validate;
mod webhooks;

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
use convert::*;
use dto::*;
use gc::*;
pub(crate) use lookup::resolve_repo;
use namespaces::*;
use registry::*;
use repositories::*;
use retention::*;
use webhooks::*;

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
    doc.merge(webhooks::RegistryWebhooksDoc::openapi());
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
            &settings_dto(reg.settings().await?),
        )),
        Api::NamespaceCreate => create_namespace(state, caller, &host, read_json(req).await?).await,
        Api::NamespaceList => list_namespaces(state, caller, &host, &q).await,
        Api::NamespaceUpdate(ns) => {
            update_namespace(state, &host, &ns, read_json(req).await?).await
        }
        Api::NamespaceDelete(ns) => delete_namespace(state, caller, &host, &ns).await,
        Api::NamespaceGet(ns) => get_namespace(state, caller, &host, &ns).await,
        Api::RepositoryList(ns) => list_repositories(state, caller, &ns, &q).await,
        Api::RepositoryDelete(ns, repo) => delete_repository(state, caller, &ns, &repo).await,
        Api::RepositoryGet(ns, repo) => get_repository(state, &ns, &repo).await,
        Api::ArtifactList(ns, repo) => list_artifacts(state, &ns, &repo, &q).await,
        Api::ArtifactDelete(ns, repo, d) => delete_artifact(state, caller, &ns, &repo, &d).await,
        Api::ArtifactGet(ns, repo, d) => get_artifact(state, &ns, &repo, &d).await,
        Api::ArtifactDeleteRequest(ns, repo, d) => {
            let d = d.ok_or_else(|| {
                MgmtError::invalid("digest", "give the artifact as ?digest=sha256:<hex>")
            })?;
            delete_request(state, caller, &ns, &repo, &d).await
        }
        Api::TagList(ns, repo) => list_tags(state, &ns, &repo, &q).await,
        Api::TagDelete(ns, repo, t) => delete_tag(state, caller, &ns, &repo, &t).await,
        Api::TagGet(ns, repo, t) => get_tag(state, &ns, &repo, &t).await,
        Api::GcStart => start_gc(state, read_json(req).await?).await,
        Api::RetentionSet(ns) => put_retention(state, &ns, read_json(req).await?).await,
        Api::RetentionGet(ns) => get_retention(state, &ns).await,
        Api::RetentionPreview(ns) => preview_retention(state, caller, &ns).await,
        Api::RetentionRun(ns) => run_retention(state, &ns).await,
        Api::GcRunList => list_gc_runs(state, &q).await,
        Api::GcRunGet(id) => get_gc_run(state, &id).await,
        Api::GcRunManifests(id) => gc_items::list_gc_run_manifests(state, &id, &q).await,
        Api::GcRunBlobs(id) => gc_items::list_gc_run_blobs(state, &id, &q).await,
        Api::UsageHistory => Ok(crate::usage::handle(state, caller).await),
        Api::WebhookList(scope) => list_webhooks(state, scope.as_deref()).await,
        Api::WebhookCreate(scope) => {
            create_webhook(state, caller, scope.as_deref(), read_json(req).await?).await
        }
        Api::WebhookGet(scope, id) => get_webhook(state, scope.as_deref(), &id).await,
        Api::WebhookUpdate(scope, id) => {
            update_webhook(state, scope.as_deref(), &id, read_json(req).await?).await
        }
        Api::WebhookDelete(scope, id) => delete_webhook(state, scope.as_deref(), &id).await,
        Api::WebhookTest(scope, id) => test_webhook(state, caller, scope.as_deref(), &id).await,
        Api::WebhookRotateSecret(scope, id) => {
            rotate_webhook_secret(state, scope.as_deref(), &id).await
        }
        Api::DeliveryList(scope, id) => list_deliveries(state, scope.as_deref(), &id, &q).await,
        Api::DeliveryRedeliver(scope, id, d) => redeliver(state, scope.as_deref(), &id, &d).await,
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
        run_retention,
        list_webhooks,
        create_webhook,
        get_webhook,
        update_webhook,
        delete_webhook,
        test_webhook,
        rotate_webhook_secret,
        list_deliveries,
        redeliver
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

async fn region(state: &AppState) -> Result<String> {
    Ok(state.registry.settings().await?.region)
}

/// A namespace's figures as the caller may see them: over the repositories
/// it may pull. Callers who see every repository get the namespace's own
/// deduplicated size; others the sum over what they see, so nothing about
/// hidden repositories shows through.
async fn visible_figures(state: &AppState, caller: &Caller, n: &mut NamespaceInfo) -> Result<()> {
    if caller.principal.is_admin() {
        return Ok(());
    }
    let repos = state.registry.repositories(&n.name).await?;
    let total = repos.len();
    let seen = access::seen_repos(state, caller, repos, |r| &r.name).await;
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
            "/api/v1/namespaces/{namespace}/webhooks",
            "/api/v1/namespaces/{namespace}/webhooks/{id}/deliveries/{delivery}/redeliver",
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
