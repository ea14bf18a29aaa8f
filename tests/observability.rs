//! Metrics and health, black-box against `berth serve`: `/metrics` parsed by
//! a Prometheus text-format parser and compared with the traffic sent;
//! where and for whom it is served; `/readyz` turning 503 and back when the
//! data directory becomes unusable; `/healthz` and `/readyz` open to every
//! address and without credentials.

mod common;

use std::time::{Duration, Instant};

use common::authkit::{self, basic, create_user, send, Cred, ADMIN_PW, PW};
use common::bad_input::image;
use common::metrics::{scrape, Metrics};
use common::{bytes, media};
use reqwest::Method;
use serde_json::Value;

const REQS: &str = "berth_http_requests_total";
const LATENCY: &str = "berth_http_request_duration_seconds";

fn metrics_of(url: &str, cred: &Cred) -> Metrics {
    scrape(send(
        &authkit::client(),
        Method::GET,
        &format!("{url}/metrics"),
        cred,
    ))
}

fn status_of(url: &str, path: &str, cred: &Cred) -> u16 {
    send(
        &authkit::client(),
        Method::GET,
        &format!("{url}{path}"),
        cred,
    )
    .send()
    .unwrap()
    .status()
    .as_u16()
}

fn requests(m: &Metrics, endpoint: &str, status_class: &str) -> f64 {
    m.sum(
        REQS,
        &[("endpoint", endpoint), ("status_class", status_class)],
    )
}

/// Polls until `ok` holds for a fresh scrape, or panics after `limit`.
fn eventually(url: &str, cred: &Cred, limit: Duration, ok: impl Fn(&Metrics) -> bool) -> Metrics {
    let until = Instant::now() + limit;
    loop {
        let m = metrics_of(url, cred);
        if ok(&m) {
            return m;
        }
        assert!(
            Instant::now() < until,
            "the metrics did not get there in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn metrics_count_the_traffic_sent() {
    let dir = tempfile::tempdir().unwrap();
    let p = authkit::serve(
        dir.path(),
        "127.0.0.1:0",
        "[metrics]\nstorage_refresh_secs = 1\n",
    );
    let url = p.url.clone();
    let none = Cred::None;
    let before = metrics_of(&url, &none);
    assert!(before.has("berth_build_info"), "build info");
    assert_eq!(
        before.get(
            "berth_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // N blob pushes (monolithic: one POST each), one manifest, M manifest
    // GETs, a manifest that is not there, a path that is no endpoint.
    const N: usize = 3;
    const M: usize = 4;
    let blobs: Vec<Vec<u8>> = (0..N)
        .map(|i| bytes(i as u64 + 7, 20_000 + i * 1000))
        .collect();
    let pushed: usize = blobs.iter().map(Vec::len).sum();
    let descs: Vec<(String, usize)> = blobs
        .iter()
        .map(|b| (common::push_blob(&url, "obs/app", b), b.len()))
        .collect();
    let manifest = image(&descs[0], &descs[1..].iter().collect::<Vec<_>>(), "obs");
    common::put_manifest(&url, "obs/app", "v1", media::OCI_MANIFEST, &manifest);
    for _ in 0..M {
        let r = common::http()
            .get(format!("{url}/v2/obs/app/manifests/v1"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().unwrap().len(), manifest.len());
    }
    assert_eq!(status_of(&url, "/v2/obs/app/manifests/missing", &none), 404);
    assert_eq!(status_of(&url, "/no/such/endpoint", &none), 404);

    let after = metrics_of(&url, &none);
    let delta = |e: &str, c: &str| requests(&after, e, c) - requests(&before, e, c);
    assert_eq!(delta("V2::UploadStart", "2xx"), N as f64, "blob pushes");
    assert_eq!(delta("V2::ManifestPut", "2xx"), 1.0, "manifest push");
    assert_eq!(delta("V2::ManifestGet", "2xx"), M as f64, "manifest reads");
    assert_eq!(delta("V2::ManifestGet", "4xx"), 1.0, "the missing manifest");
    assert_eq!(delta("unknown", "4xx"), 1.0, "the unknown path");
    assert_eq!(
        after.get(
            REQS,
            &[
                ("endpoint", "V2::ManifestGet"),
                ("method", "GET"),
                ("status_class", "2xx")
            ]
        ),
        M as f64
    );
    for e in [
        "V2::UploadStart",
        "V2::ManifestPut",
        "V2::ManifestGet",
        "unknown",
    ] {
        assert_eq!(
            after.histogram_count(LATENCY, &[("endpoint", e)]),
            after.sum(REQS, &[("endpoint", e)]),
            "one latency observation per {e} request"
        );
    }
    let received = after.get("berth_http_received_bytes_total", &[])
        - before.get("berth_http_received_bytes_total", &[]);
    assert!(
        received >= (pushed + manifest.len()) as f64,
        "received {received} bytes, pushed {}",
        pushed + manifest.len()
    );
    let sent = after.get("berth_http_sent_bytes_total", &[])
        - before.get("berth_http_sent_bytes_total", &[]);
    assert!(sent >= (M * manifest.len()) as f64, "sent {sent}");
    assert_eq!(after.get("berth_uploads_in_progress", &[]), 0.0);

    // The storage totals, from the metadata after a refresh: the blobs and
    // the manifest (stored as a blob too), one manifest, one repository.
    let stored = (pushed + manifest.len()) as f64;
    let m = eventually(&url, &none, Duration::from_secs(10), |m| {
        m.get("berth_storage_blob_bytes", &[]) == stored
    });
    assert_eq!(m.get("berth_storage_blobs", &[]), (N + 1) as f64);
    assert_eq!(m.get("berth_storage_manifests", &[]), 1.0);
    assert_eq!(m.get("berth_storage_repositories", &[]), 1.0);
    // The webhook families exist, at zero, before any webhook.
    assert!(m.has("berth_webhook_queue_depth"));
    assert_eq!(
        m.get(
            "berth_webhook_deliveries_total",
            &[("outcome", "delivered")]
        ),
        0.0
    );
}

#[test]
fn metrics_need_an_administrator_and_count_failed_logins() {
    let dir = tempfile::tempdir().unwrap();
    authkit::user_add(dir.path(), "admin", ADMIN_PW, true);
    let p = authkit::serve(dir.path(), "127.0.0.1:0", &authkit::token_config(""));
    let url = p.url.clone();
    let c = authkit::client();
    let admin = basic("admin", ADMIN_PW);
    create_user(&c, &url, &admin, "bob", PW);
    assert_eq!(status_of(&url, "/metrics", &Cred::None), 401);
    assert_eq!(status_of(&url, "/metrics", &basic("bob", PW)), 403);
    let before = metrics_of(&url, &admin);
    assert_eq!(
        status_of(&url, "/v2/", &basic("bob", "wrong-password")),
        401
    );
    assert_eq!(
        status_of(&url, "/v2/", &basic("nobody", "wrong-password")),
        401
    );
    let after = metrics_of(&url, &admin);
    assert_eq!(
        after.get("berth_login_failures_total", &[])
            - before.get("berth_login_failures_total", &[]),
        2.0
    );
    // Refused before the endpoint runs, and counted under its name all the
    // same.
    assert_eq!(
        requests(&after, "V2::Base", "4xx") - requests(&before, "V2::Base", "4xx"),
        2.0
    );
}

#[test]
fn public_metrics_need_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    authkit::user_add(dir.path(), "admin", ADMIN_PW, true);
    let p = authkit::serve(
        dir.path(),
        "127.0.0.1:0",
        &authkit::token_config("[metrics]\npublic = true\n"),
    );
    let m = metrics_of(&p.url, &Cred::None);
    assert!(m.has("berth_build_info"));
}

#[test]
fn a_separate_metrics_address_serves_metrics_alone() {
    let dir = tempfile::tempdir().unwrap();
    authkit::user_add(dir.path(), "admin", ADMIN_PW, true);
    // A port the OS had free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_url = format!("http://127.0.0.1:{port}");
    let p = authkit::serve(
        dir.path(),
        "127.0.0.1:0",
        &authkit::token_config(&format!("[metrics]\naddr = \"127.0.0.1:{port}\"\n")),
    );
    let admin = basic("admin", ADMIN_PW);
    assert_eq!(status_of(&p.url, "/metrics", &admin), 404, "main listener");
    assert_eq!(status_of(&p.url, "/v2/", &admin), 200);
    // Open on its own address, and it counts the main listener's traffic.
    let m = metrics_of(&metrics_url, &Cred::None);
    assert_eq!(requests(&m, "V2::Base", "2xx"), 1.0);
    assert_eq!(
        requests(&m, "unknown", "4xx"),
        1.0,
        "the main listener's /metrics"
    );
    assert_eq!(status_of(&metrics_url, "/v2/", &Cred::None), 404);
}

#[test]
fn disabled_metrics_answer_404() {
    let dir = tempfile::tempdir().unwrap();
    let p = authkit::serve(dir.path(), "127.0.0.1:0", "[metrics]\nenabled = false\n");
    assert_eq!(status_of(&p.url, "/metrics", &Cred::None), 404);
    assert_eq!(status_of(&p.url, "/healthz", &Cred::None), 200);
}

fn readyz(url: &str) -> (u16, Value) {
    let r = authkit::client()
        .get(format!("{url}/readyz"))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn readyz_turns_503_while_the_data_directory_is_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let p = authkit::serve(
        dir.path(),
        "127.0.0.1:0",
        "[server]\nreadiness_timeout_ms = 2000\n",
    );
    let url = p.url.clone();
    assert_eq!(readyz(&url), (200, serde_json::json!({"status": "ready"})));
    // Tests run as root, for whom permissions do not make a directory
    // unreadable: the data directory is replaced by a file instead (the
    // server keeps its open metadata files, which move with it).
    let data = dir.path().join("data");
    let away = dir.path().join("data.away");
    std::fs::rename(&data, &away).unwrap();
    std::fs::write(&data, b"not a directory").unwrap();
    let (status, body) = readyz(&url);
    let healthz = status_of(&url, "/healthz", &Cred::None);
    std::fs::remove_file(&data).unwrap();
    std::fs::rename(&away, &data).unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unready", "{body}");
    let reason = body["reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("object storage: "), "{body}");
    assert_eq!(healthz, 200, "the process is up all the same");
    assert_eq!(readyz(&url), (200, serde_json::json!({"status": "ready"})));
}

#[test]
fn health_and_readiness_answer_outside_the_allow_list_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    authkit::user_add(dir.path(), "admin", ADMIN_PW, true);
    let p = authkit::serve(dir.path(), "127.0.0.1:0", &authkit::token_config(""));
    let url = p.url.clone();
    let c = authkit::client();
    let admin = basic("admin", ADMIN_PW);
    let (s, v) = authkit::api(
        &c,
        Method::PATCH,
        &url,
        "/registry",
        &admin,
        Some(serde_json::json!({"api_subnet_allow_list": ["10.0.0.0/8"], "confirm_lockout": true})),
    );
    assert_eq!(s, 200, "{v}");
    // This client (127.0.0.1) is outside the list now.
    assert_eq!(status_of(&url, "/v2/", &admin), 403);
    assert_eq!(
        status_of(&url, "/metrics", &admin),
        403,
        "metrics obey the allow-list"
    );
    assert_eq!(status_of(&url, "/healthz", &Cred::None), 200);
    assert_eq!(readyz(&url).0, 200);
    // Credentials that do not check out change nothing either.
    assert_eq!(status_of(&url, "/readyz", &basic("admin", "wrong")), 200);
}

#[test]
fn garbage_collection_runs_are_counted_with_the_bytes_they_free() {
    let reg = common::gc::Reg::start("grace_period_secs = 0");
    let url = reg.base();
    let none = Cred::None;
    // A blob no manifest references: garbage once the grace period is over.
    let unneeded = bytes(99, 12_345);
    common::push_blob(&url, "obs/gc", &unneeded);
    let before = metrics_of(&url, &none);
    let report = common::gc::gc_api(&url, false, false);
    let freed = common::gc::n(&report, "bytes_freed");
    assert!(freed >= unneeded.len() as u64, "{report}");
    let after = metrics_of(&url, &none);
    let runs = |m: &Metrics| m.get("berth_gc_runs_total", &[("outcome", "succeeded")]);
    assert_eq!(runs(&after) - runs(&before), 1.0);
    assert_eq!(
        after.histogram_count("berth_gc_duration_seconds", &[])
            - before.histogram_count("berth_gc_duration_seconds", &[]),
        1.0
    );
    assert_eq!(
        after.get("berth_gc_freed_bytes_total", &[])
            - before.get("berth_gc_freed_bytes_total", &[]),
        freed as f64
    );
}

#[test]
fn throttled_logins_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    authkit::user_add(dir.path(), "admin", ADMIN_PW, true);
    let p = authkit::serve(
        dir.path(),
        "127.0.0.1:0",
        "[auth]\nmode = \"token\"\nmax_failed_logins = 2\n[metrics]\npublic = true\n",
    );
    let url = p.url.clone();
    let before = metrics_of(&url, &Cred::None);
    let statuses: Vec<u16> = (0..4)
        .map(|_| status_of(&url, "/v2/", &basic("bob", "wrong-password")))
        .collect();
    assert_eq!(statuses, [401, 401, 429, 429]);
    let after = metrics_of(&url, &Cred::None);
    let throttled = |m: &Metrics| {
        m.get(
            "berth_throttled_requests_total",
            &[("reason", "failed_logins")],
        )
    };
    assert_eq!(throttled(&after) - throttled(&before), 2.0);
    assert_eq!(
        after.get("berth_login_failures_total", &[])
            - before.get("berth_login_failures_total", &[]),
        2.0
    );
}
