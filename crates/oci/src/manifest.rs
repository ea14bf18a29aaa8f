//! Manifest parsing: just enough structure to validate a pushed manifest
//! and to list what it references, while the bytes themselves are kept and
//! served exactly as pushed.
//!
//! Parsing is deliberately lenient about fields Berth does not use (unknown
//! fields, annotations of any shape in unknown media types) and strict about
//! the ones it relies on (descriptors' digests and sizes), because a registry
//! that rejects what real clients push is worse than useless.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::media_type as mt;
use crate::Digest;

/// Why a manifest was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not a JSON object.
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    /// A field of a known manifest type is missing or has the wrong shape.
    #[error("manifest invalid: {0}")]
    Invalid(String),
    /// `mediaType` in the body differs from the `Content-Type` header.
    #[error("manifest mediaType {body:?} does not match Content-Type {header:?}")]
    MediaTypeMismatch {
        /// From the body.
        body: String,
        /// From the header.
        header: String,
    },
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Artifact type, for manifests that are artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform, in index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Alternate download locations (foreign layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version.
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

/// What kind of manifest this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestKind {
    /// An image manifest (OCI or Docker schema 2): config + layers.
    Image,
    /// An index (OCI) or manifest list (Docker): child manifests.
    Index,
    /// Any other media type: stored as pushed, references not enforced.
    Other,
}

/// The parts of a manifest Berth uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedManifest {
    /// The effective media type (body field, header, or inferred).
    pub media_type: String,
    /// Image, index or other.
    pub kind: ManifestKind,
    /// The `artifactType` field, if any.
    pub artifact_type: Option<String>,
    /// Config descriptor (images).
    pub config: Option<Descriptor>,
    /// Layer descriptors (images).
    pub layers: Vec<Descriptor>,
    /// Child manifests (indexes).
    pub manifests: Vec<Descriptor>,
    /// The `subject` descriptor, if any.
    pub subject: Option<Descriptor>,
    /// Top-level annotations.
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
    manifests: Option<serde_json::Value>,
    subject: Option<serde_json::Value>,
    annotations: Option<serde_json::Value>,
}

fn descriptor(v: &serde_json::Value, what: &str) -> Result<Descriptor, ManifestError> {
    serde_json::from_value(v.clone()).map_err(|e| ManifestError::Invalid(format!("{what}: {e}")))
}

fn descriptors(
    v: &Option<serde_json::Value>,
    what: &str,
) -> Result<Vec<Descriptor>, ManifestError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, d)| descriptor(d, &format!("{what}[{i}]")))
            .collect(),
        Some(_) => Err(ManifestError::Invalid(format!("{what} must be an array"))),
    }
}

/// A media type Berth stores must be one it can serve back: RFC 6838, no
/// control characters (it becomes a `Content-Type` header).
fn check_media_type(what: &str, value: &str) -> Result<(), ManifestError> {
    if mt::is_valid(value) {
        Ok(())
    } else {
        let shown: String = value.chars().take(200).collect();
        Err(ManifestError::Invalid(format!(
            "{what} {shown:?} is not a valid media type (type/subtype, RFC 6838)"
        )))
    }
}

/// Header values that say nothing about the manifest's type.
fn is_generic_content_type(ct: &str) -> bool {
    matches!(
        ct,
        "" | "application/json" | "application/octet-stream" | "text/plain"
    )
}

/// Deepest JSON nesting accepted. Real manifests nest four or five levels;
/// serde skips unknown fields without a depth limit, and other tools refuse
/// documents nested much deeper, so Berth would store what they cannot read.
pub const MAX_JSON_DEPTH: usize = 64;

/// Nesting depth of a JSON document (objects and arrays), ignoring brackets
/// inside strings. Stops counting past `MAX_JSON_DEPTH`.
fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
                if max > MAX_JSON_DEPTH {
                    return max;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

impl ParsedManifest {
    /// Parses and validates manifest bytes. `content_type` is the request's
    /// `Content-Type` header (parameters already stripped), if any.
    pub fn parse(
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> Result<ParsedManifest, ManifestError> {
        // JSON text is UTF-8 (RFC 8259 §8.1). serde checks the strings it
        // keeps, but skips invalid bytes inside fields it ignores.
        if let Err(e) = std::str::from_utf8(bytes) {
            return Err(ManifestError::Json(format!("not UTF-8: {e}")));
        }
        if json_depth(bytes) > MAX_JSON_DEPTH {
            return Err(ManifestError::Invalid(format!(
                "JSON nested deeper than {MAX_JSON_DEPTH} levels"
            )));
        }
        let raw: Raw =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        let header = content_type
            .map(str::trim)
            .filter(|c| !is_generic_content_type(c));
        let media_type = match (&raw.media_type, header) {
            (Some(body), Some(h)) if body != h => {
                return Err(ManifestError::MediaTypeMismatch {
                    body: body.clone(),
                    header: h.to_string(),
                })
            }
            (Some(body), _) => body.clone(),
            (None, Some(h)) => h.to_string(),
            (None, None) => {
                if raw.manifests.is_some() {
                    mt::OCI_INDEX.to_string()
                } else if raw.config.is_some() {
                    mt::OCI_MANIFEST.to_string()
                } else {
                    return Err(ManifestError::Invalid(
                        "no mediaType in the body or Content-Type header, and the body is neither an image manifest nor an index".into(),
                    ));
                }
            }
        };
        check_media_type("mediaType", &media_type)?;
        if let Some(a) = &raw.artifact_type {
            check_media_type("artifactType", a)?;
        }
        let kind = match media_type.as_str() {
            mt::OCI_MANIFEST | mt::DOCKER_MANIFEST => ManifestKind::Image,
            mt::OCI_INDEX | mt::DOCKER_MANIFEST_LIST => ManifestKind::Index,
            _ => ManifestKind::Other,
        };
        if kind != ManifestKind::Other {
            match &raw.schema_version {
                Some(serde_json::Value::Number(n)) if n.as_u64() == Some(2) => {}
                _ => return Err(ManifestError::Invalid("schemaVersion must be 2".into())),
            }
        }
        let annotations = match &raw.annotations {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => match serde_json::from_value(v.clone()) {
                Ok(a) => Some(a),
                Err(_) if kind == ManifestKind::Other => None,
                Err(e) => return Err(ManifestError::Invalid(format!("annotations: {e}"))),
            },
        };
        let config = match &raw.config {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(descriptor(v, "config")?),
        };
        let layers = descriptors(&raw.layers, "layers")?;
        let manifests = descriptors(&raw.manifests, "manifests")?;
        let subject = match &raw.subject {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(descriptor(v, "subject")?),
        };
        let named = config
            .iter()
            .map(|d| ("config", d))
            .chain(layers.iter().map(|d| ("layers", d)))
            .chain(manifests.iter().map(|d| ("manifests", d)))
            .chain(subject.iter().map(|d| ("subject", d)));
        for (what, d) in named {
            check_media_type(&format!("{what} mediaType"), &d.media_type)?;
            if let Some(a) = &d.artifact_type {
                check_media_type(&format!("{what} artifactType"), a)?;
            }
        }
        match kind {
            ManifestKind::Image => {
                if config.is_none() {
                    return Err(ManifestError::Invalid(
                        "image manifest has no config".into(),
                    ));
                }
                if raw.layers.is_none() && media_type == mt::DOCKER_MANIFEST {
                    return Err(ManifestError::Invalid(
                        "image manifest has no layers".into(),
                    ));
                }
                if !manifests.is_empty() {
                    return Err(ManifestError::Invalid(
                        "image manifest must not list manifests".into(),
                    ));
                }
            }
            ManifestKind::Index => {
                if raw.manifests.is_none() {
                    return Err(ManifestError::Invalid(
                        "index has no manifests field".into(),
                    ));
                }
                if config.is_some() || !layers.is_empty() {
                    return Err(ManifestError::Invalid(
                        "index must not have config or layers".into(),
                    ));
                }
            }
            ManifestKind::Other => {}
        }
        Ok(ParsedManifest {
            media_type,
            kind,
            artifact_type: raw.artifact_type,
            config,
            layers,
            manifests,
            subject,
            annotations,
        })
    }

    /// The artifact type as the referrers API reports it: `artifactType`,
    /// else the config's media type (image-spec rule).
    pub fn effective_artifact_type(&self) -> Option<String> {
        self.artifact_type
            .clone()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.clone()))
    }

    /// Blobs (config and layers) the repository must hold for this manifest
    /// to be accepted. Foreign layers are excluded.
    pub fn required_blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(
            self.layers
                .iter()
                .filter(|l| !mt::is_foreign_layer(&l.media_type)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":0}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{D1}","size":0}}]{extra}}}"#,
            mt::OCI_MANIFEST
        )
    }

    #[test]
    fn parses_image_manifest() {
        let m = ParsedManifest::parse(image("").as_bytes(), Some(mt::OCI_MANIFEST)).unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.required_blobs().count(), 2);
        assert_eq!(
            m.effective_artifact_type().as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn rejects_media_type_mismatch() {
        let e = ParsedManifest::parse(image("").as_bytes(), Some(mt::OCI_INDEX)).unwrap_err();
        assert!(matches!(e, ManifestError::MediaTypeMismatch { .. }));
    }

    #[test]
    fn rejects_bad_descriptor_digest() {
        let body = image("").replace(D1, "sha256:../../x");
        assert!(ParsedManifest::parse(body.as_bytes(), None).is_err());
    }

    #[test]
    fn unknown_media_type_is_other() {
        let m =
            ParsedManifest::parse(br#"{"mediaType":"application/x-custom","x":1}"#, None).unwrap();
        assert_eq!(m.kind, ManifestKind::Other);
    }

    #[test]
    fn rejects_deep_nesting_in_unknown_fields() {
        let deep = format!(r#","x":{}"a[]"{}"#, "[".repeat(100), "]".repeat(100));
        let e = ParsedManifest::parse(image(&deep).as_bytes(), None).unwrap_err();
        assert!(matches!(e, ManifestError::Invalid(m) if m.contains("nested")));
        // Brackets inside strings do not count.
        let s = format!(r#","x":"{}""#, "[".repeat(100));
        assert!(ParsedManifest::parse(image(&s).as_bytes(), None).is_ok());
    }

    #[test]
    fn rejects_invalid_utf8_in_ignored_fields() {
        // Found by the `manifest` fuzz target: invalid UTF-8 inside a string
        // of a field Berth does not read was accepted and stored, although
        // JSON text is UTF-8.
        let mut bytes = image(r#","x":"a?b""#).into_bytes();
        assert!(ParsedManifest::parse(&bytes, None).is_ok());
        let at = bytes.iter().position(|&b| b == b'?').unwrap();
        bytes[at] = 0xff;
        let e = ParsedManifest::parse(&bytes, None).unwrap_err();
        assert!(matches!(e, ManifestError::Json(m) if m.contains("UTF-8")));
        let other = b"{\"mediaType\":\"application/x-custom\",\"p\":{\"a\x8dch\":1}}";
        assert!(ParsedManifest::parse(other, None).is_err());
    }

    #[test]
    fn subject_is_parsed() {
        let s = format!(
            r#","subject":{{"mediaType":"{}","digest":"{D1}","size":1}}"#,
            mt::OCI_MANIFEST
        );
        let m = ParsedManifest::parse(image(&s).as_bytes(), None).unwrap();
        assert_eq!(m.subject.unwrap().digest.to_string(), D1);
    }
}
