//! What a garbage-collection run deleted (or, dry, would delete), item by
//! item and page by page: a run over a large registry can name many
//! thousands of manifests and blobs, too many for the run's own document.

use http::{Response, StatusCode};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::dto::ErrorBody;
use super::{json_response, paginate, Query, Result};
use crate::{AppState, Body};

/// A manifest a run deleted or would delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct GcManifest {
    /// Full repository name.
    pub repository: String,
    /// Manifest digest.
    pub digest: String,
    /// Tags pointing at it.
    pub tags: Vec<String>,
    /// Why it goes.
    pub reason: String,
}

/// A blob a run deleted or would delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct GcBlob {
    /// Digest.
    pub digest: String,
    /// Bytes.
    pub size: u64,
}

/// A page of a run's manifests.
#[derive(Debug, Serialize, ToSchema)]
pub struct GcManifestList {
    /// This page, ordered by repository then digest.
    pub manifests: Vec<GcManifest>,
    /// Over all pages.
    pub total_count: u64,
}

/// A page of a run's blobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct GcBlobList {
    /// This page, ordered by digest.
    pub blobs: Vec<GcBlob>,
    /// Over all pages.
    pub total_count: u64,
}

#[derive(OpenApi)]
#[openapi(paths(list_gc_run_manifests, list_gc_run_blobs))]
pub(super) struct GcItemsApiDoc;

async fn report(state: &AppState, id: &str) -> Result<berth_store::GcReport> {
    Ok(state
        .registry
        .gc_run_get(id)
        .await?
        .report
        .unwrap_or_default())
}

#[utoipa::path(get, path = "/api/v1/gc/runs/{id}/manifests", tag = "garbage-collection",
    params(
        ("id" = String, Path, description = "Run id"),
        ("page" = Option<u64>, Query, description = "Page number, from 1", minimum = 1),
        ("page_size" = Option<u64>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100)),
    responses(
        (status = 200, description = "Manifests the run deleted (dry run: would delete), with tags and why; empty while running", body = GcManifestList),
        (status = 400, description = "Invalid pagination", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub(super) async fn list_gc_run_manifests(
    state: &AppState,
    id: &str,
    q: &Query,
) -> Result<Response<Body>> {
    let page = q.page()?;
    let all = report(state, id).await?.manifests;
    let total_count = all.len() as u64;
    let manifests = paginate(all, page)
        .into_iter()
        .map(|m| GcManifest {
            repository: m.repository,
            digest: m.digest,
            tags: m.tags,
            reason: m.reason,
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &GcManifestList {
            manifests,
            total_count,
        },
    ))
}

#[utoipa::path(get, path = "/api/v1/gc/runs/{id}/blobs", tag = "garbage-collection",
    params(
        ("id" = String, Path, description = "Run id"),
        ("page" = Option<u64>, Query, description = "Page number, from 1", minimum = 1),
        ("page_size" = Option<u64>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100)),
    responses(
        (status = 200, description = "Blobs the run deleted (dry run: would delete); empty while running", body = GcBlobList),
        (status = 400, description = "Invalid pagination", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub(super) async fn list_gc_run_blobs(
    state: &AppState,
    id: &str,
    q: &Query,
) -> Result<Response<Body>> {
    let page = q.page()?;
    let all = report(state, id).await?.blobs;
    let total_count = all.len() as u64;
    let blobs = paginate(all, page)
        .into_iter()
        .map(|b| GcBlob {
            digest: b.digest,
            size: b.size,
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &GcBlobList { blobs, total_count },
    ))
}
