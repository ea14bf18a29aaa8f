//! `/api/v1` paths: the management API and its access-control routes.
//!
//! Repository names contain slashes: they may be given raw
//! (`.../repositories/team/web/tags`) or URL-encoded (`team%2Fweb`), and
//! relative to the namespace (`web` in namespace `acme` is `acme/web`) or
//! in full (`acme/web`); the handlers resolve them.

use http::Method;
use percent_encoding::percent_decode_str;

use crate::error::MgmtError;

/// The storage-use history the console charts.
pub const USAGE_PATH: &str = "/api/v1/usage/history";

/// One management operation. Path parameters are as given (decoded); the
/// handlers validate and resolve them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Api {
    OpenApi,
    RegistryGet,
    RegistryUpdate,
    NamespaceList,
    NamespaceCreate,
    NamespaceGet(String),
    NamespaceUpdate(String),
    NamespaceDelete(String),
    RepositoryList(String),
    RepositoryGet(String, String),
    RepositoryDelete(String, String),
    ArtifactList(String, String),
    ArtifactGet(String, String, String),
    ArtifactDelete(String, String, String),
    /// `DELETE .../delete-request?digest=`: the digest, if given, is
    /// checked by the handler.
    ArtifactDeleteRequest(String, String, Option<String>),
    TagList(String, String),
    TagGet(String, String, String),
    TagDelete(String, String, String),
    GcStart,
    GcRunList,
    GcRunGet(String),
    GcRunManifests(String),
    GcRunBlobs(String),
    RetentionGet(String),
    RetentionSet(String),
    RetentionPreview(String),
    RetentionRun(String),
    UsageHistory,
    Me,
    UserList,
    UserCreate,
    UserGet(String),
    UserUpdate(String),
    UserDelete(String),
    PasswordChange(String),
    GrantList(String),
    GrantGet(String, String),
    GrantPut(String, String),
    GrantDelete(String, String),
    TokenList,
    TokenCreate,
    TokenGet(String),
    TokenDelete(String),
    SigningKeyGet,
    SigningKeyRotate,
    AuditList,
    /// Webhooks of a namespace (`Some`) or registry-wide ones (`None`);
    /// the other variants take the webhook id, and a delivery its number.
    WebhookList(Option<String>),
    WebhookCreate(Option<String>),
    WebhookGet(Option<String>, String),
    WebhookUpdate(Option<String>, String),
    WebhookDelete(Option<String>, String),
    WebhookTest(Option<String>, String),
    WebhookRotateSecret(Option<String>, String),
    DeliveryList(Option<String>, String),
    DeliveryRedeliver(Option<String>, String, String),
}

/// What a management path names, before the method picks the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    OpenApi,
    Registry,
    Namespaces,
    Namespace(String),
    Repositories(String),
    Repository(String, String),
    Artifacts(String, String),
    Artifact(String, String, String),
    DeleteRequest(String, String),
    Tags(String, String),
    Tag(String, String, String),
    Gc,
    GcRuns,
    GcRunOne(String),
    /// `gc/runs/<id>/manifests` (true) or `gc/runs/<id>/blobs` (false).
    GcRunItems(String, bool),
    Retention(String),
    RetentionPreview(String),
    RetentionRun(String),
    Me,
    Users,
    User(String),
    Password(String),
    Grants(String),
    Grant(String, String),
    Tokens,
    Token(String),
    SigningKey,
    Audit,
    Webhooks(Option<String>),
    Webhook(Option<String>, String),
    WebhookTest(Option<String>, String),
    WebhookSecret(Option<String>, String),
    Deliveries(Option<String>, String),
    Redeliver(Option<String>, String, String),
}

impl Route {
    fn methods(&self) -> &'static [Method] {
        use Route::*;
        match self {
            OpenApi | Repositories(..) | Artifacts(..) | Tags(..) => &[Method::GET],
            Registry => &[Method::GET, Method::PATCH],
            Namespaces => &[Method::GET, Method::POST],
            Namespace(_) => &[Method::GET, Method::PATCH, Method::DELETE],
            Repository(..) | Artifact(..) | Tag(..) => &[Method::GET, Method::DELETE],
            DeleteRequest(..) => &[Method::DELETE],
            Gc | RetentionRun(_) => &[Method::POST],
            Retention(_) => &[Method::GET, Method::PUT],
            RetentionPreview(_) => &[Method::GET],
            GcRuns | GcRunOne(_) | GcRunItems(..) => &[Method::GET],
            Me | Grants(_) | Audit => &[Method::GET],
            Users | Tokens => &[Method::GET, Method::POST],
            User(_) => &[Method::GET, Method::PATCH, Method::DELETE],
            Password(_) => &[Method::PUT],
            Grant(..) => &[Method::GET, Method::PUT, Method::DELETE],
            Token(_) => &[Method::GET, Method::DELETE],
            SigningKey => &[Method::GET, Method::POST],
            Webhooks(_) => &[Method::GET, Method::POST],
            Webhook(..) => &[Method::GET, Method::PATCH, Method::DELETE],
            WebhookTest(..) | WebhookSecret(..) | Redeliver(..) => &[Method::POST],
            Deliveries(..) => &[Method::GET],
        }
    }
}

fn decode(seg: &str) -> String {
    percent_decode_str(seg).decode_utf8_lossy().into_owned()
}

/// The access-control routes, from the decoded segments below `/api/v1/`
/// (every trailing slash dropped). They are matched before the others.
fn access_route(s: &[&str]) -> Option<Route> {
    use Route::*;
    Some(match s {
        ["me"] => Me,
        ["users"] => Users,
        ["users", u] => User(u.to_string()),
        ["users", u, "password"] => Password(u.to_string()),
        ["namespaces", ns, "grants"] => Grants(ns.to_string()),
        ["namespaces", ns, "grants", u] => Grant(ns.to_string(), u.to_string()),
        ["tokens"] => Tokens,
        ["tokens", id] => Token(id.to_string()),
        ["signing-key"] => SigningKey,
        ["audit"] => Audit,
        _ => return None,
    })
}

/// The webhook routes, registry-wide (`webhooks/...`) or of a namespace
/// (`namespaces/<ns>/webhooks/...`), from the decoded segments.
fn webhook_route(s: &[&str]) -> Option<Route> {
    use Route::*;
    let (ns, rest) = match s {
        ["webhooks", rest @ ..] => (None, rest),
        ["namespaces", ns, "webhooks", rest @ ..] => (Some(ns.to_string()), rest),
        _ => return None,
    };
    Some(match rest {
        [] => Webhooks(ns),
        [id] => Webhook(ns, id.to_string()),
        [id, "test"] => WebhookTest(ns, id.to_string()),
        [id, "secret"] => WebhookSecret(ns, id.to_string()),
        [id, "deliveries"] => Deliveries(ns, id.to_string()),
        [id, "deliveries", d, "redeliver"] => Redeliver(ns, id.to_string(), d.to_string()),
        _ => return None,
    })
}

/// The other management routes, from the path below `/api/v1/` (one
/// trailing slash dropped).
fn route(rest: &str) -> Option<Route> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let seg: Vec<String> = rest.split('/').map(decode).collect();
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    Some(match s.as_slice() {
        ["openapi.json"] => Route::OpenApi,
        ["registry"] => Route::Registry,
        ["gc"] => Route::Gc,
        ["gc", "runs"] => Route::GcRuns,
        ["gc", "runs", id] => Route::GcRunOne(id.to_string()),
        ["gc", "runs", id, "manifests"] => Route::GcRunItems(id.to_string(), true),
        ["gc", "runs", id, "blobs"] => Route::GcRunItems(id.to_string(), false),
        ["namespaces"] => Route::Namespaces,
        ["namespaces", ns] => Route::Namespace(ns.to_string()),
        ["namespaces", ns, "repositories"] => Route::Repositories(ns.to_string()),
        ["namespaces", ns, "retention"] => Route::Retention(ns.to_string()),
        ["namespaces", ns, "retention", "preview"] => Route::RetentionPreview(ns.to_string()),
        ["namespaces", ns, "retention", "run"] => Route::RetentionRun(ns.to_string()),
        ["namespaces", ns, "repositories", repo @ ..] if !repo.is_empty() => {
            let n = repo.len();
            let join = |parts: &[&str]| parts.join("/");
            let ns = ns.to_string();
            if n >= 2 && repo[n - 1] == "artifacts" {
                Route::Artifacts(ns, join(&repo[..n - 1]))
            } else if n >= 3 && repo[n - 2] == "artifacts" {
                Route::Artifact(ns, join(&repo[..n - 2]), repo[n - 1].to_string())
            } else if n >= 2 && repo[n - 1] == "delete-request" {
                Route::DeleteRequest(ns, join(&repo[..n - 1]))
            } else if n >= 2 && repo[n - 1] == "tags" {
                Route::Tags(ns, join(&repo[..n - 1]))
            } else if n >= 3 && repo[n - 2] == "tags" {
                Route::Tag(ns, join(&repo[..n - 2]), repo[n - 1].to_string())
            } else {
                Route::Repository(ns, join(repo))
            }
        }
        _ => return None,
    })
}

/// Parses a request whose path is `/api/v1` or below it.
pub(super) fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Api, MgmtError> {
    if path == USAGE_PATH {
        return match *method {
            Method::GET | Method::HEAD => Ok(Api::UsageHistory),
            _ => Err(MgmtError::method_not_allowed(method, path, &[Method::GET])),
        };
    }
    let rest = path.strip_prefix("/api/v1/").unwrap_or("");
    let seg: Vec<String> = rest.trim_end_matches('/').split('/').map(decode).collect();
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    let route = match access_route(&s).or_else(|| webhook_route(&s)) {
        Some(r) => r,
        None => route(rest)
            .ok_or_else(|| MgmtError::not_found(format!("no management endpoint at {path}")))?,
    };
    let allowed = route.methods();
    let read = *method == Method::GET || *method == Method::HEAD;
    if !(allowed.contains(method) || (*method == Method::HEAD && allowed.contains(&Method::GET))) {
        return Err(MgmtError::method_not_allowed(method, path, allowed));
    }
    use Api as A;
    let m = method;
    // The method is one `allowed` holds (HEAD standing for GET): the arms
    // without a method are the reads.
    Ok(match route {
        Route::OpenApi => A::OpenApi,
        Route::Registry if read => A::RegistryGet,
        Route::Registry => A::RegistryUpdate,
        Route::Namespaces if read => A::NamespaceList,
        Route::Namespaces => A::NamespaceCreate,
        Route::Namespace(ns) if read => A::NamespaceGet(ns),
        Route::Namespace(ns) if *m == Method::PATCH => A::NamespaceUpdate(ns),
        Route::Namespace(ns) => A::NamespaceDelete(ns),
        Route::Repositories(ns) => A::RepositoryList(ns),
        Route::Repository(ns, r) if read => A::RepositoryGet(ns, r),
        Route::Repository(ns, r) => A::RepositoryDelete(ns, r),
        Route::Artifacts(ns, r) => A::ArtifactList(ns, r),
        Route::Artifact(ns, r, d) if read => A::ArtifactGet(ns, r, d),
        Route::Artifact(ns, r, d) => A::ArtifactDelete(ns, r, d),
        Route::DeleteRequest(ns, r) => {
            let digest = crate::query::Query::parse(query)
                .get("digest")
                .map(str::to_string);
            A::ArtifactDeleteRequest(ns, r, digest)
        }
        Route::Tags(ns, r) => A::TagList(ns, r),
        Route::Tag(ns, r, t) if read => A::TagGet(ns, r, t),
        Route::Tag(ns, r, t) => A::TagDelete(ns, r, t),
        Route::Gc => A::GcStart,
        Route::GcRuns => A::GcRunList,
        Route::GcRunOne(id) => A::GcRunGet(id),
        Route::GcRunItems(id, true) => A::GcRunManifests(id),
        Route::GcRunItems(id, false) => A::GcRunBlobs(id),
        Route::Retention(ns) if read => A::RetentionGet(ns),
        Route::Retention(ns) => A::RetentionSet(ns),
        Route::RetentionPreview(ns) => A::RetentionPreview(ns),
        Route::RetentionRun(ns) => A::RetentionRun(ns),
        Route::Me => A::Me,
        Route::Users if read => A::UserList,
        Route::Users => A::UserCreate,
        Route::User(u) if read => A::UserGet(u),
        Route::User(u) if *m == Method::PATCH => A::UserUpdate(u),
        Route::User(u) => A::UserDelete(u),
        Route::Password(u) => A::PasswordChange(u),
        Route::Grants(ns) => A::GrantList(ns),
        Route::Grant(ns, u) if read => A::GrantGet(ns, u),
        Route::Grant(ns, u) if *m == Method::PUT => A::GrantPut(ns, u),
        Route::Grant(ns, u) => A::GrantDelete(ns, u),
        Route::Tokens if read => A::TokenList,
        Route::Tokens => A::TokenCreate,
        Route::Token(id) if read => A::TokenGet(id),
        Route::Token(id) => A::TokenDelete(id),
        Route::SigningKey if read => A::SigningKeyGet,
        Route::SigningKey => A::SigningKeyRotate,
        Route::Audit => A::AuditList,
        Route::Webhooks(ns) if read => A::WebhookList(ns),
        Route::Webhooks(ns) => A::WebhookCreate(ns),
        Route::Webhook(ns, id) if read => A::WebhookGet(ns, id),
        Route::Webhook(ns, id) if *m == Method::PATCH => A::WebhookUpdate(ns, id),
        Route::Webhook(ns, id) => A::WebhookDelete(ns, id),
        Route::WebhookTest(ns, id) => A::WebhookTest(ns, id),
        Route::WebhookSecret(ns, id) => A::WebhookRotateSecret(ns, id),
        Route::Deliveries(ns, id) => A::DeliveryList(ns, id),
        Route::Redeliver(ns, id, d) => A::DeliveryRedeliver(ns, id, d),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Option<Api> {
        parse(&Method::GET, &format!("/api/v1/{path}"), None).ok()
    }

    #[test]
    fn routes() {
        assert_eq!(get("namespaces"), Some(Api::NamespaceList));
        assert_eq!(get("namespaces/"), Some(Api::NamespaceList));
        assert_eq!(
            get("namespaces/acme/repositories/team/web/tags/v1"),
            Some(Api::TagGet("acme".into(), "team/web".into(), "v1".into()))
        );
        assert_eq!(
            get("namespaces/acme/repositories/team%2Fweb/artifacts/sha256%3Aab"),
            Some(Api::ArtifactGet(
                "acme".into(),
                "team/web".into(),
                "sha256:ab".into()
            ))
        );
        assert_eq!(
            parse(
                &Method::DELETE,
                "/api/v1/namespaces/acme/repositories/web/delete-request",
                Some("digest=sha256%3Aab")
            )
            .ok(),
            Some(Api::ArtifactDeleteRequest(
                "acme".into(),
                "web".into(),
                Some("sha256:ab".into())
            ))
        );
        assert_eq!(
            get("namespaces/acme/repositories/web"),
            Some(Api::RepositoryGet("acme".into(), "web".into()))
        );
        assert_eq!(
            get("namespaces/acme/grants/alice"),
            Some(Api::GrantGet("acme".into(), "alice".into()))
        );
        assert_eq!(get("nothing"), None);
        assert_eq!(get("webhooks"), Some(Api::WebhookList(None)));
        assert_eq!(
            get("namespaces/acme/webhooks/w1/deliveries"),
            Some(Api::DeliveryList(Some("acme".into()), "w1".into()))
        );
        assert_eq!(
            parse(
                &Method::POST,
                "/api/v1/namespaces/acme/webhooks/w1/deliveries/7/redeliver",
                None
            )
            .ok(),
            Some(Api::DeliveryRedeliver(
                Some("acme".into()),
                "w1".into(),
                "7".into()
            ))
        );
        assert_eq!(
            parse(&Method::HEAD, "/api/v1/users", None).ok(),
            Some(Api::UserList)
        );
        let e = parse(&Method::POST, "/api/v1/me", None).unwrap_err();
        assert_eq!(e.status.as_u16(), 405);
    }
}
