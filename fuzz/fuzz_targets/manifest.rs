//! `ParsedManifest::parse` on arbitrary bytes and content types.
//!
//! Input: one selector byte choosing the `Content-Type` (none, a generic
//! one, each manifest media type, or the input's first line), then the
//! body.
//!
//! Invariants: nothing panics or overflows the stack; an accepted manifest
//! is JSON nested at most `MAX_JSON_DEPTH` deep; its media type is the body's
//! `mediaType`, else a specific `Content-Type`, and never disagrees with a
//! specific `Content-Type`; image manifests have a config and no child
//! manifests, indexes have no config or layers; every descriptor survives a
//! serde round trip; parsing is deterministic.
#![no_main]

use berth_oci::manifest::MAX_JSON_DEPTH;
use berth_oci::media_type as mt;
use berth_oci::{Descriptor, ManifestKind, ParsedManifest};
use libfuzzer_sys::fuzz_target;

const TYPES: &[Option<&str>] = &[
    None,
    Some(""),
    Some("application/json"),
    Some("application/octet-stream"),
    Some(mt::OCI_MANIFEST),
    Some(mt::OCI_INDEX),
    Some(mt::DOCKER_MANIFEST),
    Some(mt::DOCKER_MANIFEST_LIST),
    Some("application/vnd.example.custom+json"),
    Some(" application/vnd.oci.image.manifest.v1+json "),
];

fn generic(ct: &str) -> bool {
    matches!(
        ct,
        "" | "application/json" | "application/octet-stream" | "text/plain"
    )
}

/// Nesting depth of a JSON value.
fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn round_trip(d: &Descriptor) {
    let json = serde_json::to_vec(d).unwrap();
    let back: Descriptor = serde_json::from_slice(&json).unwrap();
    assert_eq!(&back, d);
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let sel = sel as usize;
    let (content_type, body): (Option<&str>, &[u8]) = if sel < TYPES.len() {
        (TYPES[sel], rest)
    } else {
        // The first line is the header (when it is text).
        let nl = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        match std::str::from_utf8(&rest[..nl]) {
            Ok(h) => (Some(h), &rest[(nl + 1).min(rest.len())..]),
            Err(_) => (None, rest),
        }
    };

    let parsed = ParsedManifest::parse(body, content_type);
    assert_eq!(parsed, ParsedManifest::parse(body, content_type));
    let Ok(m) = parsed else {
        return;
    };

    // JSON text is UTF-8 (RFC 8259 §8.1).
    assert!(
        std::str::from_utf8(body).is_ok(),
        "an accepted manifest is not UTF-8"
    );
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        // Grammatical JSON that serde_json refuses in a Value: escaped lone
        // surrogates (`"\ud800"`) and numbers beyond f64. In fields Berth
        // ignores they are kept as pushed, as other registries do (Go's
        // encoding/json skips them too). Nothing more to check.
        Err(e)
            if ["surrogate", "hex escape", "number out of range"]
                .iter()
                .any(|m| e.to_string().contains(m)) =>
        {
            return
        }
        Err(e) => panic!("an accepted manifest is not JSON: {e}"),
    };
    assert!(value.is_object(), "an accepted manifest is a JSON object");
    assert!(
        depth(&value) <= MAX_JSON_DEPTH,
        "nested {} deep",
        depth(&value)
    );

    let specific = content_type.map(str::trim).filter(|c| !generic(c));
    match value.get("mediaType").and_then(|v| v.as_str()) {
        Some(body_type) => {
            assert_eq!(m.media_type, body_type);
            if let Some(h) = specific {
                assert_eq!(h, body_type, "Content-Type and mediaType disagree");
            }
        }
        None => {
            if let Some(h) = specific {
                assert_eq!(m.media_type, h);
            }
        }
    }

    match m.kind {
        ManifestKind::Image => {
            assert!(m.media_type == mt::OCI_MANIFEST || m.media_type == mt::DOCKER_MANIFEST);
            assert!(m.config.is_some() && m.manifests.is_empty());
            assert_eq!(value.get("schemaVersion").and_then(|v| v.as_u64()), Some(2));
        }
        ManifestKind::Index => {
            assert!(m.media_type == mt::OCI_INDEX || m.media_type == mt::DOCKER_MANIFEST_LIST);
            assert!(m.config.is_none() && m.layers.is_empty());
            assert!(value.get("manifests").is_some());
            assert_eq!(value.get("schemaVersion").and_then(|v| v.as_u64()), Some(2));
        }
        ManifestKind::Other => {
            assert!(![
                mt::OCI_MANIFEST,
                mt::DOCKER_MANIFEST,
                mt::OCI_INDEX,
                mt::DOCKER_MANIFEST_LIST
            ]
            .contains(&m.media_type.as_str()));
        }
    }

    for d in m
        .config
        .iter()
        .chain(&m.layers)
        .chain(&m.manifests)
        .chain(&m.subject)
    {
        round_trip(d);
        assert_eq!(d.digest.to_string().parse().as_ref(), Ok(&d.digest));
    }
    assert!(m.required_blobs().count() <= 1 + m.layers.len());
    if let Some(t) = m.effective_artifact_type() {
        assert!(
            m.artifact_type.as_ref() == Some(&t)
                || m.config.as_ref().map(|c| &c.media_type) == Some(&t)
        );
    }
});
