//! Every example in config/ parses and validates with `berth config check`,
//! and a broken file is rejected with a message naming the problem.

use std::process::Command;

fn check(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["config", "check"])
        .arg(path)
        .env_remove("BERTH_SERVER__ADDR")
        .output()
        .expect("run berth")
}

#[test]
fn every_example_config_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("config dir") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let out = check(&path);
        assert!(
            out.status.success(),
            "{} rejected: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        n += 1;
    }
    assert!(n >= 2, "expected at least two example files, found {n}");
}

#[test]
fn typos_and_bad_values_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[server]\nadress = \"127.0.0.1:5000\"\n", "adress"),
        ("[server]\naddr = \"localhost\"\n", "server.addr"),
        ("[log]\nformat = \"xml\"\n", "xml"),
        ("[storage]\nmax_manifest_bytes = 10\n", "max_manifest_bytes"),
        ("[storage]\nbackend = \"s4\"\n", "s4"),
        ("[storage]\nbackend = \"s3\"\n", "storage.bucket"),
        (
            "[storage]\nbackend = \"s3\"\nbucket = \"b\"\nendpoint = \"http://10.0.0.1:9000\"\n",
            "storage.allow_http",
        ),
        ("[storage]\nbucket = \"b\"\n", "storage.backend"),
        ("[metadata]\nbackend = \"postgres\"\n", "metadata.url"),
        (
            "[metadata]\nurl = \"postgres://db/berth\"\n",
            "metadata.backend",
        ),
        ("[metadata]\nbackend = \"mysql\"\n", "mysql"),
    ];
    for (i, (body, needle)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&p, body).unwrap();
        let out = check(&p);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {body}");
        assert!(
            err.contains(needle),
            "error for {body:?} does not name {needle:?}: {err}"
        );
    }
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "[server]\naddr = \"127.0.0.1:5000\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["config", "check"])
        .arg(&p)
        .env("BERTH_SERVER__ADDR", "127.0.0.1:6000")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:6000"));
}

#[test]
fn the_s3_secret_and_the_database_password_are_not_printed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s3.toml");
    std::fs::write(
        &p,
        "[storage]\nbackend = \"s3\"\nbucket = \"registry\"\naccess_key_id = \"AKIDEXAMPLE\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["config", "check"])
        .arg(&p)
        .env(
            "BERTH_STORAGE__SECRET_ACCESS_KEY",
            "wJalrXUtnFEMIexamplesecret",
        )
        .env("BERTH_METADATA__BACKEND", "postgres")
        .env(
            "BERTH_METADATA__URL",
            "postgres://berth:hunter2pw@db:5432/berth",
        )
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        shown.contains("AKIDEXAMPLE") && shown.contains("\"registry\""),
        "{shown}"
    );
    assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
    assert!(!shown.contains("hunter2pw"), "{shown}");
    assert!(
        shown.contains("postgres://berth:***@db:5432/berth"),
        "{shown}"
    );
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn an_unreachable_object_store_stops_the_start_with_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens, the connection is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "error")
        .env("BERTH_STORAGE__BACKEND", "s3")
        .env("BERTH_STORAGE__BUCKET", "registry")
        .env("BERTH_STORAGE__ENDPOINT", "http://127.0.0.1:1")
        .env("BERTH_STORAGE__ALLOW_HTTP", "true")
        .env("BERTH_STORAGE__ACCESS_KEY_ID", "a")
        .env("BERTH_STORAGE__SECRET_ACCESS_KEY", "b")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {err}");
    assert!(out.stdout.is_empty(), "announced a listener");
    assert!(
        err.contains("cannot write to the s3 object store") && err.contains("storage.*"),
        "{err}"
    );
}

#[test]
fn a_redirect_without_s3_is_refused_with_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("BERTH_STORAGE__REDIRECT", "true")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {err}");
    assert!(
        err.contains("storage.redirect needs storage.backend = \"s3\""),
        "{err}"
    );
}

/// `berth migrate` reads only its two files: `BERTH_*` variables would
/// apply to both sides at once, so they are ignored, and a missing file
/// is named.
#[test]
fn migrate_names_a_missing_file_and_ignores_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("from.toml");
    std::fs::write(
        &from,
        format!(
            "[storage]\ndata_dir = \"{}\"\n",
            dir.path().join("a").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["migrate", "--from"])
        .arg(&from)
        .arg("--to")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("missing.toml does not exist"), "{err}");
    // An empty registry copied to another one, with the environment
    // pointing at a database that does not exist: it is not used.
    let to = dir.path().join("to.toml");
    std::fs::write(
        &to,
        format!(
            "[storage]\ndata_dir = \"{}\"\n",
            dir.path().join("b").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["migrate", "--json", "--from"])
        .arg(&from)
        .arg("--to")
        .arg(&to)
        .env("BERTH_METADATA__BACKEND", "postgres")
        .env("BERTH_METADATA__URL", "postgres://berth@127.0.0.1:1/berth")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["blobs_copied"], 0, "{report}");
    assert!(
        dir.path().join("b/meta").exists(),
        "the copy is not on sled"
    );
}
