//! Image details in the management API and the CLI: `image_id` (the config
//! digest, `docker images`' IMAGE ID), the config descriptor apart from the
//! layers, the platform from the image config, per-layer annotations and
//! the history entry that created each layer, with `empty_layer` entries
//! listed apart.

mod common;

use common::push_blob;

use common::Server;
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn put_manifest(url: &str, repo: &str, reference: &str, mt: &str, m: &Value) -> String {
    common::put_manifest(url, repo, reference, mt, &serde_json::to_vec(m).unwrap())
}

struct Image {
    digest: String,
    config: String,
    config_len: usize,
    layers: Vec<String>,
}

/// An image built in three steps, one of which (ENV) made no layer.
fn push_built_image(url: &str, repo: &str, tag: &str, mt: &str, config_mt: &str) -> Image {
    let l1 = common::bytes(1, 1200);
    let l2 = common::bytes(2, 800);
    let (d1, d2) = (push_blob(url, repo, &l1), push_blob(url, repo, &l2));
    let config = serde_json::to_vec(&json!({
        "created": "2024-05-01T10:00:00Z",
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "config": {"Env": ["A=1"], "Cmd": ["/app"]},
        "rootfs": {"type": "layers", "diff_ids": [common::digest(b"diff1"), common::digest(b"diff2")]},
        "history": [
            {"created": "2024-05-01T09:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:base.tar in /"},
            {"created": "2024-05-01T09:30:00Z", "created_by": "/bin/sh -c #(nop) ENV A=1", "empty_layer": true},
            {"created": "2024-05-01T10:00:00Z", "created_by": "RUN make install", "comment": "buildkit.dockerfile.v0"},
        ],
    }))
    .unwrap();
    let c = push_blob(url, repo, &config);
    let layer = |d: &str, n: usize, ann: Value| {
        let mut v = json!({"mediaType": LAYER, "digest": d, "size": n});
        if !ann.is_null() {
            v["annotations"] = ann;
        }
        v
    };
    let m = json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": {"mediaType": config_mt, "digest": c, "size": config.len()},
        "layers": [
            layer(&d1, l1.len(), json!({"org.opencontainers.image.title": "base.tar"})),
            layer(&d2, l2.len(), Value::Null),
        ],
    });
    let digest = put_manifest(url, repo, tag, mt, &m);
    Image {
        digest,
        config: c,
        config_len: config.len(),
        layers: vec![d1, d2],
    }
}

fn get(url: &str) -> Value {
    let r = common::client().get(url).send().unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    r.json().unwrap()
}

fn check_image(a: &Value, img: &Image, config_mt: &str) {
    assert_eq!(a["image_id"], img.config.as_str(), "{a:#}");
    assert_eq!(a["config"]["digest"], img.config.as_str());
    assert_eq!(a["config"]["media_type"], config_mt);
    assert_eq!(a["config"]["size"], img.config_len);
    assert_eq!(
        a["platform"],
        json!({"os": "linux", "architecture": "arm64", "variant": "v8"})
    );
    let layers = a["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "the config is not a layer: {a:#}");
    assert_eq!(layers[0]["digest"], img.layers[0].as_str());
    assert_eq!(layers[1]["digest"], img.layers[1].as_str());
    assert_eq!(layers[0]["media_type"], LAYER);
    assert_eq!(layers[0]["size"], 1200);
    assert_eq!(
        layers[0]["annotations"],
        json!({"org.opencontainers.image.title": "base.tar"})
    );
    assert_eq!(layers[1]["annotations"], Value::Null);
    assert_eq!(
        layers[0]["history"],
        json!({"created": "2024-05-01T09:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:base.tar in /", "comment": null})
    );
    assert_eq!(layers[1]["history"]["created_by"], "RUN make install");
    assert_eq!(layers[1]["history"]["comment"], "buildkit.dockerfile.v0");
    assert_eq!(
        a["empty_history"],
        json!([{"created": "2024-05-01T09:30:00Z", "created_by": "/bin/sh -c #(nop) ENV A=1", "comment": null}])
    );
}

#[test]
fn artifacts_show_image_id_config_platform_and_layer_history() {
    let (s, _dir) = Server::start();
    let url = s.url();
    let oci = push_built_image(url, "acme/app", "v1", OCI_MANIFEST, OCI_CONFIG);
    let docker = push_built_image(url, "acme/app", "docker", DOCKER_MANIFEST, DOCKER_CONFIG);
    let base = format!("{url}/api/v1/namespaces/acme/repositories/app");

    // Artifact detail.
    let a = get(&format!("{base}/artifacts/{}", oci.digest));
    check_image(&a, &oci, OCI_CONFIG);
    let a = get(&format!("{base}/artifacts/{}", docker.digest));
    check_image(&a, &docker, DOCKER_CONFIG);

    // Artifact list.
    let list = get(&format!("{base}/artifacts"));
    let by = |d: &str| {
        list["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["digest"] == d)
            .cloned()
            .unwrap_or_else(|| panic!("{d} not listed"))
    };
    check_image(&by(&oci.digest), &oci, OCI_CONFIG);
    check_image(&by(&docker.digest), &docker, DOCKER_CONFIG);

    // Repository detail.
    let repo = get(&base);
    let a = repo["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["digest"] == oci.digest.as_str())
        .cloned()
        .unwrap();
    check_image(&a, &oci, OCI_CONFIG);

    // An index has no config or image id, and lists its children's platforms.
    let idx = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": oci.digest, "size": 0,
                       "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}],
    });
    // The descriptor's size must be the manifest's: fetch it.
    let m = common::client()
        .get(format!("{url}/v2/acme/app/manifests/{}", oci.digest))
        .header("accept", OCI_MANIFEST)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let mut idx = idx;
    idx["manifests"][0]["size"] = json!(m.len());
    let ix = put_manifest(url, "acme/app", "multi", OCI_INDEX, &idx);
    let a = get(&format!("{base}/artifacts/{ix}"));
    assert_eq!(a["image_id"], Value::Null);
    assert_eq!(a["config"], Value::Null);
    assert_eq!(a["layers"], json!([]));
    assert_eq!(
        a["platforms"],
        json!([{"os": "linux", "architecture": "arm64", "variant": "v8"}])
    );

    // The OpenAPI document describes the new fields.
    let doc = get(&format!("{url}/api/v1/openapi.json"));
    let props = &doc["components"]["schemas"]["Artifact"]["properties"];
    for f in ["image_id", "config", "platform", "layers", "empty_history"] {
        assert!(props.get(f).is_some(), "OpenAPI Artifact lacks {f}");
    }
    assert!(doc["components"]["schemas"]["Layer"]["properties"]
        .get("history")
        .is_some());

    // `berth artifact list` shows the IMAGE ID column.
    let text = common::run_ok(
        common::berth_cmd()
            .args(["artifact", "list", "acme", "app"])
            .env("BERTH_URL", url),
    );
    let header = text.lines().next().unwrap_or_default();
    assert!(header.contains("IMAGE ID"), "header: {header}");
    let short_id = &oci.config[..("sha256:".len() + 12)];
    let line = text
        .lines()
        .find(|l| l.contains(&oci.digest[..("sha256:".len() + 12)]))
        .unwrap_or_else(|| panic!("artifact not in:\n{text}"));
    assert!(
        line.contains(short_id),
        "IMAGE ID {short_id} not in {line:?}"
    );
}

/// A config that is not an image config (an artifact's) gives an image id
/// but no platform or history; a minimal image config still gives the
/// platform.
#[test]
fn non_image_configs_give_no_platform_and_minimal_ones_do() {
    let (s, _dir) = Server::start();
    let url = s.url();
    let layer = push_blob(url, "acme/art", b"an sbom");
    let cfg = push_blob(url, "acme/art", b"{}");
    let m = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.example.sbom.config.v1+json", "digest": cfg, "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": layer, "size": 7}],
    });
    let d = put_manifest(url, "acme/art", "sbom", OCI_MANIFEST, &m);
    let a = get(&format!(
        "{url}/api/v1/namespaces/acme/repositories/art/artifacts/{d}"
    ));
    assert_eq!(a["image_id"], cfg.as_str());
    assert_eq!(a["platform"], Value::Null);
    assert_eq!(a["layers"][0]["history"], Value::Null);
    assert_eq!(a["empty_history"], json!([]));

    let minimal = br#"{"architecture":"amd64","os":"linux"}"#;
    let cfg = push_blob(url, "acme/art", minimal);
    let m = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg, "size": minimal.len()},
        "layers": [{"mediaType": LAYER, "digest": layer, "size": 7}],
    });
    let d = put_manifest(url, "acme/art", "min", OCI_MANIFEST, &m);
    let a = get(&format!(
        "{url}/api/v1/namespaces/acme/repositories/art/artifacts/{d}"
    ));
    assert_eq!(
        a["platform"],
        json!({"os": "linux", "architecture": "amd64", "variant": null})
    );
}
