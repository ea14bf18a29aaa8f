//! Upgrades and rollbacks: persisted records written in the shapes this
//! version writes, by an older version (fields missing) or by a newer one
//! (fields this binary does not know) open and serve. A database of a newer
//! format is refused with a clear message instead of being misread.
//!
//! The records are written straight into the metadata database (one sled
//! tree per table) while the server is stopped, as JSON in exactly the
//! shapes stored on disk.

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Writes `(tree, key, JSON)` rows into the stopped server's database.
fn write_records(data_dir: &Path, rows: &[(&str, &str, Value)]) {
    let db = sled::open(data_dir.join("meta")).expect("open metadata database");
    for (tree, key, value) in rows {
        db.open_tree(tree)
            .expect("tree")
            .insert(key.as_bytes(), serde_json::to_vec(value).unwrap())
            .expect("insert");
    }
    db.flush().expect("flush");
}

/// Today's record shapes, every field present.
fn todays_records() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "settings",
            "registry",
            json!({
                "name": "upgraded",
                "region": "eu-1",
                "garbage_collection_schedule": {"days": ["monday", "friday"], "time": "03:30"},
                "api_subnet_allow_list": ["127.0.0.0/8", "::1/128"],
                "features": {"vulnerability_scanning": {"enabled": true}},
            }),
        ),
        (
            "namespaces",
            "acme",
            json!({
                "id": "5f0c7c2e-8a6e-4d7b-9a57-3f3d2f7b9c10",
                "created_at": 1_700_000_000_000i64,
                "updated_at": 1_700_000_000_000i64,
                "description": "from an earlier version",
                "project_id": "p-1",
                "is_public": true,
                "status": "ready",
                "status_message": "",
            }),
        ),
        (
            "retention",
            "acme",
            json!([{
                "repositories": "*",
                "keep_last": 2,
                "older_than_days": null,
                "include_tags": null,
                "exclude_tags": null,
                "untagged_older_than_days": null,
            }]),
        ),
    ]
}

/// The same records as a newer version might write them (fields this
/// binary does not know) or an older one (fields missing).
fn foreign_records() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "settings",
            "registry",
            json!({
                "name": "upgraded",
                "region": "eu-1",
                "garbage_collection_schedule": {"days": ["monday"], "time": "03:30", "timezone": "UTC"},
                "api_subnet_allow_list": ["127.0.0.0/8", "::1/128"],
                "features": {
                    "vulnerability_scanning": {"enabled": true, "scanner": "future"},
                    "signing": {"enabled": true},
                },
                "quota_bytes": 1_000_000,
            }),
        ),
        (
            "namespaces",
            "acme",
            json!({
                "id": "5f0c7c2e-8a6e-4d7b-9a57-3f3d2f7b9c10",
                "created_at": 1_700_000_000_000i64,
                "is_public": true,
                "labels": {"team": "web"},
            }),
        ),
        (
            "retention",
            "acme",
            json!([{"keep_last": 2, "notify": "ops@example.com"}]),
        ),
    ]
}

fn push_image(url: &str, repo: &str, tag: &str) -> String {
    let c = common::client();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = common::bytes(7, 2000);
    for b in [&config[..], &layer[..]] {
        let r = c
            .post(format!(
                "{url}/v2/{repo}/blobs/uploads/?digest={}",
                common::digest(b)
            ))
            .body(b.to_vec())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "blob push");
    }
    let m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": common::digest(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": common::digest(&layer), "size": layer.len()}],
    })
    .to_string();
    let r = c
        .put(format!("{url}/v2/{repo}/manifests/{tag}"))
        .header("content-type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "manifest push: {}", r.text().unwrap());
    common::digest(m.as_bytes())
}

fn get_json(url: &str) -> Value {
    let r = common::client().get(url).send().unwrap();
    let status = r.status();
    let body = r.text().unwrap();
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Starts a server on a database holding `rows`, checks it serves the
/// records and the registry works.
fn serves_with(rows: Vec<(&'static str, &'static str, Value)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    assert!(s.stop(), "first server stops cleanly");
    write_records(dir.path(), &rows);

    let mut s = Server::start_in(dir.path(), &[]);
    let url = s.url().to_string();
    let r = common::client().get(format!("{url}/v2/")).send().unwrap();
    assert_eq!(r.status(), 200, "/v2/ with the stored settings");

    let settings = get_json(&format!("{url}/api/v1/registry"));
    assert_eq!(settings["name"], "upgraded");
    assert_eq!(settings["region"], "eu-1");
    assert_eq!(settings["garbage_collection_schedule"]["time"], "03:30");
    assert_eq!(
        settings["features"]["vulnerability_scanning"]["enabled"],
        true
    );

    let ns = get_json(&format!("{url}/api/v1/namespaces/acme"));
    assert_eq!(ns["is_public"], true, "{ns}");
    assert_eq!(ns["status"], "ready", "{ns}");

    let policies = get_json(&format!("{url}/api/v1/namespaces/acme/retention"));
    assert_eq!(policies["policies"][0]["keep_last"], 2, "{policies}");
    assert_eq!(policies["policies"][0]["repositories"], "*", "{policies}");

    let d = push_image(&url, "acme/app", "v1");
    let r = common::client()
        .get(format!("{url}/v2/acme/app/manifests/v1"))
        .header("accept", OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["docker-content-digest"].to_str().unwrap(),
        d.as_str()
    );
    get_json(&format!("{url}/api/v1/namespaces/acme/retention/preview"));

    // Writing the settings back (in this binary's shape) keeps working and
    // survives a restart.
    let r = common::client()
        .patch(format!("{url}/api/v1/registry"))
        .json(&json!({"region": "eu-2"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "PATCH settings: {}", r.text().unwrap());
    s.restart();
    let settings = get_json(&format!("{}/api/v1/registry", s.url()));
    assert_eq!(settings["region"], "eu-2");
    assert_eq!(settings["name"], "upgraded");
}

#[test]
fn records_in_todays_shapes_open_and_serve() {
    serves_with(todays_records());
}

#[test]
fn records_with_unknown_and_missing_fields_open_and_serve() {
    serves_with(foreign_records());
}

#[test]
fn database_of_a_newer_format_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    assert!(s.stop());
    write_records(dir.path(), &[("settings", "format", json!({"format": 99}))]);
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .arg("--addr")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run berth");
    assert!(
        !out.status.success(),
        "a format-99 database must not be served"
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("format 99") && text.contains("newer"),
        "message should name the format and say it is newer: {text}"
    );
}
