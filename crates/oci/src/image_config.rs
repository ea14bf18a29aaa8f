//! What an artifact listing shows of an image configuration: platform and
//! the build history, matched to the layers it created.
//!
//! Parsed with `oci-spec`'s `ImageConfiguration`. It requires `rootfs`
//! (and `architecture`/`os`), which minimal configs written by hand or by
//! some tools omit; those are read with a small lenient struct for the
//! platform only, since these details are for display and never decide
//! what is stored or served (the config is kept byte for byte as pushed).

use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

/// Largest config read for its details; real configs are a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// OCI image configuration.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image configuration.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Config media types that hold an OCI or Docker image configuration.
pub fn is_image_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

/// One history entry of an image configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HistoryEntry {
    /// When the step ran (RFC 3339, as the config says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command of the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The details of an image configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ImageDetails {
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub architecture: String,
    /// CPU variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// History entries that created a layer, in layer order: entry `i`
    /// belongs to layer `i`.
    pub layer_history: Vec<HistoryEntry>,
    /// History entries that created no layer (`empty_layer`: ENV, CMD...).
    pub empty_history: Vec<HistoryEntry>,
}

/// The fields read when `oci-spec` refuses a config (no `rootfs`, say).
#[derive(Deserialize)]
struct Lenient {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl ImageDetails {
    /// The details of a config, or `None` if it is not JSON at all.
    pub fn parse(bytes: &[u8]) -> Option<ImageDetails> {
        match serde_json::from_slice::<ImageConfiguration>(bytes) {
            Ok(c) => {
                let mut d = ImageDetails {
                    os: c.os().to_string(),
                    architecture: c.architecture().to_string(),
                    variant: c.variant().clone(),
                    ..ImageDetails::default()
                };
                for h in c.history().iter().flatten() {
                    let e = HistoryEntry {
                        created: h.created().clone(),
                        created_by: h.created_by().clone(),
                        comment: h.comment().clone(),
                    };
                    if h.empty_layer().unwrap_or(false) {
                        d.empty_history.push(e);
                    } else {
                        d.layer_history.push(e);
                    }
                }
                Some(d)
            }
            Err(_) => {
                let l: Lenient = serde_json::from_slice(bytes).ok()?;
                Some(ImageDetails {
                    os: l.os,
                    architecture: l.architecture,
                    variant: l.variant,
                    ..ImageDetails::default()
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_split_into_layer_and_empty_entries() {
        let cfg = br#"{"architecture":"arm64","variant":"v8","os":"linux",
            "rootfs":{"type":"layers","diff_ids":["sha256:aa","sha256:bb"]},
            "history":[
              {"created":"2024-01-01T00:00:00Z","created_by":"ADD base.tar /"},
              {"created_by":"ENV A=1","empty_layer":true},
              {"created_by":"RUN make","comment":"build"}]}"#;
        let d = ImageDetails::parse(cfg).unwrap();
        assert_eq!((d.os.as_str(), d.architecture.as_str()), ("linux", "arm64"));
        assert_eq!(d.variant.as_deref(), Some("v8"));
        assert_eq!(d.layer_history.len(), 2);
        assert_eq!(d.layer_history[1].comment.as_deref(), Some("build"));
        assert_eq!(d.empty_history[0].created_by.as_deref(), Some("ENV A=1"));
    }

    #[test]
    fn minimal_config_still_gives_the_platform() {
        let d = ImageDetails::parse(br#"{"architecture":"amd64","os":"linux"}"#).unwrap();
        assert_eq!(d.architecture, "amd64");
        assert!(d.layer_history.is_empty());
        assert!(ImageDetails::parse(b"not json").is_none());
    }
}
