//! The `/v2` distribution API handlers.

use berth_oci::{media_type, ByteRange, Digest, ErrorCode, Reference, RepoName};
use berth_store::{ByteStream, Error as StoreError};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, BodyStream, Empty, StreamBody};
use hyper::body::Frame;

use crate::body::Incoming;
use crate::metrics::Throttle;

use crate::auth::{self, Caller};
use crate::endpoint::V2;
use crate::error::ApiError;
use crate::query::Query;
use crate::{full, AppState, Body};

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
const DOCKER_UPLOAD_UUID: &str = "docker-upload-uuid";
use crate::error::API_VERSION;
/// Catalog pages are capped so one request cannot walk a huge registry.
const CATALOG_MAX: usize = 1000;
/// Tag lists without `n` return everything up to this many, with a `Link`
/// header past it.
const TAGS_MAX: usize = 100_000;

type Result<T> = std::result::Result<T, ApiError>;

/// `GET /v2/_catalog`'s answer.
#[derive(serde::Serialize)]
struct CatalogBody<'a> {
    repositories: &'a [String],
}

/// `GET /v2/<name>/tags/list`'s answer.
#[derive(serde::Serialize)]
struct TagsBody<'a> {
    name: &'a str,
    tags: &'a [String],
}

/// Handles a `/v2` operation for `caller`, who was authenticated from the
/// request head and authorised for it. The caller is a parameter, not
/// looked up: a request that reaches here without one cannot be written.
pub(crate) async fn dispatch(
    state: &AppState,
    caller: &Caller,
    op: V2,
    req: Request<Incoming>,
) -> Response<Body> {
    match route(state, caller, op, req).await {
        Ok(r) => r,
        Err(e) => crate::error::oci_response(e),
    }
}

/// Every `/v2` and `/healthz` answer, errors included: the API version
/// header, and no body for HEAD (its headers, `Content-Length` included,
/// stay).
pub(crate) fn finish(mut resp: Response<Body>, is_head: bool) -> Response<Body> {
    resp.headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    if is_head {
        let (parts, _) = resp.into_parts();
        resp = Response::from_parts(
            parts,
            Empty::new().map_err(|never| match never {}).boxed_unsync(),
        );
    }
    resp
}

/// `GET /healthz`.
pub(crate) fn health() -> Response<Body> {
    build(
        Response::builder().header(CONTENT_TYPE, "text/plain"),
        full("ok\n"),
    )
    .unwrap_or_else(crate::error::oci_response)
}

/// Finishes a response. Header values may come from stored data (a
/// manifest's media type); one that cannot be sent is a server fault,
/// logged and answered 500, never a panic of the connection task.
fn build(b: http::response::Builder, body: Body) -> Result<Response<Body>> {
    b.body(body).map_err(build_failed)
}

async fn route(
    state: &AppState,
    caller: &Caller,
    op: V2,
    req: Request<Incoming>,
) -> Result<Response<Body>> {
    let q = Query::parse(req.uri().query());
    let reg = &state.registry;
    match op {
        V2::Base => Ok(json(StatusCode::OK, "{}".to_string())),
        V2::Catalog => {
            let n = q.n(CATALOG_MAX)?.min(CATALOG_MAX);
            let last = q.get("last");
            let page = auth::catalog(state, caller, last, n).await?;
            let link = next_page(&page, &format!("/v2/_catalog?n={n}"));
            // Serialised straight from the page: no JSON tree of copies.
            let body = serde_json::to_string(&CatalogBody {
                repositories: &page.items,
            })
            .expect("a list of strings always serialises");
            Ok(with_link(json(StatusCode::OK, body), link))
        }
        V2::TagList(repo) => tag_list(state, &repo, &q).await,
        V2::Referrers(repo, subject) => {
            let filter = q.get("artifactType");
            let manifests = reg.referrers(&repo, &subject, filter).await?;
            let body = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media_type::OCI_INDEX,
                "manifests": manifests,
            })
            .to_string();
            let mut r = Response::builder()
                .header(CONTENT_TYPE, media_type::OCI_INDEX)
                .header(CONTENT_LENGTH, body.len());
            if filter.is_some() {
                r = r.header("oci-filters-applied", "artifactType");
            }
            build(r, full(body))
        }
        V2::ManifestGet(repo, reference) => get_manifest(state, &repo, &reference, false).await,
        V2::ManifestHead(repo, reference) => get_manifest(state, &repo, &reference, true).await,
        V2::ManifestPut(repo, reference) => {
            put_manifest(state, caller, &repo, &reference, req).await
        }
        V2::ManifestDelete(repo, reference) => {
            reg.manifest_delete_by(&repo, &reference, &caller.event_context())
                .await?;
            Ok(accepted())
        }
        V2::ManifestMissing { why, .. } => Err(ApiError::new(
            ErrorCode::ManifestUnknown,
            format!("manifest unknown: {why}"),
        )),
        V2::BlobGet(repo, digest) => get_blob(state, &repo, &digest, req.headers(), false).await,
        V2::BlobHead(repo, digest) => get_blob(state, &repo, &digest, req.headers(), true).await,
        V2::BlobDelete(repo, digest) => {
            reg.blob_unlink(&repo, &digest).await?;
            Ok(accepted())
        }
        V2::UploadStart { repo, .. } => start_upload(state, caller, &repo, &q, req).await,
        V2::UploadStatus(repo, id) => {
            let st = reg.upload_status(&repo, &id).await?;
            Ok(upload_response(
                StatusCode::NO_CONTENT,
                &repo,
                &st.id,
                st.size,
            ))
        }
        V2::UploadChunk(repo, id) => {
            let _slot = upload_slot(state, caller)?;
            let start = content_range_start(req.headers())?;
            let (body, len) = body_stream(req);
            let st = reg.upload_append(&repo, &id, start, body, len).await?;
            Ok(upload_response(
                StatusCode::ACCEPTED,
                &repo,
                &st.id,
                st.size,
            ))
        }
        V2::UploadFinish(repo, id) => {
            let digest = q.digest()?.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::DigestInvalid,
                    "PUT must name the blob's digest: ?digest=<algorithm>:<hex>",
                )
            })?;
            let _slot = upload_slot(state, caller)?;
            let (body, len) = body_stream(req);
            reg.upload_finish(&repo, &id, &digest, Some((body, len)))
                .await?;
            Ok(blob_created(&repo, &digest))
        }
        V2::UploadCancel(repo, id) => {
            reg.upload_cancel(&repo, &id).await?;
            build(
                Response::builder().status(StatusCode::NO_CONTENT),
                full(Bytes::new()),
            )
        }
    }
}

async fn start_upload(
    state: &AppState,
    caller: &Caller,
    repo: &RepoName,
    q: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>> {
    let reg = &state.registry;
    if let Some(mount) = q.get("mount") {
        let digest: Digest = mount.parse().map_err(|e: berth_oci::DigestError| {
            ApiError::new(ErrorCode::DigestInvalid, e.to_string())
        })?;
        // Mount only from a repository the caller may pull from; without
        // `from` (containerd) the blob is looked for among those. A refused
        // mount falls back to a fresh session, revealing nothing.
        if let Some(from) = auth::mount_source(state, caller, &digest, q.get("from")).await? {
            if reg.blob_mount(repo, &digest, from.as_ref()).await? {
                return Ok(blob_created(repo, &digest));
            }
        }
        let st = reg.upload_start(repo).await?;
        return Ok(upload_response(StatusCode::ACCEPTED, repo, &st.id, st.size));
    }
    if let Some(digest) = q.digest()? {
        let _slot = upload_slot(state, caller)?;
        let (body, len) = body_stream(req);
        reg.blob_put(repo, &digest, body, len).await?;
        return Ok(blob_created(repo, &digest));
    }
    let st = reg.upload_start(repo).await?;
    Ok(upload_response(StatusCode::ACCEPTED, repo, &st.id, st.size))
}

async fn get_blob(
    state: &AppState,
    repo: &RepoName,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<Body>> {
    let reg = &state.registry;
    let size = reg.blob_size(repo, digest).await?;
    let range = match headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(r) => match ByteRange::parse_get_range(r, size) {
            Ok(Some(r)) => Some(r),
            Ok(None) => {
                return Err(ApiError::new(
                    ErrorCode::RangeInvalid,
                    format!("range {r} is outside the blob's {size} bytes"),
                )
                .with_header(CONTENT_RANGE, format!("bytes */{size}")))
            }
            Err(e) => {
                return Err(ApiError::new(ErrorCode::RangeInvalid, e.to_string())
                    .with_header(CONTENT_RANGE, format!("bytes */{size}")))
            }
        },
    };
    let len = range.map(|r| r.len()).unwrap_or(size);
    if !head && len > 0 {
        if let Some(url) = reg.blob_redirect(digest).await? {
            // The client fetches the bytes from the bucket (its Range
            // header goes along); what Berth answered for, it checked.
            return build(
                Response::builder()
                    .status(StatusCode::TEMPORARY_REDIRECT)
                    .header(LOCATION, url)
                    .header(DOCKER_CONTENT_DIGEST, digest.to_string())
                    .header(CONTENT_LENGTH, 0),
                full(Bytes::new()),
            );
        }
    }
    let mut b = Response::builder()
        .header(CONTENT_LENGTH, len)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(DOCKER_CONTENT_DIGEST, digest.to_string())
        .header("accept-ranges", "bytes")
        .header("etag", format!("\"{digest}\""));
    if let Some(r) = range {
        b = b
            .status(StatusCode::PARTIAL_CONTENT)
            .header(CONTENT_RANGE, format!("bytes {}-{}/{size}", r.start, r.end));
    }
    if head || len == 0 {
        return build(b, full(Bytes::new()));
    }
    let read = reg.blob_read(repo, digest, range).await?;
    let stream = read.body.map(|r| {
        r.map(Frame::data)
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
    });
    build(b, BodyExt::boxed_unsync(StreamBody::new(stream)))
}

async fn get_manifest(
    state: &AppState,
    repo: &RepoName,
    reference: &Reference,
    head: bool,
) -> Result<Response<Body>> {
    let reg = &state.registry;
    let m = if head {
        reg.manifest_head(repo, reference).await?
    } else {
        reg.manifest_get(repo, reference).await?
    };
    build(
        Response::builder()
            .header(CONTENT_TYPE, m.media_type.as_str())
            .header(CONTENT_LENGTH, m.size)
            .header(DOCKER_CONTENT_DIGEST, m.digest.to_string())
            .header("etag", format!("\"{}\"", m.digest)),
        full(m.bytes),
    )
}

async fn put_manifest(
    state: &AppState,
    caller: &Caller,
    repo: &RepoName,
    reference: &Reference,
    req: Request<Incoming>,
) -> Result<Response<Body>> {
    let limit = state.registry.config().max_manifest_bytes;
    // The media type is stored and served back as Content-Type: it must be
    // a valid one (RFC 6838), parameters allowed and then dropped.
    let content_type = match req.headers().get(CONTENT_TYPE) {
        None => None,
        Some(v) => {
            let text = v
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|t| t.is_empty() || media_type::is_valid(t))
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::ManifestInvalid,
                        format!(
                            "Content-Type {:?} is not a valid media type (type/subtype, RFC 6838)",
                            String::from_utf8_lossy(v.as_bytes())
                        ),
                    )
                })?;
            Some(text.split(';').next().unwrap_or("").trim().to_string())
        }
    };
    let (mut body, declared) = body_stream(req);
    if let Some(len) = declared.filter(|l| *l > limit) {
        drain(body).await;
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("manifest is {len} bytes; the limit is {limit} bytes"),
        ));
    }
    // The manifest is buffered whole: reserve its bytes (the limit when no
    // length is declared) in the registry-wide budget first.
    let budget = state.config.max_manifest_bytes_in_flight;
    let want = crate::limits::manifest_permits(declared.unwrap_or(limit))
        .min(crate::limits::manifest_permits(budget)) as u32;
    let _budget = state.manifest_bytes.try_acquire_many(want).map_err(|_| {
        state.metrics.throttled(Throttle::manifest_bytes);
        ApiError::new(
            ErrorCode::TooManyRequests,
            format!(
                "{budget} bytes of manifests are being received already (server.max_manifest_bytes_in_flight); retry shortly"
            ),
        )
        .with_header(http::header::RETRY_AFTER, "1".to_string())
    })?;
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk?);
        if buf.len() as u64 > limit {
            drain(body).await;
            return Err(ApiError::new(
                ErrorCode::TooLarge,
                format!("manifest is over the {limit}-byte limit"),
            ));
        }
    }
    let put = state
        .registry
        .manifest_put_by(
            repo,
            reference,
            content_type.as_deref(),
            buf.freeze(),
            &caller.event_context(),
        )
        .await?;
    let mut r = Response::builder()
        .status(StatusCode::CREATED)
        .header(LOCATION, format!("/v2/{repo}/manifests/{}", put.digest))
        .header(DOCKER_CONTENT_DIGEST, put.digest.to_string())
        .header(CONTENT_LENGTH, 0);
    if let Some(s) = put.subject {
        r = r.header("oci-subject", s.to_string());
    }
    build(r, full(Bytes::new()))
}

/// Reads and discards what is left of a rejected body (up to a bound), so
/// the client finishes sending and reads the error instead of a reset.
async fn drain(mut body: ByteStream) {
    const MAX_DRAIN: usize = 64 << 20;
    let mut n = 0;
    while let Some(Ok(c)) = body.next().await {
        n += c.len();
        if n > MAX_DRAIN {
            break;
        }
    }
}

/// A place among the uploads receiving bytes: one of the registry's and
/// one of the caller's own share.
struct UploadSlot<'a> {
    _global: tokio::sync::SemaphorePermit<'a>,
    _client: crate::limits::ClientSlot,
    _counted: crate::metrics::UploadGuard,
}

/// A place among the uploads receiving bytes, or 429 when all are taken or
/// the caller already has its share.
fn upload_slot<'a>(state: &'a AppState, caller: &Caller) -> Result<UploadSlot<'a>> {
    let busy = |msg: String| {
        ApiError::new(ErrorCode::TooManyRequests, msg)
            .with_header(http::header::RETRY_AFTER, "1".to_string())
    };
    let global = state.uploads.try_acquire().map_err(|_| {
        state.metrics.throttled(Throttle::uploads);
        busy(format!(
            "{} uploads are receiving data already (server.max_concurrent_uploads); retry shortly",
            state.config.max_concurrent_uploads
        ))
    })?;
    let max = state.config.max_concurrent_uploads_per_client;
    let client = state
        .client_uploads
        .try_acquire(crate::limits::client_key(caller), max)
        .ok_or_else(|| {
            state.metrics.throttled(Throttle::client_uploads);
            busy(format!(
                "you have {max} uploads receiving data already (server.max_concurrent_uploads_per_client); finish one, then retry"
            ))
        })?;
    Ok(UploadSlot {
        _global: global,
        _client: client,
        _counted: state.metrics.upload_started(),
    })
}

/// `GET /v2/<name>/tags/list`. The whole listing (no `n`, no `last`) is
/// answered from [`crate::tag_cache::TagLists`] while the repository's
/// tags version is the one it was built under.
async fn tag_list(state: &AppState, repo: &RepoName, q: &Query) -> Result<Response<Body>> {
    let whole = q.get("n").is_none_or(str::is_empty) && q.get("last").is_none();
    // Read before the tags, so a change landing meanwhile leaves what is
    // built here under a version that is already gone.
    let version = match whole {
        true => Some(state.registry.tags_version(repo).await?),
        false => None,
    };
    if let Some(body) = version.and_then(|v| state.tag_lists.get(repo.as_str(), v)) {
        return Ok(json(StatusCode::OK, body));
    }
    let n = q.n(TAGS_MAX)?.min(TAGS_MAX);
    let page = state.registry.tags(repo, q.get("last"), n).await?;
    let link = next_page(&page, &format!("/v2/{repo}/tags/list?n={n}"));
    let body = Bytes::from(
        serde_json::to_vec(&TagsBody {
            name: repo.as_str(),
            tags: &page.items,
        })
        .expect("a list of strings always serialises"),
    );
    if let (Some(v), false) = (version, page.more) {
        state.tag_lists.insert(repo.as_str(), v, body.clone());
    }
    Ok(with_link(json(StatusCode::OK, body), link))
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let body = body.into();
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len())
        .body(full(body))
        .unwrap_or_else(internal)
}

fn with_link(mut r: Response<Body>, link: Option<String>) -> Response<Body> {
    if let Some(l) = link {
        if let Ok(v) = HeaderValue::from_str(&format!("<{l}>; rel=\"next\"")) {
            r.headers_mut().insert("link", v);
        }
    }
    r
}

fn accepted() -> Response<Body> {
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(CONTENT_LENGTH, 0)
        .body(full(Bytes::new()))
        .unwrap_or_else(internal)
}

/// The 500 answered when a response cannot be built.
fn internal(e: http::Error) -> Response<Body> {
    crate::error::oci_response(build_failed(e))
}

fn build_failed(e: http::Error) -> ApiError {
    tracing::error!(error = %e, "response could not be built");
    ApiError::new(
        ErrorCode::Unknown,
        "the response could not be built; see the server log",
    )
}

fn blob_created(repo: &RepoName, digest: &Digest) -> Response<Body> {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(LOCATION, format!("/v2/{repo}/blobs/{digest}"))
        .header(DOCKER_CONTENT_DIGEST, digest.to_string())
        .header(CONTENT_LENGTH, 0)
        .body(full(Bytes::new()))
        .unwrap_or_else(internal)
}

fn upload_response(status: StatusCode, repo: &RepoName, id: &str, size: u64) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(LOCATION, format!("/v2/{repo}/blobs/uploads/{id}"))
        .header(RANGE, format!("0-{}", size.saturating_sub(1)))
        .header(DOCKER_UPLOAD_UUID, id)
        .header(CONTENT_LENGTH, 0)
        .body(full(Bytes::new()))
        .unwrap_or_else(internal)
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

fn content_range_start(h: &HeaderMap) -> Result<Option<u64>> {
    match h.get(CONTENT_RANGE) {
        None => Ok(None),
        Some(v) => {
            let s = v.to_str().map_err(|_| {
                ApiError::new(ErrorCode::RangeInvalid, "Content-Range is not ASCII")
            })?;
            let r = ByteRange::parse_content_range(s)
                .map_err(|e| ApiError::new(ErrorCode::RangeInvalid, e.to_string()))?;
            if let Some(len) = content_length(h) {
                if len != r.len() {
                    return Err(ApiError::new(
                        ErrorCode::SizeInvalid,
                        format!(
                            "Content-Range {s} covers {} bytes but Content-Length is {len}",
                            r.len()
                        ),
                    ));
                }
            }
            Ok(Some(r.start))
        }
    }
}

/// The request body as a store byte stream, with the declared length.
fn body_stream(req: Request<Incoming>) -> (ByteStream, Option<u64>) {
    let len = content_length(req.headers());
    let stream = BodyStream::new(req.into_body())
        .filter_map(|frame| async move {
            match frame {
                Ok(f) => f.into_data().ok().map(Ok),
                Err(e) => Some(Err(StoreError::BodyRead {
                    message: e.to_string(),
                })),
            }
        })
        .boxed();
    (stream, len)
}

/// The `Link` target of the page after `page`: `first` (a path with `n`)
/// and the last name listed; none when the listing ended.
fn next_page(page: &berth_store::Page, first: &str) -> Option<String> {
    let last = page.items.last().filter(|_| page.more)?;
    Some(format!("{first}&last={}", enc(last)))
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Query {
    fn n(&self, default: usize) -> Result<usize> {
        match self.get("n") {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| ApiError::malformed(format!("n={v:?} is not a non-negative integer"))),
        }
    }

    fn digest(&self) -> Result<Option<Digest>> {
        match self.get("digest") {
            None => Ok(None),
            Some(d) => d.parse().map(Some).map_err(|e: berth_oci::DigestError| {
                ApiError::new(ErrorCode::DigestInvalid, e.to_string())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_value_that_cannot_be_a_header_gives_500_not_a_panic() {
        let b = Response::builder().header(CONTENT_TYPE, "application/x\u{1}y");
        let e = build(b, full(Bytes::new())).unwrap_err();
        assert_eq!(e.status, 500);
        assert_eq!(e.code, ErrorCode::Unknown);
    }
}
