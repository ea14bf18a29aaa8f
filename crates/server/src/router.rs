//! Requests are parsed into an [`Endpoint`] before anything else happens
//! (garage's router). Repository names contain slashes, so `/v2/...` paths
//! are parsed from the right: the last segments say what is asked for, and
//! everything before them is the name. Parse failures keep their reason, so
//! a bad name answers NAME_INVALID and a bad digest DIGEST_INVALID, not a
//! generic 404.

use berth_oci::{Digest, ErrorCode, NameError, Reference, RepoName};
use http::Method;

use crate::error::ApiError;

/// What a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v2/`: API version check.
    Base,
    /// `GET /v2/_catalog`.
    Catalog,
    /// `GET /v2/<name>/tags/list`.
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`.
    Manifest(RepoName, Reference),
    /// `/v2/<name>/blobs/<digest>`.
    Blob(RepoName, Digest),
    /// `POST /v2/<name>/blobs/uploads/`.
    UploadStart(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`.
    Upload(RepoName, String),
    /// `GET /v2/<name>/referrers/<digest>`.
    Referrers(RepoName, Digest),
    /// `GET /healthz`.
    Health,
}

impl Endpoint {
    /// Methods this endpoint answers (HEAD wherever GET is).
    pub fn allows(&self, m: &Method) -> bool {
        use Endpoint::*;
        let get = *m == Method::GET || *m == Method::HEAD;
        match self {
            Base | Catalog | Tags(_) | Referrers(..) | Health => get,
            Manifest(..) => get || *m == Method::PUT || *m == Method::DELETE,
            Blob(..) => get || *m == Method::DELETE,
            UploadStart(_) => *m == Method::POST,
            Upload(..) => {
                *m == Method::GET
                    || *m == Method::PATCH
                    || *m == Method::PUT
                    || *m == Method::DELETE
            }
        }
    }
}

fn name(segments: &[&str]) -> Result<RepoName, ApiError> {
    let raw = segments.join("/");
    raw.parse::<RepoName>()
        .map_err(|e| ApiError::new(ErrorCode::NameInvalid, e.to_string()))
}

fn digest(s: &str) -> Result<Digest, ApiError> {
    s.parse::<Digest>()
        .map_err(|e| ApiError::new(ErrorCode::DigestInvalid, e.to_string()))
}

fn reference(s: &str) -> Result<Reference, ApiError> {
    s.parse::<Reference>().map_err(|e| match e {
        NameError::Digest(d) => ApiError::new(ErrorCode::DigestInvalid, d.to_string()),
        other => ApiError::new(ErrorCode::ManifestInvalid, other.to_string()),
    })
}

/// For a `/v2/<name>/manifests/<reference>` path whose name is valid but
/// whose reference is neither a valid digest nor a valid tag: the name and
/// why the reference was refused. Reading or deleting such a manifest is a
/// plain "no such manifest" (404), as in distribution and as the
/// conformance suite expects; only a PUT keeps the 400 of [`parse`].
pub fn invalid_manifest_reference(path: &str) -> Option<(RepoName, String)> {
    let rest = path.strip_prefix("/v2/")?;
    let (head, reference) = rest.rsplit_once('/')?;
    let name_part = head.strip_suffix("/manifests")?;
    let repo = name_part.parse::<RepoName>().ok()?;
    match reference.parse::<Reference>() {
        Ok(_) => None,
        Err(e) => Some((repo, e.to_string())),
    }
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(ErrorCode::NameUnknown, format!("no route for {path}")).with_status(404)
}

/// Parses a request path (without query) into an endpoint.
pub fn parse(path: &str) -> Result<Endpoint, ApiError> {
    if path == "/healthz" {
        return Ok(Endpoint::Health);
    }
    let rest = match path.strip_prefix("/v2") {
        Some("") | Some("/") => return Ok(Endpoint::Base),
        Some(r) if r.starts_with('/') => &r[1..],
        _ => return Err(not_found(path)),
    };
    if rest == "_catalog" {
        return Ok(Endpoint::Catalog);
    }
    let seg: Vec<&str> = rest.split('/').collect();
    let n = seg.len();
    if n >= 3 && seg[n - 2] == "tags" && seg[n - 1] == "list" {
        return Ok(Endpoint::Tags(name(&seg[..n - 2])?));
    }
    if n >= 3 && seg[n - 2] == "manifests" {
        let repo = name(&seg[..n - 2])?;
        return Ok(Endpoint::Manifest(repo, reference(seg[n - 1])?));
    }
    if n >= 4 && seg[n - 3] == "blobs" && seg[n - 2] == "uploads" {
        let repo = name(&seg[..n - 3])?;
        return Ok(if seg[n - 1].is_empty() {
            Endpoint::UploadStart(repo)
        } else {
            Endpoint::Upload(repo, seg[n - 1].to_string())
        });
    }
    if n >= 3 && seg[n - 2] == "blobs" && seg[n - 1] == "uploads" {
        return Ok(Endpoint::UploadStart(name(&seg[..n - 2])?));
    }
    if n >= 3 && seg[n - 2] == "blobs" {
        let repo = name(&seg[..n - 2])?;
        return Ok(Endpoint::Blob(repo, digest(seg[n - 1])?));
    }
    if n >= 3 && seg[n - 2] == "referrers" {
        let repo = name(&seg[..n - 2])?;
        return Ok(Endpoint::Referrers(repo, digest(seg[n - 1])?));
    }
    Err(not_found(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn code(path: &str) -> ErrorCode {
        parse(path).unwrap_err().code
    }

    #[test]
    fn parses_from_the_right() {
        assert_eq!(parse("/v2/").unwrap(), Endpoint::Base);
        assert_eq!(parse("/v2").unwrap(), Endpoint::Base);
        assert!(
            matches!(parse("/v2/a/b/c/tags/list").unwrap(), Endpoint::Tags(n) if n.as_str() == "a/b/c")
        );
        assert!(
            matches!(parse("/v2/a/manifests/tags/list").unwrap(), Endpoint::Tags(n) if n.as_str() == "a/manifests")
        );
        assert!(matches!(
            parse("/v2/a/blobs/uploads/").unwrap(),
            Endpoint::UploadStart(_)
        ));
        assert!(matches!(
            parse("/v2/a/blobs/uploads").unwrap(),
            Endpoint::UploadStart(_)
        ));
        assert!(
            matches!(parse("/v2/a/b/blobs/uploads/xyz").unwrap(), Endpoint::Upload(n, id) if n.as_str() == "a/b" && id == "xyz")
        );
        assert!(matches!(
            parse(&format!("/v2/a/blobs/{D}")).unwrap(),
            Endpoint::Blob(..)
        ));
        assert!(matches!(
            parse(&format!("/v2/a/referrers/{D}")).unwrap(),
            Endpoint::Referrers(..)
        ));
        assert!(matches!(
            parse("/v2/a/manifests/latest").unwrap(),
            Endpoint::Manifest(..)
        ));
    }

    #[test]
    fn keeps_the_reason() {
        assert_eq!(code("/v2/A/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2/../x/manifests/latest"), ErrorCode::NameInvalid);
        assert_eq!(
            code("/v2/%2e%2e/x/manifests/latest"),
            ErrorCode::NameInvalid
        );
        assert_eq!(code("/v2/a//b/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(
            code("/v2/a/blobs/sha256:..%2F..%2Fetc"),
            ErrorCode::DigestInvalid
        );
        assert_eq!(code("/v2/a/manifests/sha256:abc"), ErrorCode::DigestInvalid);
        assert_eq!(code("/v2/a/manifests/-bad"), ErrorCode::ManifestInvalid);
        assert_eq!(parse("/v3/x").unwrap_err().status, 404);
        assert!(
            invalid_manifest_reference("/v2/a/b/manifests/.INVALID_MANIFEST_NAME")
                .is_some_and(|(r, _)| r.as_str() == "a/b")
        );
        assert!(invalid_manifest_reference("/v2/a/manifests/sha256:abc").is_some());
        assert!(invalid_manifest_reference("/v2/a/manifests/latest").is_none());
        assert!(invalid_manifest_reference("/v2/A/manifests/-x").is_none());
        assert!(invalid_manifest_reference("/v2/a/tags/list").is_none());
        assert_eq!(parse("/v2/a").unwrap_err().status, 404);
    }
}
