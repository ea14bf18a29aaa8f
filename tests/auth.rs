//! Access control, black-box: the permission matrix (who × what × public or
//! private namespace, exact statuses), the Docker token endpoint, users and
//! scoped tokens through the API, the subnet allow-list with IPv4 and IPv6
//! rules and trusted proxies, failed-login throttling, the audit log, and
//! HTTPS with certificate reload.

mod authkit;
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

// Shared with the other token-mode suites; items defined below shadow
// the kit's where this suite needs another shape.
use authkit::*;

/// A `berth serve` started here (the shared harness always binds
/// 127.0.0.1, these tests also need other addresses and environment).
struct Proc {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Starts `berth serve` on `addr` with `config` (TOML) and environment.
fn serve(dir: &Path, addr: &str, config: &str, env: &[(&str, &str)], extra: &[&str]) -> Proc {
    serve_logging(dir, addr, config, env, extra, None)
}

/// [`serve`], with the server's log (stderr) written to `log`.
fn serve_logging(
    dir: &Path,
    addr: &str,
    config: &str,
    env: &[(&str, &str)],
    extra: &[&str],
    log: Option<&Path>,
) -> Proc {
    let cfg = dir.join("berth.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut cmd = berth();
    cmd.arg("serve")
        .arg("--config")
        .arg(&cfg)
        .arg("--addr")
        .arg(addr)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(extra)
        .env("RUST_LOG", "warn")
        .env_remove("BERTH_ADMIN_PASSWORD")
        .env_remove("BERTH_AUTH__MODE")
        .stdout(Stdio::piped())
        .stderr(match log {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::inherit(),
        });
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn berth");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("berth listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Proc {
        child,
        url,
        dir: dir.to_path_buf(),
    }
}

/// A client whose connections come from `ip` (a loopback address).
fn client_from(ip: &str) -> Client {
    // reqwest is built without a TLS provider of its own: install ring's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .local_address(Some(ip.parse().unwrap()))
        .build()
        .unwrap()
}

struct Image {
    manifest: String,
}

/// Pushes a config and a layer and returns a manifest referencing them.
fn push_blobs(c: &Client, url: &str, repo: &str, cred: &Cred, salt: &str) -> Image {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","salt":"{salt}"}}"#).into_bytes();
    let layer = format!("layer of {salt}").into_bytes();
    for b in [&config, &layer] {
        let r = send(
            c,
            Method::POST,
            &format!(
                "{url}/v2/{repo}/blobs/uploads/?digest={}",
                common::digest(b)
            ),
            cred,
        )
        .body(b.clone())
        .send()
        .unwrap();
        assert_eq!(
            r.status(),
            201,
            "blob push to {repo}: {}",
            r.text().unwrap()
        );
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MT,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": common::digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": common::digest(&layer), "size": layer.len()}],
    })
    .to_string();
    Image { manifest }
}

fn put_manifest(c: &Client, url: &str, repo: &str, tag: &str, img: &Image, cred: &Cred) -> u16 {
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

fn api(
    c: &Client,
    m: Method,
    url: &str,
    path: &str,
    cred: &Cred,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = send(c, m, &format!("{url}/api/v1{path}"), cred);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().unwrap();
    let s = r.status().as_u16();
    let text = r.text().unwrap();
    (s, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn token_config(extra: &str) -> String {
    format!("[auth]\nmode = \"token\"\nmax_failed_logins = 1000\n{extra}")
}

/// A token-mode registry with namespaces `pub` (public) and `priv`, an
/// image `app:seed` in each, users and roles, pushed by the admin.
struct World {
    p: Proc,
    _dir: tempfile::TempDir,
    c: Client,
    admin: Cred,
    img: std::collections::HashMap<&'static str, Image>,
}

fn world(extra_config: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    user_add(dir.path(), "admin", ADMIN_PW, true);
    let p = serve(
        dir.path(),
        "127.0.0.1:0",
        &token_config(extra_config),
        &[],
        &[],
    );
    let c = common::client();
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
        let (s, v) = api(
            &c,
            Method::POST,
            &url,
            "/users",
            &admin,
            Some(json!({"name": name, "password": PW})),
        );
        assert_eq!(s, 201, "{v}");
        if let Some(role) = role {
            for ns in ["pub", "priv"] {
                let (s, v) = api(
                    &c,
                    Method::PUT,
                    &url,
                    &format!("/namespaces/{ns}/grants/{name}"),
                    &admin,
                    Some(json!({ "role": role })),
                );
                assert_eq!(s, 200, "{v}");
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

fn create_token(w: &World, name: &str, scopes: Value, extra: Value) -> (String, String) {
    let mut body = json!({"name": name, "scopes": scopes});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (s, v) = api(
        &w.c,
        Method::POST,
        &w.p.url,
        "/tokens",
        &w.admin,
        Some(body),
    );
    assert_eq!(s, 201, "{v}");
    (
        v["token"]["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    )
}

#[test]
fn permission_matrix() {
    let w = world("");
    let url = w.p.url.clone();
    let c = &w.c;
    let scopes = json!([
        {"repository": "priv/*", "actions": ["pull", "push"]},
        {"repository": "pub/*", "actions": ["pull"]}
    ]);
    let (_, token) = create_token(&w, "ci", scopes.clone(), json!({}));
    let (_, expired) = create_token(&w, "old", scopes.clone(), json!({"expires_in_seconds": 1}));
    let (revoked_id, revoked) = create_token(&w, "gone", scopes, json!({}));
    let (s, _) = api(
        c,
        Method::DELETE,
        &url,
        &format!("/tokens/{revoked_id}"),
        &w.admin,
        None,
    );
    assert_eq!(s, 204);
    std::thread::sleep(Duration::from_millis(1500));

    // (who, credentials, [pull, push, delete, list, manage] on pub, then on priv)
    let u = |n: &str| basic(n, PW);
    let rows: Vec<(&str, Cred, [u16; 5], [u16; 5])> = vec![
        ("anonymous", Cred::None, [200, 401, 401, 200, 401], [401; 5]),
        (
            "reader",
            u("reader"),
            [200, 403, 403, 200, 403],
            [200, 403, 403, 200, 403],
        ),
        (
            "writer",
            u("writer"),
            [200, 201, 403, 200, 403],
            [200, 201, 403, 200, 403],
        ),
        (
            "namespace admin",
            u("nsadmin"),
            [200, 201, 202, 200, 200],
            [200, 201, 202, 200, 200],
        ),
        (
            "registry admin",
            w.admin.clone(),
            [200, 201, 202, 200, 200],
            [200, 201, 202, 200, 200],
        ),
        (
            "user without role",
            u("outsider"),
            [200, 403, 403, 200, 403],
            [403; 5],
        ),
        (
            "scoped token",
            basic("ci", &token),
            [200, 403, 403, 200, 403],
            [200, 201, 403, 200, 403],
        ),
        (
            "scoped token as bearer",
            Cred::Bearer(token.clone()),
            [200, 403, 403, 200, 403],
            [200, 201, 403, 200, 403],
        ),
        ("expired token", basic("old", &expired), [401; 5], [401; 5]),
        ("revoked token", basic("gone", &revoked), [401; 5], [401; 5]),
        (
            "wrong password",
            basic("reader", "not-the-password"),
            [401; 5],
            [401; 5],
        ),
        ("unknown user", basic("nobody", PW), [401; 5], [401; 5]),
    ];
    let mut failures = Vec::new();
    for (i, (who, cred, on_pub, on_priv)) in rows.iter().enumerate() {
        for (ns, expected) in [("pub", on_pub), ("priv", on_priv)] {
            let repo = format!("{ns}/app");
            let img = &w.img[ns];
            // pull
            let pull = send(
                c,
                Method::GET,
                &format!("{url}/v2/{repo}/manifests/seed"),
                cred,
            )
            .header("accept", MT)
            .send()
            .unwrap()
            .status()
            .as_u16();
            // push (a new tag of the seeded image)
            let push = put_manifest(c, &url, &repo, &format!("push{i}"), img, cred);
            // delete (a tag the admin sets first)
            let tag = format!("del{i}");
            assert_eq!(put_manifest(c, &url, &repo, &tag, img, &w.admin), 201);
            let delete = send(
                c,
                Method::DELETE,
                &format!("{url}/v2/{repo}/manifests/{tag}"),
                cred,
            )
            .send()
            .unwrap()
            .status()
            .as_u16();
            // list
            let list = send(c, Method::GET, &format!("{url}/v2/{repo}/tags/list"), cred)
                .send()
                .unwrap()
                .status()
                .as_u16();
            // manage (namespace settings through the management API)
            let (manage, _) = api(
                c,
                Method::PATCH,
                &url,
                &format!("/namespaces/{ns}"),
                cred,
                Some(json!({"description": format!("set by {who}")})),
            );
            let got = [pull, push, delete, list, manage];
            if got != *expected {
                failures.push(format!("{who} on {ns}: expected {expected:?}, got {got:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "permission matrix:\n{}",
        failures.join("\n")
    );

    // `_catalog` lists what each caller may pull, nothing else.
    let catalog = |cred: &Cred| -> Vec<String> {
        let r = send(c, Method::GET, &format!("{url}/v2/_catalog"), cred)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        v["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    // Anonymous: challenged for registry:catalog:*; a token for it lists
    // the public repositories.
    let r = c.get(format!("{url}/v2/_catalog")).send().unwrap();
    assert_eq!(r.status(), 401);
    let (s, v) = get_token(c, &url, &Cred::None, &["registry:catalog:*"]);
    assert_eq!(s, 200);
    let anon = Cred::Bearer(v["token"].as_str().unwrap().to_string());
    assert_eq!(catalog(&anon), vec!["pub/app"]);
    assert_eq!(catalog(&u("outsider")), vec!["pub/app"]);
    assert_eq!(catalog(&u("reader")), vec!["priv/app", "pub/app"]);
    assert_eq!(catalog(&basic("ci", &token)), vec!["priv/app", "pub/app"]);
    // The management API's listings are filtered the same way.
    let (s, v) = api(c, Method::GET, &url, "/namespaces", &Cred::None, None);
    assert_eq!(s, 200);
    assert_eq!(v["total_count"], 1, "{v}");
    let (s, v) = api(c, Method::GET, &url, "/namespaces", &u("reader"), None);
    assert_eq!(s, 200);
    assert_eq!(v["total_count"], 2, "{v}");
    let (s, _) = api(
        c,
        Method::GET,
        &url,
        "/namespaces/priv/repositories",
        &u("outsider"),
        None,
    );
    assert_eq!(s, 403);
    // Anonymous callers list the repositories of public namespaces only.
    let (s, v) = api(
        c,
        Method::GET,
        &url,
        "/namespaces/pub/repositories",
        &Cred::None,
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(v["repositories"][0]["name"], "pub/app", "{v}");
    let (s, _) = api(
        c,
        Method::GET,
        &url,
        "/namespaces/priv/repositories",
        &Cred::None,
        None,
    );
    assert_eq!(s, 401);
    let (s, _) = api(
        c,
        Method::GET,
        &url,
        "/namespaces/priv/repositories/app/tags",
        &Cred::None,
        None,
    );
    assert_eq!(s, 401);
    // Nothing about private namespaces leaks: a missing repository answers
    // like an existing one.
    for repo in ["priv/app", "priv/nothing-here"] {
        let r = send(
            c,
            Method::GET,
            &format!("{url}/v2/{repo}/tags/list"),
            &u("outsider"),
        )
        .send()
        .unwrap();
        assert_eq!(r.status(), 403, "{repo}");
    }
    // Blobs cannot be taken from a private repository by mounting them.
    let img = &w.img["priv"];
    let cfg_digest = serde_json::from_str::<Value>(&img.manifest).unwrap()["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = api(
        c,
        Method::PUT,
        &url,
        "/namespaces/pub/grants/outsider",
        &w.admin,
        Some(json!({"role": "writer"})),
    );
    assert_eq!(s, 200);
    for from in ["&from=priv/app", ""] {
        let r = send(
            c,
            Method::POST,
            &format!("{url}/v2/pub/stolen/blobs/uploads/?mount={cfg_digest}{from}"),
            &u("outsider"),
        )
        .send()
        .unwrap();
        assert_eq!(r.status(), 202, "mount{from} must fall back to an upload");
    }
    // The writer of both may mount across them.
    let r = send(
        c,
        Method::POST,
        &format!("{url}/v2/pub/copied/blobs/uploads/?mount={cfg_digest}"),
        &u("writer"),
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 201);
}

fn form(pairs: &[(&str, &str)]) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
        .collect::<Vec<_>>()
        .join("&")
}

fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

fn get_token(c: &Client, url: &str, cred: &Cred, scopes: &[&str]) -> (u16, Value) {
    let mut q = vec![("service", "berth".to_string())];
    for s in scopes {
        q.push(("scope", s.to_string()));
    }
    let r = send(c, Method::GET, &format!("{url}/auth/token"), cred)
        .query(&q)
        .send()
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().unwrap_or(Value::Null))
}

#[test]
fn docker_token_protocol() {
    let w = world("");
    let url = w.p.url.clone();
    let c = &w.c;
    // Challenges name the realm, the service and the scope needed.
    let r = c.get(format!("{url}/v2/")).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("Bearer realm=\"{url}/auth/token\",service=\"berth\"").as_str()
    );
    let r = c
        .get(format!("{url}/v2/priv/app/manifests/seed"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("Bearer realm=\"{url}/auth/token\",service=\"berth\",scope=\"repository:priv/app:pull\"").as_str()
    );
    let body: Value = r.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    let r = c
        .post(format!("{url}/v2/priv/app/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .ends_with("scope=\"repository:priv/app:pull,push\""));

    // Anonymous tokens grant public pulls only.
    let (s, v) = get_token(
        c,
        &url,
        &Cred::None,
        &["repository:pub/app:pull,push", "repository:priv/app:pull"],
    );
    assert_eq!(s, 200);
    let claims = jwt_claims(v["token"].as_str().unwrap());
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": "pub/app", "actions": ["pull"]}])
    );
    assert_eq!(v["token"], v["access_token"]);
    assert_eq!(v["expires_in"], 300);
    assert!(v["issued_at"].as_str().unwrap().ends_with('Z'));

    // The intersection of what is asked and what is allowed.
    let reader = basic("reader", PW);
    let (s, v) = get_token(c, &url, &reader, &["repository:priv/app:pull,push,delete"]);
    assert_eq!(s, 200);
    let reader_jwt = v["token"].as_str().unwrap().to_string();
    assert_eq!(
        jwt_claims(&reader_jwt)["access"][0]["actions"],
        json!(["pull"])
    );
    assert_eq!(jwt_claims(&reader_jwt)["sub"], "reader");
    let writer = basic("writer", PW);
    let (_, v) = get_token(c, &url, &writer, &["repository:priv/app:pull,push,delete"]);
    let writer_jwt = v["token"].as_str().unwrap().to_string();
    assert_eq!(
        jwt_claims(&writer_jwt)["access"][0]["actions"],
        json!(["pull", "push"])
    );

    // Tokens work on /v2; a token without the scope gets a new challenge.
    let img = &w.img["priv"];
    assert_eq!(
        put_manifest(
            c,
            &url,
            "priv/app",
            "jwt",
            img,
            &Cred::Bearer(writer_jwt.clone())
        ),
        201
    );
    let r = send(
        c,
        Method::PUT,
        &format!("{url}/v2/priv/app/manifests/nope"),
        &Cred::Bearer(reader_jwt.clone()),
    )
    .header("content-type", MT)
    .body(img.manifest.clone())
    .send()
    .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"insufficient_scope\""));
    let r = send(
        c,
        Method::GET,
        &format!("{url}/v2/"),
        &Cred::Bearer(reader_jwt.clone()),
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 200);
    // A token for one repository does not open another.
    let r = send(
        c,
        Method::GET,
        &format!("{url}/v2/pub/app/manifests/seed"),
        &Cred::Bearer(reader_jwt.clone()),
    )
    .header("accept", MT)
    .send()
    .unwrap();
    assert_eq!(r.status(), 401);

    // A tampered token is refused.
    let mut parts: Vec<String> = writer_jwt.split('.').map(str::to_string).collect();
    let mut claims = jwt_claims(&writer_jwt);
    claims["access"][0]["actions"] = json!(["pull", "push", "delete"]);
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    let forged = parts.join(".");
    let r = send(
        c,
        Method::DELETE,
        &format!("{url}/v2/priv/app/manifests/jwt"),
        &Cred::Bearer(forged),
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 401);

    // Wrong credentials and a foreign service are refused.
    let (s, _) = get_token(c, &url, &basic("reader", "wrong-password"), &[]);
    assert_eq!(s, 401);
    let r = c
        .get(format!("{url}/auth/token?service=elsewhere"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);

    // The OAuth2 form (containerd).
    let r = c
        .post(format!("{url}/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "password"),
            ("username", "writer"),
            ("password", PW),
            ("service", "berth"),
            ("scope", "repository:priv/app:pull repository:pub/app:pull"),
            ("client_id", "containerd"),
        ]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    let claims = jwt_claims(v["access_token"].as_str().unwrap());
    assert_eq!(claims["access"].as_array().unwrap().len(), 2, "{claims}");
    let r = c
        .post(format!("{url}/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "password"),
            ("username", "writer"),
            ("password", "nope-nope"),
        ]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    // A scoped token logs in like a password (docker login -p <secret>).
    let (_, secret) = create_token(
        &w,
        "robot",
        json!([{"repository": "priv/*", "actions": ["pull"]}]),
        json!({}),
    );
    let (s, v) = get_token(
        c,
        &url,
        &basic("robot", &secret),
        &["repository:priv/app:pull,push"],
    );
    assert_eq!(s, 200);
    assert_eq!(
        jwt_claims(v["token"].as_str().unwrap())["access"][0]["actions"],
        json!(["pull"])
    );

    // Rotation: tokens signed by the previous key stop working at once.
    let pull = |jwt: &str| {
        send(
            c,
            Method::GET,
            &format!("{url}/v2/priv/app/tags/list"),
            &Cred::Bearer(jwt.to_string()),
        )
        .send()
        .unwrap()
        .status()
        .as_u16()
    };
    assert_eq!(pull(&reader_jwt), 200);
    let (s, k1) = api(c, Method::POST, &url, "/signing-key", &w.admin, None);
    assert_eq!(s, 200);
    assert_eq!(pull(&reader_jwt), 401);
    let (_, k2) = api(c, Method::POST, &url, "/signing-key", &w.admin, None);
    assert_eq!(k2["previous_kid"], k1["kid"]);
    let (s, _) = api(c, Method::POST, &url, "/signing-key", &reader, None);
    assert_eq!(s, 403);
}

#[test]
fn users_tokens_and_audit_through_the_api() {
    let w = world("");
    let url = w.p.url.clone();
    let c = &w.c;
    let reader = basic("reader", PW);

    let (s, v) = api(c, Method::GET, &url, "/me", &reader, None);
    assert_eq!(s, 200);
    assert_eq!(v["name"], "reader");
    assert_eq!(v["kind"], "user");
    assert_eq!(v["admin"], false);
    assert_eq!(v["roles"].as_array().unwrap().len(), 2);
    let (s, _) = api(c, Method::GET, &url, "/me", &Cred::None, None);
    assert_eq!(s, 401);

    // Only administrators manage users and tokens.
    let (s, _) = api(c, Method::GET, &url, "/users", &reader, None);
    assert_eq!(s, 403);
    let (s, _) = api(
        c,
        Method::POST,
        &url,
        "/users",
        &reader,
        Some(json!({"name": "x", "password": "xxxxxxxxx"})),
    );
    assert_eq!(s, 403);
    let (s, _) = api(c, Method::GET, &url, "/tokens", &Cred::None, None);
    assert_eq!(s, 401);
    let (s, v) = api(c, Method::GET, &url, "/users", &w.admin, None);
    assert_eq!(s, 200);
    assert_eq!(v["total_count"], 5);
    assert!(v.to_string().find("argon2").is_none(), "no hash in answers");
    let (s, _) = api(
        c,
        Method::POST,
        &url,
        "/users",
        &w.admin,
        Some(json!({"name": "reader", "password": "xxxxxxxxx"})),
    );
    assert_eq!(s, 409);
    let (s, _) = api(
        c,
        Method::POST,
        &url,
        "/users",
        &w.admin,
        Some(json!({"name": "short", "password": "x"})),
    );
    assert_eq!(s, 400);

    // Changing one's own password needs the current one.
    let (s, _) = api(
        c,
        Method::PUT,
        &url,
        "/users/reader/password",
        &reader,
        Some(json!({"password": "new-password-2"})),
    );
    assert_eq!(s, 400);
    let (s, _) = api(
        c,
        Method::PUT,
        &url,
        "/users/reader/password",
        &reader,
        Some(json!({"password": "new-password-2", "current_password": PW})),
    );
    assert_eq!(s, 200);
    let (s, _) = api(c, Method::GET, &url, "/me", &reader, None);
    assert_eq!(s, 401, "the old password stops working at once");
    let reader = basic("reader", "new-password-2");
    let (s, _) = api(c, Method::GET, &url, "/me", &reader, None);
    assert_eq!(s, 200);
    let (s, _) = api(
        c,
        Method::PUT,
        &url,
        "/users/writer/password",
        &reader,
        Some(json!({"password": "hijacked-1"})),
    );
    assert_eq!(s, 403);

    // Revoking a role takes effect at once.
    let (s, v) = api(
        c,
        Method::GET,
        &url,
        "/namespaces/priv/grants",
        &w.admin,
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(v["total_count"], 3, "{v}");
    let (s, _) = api(
        c,
        Method::DELETE,
        &url,
        "/namespaces/priv/grants/reader",
        &w.admin,
        None,
    );
    assert_eq!(s, 204);
    let r = send(
        c,
        Method::GET,
        &format!("{url}/v2/priv/app/tags/list"),
        &reader,
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 403);
    // Namespace admins manage their namespace's members, not others'.
    let nsadmin = basic("nsadmin", PW);
    let (s, _) = api(
        c,
        Method::PUT,
        &url,
        "/namespaces/priv/grants/reader",
        &nsadmin,
        Some(json!({"role": "reader"})),
    );
    assert_eq!(s, 200);
    let (s, _) = api(
        c,
        Method::PATCH,
        &url,
        "/registry",
        &nsadmin,
        Some(json!({"name": "x"})),
    );
    assert_eq!(s, 403);

    // Scoped tokens: the secret once, then never again; a Bearer on the
    // API; last use recorded; revocation immediate.
    let (id, secret) = create_token(
        &w,
        "deployer",
        json!([{"repository": "pub/*", "actions": ["pull", "manage"]}]),
        json!({}),
    );
    let (s, v) = api(c, Method::GET, &url, "/tokens", &w.admin, None);
    assert_eq!(s, 200);
    assert!(!v.to_string().contains(&secret[10..]), "secret listed: {v}");
    assert!(v["tokens"][0]["last_used_at"].is_null());
    let bearer = Cred::Bearer(secret.clone());
    let (s, v) = api(c, Method::GET, &url, "/me", &bearer, None);
    assert_eq!(s, 200);
    assert_eq!(v["kind"], "token");
    assert_eq!(v["name"], "deployer");
    let (s, _) = api(
        c,
        Method::PATCH,
        &url,
        "/namespaces/pub",
        &bearer,
        Some(json!({"description": "by token"})),
    );
    assert_eq!(s, 200);
    let (s, _) = api(
        c,
        Method::PATCH,
        &url,
        "/namespaces/priv",
        &bearer,
        Some(json!({"description": "by token"})),
    );
    assert_eq!(s, 403);
    let (s, v) = api(
        c,
        Method::GET,
        &url,
        &format!("/tokens/{id}"),
        &w.admin,
        None,
    );
    assert_eq!(s, 200);
    assert!(v["last_used_at"].is_string(), "{v}");
    let (s, _) = api(
        c,
        Method::DELETE,
        &url,
        &format!("/tokens/{id}"),
        &w.admin,
        None,
    );
    assert_eq!(s, 204);
    let (s, _) = api(c, Method::GET, &url, "/me", &bearer, None);
    assert_eq!(s, 401);
    let (s, _) = api(
        c,
        Method::POST,
        &url,
        "/tokens",
        &w.admin,
        Some(json!({"name": "bad", "scopes": [{"repository": "A B", "actions": ["pull"]}]})),
    );
    assert_eq!(s, 400);

    // Deleting a namespace drops its roles: a namespace created later under
    // the same name starts without members.
    let (s, _) = api(
        c,
        Method::POST,
        &url,
        "/namespaces",
        &w.admin,
        Some(json!({"name": "tmp"})),
    );
    assert_eq!(s, 201);
    let (s, _) = api(
        c,
        Method::PUT,
        &url,
        "/namespaces/tmp/grants/writer",
        &w.admin,
        Some(json!({"role": "admin"})),
    );
    assert_eq!(s, 200);
    let (s, _) = api(c, Method::DELETE, &url, "/namespaces/tmp", &w.admin, None);
    assert_eq!(s, 202);
    for _ in 0..100 {
        let (s, _) = api(c, Method::GET, &url, "/namespaces/tmp", &w.admin, None);
        if s == 404 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (s, v) = api(
        c,
        Method::POST,
        &url,
        "/namespaces",
        &w.admin,
        Some(json!({"name": "tmp"})),
    );
    assert_eq!(s, 201, "{v}");
    let (_, v) = api(
        c,
        Method::GET,
        &url,
        "/namespaces/tmp/grants",
        &w.admin,
        None,
    );
    assert_eq!(v["total_count"], 0, "{v}");

    // Deleting a user ends their access.
    let (s, _) = api(c, Method::DELETE, &url, "/users/writer", &w.admin, None);
    assert_eq!(s, 204);
    let r = send(
        c,
        Method::GET,
        &format!("{url}/v2/priv/app/tags/list"),
        &basic("writer", PW),
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 401);

    // The audit log says who did what from where; reading it is for admins.
    let (s, _) = api(c, Method::GET, &url, "/audit", &reader, None);
    assert_eq!(s, 403);
    let (s, v) = api(c, Method::GET, &url, "/audit?page_size=100", &w.admin, None);
    assert_eq!(s, 200);
    let entries = v["entries"].as_array().unwrap();
    let has = |actor: &str, action: &str, target: &str| {
        entries.iter().any(|e| {
            e["actor"] == actor
                && e["action"] == action
                && e["target"].as_str().unwrap().contains(target)
        })
    };
    assert!(has("admin", "push", "priv/app:seed"), "{v}");
    assert!(has("admin", "grant", "priv:reader"), "{v}");
    assert!(has("admin", "revoke", "priv:reader"), "{v}");
    assert!(has("nsadmin", "grant", "priv:reader"), "{v}");
    assert!(has("admin", "user.delete", "/api/v1/users/writer"), "{v}");
    assert!(
        has("reader", "user.password", "/api/v1/users/reader/password"),
        "{v}"
    );
    assert!(
        has(
            "token:deployer",
            "namespace.update",
            "/api/v1/namespaces/pub"
        ),
        "{v}"
    );
    assert!(has("admin", "token.revoke", &id), "{v}");
    assert!(entries.iter().all(|e| e["address"] == "127.0.0.1"), "{v}");
    assert!(
        !v.to_string().contains(PW) && !v.to_string().contains(&secret),
        "secrets in the audit log"
    );
    // Newest first.
    assert!(entries[0]["at"].as_str() >= entries[entries.len() - 1]["at"].as_str());
}

#[test]
fn first_admin_from_the_environment_and_no_default_password() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::client();
    // No user, no password: nothing can be done.
    let mut p = serve(dir.path(), "127.0.0.1:0", &token_config(""), &[], &[]);
    for pw in ["admin", "password", "berth", ""] {
        let r = c
            .get(format!("{}/v2/", p.url))
            .basic_auth("admin", Some(pw))
            .send()
            .unwrap();
        assert_eq!(r.status(), 401, "admin:{pw:?}");
    }
    let r = c.get(format!("{}/v2/_catalog", p.url)).send().unwrap();
    assert_eq!(r.status(), 401);
    p.stop();
    // BERTH_ADMIN_PASSWORD creates `admin` on a start without users...
    let mut p = serve(
        dir.path(),
        "127.0.0.1:0",
        &token_config(""),
        &[("BERTH_ADMIN_PASSWORD", ADMIN_PW)],
        &[],
    );
    let (s, v) = api(
        &c,
        Method::GET,
        &p.url,
        "/me",
        &basic("admin", ADMIN_PW),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(v["admin"], true);
    p.stop();
    // ...and only then: later values are ignored.
    let p = serve(
        dir.path(),
        "127.0.0.1:0",
        &token_config(""),
        &[("BERTH_ADMIN_PASSWORD", "another-one-9")],
        &[],
    );
    let (s, _) = api(
        &c,
        Method::GET,
        &p.url,
        "/me",
        &basic("admin", "another-one-9"),
        None,
    );
    assert_eq!(s, 401);
    let (s, _) = api(
        &c,
        Method::GET,
        &p.url,
        "/me",
        &basic("admin", ADMIN_PW),
        None,
    );
    assert_eq!(s, 200);
}

#[test]
fn failed_logins_are_throttled_per_address_and_per_user() {
    let dir = tempfile::tempdir().unwrap();
    user_add(dir.path(), "admin", ADMIN_PW, true);
    user_add(dir.path(), "bob", PW, false);
    let p = serve(
        dir.path(),
        "127.0.0.1:0",
        "[auth]\nmode = \"token\"\nmax_failed_logins = 3\n",
        &[],
        &[],
    );
    let c = common::client();
    let other = client_from("127.0.0.2");
    let status = |c: &Client, u: &str, pw: &str| {
        c.get(format!("{}/v2/", p.url))
            .basic_auth(u, Some(pw))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    for _ in 0..3 {
        assert_eq!(status(&c, "admin", "guess-guess"), 401);
    }
    // Locked for this user, even with the right password, from anywhere...
    let r = c
        .get(format!("{}/v2/", p.url))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS");
    assert_eq!(status(&other, "admin", ADMIN_PW), 429);
    // ...and for this address, whoever tries.
    assert_eq!(status(&c, "bob", PW), 429);
    // Another user from another address is not affected.
    assert_eq!(status(&other, "bob", PW), 200);
    // The token endpoint and the API are throttled too.
    let r = c
        .get(format!("{}/auth/token", p.url))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    let r = c
        .get(format!("{}/api/v1/me", p.url))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
}

fn set_allow_list(c: &Client, url: &str, list: &[&str]) {
    let r = c
        .patch(format!("{url}/api/v1/registry"))
        .json(&json!({ "api_subnet_allow_list": list, "confirm_lockout": true }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
}

fn statuses(c: &Client, url: &str) -> [u16; 4] {
    let get = |p: &str| c.get(format!("{url}{p}")).send().unwrap().status().as_u16();
    [
        get("/v2/"),
        get("/api/v1/registry"),
        get("/auth/token"),
        get("/healthz"),
    ]
}

#[test]
fn subnet_allow_list_ipv4() {
    let dir = tempfile::tempdir().unwrap();
    let p = serve(dir.path(), "127.0.0.1:0", "", &[], &[]);
    let c = common::client();
    let from2 = client_from("127.0.0.2");
    set_allow_list(&c, &p.url, &["127.0.0.2/32", "2001:db8::/32"]);
    // /auth/token answers 404 with auth off; what matters is that the
    // allow-list answers first with 403.
    assert_eq!(statuses(&c, &p.url), [403, 403, 403, 200]);
    let r = c.get(format!("{}/v2/", p.url)).send().unwrap();
    let body: Value = r.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    let r = c
        .get(format!("{}/api/v1/namespaces", p.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "denied");
    assert_eq!(statuses(&from2, &p.url), [200, 200, 404, 200]);
    // A whole /8 lets both in.
    set_allow_list(&from2, &p.url, &["127.0.0.0/8"]);
    assert_eq!(statuses(&c, &p.url), [200, 200, 404, 200]);
}

#[test]
fn subnet_allow_list_ipv6_and_offline_reset() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = serve(dir.path(), "[::1]:0", "", &[], &[]);
    assert!(p.url.starts_with("http://[::1]:"), "{}", p.url);
    let c = common::client();
    set_allow_list(&c, &p.url, &["::1/128"]);
    assert_eq!(statuses(&c, &p.url), [200, 200, 404, 200]);
    set_allow_list(&c, &p.url, &["2001:db8::/32", "127.0.0.0/8"]);
    assert_eq!(statuses(&c, &p.url), [403, 403, 403, 200]);
    // Locked out: `berth auth clear-allow-list` with the server stopped.
    p.stop();
    let out = berth()
        .args(["auth", "clear-allow-list", "--data-dir"])
        .arg(p.dir.join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = serve(dir.path(), "[::1]:0", "", &[], &[]);
    assert_eq!(statuses(&c, &p.url), [200, 200, 404, 200]);
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let p = serve(
        dir.path(),
        "127.0.0.1:0",
        "[auth]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        &[],
        &[],
    );
    let c = common::client();
    set_allow_list(&c, &p.url, &["2001:db8::/32", "10.0.0.0/8"]);
    let via = |c: &Client, xff: Option<&str>| {
        let mut r = c.get(format!("{}/v2/", p.url));
        if let Some(x) = xff {
            r = r.header("x-forwarded-for", x);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(via(&c, Some("2001:db8::7")), 200);
    assert_eq!(via(&c, Some("2001:db9::7")), 403);
    assert_eq!(via(&c, Some("10.1.2.3")), 200);
    assert_eq!(via(&c, Some("192.0.2.1")), 403);
    // The right-most address not a trusted proxy is the client.
    assert_eq!(via(&c, Some("10.1.2.3, 192.0.2.1")), 403);
    assert_eq!(via(&c, Some("192.0.2.1, 10.1.2.3")), 200);
    assert_eq!(via(&c, Some("garbage")), 403);
    assert_eq!(via(&c, None), 403);
    // From an untrusted peer the header is ignored.
    let from2 = client_from("127.0.0.2");
    assert_eq!(via(&from2, Some("10.1.2.3")), 403);
}

// ---------------------------------------------------------------- TLS

struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "berth test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key }
    }

    /// Writes a leaf for localhost and 127.0.0.1; returns its DER.
    fn leaf(&self, cn: &str, cert: &Path, key: &Path) -> Vec<u8> {
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let leaf = params.signed_by(&leaf_key, &self.ca, &self.ca_key).unwrap();
        std::fs::write(cert, leaf.pem()).unwrap();
        std::fs::write(key, leaf_key.serialize_pem()).unwrap();
        leaf.der().to_vec()
    }
}

/// One HTTPS GET with a client that trusts only the test CA; returns the
/// status line and the server certificate.
fn https_get(addr: &str, ca: &[u8], path: &str) -> (String, Vec<u8>) {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca.to_vec()))
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let cert = tls.conn.peer_certificates().unwrap()[0].to_vec();
    (text.lines().next().unwrap_or("").to_string(), cert)
}

#[test]
fn https_with_certificate_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let first = pki.leaf("first", &cert, &key);
    let p = serve(
        dir.path(),
        "127.0.0.1:0",
        "",
        &[],
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let addr = p
        .url
        .strip_prefix("https://")
        .expect("https URL")
        .to_string();
    let (status, got) = https_get(&addr, pki.ca.der(), "/v2/");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(got, first);
    // Plain HTTP on the TLS port does not get an answer.
    let plain = common::client().get(format!("http://{addr}/v2/")).send();
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));

    // New files + SIGHUP: new connections get the new certificate.
    let second = pki.leaf("second", &cert, &key);
    assert_ne!(first, second);
    let hup = |pid: u32| {
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    };
    hup(p.child.id());
    let (status, got) = https_get(&addr, pki.ca.der(), "/healthz");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(got, second);
    // A broken file is refused and the old certificate stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    hup(p.child.id());
    let (status, got) = https_get(&addr, pki.ca.der(), "/healthz");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(got, second);
}

/// Writes a one-layer OCI image layout and returns its directory.
fn oci_layout(dir: &Path) -> PathBuf {
    let root = dir.join("layout");
    let blobs = root.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| -> (String, usize) {
        let d = common::digest(b);
        std::fs::write(blobs.join(d.strip_prefix("sha256:").unwrap()), b).unwrap();
        (d, b.len())
    };
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (cd, cl) = put(config);
    let (ld, ll) = put(b"not really a tarball, but skopeo does not look");
    let manifest = json!({
        "schemaVersion": 2, "mediaType": MT,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cl},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ll}],
    })
    .to_string();
    let (md, ml) = put(manifest.as_bytes());
    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        root.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [{"mediaType": MT, "digest": md, "size": ml, "annotations": {"org.opencontainers.image.ref.name": "1"}}]}).to_string(),
    )
    .unwrap();
    root
}

#[test]
fn skopeo_pushes_over_https_with_credentials() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        // scripts/test.sh installs skopeo before the tests.
        skip!("skopeo is not installed (scripts/test.sh installs it before cargo test)");
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    pki.leaf("registry", &cert, &key);
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("ca.crt"), pki.ca.pem()).unwrap();
    user_add(dir.path(), "admin", ADMIN_PW, true);
    let p = serve(
        dir.path(),
        "127.0.0.1:0",
        &token_config(""),
        &[],
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let host = p
        .url
        .strip_prefix("https://")
        .unwrap()
        .replace("127.0.0.1", "localhost");
    let layout = oci_layout(dir.path());
    let skopeo = |args: &[&str]| {
        let out = Command::new("skopeo")
            .args(["--registries.d", dir.path().to_str().unwrap()])
            .args(args)
            .env("REGISTRY_AUTH_FILE", dir.path().join("auth.json"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let dest = format!("docker://{host}/team/app:1");
    let cert_dir = certs.to_str().unwrap();
    // Without credentials: refused.
    let (ok, _) = skopeo(&[
        "copy",
        "--dest-cert-dir",
        cert_dir,
        &format!("oci:{}:1", layout.display()),
        &dest,
    ]);
    assert!(!ok, "anonymous push succeeded");
    // With credentials, over HTTPS verified against the test CA.
    let creds = format!("admin:{ADMIN_PW}");
    let (ok, err) = skopeo(&[
        "copy",
        "--dest-cert-dir",
        cert_dir,
        "--dest-creds",
        &creds,
        &format!("oci:{}:1", layout.display()),
        &dest,
    ]);
    assert!(ok, "skopeo push: {err}");
    let out_dir = dir.path().join("pulled");
    let (ok, err) = skopeo(&[
        "copy",
        "--src-cert-dir",
        cert_dir,
        "--src-creds",
        &creds,
        &dest,
        &format!("oci:{}:1", out_dir.display()),
    ]);
    assert!(ok, "skopeo pull: {err}");
    let (ok, _) = skopeo(&["inspect", "--cert-dir", cert_dir, "--raw", &dest]);
    assert!(!ok, "anonymous read of a private namespace succeeded");
}

#[test]
fn auth_configuration_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[auth]\nmode = \"basic\"\n", "basic"),
        (
            "[auth]\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
            "trusted_proxies",
        ),
        ("[auth]\ntoken_ttl_secs = 1\n", "token_ttl_secs"),
        ("[auth]\nrealm = \"ftp://x\"\n", "auth.realm"),
        ("[auth]\nservice = \"a\\\"b\"\n", "auth.service"),
        ("[server]\ntls_cert = \"/x.crt\"\n", "tls_key"),
    ];
    for (i, (body, needle)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&p, body).unwrap();
        let out = berth().args(["config", "check"]).arg(&p).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {body}");
        assert!(
            err.contains(needle),
            "error for {body:?} does not name {needle:?}: {err}"
        );
    }
    // The environment switches authentication on.
    let p = dir.path().join("ok.toml");
    std::fs::write(&p, "").unwrap();
    let out = berth()
        .args(["config", "check"])
        .arg(&p)
        .env("BERTH_AUTH__MODE", "token")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"mode\": \"token\""));
}

/// The whole conformance suite passes in `token` mode for a caller with
/// the rights (Basic credentials on every request): authentication changes
/// nothing else about `/v2`.
#[test]
fn conformance_in_token_mode() {
    let dir = tempfile::tempdir().unwrap();
    user_add(dir.path(), "admin", ADMIN_PW, true);
    let p = serve(dir.path(), "127.0.0.1:0", &token_config(""), &[], &[]);
    let header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PW}"))
    );
    let report = berth_conformance::run_with_authorization(&p.url, &header);
    report.print();
    assert_eq!(
        report.failed(),
        0,
        "{} of {} checks failed",
        report.failed(),
        report.results.len()
    );
    // And without credentials the same suite is refused.
    let anon = berth_conformance::run(&p.url);
    assert!(
        anon.failed() > anon.results.len() / 2,
        "anonymous run passed {} checks",
        anon.passed()
    );
}

/// Passwords, token secrets and bearer tokens never reach the log, even at
/// debug level.
#[test]
fn no_secret_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    user_add(dir.path(), "admin", ADMIN_PW, true);
    let p = serve_logging(
        dir.path(),
        "127.0.0.1:0",
        &token_config(""),
        &[("RUST_LOG", "debug")],
        &[],
        Some(&log),
    );
    let c = common::client();
    let admin = basic("admin", ADMIN_PW);
    let url = p.url.clone();
    let (s, v) = api(
        &c,
        Method::POST,
        &url,
        "/users",
        &admin,
        Some(json!({"name": "carol", "password": PW})),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = api(
        &c,
        Method::POST,
        &url,
        "/tokens",
        &admin,
        Some(json!({"name": "ci", "scopes": [{"repository": "*", "actions": ["pull", "push"]}]})),
    );
    assert_eq!(s, 201);
    let secret = v["secret"].as_str().unwrap().to_string();
    let (s, v) = get_token(&c, &url, &basic("carol", PW), &["repository:a/b:pull"]);
    assert_eq!(s, 200);
    let jwt = v["token"].as_str().unwrap().to_string();
    let _ = get_token(&c, &url, &basic("carol", "a-wrong-password"), &[]);
    let _ = send(
        &c,
        Method::GET,
        &format!("{url}/v2/a/b/tags/list"),
        &Cred::Bearer(jwt.clone()),
    )
    .send();
    let _ = send(&c, Method::GET, &format!("{url}/v2/"), &basic("x", &secret)).send();
    let _ = api(
        &c,
        Method::PUT,
        &url,
        "/users/carol/password",
        &admin,
        Some(json!({"password": "a-new-password"})),
    );
    let r = c
        .post(format!("{url}/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "password"),
            ("username", "carol"),
            ("password", "a-new-password"),
        ]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(p);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("berth::access"),
        "no access log at debug level?\n{text}"
    );
    for s in [
        ADMIN_PW,
        PW,
        "a-wrong-password",
        "a-new-password",
        &secret,
        &secret[6..],
        &jwt,
    ] {
        assert!(!text.contains(s), "{s:?} appears in the log");
    }
    let basic_b64 = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PW}"));
    assert!(
        !text.contains(&basic_b64),
        "an Authorization header appears in the log"
    );
}
