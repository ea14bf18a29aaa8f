//! Test content (blobs, manifests, indexes) and the push helpers every
//! workflow uses to set up state.

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{digest, with_query, Ctx, Payload, Resp};
use crate::Outcome;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const CUSTOM_MANIFEST: &str = "application/vnd.conformance.custom.manifest.v1+json";

/// Serialises a manifest the way a picky client might: pretty-printed with a
/// trailing newline, so that a registry that re-serialises is caught.
pub fn manifest_bytes(v: &Value) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).expect("serialising JSON");
    b.push(b'\n');
    b
}

/// A descriptor for `bytes` with media type `media_type`.
pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": digest(bytes), "size": bytes.len() })
}

/// The empty JSON blob `{}` used as config by artifacts.
pub const EMPTY_JSON: &[u8] = b"{}";

/// An image: its blobs (config first) and its manifest bytes.
pub struct Image {
    pub blobs: Vec<Vec<u8>>,
    pub manifest: Vec<u8>,
    pub media_type: &'static str,
    pub digest: String,
}

impl Image {
    fn new(blobs: Vec<Vec<u8>>, manifest: Value, media_type: &'static str) -> Image {
        let manifest = manifest_bytes(&manifest);
        Image {
            digest: digest(&manifest),
            blobs,
            manifest,
            media_type,
        }
    }

    /// A descriptor of this image's manifest, for indexes.
    pub fn descriptor(&self) -> Value {
        descriptor(self.media_type, &self.manifest)
    }

    /// Pushes the blobs and then the manifest under `reference`.
    pub fn push(&self, c: &Ctx, repo: &str, reference: &str) -> Outcome<()> {
        push_blobs(c, repo, &self.blobs)?;
        push_manifest(c, repo, reference, self.media_type, &self.manifest)?;
        Ok(())
    }
}

fn config_json(c: &Ctx, label: &str, arch: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    manifest_bytes(&json!({
        "architecture": arch,
        "os": "linux",
        "config": { "Labels": { "conformance.run": c.run_id(), "conformance.label": label } },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
}

/// An OCI image with `layers` layers of distinct sizes; content unique to the
/// run and `label`.
pub fn oci_image(c: &Ctx, label: &str, layers: usize) -> Image {
    oci_image_arch(c, label, layers, "amd64")
}

/// Like [`oci_image`] for a given architecture.
pub fn oci_image_arch(c: &Ctx, label: &str, layers: usize, arch: &str) -> Image {
    let layer_blobs: Vec<Vec<u8>> = (0..layers)
        .map(|i| c.data(&format!("{label}/layer{i}"), 1000 + 357 * i))
        .collect();
    let config = config_json(c, label, arch, &layer_blobs);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config),
        "layers": layer_blobs.iter().map(|l| descriptor(OCI_LAYER, l)).collect::<Vec<_>>(),
        "annotations": { "org.opencontainers.image.title": label },
    });
    let mut blobs = vec![config];
    blobs.extend(layer_blobs);
    Image::new(blobs, manifest, OCI_MANIFEST)
}

/// A Docker schema 2 image with one layer.
pub fn docker_image(c: &Ctx, label: &str, arch: &str) -> Image {
    let layer = c.data(&format!("{label}/docker-layer"), 1500);
    let config = config_json(c, label, arch, std::slice::from_ref(&layer));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, &config),
        "layers": [descriptor(DOCKER_LAYER, &layer)],
    });
    Image::new(vec![config, layer], manifest, DOCKER_MANIFEST)
}

/// An index (OCI or Docker list, per `media_type`) over `children`, one
/// platform each.
pub fn index_of(media_type: &'static str, children: &[(&Image, &str)]) -> Image {
    let manifests: Vec<Value> = children
        .iter()
        .map(|(img, arch)| {
            let mut d = img.descriptor();
            d["platform"] = json!({ "architecture": arch, "os": "linux" });
            d
        })
        .collect();
    let v = json!({ "schemaVersion": 2, "mediaType": media_type, "manifests": manifests });
    Image::new(Vec::new(), v, media_type)
}

/// Pushes one blob with POST + PUT (the most widely supported way) and checks
/// the 201; returns its digest.
pub fn push_blob(c: &Ctx, repo: &str, data: &[u8]) -> Outcome<String> {
    let d = digest(data);
    let loc = start_upload(c, repo)?;
    let r = c.send(
        Method::PUT,
        &with_query(&loc, &format!("digest={d}")),
        &[("Content-Type", "application/octet-stream")],
        Payload::Bytes(data.to_vec()),
    )?;
    r.expect(201)?;
    Ok(d)
}

/// Pushes every blob in `blobs` to `repo`.
pub fn push_blobs(c: &Ctx, repo: &str, blobs: &[Vec<u8>]) -> Outcome<()> {
    for b in blobs {
        push_blob(c, repo, b)?;
    }
    Ok(())
}

/// POST `/v2/<repo>/blobs/uploads/`, expecting 202 with a `Location`; returns
/// the `Location`.
pub fn start_upload(c: &Ctx, repo: &str) -> Outcome<String> {
    let r = c.send(
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        Payload::None,
    )?;
    r.expect(202)?;
    r.need("location")
}

/// PUT a manifest; returns the raw answer.
pub fn put_manifest(
    c: &Ctx,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> Outcome<Resp> {
    c.send(
        Method::PUT,
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", media_type)],
        Payload::Bytes(body.to_vec()),
    )
}

/// PUT a manifest and require 201; returns the answer.
pub fn push_manifest(
    c: &Ctx,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> Outcome<Resp> {
    let r = put_manifest(c, repo, reference, media_type, body)?;
    r.expect(201)?;
    Ok(r)
}
