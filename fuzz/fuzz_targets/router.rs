//! `berth_server::endpoint` on arbitrary request paths: the `/v2` path
//! parser, and `Endpoint::parse` over every method.
//!
//! Invariants: nothing panics; a parsed endpoint prints back to the very
//! path it came from (so no part of the path was dropped or reinterpreted,
//! and `..`, `%2e`, empty segments and the like can only ever reach a
//! handler inside a validated name or digest); the printed path parses to
//! the same endpoint; an upload id is one non-empty segment.
#![no_main]

use berth_server::endpoint::v2::{parse_path as parse, Resource as Endpoint};
use berth_server::endpoint::Endpoint as Operation;
use http::Method;
use libfuzzer_sys::fuzz_target;

fn print(e: &Endpoint) -> Vec<String> {
    match e {
        Endpoint::Health => vec!["/healthz".into()],
        Endpoint::Ready => vec!["/readyz".into()],
        Endpoint::Metrics => vec!["/metrics".into()],
        Endpoint::Base => vec!["/v2".into(), "/v2/".into()],
        Endpoint::Catalog => vec!["/v2/_catalog".into()],
        Endpoint::Tags(n) => vec![format!("/v2/{n}/tags/list")],
        Endpoint::Manifest(n, r) => vec![format!("/v2/{n}/manifests/{r}")],
        Endpoint::Blob(n, d) => vec![format!("/v2/{n}/blobs/{d}")],
        Endpoint::UploadStart(n) => vec![
            format!("/v2/{n}/blobs/uploads/"),
            format!("/v2/{n}/blobs/uploads"),
        ],
        Endpoint::Upload(n, id) => vec![format!("/v2/{n}/blobs/uploads/{id}")],
        Endpoint::Referrers(n, d) => vec![format!("/v2/{n}/referrers/{d}")],
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let endpoint = match parse(path) {
        Ok(e) => e,
        Err(e) => {
            // Errors are OCI errors with a client status.
            assert!(
                (400..500).contains(&e.status),
                "{path:?}: status {}",
                e.status
            );
            return;
        }
    };
    let printed = print(&endpoint);
    assert!(
        printed.iter().any(|p| p == path),
        "{path:?} parsed as {endpoint:?}, which prints as {printed:?}"
    );
    for p in &printed {
        assert_eq!(parse(p).as_ref().ok(), Some(&endpoint), "{p:?}");
    }
    if let Endpoint::Upload(_, id) = &endpoint {
        assert!(!id.is_empty() && !id.contains('/'), "upload id {id:?}");
    }
    for m in [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::POST,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ] {
        let allowed = endpoint.allows(&m);
        // The full parse agrees: an allowed method is an operation, any
        // other a 405.
        let op = Operation::parse(&m, path, None);
        if path.starts_with("/v2") || path == "/healthz" {
            assert_eq!(op.is_ok(), allowed, "{m} {path:?}");
        }
        if m == Method::HEAD {
            assert_eq!(
                allowed,
                endpoint.allows(&Method::GET) && !matches!(endpoint, Endpoint::Upload(..))
            );
        }
    }
});
