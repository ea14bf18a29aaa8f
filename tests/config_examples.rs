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
