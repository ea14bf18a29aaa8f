//! Truncated bodies, black-box: a request whose body ends before its
//! Content-Length (the client went away) stores nothing, and a session that
//! received a truncated PATCH resumes from the offset it reports and still
//! yields a correct blob.

mod common;

use common::bad_input::*;
use common::{client, digest, Server};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// A request whose body ends before its Content-Length (the client went
/// away) stores nothing; a session that received a truncated PATCH can be
/// resumed from the offset it reports and still yields a correct blob.
#[test]
fn truncated_bodies_store_nothing() {
    let (s, _dir) = Server::start();
    let _fixture = setup_fixture(&s);
    let blob: Vec<u8> = (0..100_000u32).map(|i| (i % 97) as u8).collect();
    let d = digest(&blob);

    // Monolithic push: declares 100000 bytes, sends 40000, closes.
    let before = snapshot(&s);
    let hdrs = vec![
        (
            "Content-Type".to_string(),
            "application/octet-stream".to_string(),
        ),
        ("Content-Length".to_string(), blob.len().to_string()),
    ];
    let target = format!("/v2/test/a/blobs/uploads/?digest={d}");
    let hp = host_port(s.url()).to_string();
    {
        // The server may answer with an error or just close: either is fine.
        let mut st = TcpStream::connect(&hp).unwrap();
        st.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut head = format!("POST {target} HTTP/1.1\r\nHost: {hp}\r\nConnection: close\r\n");
        for (k, v) in &hdrs {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        st.write_all(head.as_bytes()).unwrap();
        st.write_all(&blob[..40_000]).unwrap();
        st.shutdown(Shutdown::Write).unwrap();
        let mut sink = Vec::new();
        let _ = st.read_to_end(&mut sink);
        let text = String::from_utf8_lossy(&sink);
        assert!(
            !text.starts_with("HTTP/1.1 2") && !text.starts_with("HTTP/1.0 2"),
            "truncated monolithic push was acknowledged: {text}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        before,
        snapshot(&s),
        "truncated monolithic push changed storage"
    );
    let c = client();
    let st = c
        .head(format!("{}/v2/test/a/blobs/{d}", s.url()))
        .send()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(st, 404, "truncated monolithic push made the blob visible");

    // Chunked session: first chunk ok, second chunk truncated.
    let sess = new_session(&s, &blob[..10_000]);
    {
        let mut st = TcpStream::connect(&hp).unwrap();
        st.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "PATCH {sess} HTTP/1.1\r\nHost: {hp}\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Range: 10000-59999\r\nContent-Length: 50000\r\n\r\n"
        );
        st.write_all(head.as_bytes()).unwrap();
        st.write_all(&blob[10_000..30_000]).unwrap();
        st.shutdown(Shutdown::Write).unwrap();
        let mut sink = Vec::new();
        let _ = st.read_to_end(&mut sink);
        let text = String::from_utf8_lossy(&sink);
        assert!(
            !text.starts_with("HTTP/1.1 2") && !text.starts_with("HTTP/1.0 2"),
            "truncated PATCH was acknowledged: {text}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        before.blobs,
        snapshot(&s).blobs,
        "truncated PATCH changed blobs/"
    );
    // Resume from whatever the session reports.
    let g = raw(s.url(), "GET", &sess, &[], b"");
    assert_eq!(
        g.status,
        204,
        "GET session after truncated PATCH: {}",
        g.body_text()
    );
    let range = g.header("Range").expect("Range on GET session").to_string();
    let end: usize = range
        .strip_prefix("0-")
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("bad Range {range:?}"));
    let next = end + 1;
    assert!(
        (10_000..=30_000).contains(&next),
        "session reports {next} bytes after a 10000-byte chunk and a truncated 20000-byte one"
    );
    let sess = g.header("Location").map(location_path).unwrap_or(sess);
    let sep = if sess.contains('?') { '&' } else { '?' };
    let r = raw(
        s.url(),
        "PUT",
        &format!("{sess}{sep}digest={d}"),
        &[("Content-Type".into(), "application/octet-stream".into())],
        &blob[next..],
    );
    assert_eq!(
        r.status,
        201,
        "finishing the resumed session: {}",
        r.body_text()
    );
    let got = c
        .get(format!("{}/v2/test/a/blobs/{d}", s.url()))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(
        got.as_ref() == blob.as_slice(),
        "resumed blob differs from what was sent"
    );
}
