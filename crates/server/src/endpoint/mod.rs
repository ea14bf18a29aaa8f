//! Every request is parsed into one [`Endpoint`] from its method, path and
//! query before anything else is decided about it (garage's router). Each
//! variant is one operation: what it needs is [`Endpoint::required_access`]
//! (decided once, in [`crate::authorize`]), its audit-log action and its
//! access-log label come from it too. `docs/ARCHITECTURE.md` lists them
//! all; a test checks that table against this parser.

pub mod api;
#[cfg(test)]
mod doc_table;
pub mod v2;

use berth_oci::{Digest, ErrorCode, Reference, RepoName};
use http::Method;

pub use self::api::Api;
use crate::error::{ApiError, Failure};

/// Which front end a path belongs to: it decides the error format (OCI
/// JSON or management JSON) and the head limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// `/api/v1`: management JSON.
    Api,
    /// `/auth/token`.
    Token,
    /// `/v2`, `/healthz`, `/readyz`, `/metrics` and every path no other
    /// plane owns.
    V2,
    /// The web console's pages and files.
    Console,
}

impl Plane {
    /// The plane of a request path.
    pub fn of(path: &str) -> Plane {
        if path == "/api/v1" || path.starts_with("/api/v1/") {
            Plane::Api
        } else if path == "/auth/token" {
            Plane::Token
        } else if crate::console::owns(path) {
            Plane::Console
        } else {
            Plane::V2
        }
    }
}

/// A distribution-API operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum V2 {
    /// `GET /v2/`: API version check.
    Base,
    Catalog,
    TagList(RepoName),
    ManifestGet(RepoName, Reference),
    ManifestHead(RepoName, Reference),
    ManifestPut(RepoName, Reference),
    ManifestDelete(RepoName, Reference),
    /// GET, HEAD (`delete` false) or DELETE of a manifest whose reference
    /// is neither a tag nor a digest: a manifest that cannot exist, 404
    /// once the request is authorised like any manifest request.
    ManifestMissing {
        repo: RepoName,
        delete: bool,
        why: String,
    },
    BlobGet(RepoName, Digest),
    BlobHead(RepoName, Digest),
    BlobDelete(RepoName, Digest),
    /// `POST .../blobs/uploads/`; `mount_from` is the valid `from` of a
    /// cross-repository mount (`?mount=<digest>&from=<repo>`).
    UploadStart {
        repo: RepoName,
        mount_from: Option<RepoName>,
    },
    UploadStatus(RepoName, String),
    UploadChunk(RepoName, String),
    UploadFinish(RepoName, String),
    UploadCancel(RepoName, String),
    Referrers(RepoName, Digest),
}

/// What a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /healthz`: the process is up.
    Health,
    /// `GET /readyz`: the metadata and the object store answer.
    Ready,
    /// `GET /metrics`: Prometheus metrics.
    Metrics,
    /// A console page or file (any method: the console answers 405 itself).
    Console,
    /// `GET /auth/token`: a bearer token for Basic credentials or none.
    TokenGet,
    /// `POST /auth/token`: the OAuth2 form (`grant_type=password`).
    TokenPost,
    /// `/v2`.
    V2(V2),
    /// `/api/v1`.
    Api(Api),
}

/// Declares `route_label` (an exhaustive match, so a new variant does not
/// compile without a label) and `ROUTE_LABELS`, the same labels listed.
macro_rules! labels {
    ($($pat:pat => $label:literal,)*) => {
        /// The endpoint's name, as in `docs/ARCHITECTURE.md` and in the
        /// access log's `route` field.
        pub fn route_label(&self) -> &'static str {
            match self {
                $($pat => $label,)*
            }
        }

        /// Every label [`Endpoint::route_label`] can give.
        pub const ROUTE_LABELS: &'static [&'static str] = &[$($label),*];
    };
}

impl Endpoint {
    /// Parses a request: the operation, or the answer for a path that is
    /// no operation (404) or a method the path does not answer (405).
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Endpoint, Failure> {
        match Plane::of(path) {
            Plane::Console => Ok(Endpoint::Console),
            Plane::Api => api::parse(method, path, query)
                .map(Endpoint::Api)
                .map_err(Failure::Api),
            Plane::Token => match *method {
                Method::GET | Method::HEAD => Ok(Endpoint::TokenGet),
                Method::POST => Ok(Endpoint::TokenPost),
                _ => Err(Failure::Oci(ApiError::new(
                    ErrorCode::Unsupported,
                    format!("{method} is not allowed on /auth/token; use GET or POST"),
                ))),
            },
            Plane::V2 => parse_v2(method, path, query).map_err(Failure::Oci),
        }
    }

    labels! {
        Endpoint::Health => "Health",
        Endpoint::Ready => "Ready",
        Endpoint::Metrics => "Metrics",
        Endpoint::Console => "Console",
        Endpoint::TokenGet => "TokenGet",
        Endpoint::TokenPost => "TokenPost",
        Endpoint::V2(V2::Base) => "V2::Base",
        Endpoint::V2(V2::Catalog) => "V2::Catalog",
        Endpoint::V2(V2::TagList(..)) => "V2::TagList",
        Endpoint::V2(V2::ManifestGet(..)) => "V2::ManifestGet",
        Endpoint::V2(V2::ManifestHead(..)) => "V2::ManifestHead",
        Endpoint::V2(V2::ManifestPut(..)) => "V2::ManifestPut",
        Endpoint::V2(V2::ManifestDelete(..)) => "V2::ManifestDelete",
        Endpoint::V2(V2::ManifestMissing { .. }) => "V2::ManifestMissing",
        Endpoint::V2(V2::BlobGet(..)) => "V2::BlobGet",
        Endpoint::V2(V2::BlobHead(..)) => "V2::BlobHead",
        Endpoint::V2(V2::BlobDelete(..)) => "V2::BlobDelete",
        Endpoint::V2(V2::UploadStart { .. }) => "V2::UploadStart",
        Endpoint::V2(V2::UploadStatus(..)) => "V2::UploadStatus",
        Endpoint::V2(V2::UploadChunk(..)) => "V2::UploadChunk",
        Endpoint::V2(V2::UploadFinish(..)) => "V2::UploadFinish",
        Endpoint::V2(V2::UploadCancel(..)) => "V2::UploadCancel",
        Endpoint::V2(V2::Referrers(..)) => "V2::Referrers",
        Endpoint::Api(Api::OpenApi) => "Api::OpenApi",
        Endpoint::Api(Api::RegistryGet) => "Api::RegistryGet",
        Endpoint::Api(Api::RegistryUpdate) => "Api::RegistryUpdate",
        Endpoint::Api(Api::NamespaceList) => "Api::NamespaceList",
        Endpoint::Api(Api::NamespaceCreate) => "Api::NamespaceCreate",
        Endpoint::Api(Api::NamespaceGet(..)) => "Api::NamespaceGet",
        Endpoint::Api(Api::NamespaceUpdate(..)) => "Api::NamespaceUpdate",
        Endpoint::Api(Api::NamespaceDelete(..)) => "Api::NamespaceDelete",
        Endpoint::Api(Api::RepositoryList(..)) => "Api::RepositoryList",
        Endpoint::Api(Api::RepositoryGet(..)) => "Api::RepositoryGet",
        Endpoint::Api(Api::RepositoryDelete(..)) => "Api::RepositoryDelete",
        Endpoint::Api(Api::ArtifactList(..)) => "Api::ArtifactList",
        Endpoint::Api(Api::ArtifactGet(..)) => "Api::ArtifactGet",
        Endpoint::Api(Api::ArtifactDelete(..)) => "Api::ArtifactDelete",
        Endpoint::Api(Api::ArtifactDeleteRequest(..)) => "Api::ArtifactDeleteRequest",
        Endpoint::Api(Api::TagList(..)) => "Api::TagList",
        Endpoint::Api(Api::TagGet(..)) => "Api::TagGet",
        Endpoint::Api(Api::TagDelete(..)) => "Api::TagDelete",
        Endpoint::Api(Api::GcStart) => "Api::GcStart",
        Endpoint::Api(Api::GcRunList) => "Api::GcRunList",
        Endpoint::Api(Api::GcRunGet(..)) => "Api::GcRunGet",
        Endpoint::Api(Api::GcRunManifests(..)) => "Api::GcRunManifests",
        Endpoint::Api(Api::GcRunBlobs(..)) => "Api::GcRunBlobs",
        Endpoint::Api(Api::RetentionGet(..)) => "Api::RetentionGet",
        Endpoint::Api(Api::RetentionSet(..)) => "Api::RetentionSet",
        Endpoint::Api(Api::RetentionPreview(..)) => "Api::RetentionPreview",
        Endpoint::Api(Api::RetentionRun(..)) => "Api::RetentionRun",
        Endpoint::Api(Api::UsageHistory) => "Api::UsageHistory",
        Endpoint::Api(Api::Me) => "Api::Me",
        Endpoint::Api(Api::UserList) => "Api::UserList",
        Endpoint::Api(Api::UserCreate) => "Api::UserCreate",
        Endpoint::Api(Api::UserGet(..)) => "Api::UserGet",
        Endpoint::Api(Api::UserUpdate(..)) => "Api::UserUpdate",
        Endpoint::Api(Api::UserDelete(..)) => "Api::UserDelete",
        Endpoint::Api(Api::PasswordChange(..)) => "Api::PasswordChange",
        Endpoint::Api(Api::GrantList(..)) => "Api::GrantList",
        Endpoint::Api(Api::GrantGet(..)) => "Api::GrantGet",
        Endpoint::Api(Api::GrantPut(..)) => "Api::GrantPut",
        Endpoint::Api(Api::GrantDelete(..)) => "Api::GrantDelete",
        Endpoint::Api(Api::TokenList) => "Api::TokenList",
        Endpoint::Api(Api::TokenCreate) => "Api::TokenCreate",
        Endpoint::Api(Api::TokenGet(..)) => "Api::TokenGet",
        Endpoint::Api(Api::TokenDelete(..)) => "Api::TokenDelete",
        Endpoint::Api(Api::SigningKeyGet) => "Api::SigningKeyGet",
        Endpoint::Api(Api::SigningKeyRotate) => "Api::SigningKeyRotate",
        Endpoint::Api(Api::AuditList) => "Api::AuditList",
        Endpoint::Api(Api::WebhookList(..)) => "Api::WebhookList",
        Endpoint::Api(Api::WebhookCreate(..)) => "Api::WebhookCreate",
        Endpoint::Api(Api::WebhookGet(..)) => "Api::WebhookGet",
        Endpoint::Api(Api::WebhookUpdate(..)) => "Api::WebhookUpdate",
        Endpoint::Api(Api::WebhookDelete(..)) => "Api::WebhookDelete",
        Endpoint::Api(Api::WebhookTest(..)) => "Api::WebhookTest",
        Endpoint::Api(Api::WebhookRotateSecret(..)) => "Api::WebhookRotateSecret",
        Endpoint::Api(Api::DeliveryList(..)) => "Api::DeliveryList",
        Endpoint::Api(Api::DeliveryRedeliver(..)) => "Api::DeliveryRedeliver",
    }

    /// Whether the endpoint answers whatever the allow-list and the
    /// credentials: probes of orchestrators and load balancers, which
    /// send none and come from addresses nobody lists.
    pub fn skips_admission(&self) -> bool {
        matches!(self, Endpoint::Health | Endpoint::Ready)
    }

    /// The audit-log entry a successful request makes (action, target);
    /// `None` for reads and for operations whose handlers record their own
    /// (grants). `path` is the request path: the target of management
    /// changes.
    pub fn audit(&self, path: &str) -> Option<(&'static str, String)> {
        let api = |action: &'static str| Some((action, path.to_string()));
        match self {
            Endpoint::V2(V2::ManifestPut(r, reference)) => {
                Some(("push", format!("{r}:{reference}")))
            }
            Endpoint::V2(V2::ManifestDelete(r, reference)) => {
                Some(("delete", format!("{r}:{reference}")))
            }
            Endpoint::V2(V2::BlobDelete(r, d)) => Some(("blob.delete", format!("{r}@{d}"))),
            Endpoint::V2(_)
            | Endpoint::Health
            | Endpoint::Ready
            | Endpoint::Metrics
            | Endpoint::Console
            | Endpoint::TokenGet
            | Endpoint::TokenPost => None,
            Endpoint::Api(a) => match a {
                Api::RegistryUpdate => api("settings.update"),
                Api::GcStart => api("gc.start"),
                Api::RetentionRun(_) => api("retention.run"),
                Api::RetentionSet(_) => api("retention.update"),
                Api::NamespaceCreate => api("namespace.create"),
                Api::NamespaceUpdate(_) => api("namespace.update"),
                Api::NamespaceDelete(_) => api("namespace.delete"),
                Api::TagDelete(..) => api("tag.delete"),
                Api::ArtifactDelete(..) | Api::ArtifactDeleteRequest(..) => api("artifact.delete"),
                Api::RepositoryDelete(..) => api("repository.delete"),
                Api::PasswordChange(_) => api("user.password"),
                Api::UserCreate => api("user.create"),
                Api::UserUpdate(_) => api("user.update"),
                Api::UserDelete(_) => api("user.delete"),
                Api::TokenCreate => api("token.create"),
                Api::TokenDelete(_) => api("token.revoke"),
                Api::SigningKeyRotate => api("signing_key.rotate"),
                Api::WebhookCreate(_) => api("webhook.create"),
                Api::WebhookUpdate(..) => api("webhook.update"),
                Api::WebhookDelete(..) => api("webhook.delete"),
                Api::WebhookTest(..) => api("webhook.test"),
                Api::WebhookRotateSecret(..) => api("webhook.rotate_secret"),
                Api::DeliveryRedeliver(..) => api("webhook.redeliver"),
                // Grants are recorded by their handlers, with the role.
                Api::GrantPut(..) | Api::GrantDelete(..) => None,
                Api::OpenApi
                | Api::RegistryGet
                | Api::NamespaceList
                | Api::NamespaceGet(_)
                | Api::RepositoryList(_)
                | Api::RepositoryGet(..)
                | Api::ArtifactList(..)
                | Api::ArtifactGet(..)
                | Api::TagList(..)
                | Api::TagGet(..)
                | Api::GcRunList
                | Api::GcRunGet(_)
                | Api::GcRunManifests(_)
                | Api::GcRunBlobs(_)
                | Api::RetentionGet(_)
                | Api::RetentionPreview(_)
                | Api::UsageHistory
                | Api::Me
                | Api::UserList
                | Api::UserGet(_)
                | Api::GrantList(_)
                | Api::GrantGet(..)
                | Api::TokenList
                | Api::TokenGet(_)
                | Api::SigningKeyGet
                | Api::AuditList
                | Api::WebhookList(_)
                | Api::WebhookGet(..)
                | Api::DeliveryList(..) => None,
            },
        }
    }
}

/// The valid `from` of a mount request (`?mount=<digest>&from=<repo>`).
fn mount_from(query: Option<&str>) -> Option<RepoName> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    if !pairs.iter().any(|(k, _)| k == "mount") {
        return None;
    }
    pairs
        .iter()
        .find(|(k, _)| k == "from")
        .and_then(|(_, v)| v.parse().ok())
}

fn parse_v2(method: &Method, path: &str, query: Option<&str>) -> Result<Endpoint, ApiError> {
    use v2::Resource as R;
    let resource = match v2::parse_path(path) {
        Ok(r) => r,
        Err(refused) => {
            let read_or_delete = matches!(*method, Method::GET | Method::HEAD | Method::DELETE);
            return match v2::invalid_manifest_reference(path) {
                Some((repo, why)) if read_or_delete => Ok(Endpoint::V2(V2::ManifestMissing {
                    repo,
                    delete: *method == Method::DELETE,
                    why,
                })),
                _ => Err(refused),
            };
        }
    };
    if !resource.allows(method) {
        return Err(ApiError::new(
            ErrorCode::Unsupported,
            format!("{method} is not allowed on {path}"),
        ));
    }
    let head = *method == Method::HEAD;
    let m = method;
    Ok(Endpoint::V2(match resource {
        R::Health => return Ok(Endpoint::Health),
        R::Ready => return Ok(Endpoint::Ready),
        R::Metrics => return Ok(Endpoint::Metrics),
        R::Base => V2::Base,
        R::Catalog => V2::Catalog,
        R::Tags(r) => V2::TagList(r),
        R::Referrers(r, d) => V2::Referrers(r, d),
        R::Manifest(r, reference) if head => V2::ManifestHead(r, reference),
        R::Manifest(r, reference) if *m == Method::GET => V2::ManifestGet(r, reference),
        R::Manifest(r, reference) if *m == Method::PUT => V2::ManifestPut(r, reference),
        R::Manifest(r, reference) => V2::ManifestDelete(r, reference),
        R::Blob(r, d) if head => V2::BlobHead(r, d),
        R::Blob(r, d) if *m == Method::GET => V2::BlobGet(r, d),
        R::Blob(r, d) => V2::BlobDelete(r, d),
        R::UploadStart(repo) => V2::UploadStart {
            repo,
            mount_from: mount_from(query),
        },
        R::Upload(r, id) if *m == Method::GET => V2::UploadStatus(r, id),
        R::Upload(r, id) if *m == Method::PATCH => V2::UploadChunk(r, id),
        R::Upload(r, id) if *m == Method::PUT => V2::UploadFinish(r, id),
        R::Upload(r, id) => V2::UploadCancel(r, id),
    }))
}
