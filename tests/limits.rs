//! Resource limits: idle connections, slow headers, huge headers, upload
//! concurrency, and memory under many concurrent large pushes.

mod common;

use common::hardening::read_head;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

fn config(dir: &std::path::Path, body: &str) -> String {
    let p = dir.join("limits.toml");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

/// Reads whatever the server sends until it closes or `wait` passes.
fn read_some(s: &mut TcpStream, wait: Duration) -> (String, bool) {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&out).into_owned(), true)
            }
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

#[test]
fn five_hundred_idle_connections_do_not_block_others() {
    let (server, _dir) = common::Server::start();
    let a = addr(server.url());
    let idle: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(&a).expect("connect"))
        .collect();
    let start = Instant::now();
    let r = common::client()
        .get(format!("{}/v2/", server.url()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    drop(idle);
}

#[test]
fn slow_and_oversized_headers_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[server]\nheader_read_timeout_secs = 1\n");
    let server = common::Server::start_in(&dir.path().join("data"), &["--config", &cfg]);
    let a = addr(server.url());

    // Slowloris: half a request head, then silence.
    let mut s = TcpStream::connect(&a).unwrap();
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n").unwrap();
    let start = Instant::now();
    let (_, closed) = read_some(&mut s, Duration::from_secs(10));
    assert!(
        closed,
        "slow client still connected after {:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "cut off only after {:?}",
        start.elapsed()
    );

    // A 200 KiB header: refused (431) or the connection is closed.
    let mut s = TcpStream::connect(&a).unwrap();
    let big = format!(
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200 << 10)
    );
    let _ = s.write_all(big.as_bytes());
    let (resp, closed) = read_some(&mut s, Duration::from_secs(10));
    assert!(
        resp.starts_with("HTTP/1.1 431") || (resp.is_empty() && closed),
        "oversized header answered {resp:?}"
    );

    // Connections that send nothing, or go idle after a request, are closed
    // after the same timeout.
    let mut silent = TcpStream::connect(&a).unwrap();
    let start = Instant::now();
    let (_, closed) = read_some(&mut silent, Duration::from_secs(10));
    assert!(
        closed && start.elapsed() < Duration::from_secs(8),
        "silent connection kept {:?}",
        start.elapsed()
    );
    let mut idle = TcpStream::connect(&a).unwrap();
    idle.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let start = Instant::now();
    let (resp, closed) = read_some(&mut idle, Duration::from_secs(10));
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        closed && start.elapsed() < Duration::from_secs(8),
        "idle keep-alive connection kept {:?}",
        start.elapsed()
    );

    // The server still serves.
    let r = common::client()
        .get(format!("{}/v2/", server.url()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn uploads_past_the_limit_get_429_and_the_rest_continue() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[server]\nmax_concurrent_uploads = 2\n");
    let server = common::Server::start_in(&dir.path().join("data"), &["--config", &cfg]);
    let a = addr(server.url());
    let c = common::client();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let r = c
            .post(format!("{}/v2/lim/a/blobs/uploads/", server.url()))
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
        sessions.push(r.headers()["location"].to_str().unwrap().to_string());
    }
    // Two slow PATCHes hold both upload places: headers and a first byte,
    // the rest of the declared body not yet sent.
    let mut slow = Vec::new();
    for loc in &sessions[..2] {
        let mut s = TcpStream::connect(&a).unwrap();
        write!(
            s,
            "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nx"
        )
        .unwrap();
        slow.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let r = c
        .patch(format!("{}{}", server.url(), sessions[2]))
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let e: serde_json::Value = r.json().unwrap();
    assert_eq!(e["errors"][0]["code"], "TOOMANYREQUESTS");
    // Finishing the slow ones frees the places.
    for s in &mut slow {
        s.write_all(b"y").unwrap();
        let resp = read_head(s, Duration::from_secs(20));
        assert!(resp.starts_with("HTTP/1.1 202"), "{resp}");
    }
    let r = c
        .patch(format!("{}{}", server.url(), sessions[2]))
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
}

/// 64 MiB of deterministic bytes, different per seed.
fn payload(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..64 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn sixty_four_concurrent_64_mib_pushes_keep_memory_bounded() {
    // All 64 pushers come from one address: lift the per-client share
    // (32 by default) so that every push runs at once.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("berth.toml");
    std::fs::write(&cfg, "[server]\nmax_concurrent_uploads_per_client = 64\n").unwrap();
    let server = common::Server::start_in(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let url = server.url().to_string();
    // Eight distinct payloads shared by 64 pushers: dedup races included.
    // Leaked so that 64 request bodies can borrow them without copies.
    let payloads: Vec<&'static [u8]> = (0..8)
        .map(|i| &*Box::leak(payload(i).into_boxed_slice()))
        .collect();
    let digests: Vec<String> = payloads
        .iter()
        .map(|p| format!("sha256:{}", hex::encode(Sha256::digest(p))))
        .collect();
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let (url, p, d) = (url.clone(), payloads[i % 8], digests[i % 8].clone());
            std::thread::spawn(move || {
                let c = common::client();
                let r = c
                    .post(format!("{url}/v2/mem/r{i}/blobs/uploads/?digest={d}"))
                    .body(p)
                    .send()
                    .unwrap();
                r.status().as_u16()
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let peak = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:")
                .map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap())
        })
        .unwrap();
    eprintln!(
        "peak RSS with 64 concurrent 64 MiB pushes: {} MiB",
        peak / 1024
    );
    assert!(peak < 200 * 1024, "peak RSS {} MiB", peak / 1024);
    // Every blob reads back in every repository it was pushed to.
    let c = common::client();
    for i in [0usize, 9, 63] {
        let body = c
            .get(format!("{url}/v2/mem/r{i}/blobs/{}", digests[i % 8]))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(
            format!("sha256:{}", hex::encode(Sha256::digest(&body))),
            digests[i % 8]
        );
    }
}
