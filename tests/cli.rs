//! The management subcommands against a live server: they print aligned
//! tables, JSON with `--output json`, and fail with the API's message.

mod common;

use std::process::{Command, Output};

fn berth(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env("BERTH_URL", url)
        .output()
        .expect("run berth")
}

fn ok(url: &str, args: &[&str]) -> String {
    let out = berth(url, args);
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn push_image(url: &str, repo: &str, tag: &str) -> String {
    let c = common::client();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = b"cli test layer".to_vec();
    for b in [&config, &layer] {
        let r = c
            .post(format!(
                "{url}/v2/{repo}/blobs/uploads/?digest={}",
                common::digest(b)
            ))
            .body(b.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": common::digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": common::digest(&layer), "size": layer.len()}],
    })
    .to_string();
    let r = c
        .put(format!("{url}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    common::digest(m.as_bytes())
}

#[test]
fn list_inspect_and_delete_from_a_shell() {
    let (server, _dir) = common::Server::start();
    let url = server.url();
    let digest = push_image(url, "acme/team/web", "v1");

    let ns = ok(url, &["namespace", "list"]);
    let header = ns.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("ENDPOINT"),
        "{ns}"
    );
    assert!(ns.lines().any(|l| l.starts_with("acme ")), "{ns}");
    assert!(ns.contains("(1 namespaces in all)"), "{ns}");

    // Columns line up: every row starts its STATUS column where the header does.
    let col = header.find("STATUS").unwrap();
    for l in ns.lines().skip(1).filter(|l| !l.starts_with('(')) {
        assert_eq!(&l[col..col + 5], "ready", "misaligned row {l:?} in\n{ns}");
    }

    let repos = ok(url, &["repo", "list", "acme"]);
    assert!(repos.contains("acme/team/web"), "{repos}");
    let detail = ok(url, &["repo", "get", "acme", "team/web"]);
    assert!(detail.contains(&digest[..19]), "{detail}");

    let json: serde_json::Value = serde_json::from_str(&ok(
        url,
        &["artifact", "list", "acme", "team/web", "--output", "json"],
    ))
    .unwrap();
    assert_eq!(json["artifacts"][0]["digest"], digest.as_str());
    assert_eq!(json["total_count"], 1);

    let created = ok(
        url,
        &[
            "namespace",
            "create",
            "beta",
            "--public",
            "--description",
            "b",
        ],
    );
    assert!(
        created.contains("beta") && created.contains("true"),
        "{created}"
    );

    let set = ok(
        url,
        &[
            "registry",
            "set",
            "--gc-days",
            "monday,friday",
            "--gc-time",
            "03:30",
            "--allow",
            "10.0.0.0/8,2001:db8::/32,127.0.0.0/8",
        ],
    );
    assert!(set.contains("monday,friday at 03:30 UTC"), "{set}");
    assert!(set.contains("2001:db8::/32"), "{set}");

    // A bad value fails with the API's message and changes nothing.
    let bad = berth(url, &["registry", "set", "--allow", "300.0.0.0/8"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("300.0.0.0/8"));
    assert!(ok(url, &["registry", "get"]).contains("10.0.0.0/8"));

    ok(url, &["tag", "delete", "acme", "team/web", "v1"]);
    assert!(!ok(url, &["tag", "list", "acme", "team/web"]).contains("v1 "));
    ok(
        url,
        &["artifact", "delete", "acme", "acme/team/web", &digest],
    );
    let arts: serde_json::Value = serde_json::from_str(&ok(
        url,
        &["artifact", "list", "acme", "team/web", "--output", "json"],
    ))
    .unwrap();
    assert_eq!(arts["total_count"], 0);

    let missing = berth(url, &["repo", "get", "acme", "nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
}

#[test]
fn unreachable_server_says_what_to_do() {
    let out = berth("http://127.0.0.1:9", &["namespace", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is `berth serve` running"), "{err}");
}

#[test]
fn webhooks_from_a_shell() {
    let (s, _d) = common::Server::start();
    let url = s.url();
    ok(url, &["namespace", "create", "hooks"]);
    let out = ok(
        url,
        &[
            "webhook",
            "create",
            "-n",
            "hooks",
            "https://ci.example.com/hook",
            "--events",
            "artifact.pushed,tag.deleted",
            "--output",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{out}");
    let list = ok(url, &["webhook", "list", "-n", "hooks"]);
    assert!(
        list.contains(&id) && list.contains("artifact.pushed,tag.deleted"),
        "{list}"
    );
    assert!(!list.contains(&secret), "lists never show the secret");
    let changed = ok(
        url,
        &[
            "webhook", "update", "-n", "hooks", &id, "--tags", "v.*", "--output", "json",
        ],
    );
    assert!(changed.contains("\"tags\": \"v.*\""), "{changed}");
    let rotated = ok(url, &["webhook", "rotate-secret", "-n", "hooks", &id]);
    assert!(
        rotated.contains("secret: whsec_") && !rotated.contains(&secret),
        "{rotated}"
    );
    let test = ok(url, &["webhook", "test", "-n", "hooks", &id]);
    assert!(test.contains("webhook.test"), "{test}");
    let log = ok(url, &["webhook", "deliveries", "-n", "hooks", &id]);
    assert!(log.contains("webhook.test"), "{log}");
    let delivery = log
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let again = ok(
        url,
        &["webhook", "redeliver", "-n", "hooks", &id, &delivery],
    );
    assert!(
        again.contains("pending") || again.contains("delivered") || again.contains("webhook.test"),
        "{again}"
    );
    // Refused definitions say which field.
    let bad = berth(url, &["webhook", "create", "-n", "hooks", "ftp://x/"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("url"),
        "{bad:?}"
    );
    ok(url, &["webhook", "delete", "-n", "hooks", &id]);
    let show = berth(url, &["webhook", "show", "-n", "hooks", &id]);
    assert!(!show.status.success());
    // Registry-wide ones need no namespace.
    ok(
        url,
        &[
            "webhook",
            "create",
            "https://ci.example.com/all",
            "--events",
            "namespace.deleted",
        ],
    );
    assert!(ok(url, &["webhook", "list"]).contains("https://ci.example.com/all"));
}
