//! Helpers of the access-control suites (`auth.rs`, `auth_*.rs` that use
//! a seeded world): the token-mode kit, plus a server with environment and
//! extra arguments, clients from other loopback addresses, and a registry
//! with public and private namespaces, users of every role and an image in
//! each namespace.

// Items defined here shadow the kit's where these suites need another shape
// (a serve with environment, a config that does not throttle logins).
pub use super::authkit::*;

use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

/// Starts `berth serve` on `addr` with `config` (TOML) and environment.
pub fn serve(dir: &Path, addr: &str, config: &str, env: &[(&str, &str)], extra: &[&str]) -> Proc {
    serve_with(dir, addr, config, env, extra, None)
}

/// A client whose connections come from `ip` (a loopback address).
pub fn client_from(ip: &str) -> Client {
    // reqwest is built without a TLS provider of its own: install ring's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .local_address(Some(ip.parse().unwrap()))
        .build()
        .unwrap()
}

pub struct Image {
    pub manifest: String,
}

/// Pushes a config and a layer and returns a manifest referencing them.
pub fn push_blobs(c: &Client, url: &str, repo: &str, cred: &Cred, salt: &str) -> Image {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","salt":"{salt}"}}"#).into_bytes();
    let layer = format!("layer of {salt}").into_bytes();
    for b in [&config, &layer] {
        push_blob(c, url, repo, cred, b);
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MT,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": super::digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": super::digest(&layer), "size": layer.len()}],
    })
    .to_string();
    Image { manifest }
}

pub fn put_manifest(c: &Client, url: &str, repo: &str, tag: &str, img: &Image, cred: &Cred) -> u16 {
    send(
        c,
        Method::PUT,
        &format!("{url}/v2/{repo}/manifests/{tag}"),
        cred,
    )
    .header("content-type", MT)
    .body(img.manifest.clone())
    .send()
    .unwrap()
    .status()
    .as_u16()
}

pub fn token_config(extra: &str) -> String {
    format!("[auth]\nmode = \"token\"\nmax_failed_logins = 1000\n{extra}")
}

/// A token-mode registry with namespaces `pub` (public) and `priv`, an
/// image `app:seed` in each, users and roles, pushed by the admin.
pub struct World {
    pub p: Proc,
    pub _dir: tempfile::TempDir,
    pub c: Client,
    pub admin: Cred,
    pub img: std::collections::HashMap<&'static str, Image>,
}

pub fn world(extra_config: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    user_add(dir.path(), "admin", ADMIN_PW, true);
    let p = serve(
        dir.path(),
        "127.0.0.1:0",
        &token_config(extra_config),
        &[],
        &[],
    );
    let c = super::client();
    let admin = basic("admin", ADMIN_PW);
    let url = p.url.clone();
    for (ns, public) in [("pub", true), ("priv", false)] {
        let (s, v) = api(
            &c,
            Method::POST,
            &url,
            "/namespaces",
            &admin,
            Some(json!({"name": ns, "is_public": public})),
        );
        assert_eq!(s, 201, "{v}");
    }
    for (name, role) in [
        ("reader", Some("reader")),
        ("writer", Some("writer")),
        ("nsadmin", Some("admin")),
        ("outsider", None),
    ] {
        create_user(&c, &url, &admin, name, PW);
        if let Some(role) = role {
            for ns in ["pub", "priv"] {
                grant(&c, &url, &admin, ns, name, role);
            }
        }
    }
    let mut img = std::collections::HashMap::new();
    for ns in ["pub", "priv"] {
        let i = push_blobs(&c, &url, &format!("{ns}/app"), &admin, ns);
        assert_eq!(
            put_manifest(&c, &url, &format!("{ns}/app"), "seed", &i, &admin),
            201
        );
        img.insert(ns, i);
    }
    World {
        p,
        _dir: dir,
        c,
        admin,
        img,
    }
}

pub fn create_token(w: &World, name: &str, scopes: Value, extra: Value) -> (String, String) {
    let mut body = json!({"name": name, "scopes": scopes});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    create_scoped_token(&w.c, &w.p.url, &w.admin, body)
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
        .collect::<Vec<_>>()
        .join("&")
}
