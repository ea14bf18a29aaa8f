//! Isolation, black-box: upload sessions per repository, what the
//! management API shows a scoped caller, and blobs a manifest may hold.
//! Each test is named after the finding it pins.

mod common;

use std::time::{Duration, Instant};

use common::hardening::*;
use serde_json::{json, Value};

#[test]
fn upload_sessions_per_repository_are_limited_and_freed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("berth.toml");
    std::fs::write(
        &cfg,
        "[storage]\nmax_open_uploads_per_repository = 3\n[gc]\nupload_ttl_secs = 2\n",
    )
    .unwrap();
    let mut server = common::Server::start_in(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let c = common::client();
    let start = |url: &str, repo: &str| {
        c.post(format!("{url}/v2/{repo}/blobs/uploads/"))
            .send()
            .unwrap()
    };
    let url = server.url().to_string();
    let open: Vec<String> = (0..3)
        .map(|_| {
            let r = start(&url, "sess/app");
            assert_eq!(r.status(), 202);
            r.headers()["location"].to_str().unwrap().to_string()
        })
        .collect();
    let refused = |url: &str| {
        let r = start(url, "sess/app");
        assert_eq!(r.status(), 429, "a session past the limit");
        let e: Value = r.json().unwrap();
        assert_eq!(e["errors"][0]["code"], "TOOMANYREQUESTS");
        let detail = e["errors"][0]["detail"].as_str().unwrap().to_string();
        assert!(
            detail.contains("finish or cancel") && detail.contains("expire after 2 s"),
            "{detail}"
        );
    };
    refused(&url);
    // Other repositories have their own limit.
    assert_eq!(start(&url, "sess/other").status(), 202);
    // A cancelled session frees its place; so does a finished one.
    let r = c.delete(format!("{url}{}", open[0])).send().unwrap();
    assert_eq!(r.status(), 204);
    let again = start(&url, "sess/app");
    assert_eq!(again.status(), 202);
    refused(&url);
    let d = common::digest(b"done");
    let r = c
        .put(common::with_param(
            &format!("{url}{}", open[1]),
            &format!("digest={d}"),
        ))
        .body("done")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(start(&url, "sess/app").status(), 202);
    // The count survives a restart: it comes from the recorded sessions.
    server.restart();
    let url = server.url().to_string();
    refused(&url);
    // Expired sessions free their places too.
    std::thread::sleep(Duration::from_millis(2500));
    let report = gc_run(&c, &url);
    assert!(report["uploads_expired"].as_u64().unwrap() >= 3, "{report}");
    for _ in 0..3 {
        assert_eq!(start(&url, "sess/app").status(), 202);
    }
    refused(&url);
}

#[test]
fn scoped_token_sees_nothing_outside_its_scope_in_the_management_api() {
    let (server, _dir) = serve_token("");
    let url = server.url().to_string();
    let c = common::client();
    let admin = ("admin", ADMIN_PW);
    let r = c
        .post(format!("{url}/api/v1/namespaces"))
        .basic_auth(admin.0, Some(admin.1))
        .json(&json!({"name": "priv", "is_public": false}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    for (repo, salts) in [("priv/app", ["a1", "a2"]), ("priv/hidden", ["h1", "h2"])] {
        for (i, salt) in salts.iter().enumerate() {
            push_image_as(&c, &url, repo, &format!("v{i}"), salt, admin);
        }
    }
    let r = c
        .put(format!("{url}/api/v1/namespaces/priv/retention"))
        .basic_auth(admin.0, Some(admin.1))
        .json(&json!({"policies": [{"repositories": "*", "keep_last": 1}]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let r = c
        .post(format!("{url}/api/v1/tokens"))
        .basic_auth(admin.0, Some(admin.1))
        .json(&json!({"name": "ci", "scopes": [{"repository": "priv/app", "actions": ["pull"]}]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let secret = r.json::<Value>().unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |path: &str| {
        let r = c
            .get(format!("{url}/api/v1{path}"))
            .basic_auth("ci", Some(&secret))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().unwrap())
    };
    let admin_view: Value = c
        .get(format!("{url}/api/v1/namespaces/priv"))
        .basic_auth(admin.0, Some(admin.1))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(admin_view["image_count"], 2);
    let app: Value = serde_json::from_str(&get("/namespaces/priv/repositories/app").1).unwrap();

    // Figures: only the repository in scope counts.
    let (s, ns) = get("/namespaces/priv");
    assert_eq!(s, 200, "{ns}");
    let ns: Value = serde_json::from_str(&ns).unwrap();
    assert_eq!(ns["image_count"], 1, "{ns}");
    assert_eq!(ns["size"], app["repository"]["size"], "{ns} vs {app}");
    assert!(ns["size"].as_u64().unwrap() < admin_view["size"].as_u64().unwrap());
    let (_, list) = get("/namespaces");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["namespaces"][0]["image_count"], 1, "{list}");
    assert_eq!(
        list["namespaces"][0]["size"], app["repository"]["size"],
        "{list}"
    );

    // The retention preview names nothing of priv/hidden.
    let (s, preview) = get("/namespaces/priv/retention/preview");
    assert_eq!(s, 200, "{preview}");
    assert!(!preview.contains("hidden"), "{preview}");
    assert!(preview.contains("priv/app"), "{preview}");

    // A hidden repository answers exactly like a missing one.
    for suffix in ["", "/tags", "/artifacts", "/tags/v0"] {
        let hidden = get(&format!("/namespaces/priv/repositories/hidden{suffix}"));
        let missing = get(&format!("/namespaces/priv/repositories/nothere{suffix}"));
        assert_eq!(hidden.0, 404, "hidden{suffix}: {}", hidden.1);
        assert_eq!(
            hidden.1.replace("hidden", "NAME"),
            missing.1.replace("nothere", "NAME"),
            "hidden{suffix} differs from a missing repository"
        );
    }
}

#[test]
fn manifest_of_unknown_type_cannot_keep_another_namespaces_blob_alive() {
    let (server, dir) = serve("[gc]\ngrace_period_secs = 0\n");
    let url = server.url().to_string();
    let data = dir.path().join("data");
    let c = common::client();
    let secret = push_blobs(&c, &url, "secret/vault", "vault");
    let r = c
        .put(format!("{url}/v2/secret/vault/manifests/v1"))
        .header("content-type", MT)
        .body(image(&secret, MT, CONFIG_MT, LAYER_MT))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let own = push_blobs(&c, &url, "priv/app", "own");
    // Names the vault's layer and config next to its own blob.
    let holder = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.example.holder.v1+json",
        "config": {"mediaType": CONFIG_MT, "digest": secret[0].0, "size": secret[0].1},
        "layers": [
            {"mediaType": LAYER_MT, "digest": secret[1].0, "size": secret[1].1},
            {"mediaType": LAYER_MT, "digest": own[1].0, "size": own[1].1},
        ],
    })
    .to_string();
    let r = c
        .put(format!("{url}/v2/priv/app/manifests/holder"))
        .body(holder.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    assert!(blob_file(&data, &secret[1].0).exists());

    let r = c
        .delete(format!("{url}/api/v1/namespaces/secret"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    while c
        .get(format!("{url}/api/v1/namespaces/secret"))
        .send()
        .unwrap()
        .status()
        != 404
    {
        assert!(Instant::now() < deadline, "namespace secret not deleted");
        std::thread::sleep(Duration::from_millis(50));
    }
    gc_run(&c, &url);
    for (what, d) in [("layer", &secret[1].0), ("config", &secret[0].0)] {
        assert!(
            !blob_file(&data, d).exists(),
            "the vault's {what} is still on disk, kept alive by priv/app's manifest"
        );
    }
    // What priv/app holds itself stays, and the manifest is served as pushed.
    assert!(
        blob_file(&data, &own[1].0).exists(),
        "priv/app's own layer was collected"
    );
    let r = c
        .get(format!("{url}/v2/priv/app/manifests/holder"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), holder);
    let r = c
        .get(format!("{url}/v2/priv/app/blobs/{}", secret[1].0))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}
