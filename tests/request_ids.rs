//! Request ids: every answer carries one (refusals too); a trusted proxy's
//! `X-Request-Id` is kept, anyone else's is not; the access log names it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{berth_cmd, client, Server};

fn id_of(r: &reqwest::blocking::Response) -> String {
    r.headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-Id on a {} answer", r.status()))
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn every_answer_has_an_id_and_untrusted_ids_are_replaced() {
    let (s, _d) = Server::start();
    let c = client();
    let ok = c.get(format!("{}/v2/", s.url())).send().unwrap();
    assert_eq!(ok.status(), 200);
    let a = id_of(&ok);
    assert_eq!(a.len(), 32, "{a}");
    let missing = c.get(format!("{}/api/v1/nothing", s.url())).send().unwrap();
    assert_eq!(missing.status(), 404);
    assert_ne!(id_of(&missing), a, "a fresh id per request");
    let forged = c
        .get(format!("{}/v2/", s.url()))
        .header("X-Request-Id", "forged-by-client")
        .send()
        .unwrap();
    assert_ne!(id_of(&forged), "forged-by-client");
}

#[test]
fn refusals_carry_an_id_in_token_mode() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("berth.toml");
    std::fs::write(&cfg, "[auth]\nmode = \"token\"\n").unwrap();
    let s = Server::start_in(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let r = client().get(format!("{}/v2/", s.url())).send().unwrap();
    assert_eq!(r.status(), 401);
    id_of(&r);
    let r = client()
        .get(format!("{}/api/v1/users", s.url()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    id_of(&r);
}

#[test]
fn a_trusted_proxy_id_is_kept_answered_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("berth.toml");
    std::fs::write(&cfg, "[auth]\ntrusted_proxies = [\"127.0.0.1/32\"]\n").unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = berth_cmd()
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "serve",
            "--addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn,berth::access=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("berth listening on ")
        .unwrap()
        .to_string();
    let c = client();
    let kept = c
        .get(format!("{base}/v2/"))
        .header("X-Request-Id", "ci-42.run:7_a")
        .send()
        .unwrap();
    let refused = c
        .get(format!("{base}/v2/"))
        .header("X-Request-Id", "no spaces allowed")
        .send()
        .unwrap();
    let long = c
        .get(format!("{base}/v2/"))
        .header("X-Request-Id", "a".repeat(129))
        .send()
        .unwrap();
    let missing = c
        .get(format!("{base}/api/v1/nothing"))
        .header("X-Request-Id", "nf-1")
        .send()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(id_of(&kept), "ci-42.run:7_a");
    assert_ne!(id_of(&refused), "no spaces allowed");
    assert_eq!(id_of(&long).len(), 32);
    assert_eq!(id_of(&missing), "nf-1");
    let text = std::fs::read_to_string(&log).unwrap();
    let access: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("berth::access"))
        .collect();
    assert!(
        access
            .iter()
            .any(|l| l.contains("request_id=\"ci-42.run:7_a\"")),
        "access log: {text}"
    );
    let generated = id_of(&refused);
    assert!(
        access.iter().any(|l| l.contains(&generated)),
        "access log: {text}"
    );
}
