//! `berth migrate` round trip: a registry on sled and the local disk is
//! copied to PostgreSQL and S3 and back to sled and the local disk; each
//! copy answers the management API and `/v2` as the original did, every
//! blob pulls with its digest, a second run resumes (copies only what is
//! missing), and a destination holding a registry of its own is refused.
//!
//! The servers come from `tests/backends/run.sh`: `BERTH_TEST_PG_URL` (an
//! administrator's URL; the test creates a database) and
//! `BERTH_TEST_S3_ENDPOINT`, `_BUCKET`, `_ACCESS_KEY`, `_SECRET_KEY`.
//! `#[ignore]`d so that the plain `cargo test` run does not start it.

mod common;

use common::authkit::{
    api, basic, create_user, get_token, grant, send, serve_with, Cred, Proc, ADMIN_PW, PW,
};
use common::gc::{plain_image, push_blob_with, put_manifest_with, verify_pull_with, Image};
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

use std::process::Command;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name}: this test runs from tests/backends/run.sh"))
}

/// One registry's configuration: token mode, and its backends.
fn config(dir: &Path, backends: &str) -> PathBuf {
    let file = dir.join("migrate.toml");
    let text = format!(
        "[auth]\nmode = \"token\"\nmax_failed_logins = 1000\n\n[storage]\ndata_dir = \"{}\"\n{backends}",
        dir.join("data").display()
    );
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(&file, text).unwrap();
    file
}

fn sled(dir: &Path) -> PathBuf {
    config(dir, "")
}

fn postgres_and_s3(dir: &Path) -> PathBuf {
    let db = common::pg_database::database_for(dir, &env("BERTH_TEST_PG_URL"));
    let prefix = db.rsplit('/').next().unwrap().to_string();
    config(
        dir,
        &format!(
            "backend = \"s3\"\nbucket = \"{}\"\nprefix = \"{prefix}\"\nendpoint = \"{}\"\nallow_http = true\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n\n[metadata]\nbackend = \"postgres\"\nurl = \"{db}\"\n",
            env("BERTH_TEST_S3_BUCKET"),
            env("BERTH_TEST_S3_ENDPOINT"),
            env("BERTH_TEST_S3_ACCESS_KEY"),
            env("BERTH_TEST_S3_SECRET_KEY"),
        ),
    )
}

fn serve(dir: &Path) -> Proc {
    let text = std::fs::read_to_string(dir.join("migrate.toml")).unwrap();
    serve_with(
        dir,
        "127.0.0.1:0",
        &text,
        &[("BERTH_ADMIN_PASSWORD", ADMIN_PW)],
        &[],
        None,
    )
}

/// `berth migrate --from --to --json`: exit code, report, output.
fn migrate(from: &Path, to: &Path) -> (Option<i32>, Value, String) {
    common::run_json(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["migrate", "--json", "--from"])
            .arg(from)
            .arg("--to")
            .arg(to),
    )
}

#[track_caller]
fn migrated(from: &Path, to: &Path) -> Value {
    let (code, report, raw) = migrate(from, to);
    assert_eq!(code, Some(0), "berth migrate: {raw}");
    report
}

/// What the registry answers: `/v2` listings and manifests, and the
/// management API's namespaces, repositories with their artifacts, sizes
/// and pull times, users, grants, tokens, retention and settings.
fn answers(url: &str) -> Vec<(String, Value)> {
    let c = common::authkit::client();
    let admin = basic("admin", ADMIN_PW);
    let get = |path: &str| {
        let r = send(&c, Method::GET, &format!("{url}{path}"), &admin)
            .header("accept", common::media::OCI_MANIFEST)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        let digest = r
            .headers()
            .get("docker-content-digest")
            .map(|v| v.to_str().unwrap().to_string());
        // Addresses name the server answering, which differs per copy.
        let host = url.trim_start_matches("http://");
        let text = r.text().unwrap().replace(host, "<registry>");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (path.to_string(), json!({"digest": digest, "body": body}))
    };
    let mut out = vec![
        get("/v2/_catalog"),
        get("/api/v1/namespaces"),
        get("/api/v1/users"),
        get("/api/v1/tokens"),
        get("/api/v1/registry"),
    ];
    for ns in ["team", "open"] {
        out.push(get(&format!("/api/v1/namespaces/{ns}")));
        out.push(get(&format!("/api/v1/namespaces/{ns}/repositories")));
        out.push(get(&format!("/api/v1/namespaces/{ns}/grants")));
        out.push(get(&format!("/api/v1/namespaces/{ns}/retention")));
    }
    let catalog = out[0].1["body"]["repositories"].as_array().unwrap().clone();
    assert!(catalog.len() >= 3, "{catalog:?}");
    for repo in catalog {
        let repo = repo.as_str().unwrap();
        let (ns, name) = repo.split_once('/').unwrap();
        out.push(get(&format!("/api/v1/namespaces/{ns}/repositories/{name}")));
        let tags = get(&format!("/v2/{repo}/tags/list"));
        for t in tags.1["body"]["tags"].as_array().unwrap() {
            out.push(get(&format!(
                "/v2/{repo}/manifests/{}",
                t.as_str().unwrap()
            )));
        }
        out.push(tags);
    }
    out
}

#[track_caller]
fn same_answers(what: &str, want: &[(String, Value)], url: &str) {
    let got = answers(url);
    assert_eq!(got.len(), want.len(), "{what}: another set of answers");
    for ((path, w), (_, g)) in want.iter().zip(&got) {
        assert_eq!(w, g, "{what}: GET {path} answers otherwise");
    }
}

#[test]
#[ignore = "needs PostgreSQL and S3: run by tests/backends/run.sh"]
fn migrate_round_trips_sled_to_postgres_and_s3_and_back() {
    let root = tempfile::tempdir().unwrap();
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|n| root.path().join(n));
    let (from_a, to_b, to_c, to_d) = (sled(&a), postgres_and_s3(&b), sled(&c), sled(&d));

    // The original: two namespaces, images (one layer shared), a user with
    // a grant, a scoped token, retention, settings and pull times.
    let p = serve(&a);
    let (http, admin) = (common::authkit::client(), basic("admin", ADMIN_PW));
    let as_admin = admin_client();
    let shared = common::bytes(1, 300_000);
    let mut images: Vec<Image> = Vec::new();
    for (i, (repo, tag)) in [
        ("team/app", "1"),
        ("team/app", "2"),
        ("team/lib", "v1"),
        ("open/tool", "latest"),
    ]
    .into_iter()
    .enumerate()
    {
        let own = common::bytes(10 + i as u64, 50_000 + i * 1000);
        images.push(plain_image(
            repo,
            Some(tag),
            &format!("{repo}{i}"),
            &[&shared, &own],
        ));
    }
    let base = p.url.clone();
    for img in &images {
        push_as(&as_admin, &base, img);
    }
    let (s, v) = api(
        &http,
        Method::PATCH,
        &base,
        "/namespaces/open",
        &admin,
        Some(json!({"is_public": true})),
    );
    assert_eq!(s, 200, "{v}");
    create_user(&http, &base, &admin, "dev", PW);
    grant(&http, &base, &admin, "team", "dev", "writer");
    let (s, v) = api(
        &http,
        Method::POST,
        &base,
        "/tokens",
        &admin,
        Some(json!({"name": "ci", "scopes": [{"repository": "team/*", "actions": ["pull"]}]})),
    );
    assert_eq!(s, 201, "{v}");
    let ci = basic("ci", v["secret"].as_str().unwrap());
    let (s, v) = api(
        &http,
        Method::PUT,
        &base,
        "/namespaces/team/retention",
        &admin,
        Some(json!({"policies": [{"repositories": "*", "keep_last": 5}]})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = api(
        &http,
        Method::PATCH,
        &base,
        "/registry",
        &admin,
        Some(json!({"garbage_collection_schedule": {"days": ["sunday"], "time": "03:30"}})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = get_token(&http, &base, &admin, &["repository:team/app:pull"]);
    assert_eq!(s, 200, "{v}");
    let bearer = Cred::Bearer(v["token"].as_str().unwrap().to_string());
    for img in &images {
        verify_pull_with(&as_admin, &base, img).unwrap();
    }
    // Pull times are written every 2 s.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let want = answers(&base);
    drop(p);

    // sled + disk -> PostgreSQL + S3.
    let report = migrated(&from_a, &to_b);
    let blobs = report["blobs_copied"].as_u64().unwrap();
    assert!(blobs >= 9, "{report}");
    assert_eq!(report["blobs_present"], 0, "{report}");
    assert!(report["rows"].as_u64().unwrap() > 20, "{report}");
    let p = serve(&b);
    same_answers("on PostgreSQL and S3", &want, &p.url);
    drop(p);

    // PostgreSQL + S3 -> sled + disk, cut short and resumed: one blob
    // removed from the destination is the only one copied again.
    migrated(&to_b, &to_c);
    let victim = images[0].blobs[1].0.clone();
    std::fs::remove_file(common::blob_file(&c.join("data"), &victim)).unwrap();
    let report = migrated(&to_b, &to_c);
    assert_eq!(report["blobs_copied"], 1, "{report}");
    assert_eq!(
        report["blobs_present"].as_u64(),
        Some(blobs - 1),
        "{report}"
    );
    let p = serve(&c);
    same_answers("back on sled and the disk", &want, &p.url);
    // Credentials came along: the user's password, the scoped token, and
    // bearer tokens signed before the copies (used only now: a use is
    // recorded, and would differ from the original's answers).
    for cred in [&basic("dev", PW), &ci, &bearer] {
        let r = send(
            &http,
            Method::GET,
            &format!("{}/v2/team/app/tags/list", p.url),
            cred,
        )
        .send()
        .unwrap();
        assert_eq!(r.status(), 200, "{cred:?} on the copy");
    }
    for img in &images {
        verify_pull_with(&as_admin, &p.url, img).unwrap();
    }
    drop(p);
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["--config"])
        .arg(&to_c)
        .args(["fsck", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsck of the copy: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A destination with a registry of its own is refused, untouched.
    let p = serve(&d);
    let own = plain_image("mine/app", Some("1"), "mine", &[b"own layer"]);
    push_as(&as_admin, &p.url, &own);
    drop(p);
    let (code, _, raw) = migrate(&from_a, &to_d);
    assert_ne!(code, Some(0), "a copy into a registry of its own: {raw}");
    assert!(raw.contains("holds a registry already"), "{raw}");
    let p = serve(&d);
    let r = send(
        &http,
        Method::GET,
        &format!("{}/v2/_catalog", p.url),
        &admin,
    )
    .send()
    .unwrap();
    assert_eq!(
        r.json::<Value>().unwrap()["repositories"],
        json!(["mine/app"])
    );
}

/// A client sending the administrator's Basic credentials on every
/// request, for the image helpers of the GC suites (which send none).
fn admin_client() -> Client {
    use base64::Engine as _;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PW}"))
    );
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, value.parse().unwrap());
    Client::builder().default_headers(headers).build().unwrap()
}

/// Pushes every blob, then the manifest, through `c`; all acknowledged.
#[track_caller]
fn push_as(c: &Client, base: &str, img: &Image) {
    for (d, b) in &img.blobs {
        let r = push_blob_with(c, base, &img.repo, b).unwrap();
        assert_eq!(r.status, 201, "blob {d} to {}: {}", img.repo, r.text);
    }
    let r = put_manifest_with(c, base, img).unwrap();
    assert_eq!(
        r.status, 201,
        "manifest {}:{}: {}",
        img.repo, img.reference, r.text
    );
}
