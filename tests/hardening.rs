//! Security hardening, black-box: media types a manifest may carry, the
//! explicit caller, stalled and oversized bodies, the per-client upload
//! share, the manifest-bytes budget, and request heads at the size limit.
//! Each test is named after the finding it pins.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::hardening::*;
use serde_json::{json, Value};

#[test]
fn manifest_media_type_with_control_character_is_refused_and_nothing_stored() {
    let (server, _dir) = common::Server::start();
    let url = server.url();
    let c = common::client();
    let blobs = push_blobs(&c, url, "mt/app", "mt");
    let bad = "application/vnd.oci.image.manifest.v1+json\u{1}x";
    let cases: Vec<(&str, String, Option<&[u8]>)> = vec![
        ("mediaType with a control character", image(&blobs, bad, CONFIG_MT, LAYER_MT), None),
        ("unknown type with a newline", image(&blobs, "application/x-thing\nx", CONFIG_MT, LAYER_MT), None),
        ("config mediaType", image(&blobs, MT, "application/vnd.oci.image.config.v1+json\u{7f}", LAYER_MT), None),
        ("layer mediaType", image(&blobs, MT, CONFIG_MT, "not a media type"), None),
        (
            "artifactType",
            json!({"schemaVersion": 2, "mediaType": MT, "artifactType": "application/x\u{1}",
                   "config": {"mediaType": CONFIG_MT, "digest": blobs[0].0, "size": blobs[0].1}, "layers": []})
            .to_string(),
            None,
        ),
        (
            "Content-Type with obs-text",
            image(&blobs, "application/vnd.example.thing.v1+json", CONFIG_MT, LAYER_MT).replace(
                "\"mediaType\":\"application/vnd.example.thing.v1+json\",",
                "",
            ),
            Some(b"application/vnd.example.thing.v1+json\xff"),
        ),
        ("Content-Type with a space", image(&blobs, MT, CONFIG_MT, LAYER_MT), Some(b"application/vnd.oci.image.manifest.v1+json; charset")),
    ];
    for (what, body, ct) in cases {
        let digest = common::digest(body.as_bytes());
        let mut r = c
            .put(format!("{url}/v2/mt/app/manifests/{digest}"))
            .body(body);
        if let Some(ct) = ct {
            r = r.header(
                "content-type",
                reqwest::header::HeaderValue::from_bytes(ct).unwrap(),
            );
        }
        let r = r.send().unwrap();
        assert_eq!(r.status(), 400, "{what}: pushed anyway");
        let e: Value = r.json().unwrap();
        assert_eq!(e["errors"][0]["code"], "MANIFEST_INVALID", "{what}: {e}");
        let r = c
            .get(format!("{url}/v2/mt/app/manifests/{digest}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 404, "{what}: stored although refused");
    }
    // A valid unknown media type, with parameters in Content-Type, is still
    // stored and served as pushed; the server survived all of the above.
    let body = image(
        &blobs,
        "application/vnd.example.thing.v1+json",
        CONFIG_MT,
        LAYER_MT,
    );
    let r = c
        .put(format!("{url}/v2/mt/app/manifests/ok"))
        .header(
            "content-type",
            "application/vnd.example.thing.v1+json; charset=utf-8",
        )
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let r = c
        .get(format!("{url}/v2/mt/app/manifests/ok"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.example.thing.v1+json"
    );
    assert_eq!(r.text().unwrap(), body);
}

/// The server's sources: every handler gets its caller as a parameter, and
/// nothing outside the authentication module makes an all-powerful one.
#[test]
fn authorisation_has_no_open_default_when_the_caller_is_missing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/server/src");
    let mut files = vec![];
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    assert!(
        files.len() > 5,
        "sources not found under {}",
        root.display()
    );
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.strip_prefix(&root).unwrap().display().to_string();
        assert!(
            !text.contains("get::<Caller>") && !text.contains("get::<auth::Caller>"),
            "{name} looks the caller up in the request extensions"
        );
        if name != "auth.rs" {
            assert!(
                !text.contains("Caller::open("),
                "{name} builds an open caller (every right) itself"
            );
        }
    }
}

#[test]
fn stalled_request_body_gets_408_and_its_connection_closed() {
    let (server, _dir) = serve("[server]\nbody_read_timeout_secs = 1\n");
    let a = addr(server.url());
    let c = common::client();
    let r = c
        .post(format!("{}/v2/stall/app/blobs/uploads/", server.url()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    // A blob chunk, a manifest and a management body, each declaring more
    // than it sends.
    let mut conns = [
        stalled(&a, "PATCH", &loc, "", 1 << 20, 100),
        stalled(
            &a,
            "PUT",
            "/v2/stall/app/manifests/v1",
            &format!("Content-Type: {MT}\r\n"),
            4000,
            100,
        ),
        stalled(
            &a,
            "POST",
            "/api/v1/namespaces",
            "Content-Type: application/json\r\n",
            4000,
            100,
        ),
    ];
    let start = Instant::now();
    for (i, s) in conns.iter_mut().enumerate() {
        let head = read_head(s, Duration::from_secs(10));
        assert_eq!(
            status_of(&head),
            408,
            "request {i}: {head:?} after {:?}",
            start.elapsed()
        );
        assert!(
            closes_within(s, Duration::from_secs(5)),
            "request {i}: connection kept open"
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "took {:?}",
        start.elapsed()
    );
    // The upload session is intact: it still accepts its chunk.
    let r = c
        .patch(format!("{}{loc}", server.url()))
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[test]
fn anonymous_callers_are_refused_before_their_body_is_read() {
    let (server, _dir) = serve_token("[server]\nbody_read_timeout_secs = 30\n");
    let a = addr(server.url());
    // Declared 1 MiB, sent 100 bytes: the answer must come from the head
    // alone, long before the body read timeout.
    for (method, path) in [
        ("POST", "/api/v1/users"),
        ("POST", "/api/v1/namespaces"),
        ("PUT", "/api/v1/namespaces/x/retention"),
        ("PATCH", "/api/v1/registry"),
        ("POST", "/v2/priv/app/blobs/uploads/"),
        ("PUT", "/v2/priv/app/manifests/v1"),
    ] {
        let start = Instant::now();
        let mut s = stalled(
            &a,
            method,
            path,
            "Content-Type: application/json\r\n",
            1 << 20,
            100,
        );
        let head = read_head(&mut s, Duration::from_secs(10));
        assert_eq!(status_of(&head), 401, "{method} {path}: {head:?}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{method} {path}: took {:?}",
            start.elapsed()
        );
        assert!(
            closes_within(&mut s, Duration::from_secs(5)),
            "{method} {path}: connection kept open"
        );
    }
    // The token form is small: a declared megabyte is refused at once.
    let start = Instant::now();
    let mut s = stalled(
        &a,
        "POST",
        "/auth/token",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        1 << 20,
        100,
    );
    let head = read_head(&mut s, Duration::from_secs(10));
    assert_eq!(status_of(&head), 413, "{head:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    // So is a management body over its cap, even from an administrator.
    let auth = base64_basic("admin", ADMIN_PW);
    let mut s = stalled(
        &a,
        "POST",
        "/api/v1/namespaces",
        &format!("Authorization: Basic {auth}\r\n"),
        2 << 20,
        100,
    );
    let head = read_head(&mut s, Duration::from_secs(10));
    assert_eq!(status_of(&head), 413, "{head:?}");
}

#[test]
fn one_client_cannot_take_every_upload_place() {
    let (server, _dir) = serve(
        "[server]\nmax_concurrent_uploads = 8\nmax_concurrent_uploads_per_client = 2\nbody_read_timeout_secs = 2\n",
    );
    let url = server.url().to_string();
    let a = addr(&url);
    let me = client_from("127.0.0.1");
    let other = client_from("127.0.0.2");
    let session = |c: &reqwest::blocking::Client| {
        let r = c
            .post(format!("{url}/v2/share/app/blobs/uploads/"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
        r.headers()["location"].to_str().unwrap().to_string()
    };
    let mine: Vec<String> = (0..3).map(|_| session(&me)).collect();
    let theirs = session(&other);
    // Two stalled chunks from 127.0.0.1 use its whole share.
    let mut slow: Vec<TcpStream> = mine[..2]
        .iter()
        .map(|loc| stalled(&a, "PATCH", loc, "", 1000, 1))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = me
        .patch(format!("{url}{}", mine[2]))
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status(), 429, "a third upload of the same client");
    assert_eq!(r.headers()["retry-after"], "1");
    let e: Value = r.json().unwrap();
    assert_eq!(e["errors"][0]["code"], "TOOMANYREQUESTS");
    assert!(
        e["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("max_concurrent_uploads_per_client"),
        "{e}"
    );
    // Another client still uploads.
    let r = other
        .patch(format!("{url}{theirs}"))
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    // The stalled bodies are dropped after the body read timeout, which
    // gives the places back.
    for s in &mut slow {
        let head = read_head(s, Duration::from_secs(10));
        assert_eq!(status_of(&head), 408, "{head:?}");
    }
    let r = me
        .patch(format!("{url}{}", mine[2]))
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[test]
fn manifest_bytes_in_flight_are_bounded() {
    let (server, _dir) = serve("[server]\nmax_manifest_bytes_in_flight = 16384\n");
    let url = server.url().to_string();
    let a = addr(&url);
    let c = common::client();
    let blobs = push_blobs(&c, &url, "budget/app", "budget");
    let body = image(&blobs, MT, CONFIG_MT, LAYER_MT);
    // Two stalled 6000-byte manifests take 12000 of the 16384 bytes.
    let mut slow: Vec<TcpStream> = (0..2)
        .map(|i| {
            stalled(
                &a,
                "PUT",
                &format!("/v2/budget/app/manifests/s{i}"),
                &format!("Content-Type: {MT}\r\n"),
                6000,
                10,
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let padded = format!("{}{}", body, " ".repeat(6000 - body.len()));
    let r = c
        .put(format!("{url}/v2/budget/app/manifests/third"))
        .header("content-type", MT)
        .body(padded.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 429, "a manifest past the budget");
    assert_eq!(r.headers()["retry-after"], "1");
    // A small one still fits.
    let r = c
        .put(format!("{url}/v2/budget/app/manifests/small"))
        .header("content-type", MT)
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    drop(slow.drain(..));
    std::thread::sleep(Duration::from_millis(300));
    let r = c
        .put(format!("{url}/v2/budget/app/manifests/third"))
        .header("content-type", MT)
        .body(padded)
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        201,
        "the budget is given back when the stalled pushes go"
    );
}

#[test]
fn request_head_over_max_header_bytes_gets_431_at_the_limit() {
    let (server, _dir) = serve("[server]\nmax_header_bytes = 65536\n");
    let a = addr(server.url());
    let send = |size: usize| {
        let fixed = "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n".len();
        let head = format!(
            "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(size - fixed)
        );
        assert_eq!(head.len(), size);
        let mut s = TcpStream::connect(&a).unwrap();
        let _ = s.write_all(head.as_bytes());
        read_head(&mut s, Duration::from_secs(10))
    };
    for size in [65537, 70_000, 114 << 10] {
        let head = send(size);
        assert!(
            head.starts_with("HTTP/1.1 431"),
            "a {size}-byte head answered {head:?}"
        );
    }
    let head = send(65536);
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "a head at the limit answered {head:?}"
    );
}
