//! `/v2` paths. Repository names contain slashes, so paths are parsed from
//! the right: the last segments say what is asked for, and everything
//! before them is the name. Parse failures keep their reason, so a bad
//! name answers NAME_INVALID and a bad digest DIGEST_INVALID, not a
//! generic 404.

use berth_oci::{Digest, ErrorCode, NameError, Reference, RepoName};
use http::Method;

use crate::error::ApiError;

/// What a `/v2` path names, before the method picks the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `/v2/`: API version check.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`.
    Manifest(RepoName, Reference),
    /// `/v2/<name>/blobs/<digest>`.
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`.
    UploadStart(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`.
    Upload(RepoName, String),
    /// `/v2/<name>/referrers/<digest>`.
    Referrers(RepoName, Digest),
    /// `/healthz`.
    Health,
    /// `/readyz`.
    Ready,
    /// `/metrics`.
    Metrics,
}

impl Resource {
    /// Methods this resource answers (HEAD wherever GET is, except on
    /// upload sessions).
    pub fn allows(&self, m: &Method) -> bool {
        use Resource::*;
        let get = *m == Method::GET || *m == Method::HEAD;
        match self {
            Base | Catalog | Tags(_) | Referrers(..) | Health | Ready | Metrics => get,
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
/// conformance suite expects; only a PUT keeps the 400 of [`parse_path`].
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
    ApiError::new(ErrorCode::NameUnknown, format!("no route for {path}"))
}

/// Parses a `/v2` (or `/healthz`, `/readyz`, `/metrics`) request path,
/// without its query.
pub fn parse_path(path: &str) -> Result<Resource, ApiError> {
    match path {
        "/healthz" => return Ok(Resource::Health),
        "/readyz" => return Ok(Resource::Ready),
        "/metrics" => return Ok(Resource::Metrics),
        _ => {}
    }
    let rest = match path.strip_prefix("/v2") {
        Some("") | Some("/") => return Ok(Resource::Base),
        Some(r) if r.starts_with('/') => &r[1..],
        _ => return Err(not_found(path)),
    };
    if rest == "_catalog" {
        return Ok(Resource::Catalog);
    }
    let seg: Vec<&str> = rest.split('/').collect();
    let n = seg.len();
    if n >= 3 && seg[n - 2] == "tags" && seg[n - 1] == "list" {
        return Ok(Resource::Tags(name(&seg[..n - 2])?));
    }
    if n >= 3 && seg[n - 2] == "manifests" {
        let repo = name(&seg[..n - 2])?;
        return Ok(Resource::Manifest(repo, reference(seg[n - 1])?));
    }
    if n >= 4 && seg[n - 3] == "blobs" && seg[n - 2] == "uploads" {
        let repo = name(&seg[..n - 3])?;
        return Ok(if seg[n - 1].is_empty() {
            Resource::UploadStart(repo)
        } else {
            Resource::Upload(repo, seg[n - 1].to_string())
        });
    }
    if n >= 3 && seg[n - 2] == "blobs" && seg[n - 1] == "uploads" {
        return Ok(Resource::UploadStart(name(&seg[..n - 2])?));
    }
    if n >= 3 && seg[n - 2] == "blobs" {
        let repo = name(&seg[..n - 2])?;
        return Ok(Resource::Blob(repo, digest(seg[n - 1])?));
    }
    if n >= 3 && seg[n - 2] == "referrers" {
        let repo = name(&seg[..n - 2])?;
        return Ok(Resource::Referrers(repo, digest(seg[n - 1])?));
    }
    Err(not_found(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn code(path: &str) -> ErrorCode {
        parse_path(path).unwrap_err().code
    }

    #[test]
    fn parses_from_the_right() {
        assert_eq!(parse_path("/v2/").unwrap(), Resource::Base);
        assert_eq!(parse_path("/v2").unwrap(), Resource::Base);
        assert!(
            matches!(parse_path("/v2/a/b/c/tags/list").unwrap(), Resource::Tags(n) if n.as_str() == "a/b/c")
        );
        assert!(
            matches!(parse_path("/v2/a/manifests/tags/list").unwrap(), Resource::Tags(n) if n.as_str() == "a/manifests")
        );
        assert!(matches!(
            parse_path("/v2/a/blobs/uploads/").unwrap(),
            Resource::UploadStart(_)
        ));
        assert!(matches!(
            parse_path("/v2/a/blobs/uploads").unwrap(),
            Resource::UploadStart(_)
        ));
        assert!(
            matches!(parse_path("/v2/a/b/blobs/uploads/xyz").unwrap(), Resource::Upload(n, id) if n.as_str() == "a/b" && id == "xyz")
        );
        assert!(matches!(
            parse_path(&format!("/v2/a/blobs/{D}")).unwrap(),
            Resource::Blob(..)
        ));
        assert!(matches!(
            parse_path(&format!("/v2/a/referrers/{D}")).unwrap(),
            Resource::Referrers(..)
        ));
        assert!(matches!(
            parse_path("/v2/a/manifests/latest").unwrap(),
            Resource::Manifest(..)
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
        assert_eq!(parse_path("/v3/x").unwrap_err().status, 404);
        assert!(
            invalid_manifest_reference("/v2/a/b/manifests/.INVALID_MANIFEST_NAME")
                .is_some_and(|(r, _)| r.as_str() == "a/b")
        );
        assert!(invalid_manifest_reference("/v2/a/manifests/sha256:abc").is_some());
        assert!(invalid_manifest_reference("/v2/a/manifests/latest").is_none());
        assert!(invalid_manifest_reference("/v2/A/manifests/-x").is_none());
        assert!(invalid_manifest_reference("/v2/a/tags/list").is_none());
        assert_eq!(parse_path("/v2/a").unwrap_err().status, 404);
    }
}
