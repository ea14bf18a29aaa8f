//! Nothing acknowledged is lost (§6): content answered 201
//! reads back byte for byte after a graceful restart (SIGTERM) and after
//! `kill -9`; a chunked upload session survives both and can be finished.

mod common;

use common::{bytes, push_blob_with as push_blob, with_param};

use common::{client, digest, Server};
use reqwest::blocking::{Body, Client, Response};
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

#[derive(Clone, Copy, Debug)]
enum Restart {
    Graceful,
    Crash,
}

fn do_restart(s: &mut Server, how: Restart) {
    match how {
        Restart::Graceful => {
            assert!(s.stop(), "berth did not exit 0 on SIGTERM");
            s.restart();
        }
        Restart::Crash => s.crash_restart(),
    }
}

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Absolute URL for a Location header that may be relative.
fn abs(base: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        // Re-anchor on the current base: the port changes across restarts.
        let rest = loc.splitn(4, '/').nth(3).unwrap_or_default();
        format!("{base}/{rest}")
    } else {
        format!("{base}{loc}")
    }
}

/// POST + PUT (the two-step upload every client supports).
fn push_blob_two_step(c: &Client, base: &str, repo: &str, data: &[u8]) -> String {
    let d = digest(data);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "POST upload");
    let loc = abs(base, &header(&r, "Location").expect("Location"));
    let r = c
        .put(with_param(&loc, &format!("digest={d}")))
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "PUT upload of {d}");
    d
}

fn push_manifest(
    c: &Client,
    base: &str,
    repo: &str,
    reference: &str,
    mt: &str,
    body: &[u8],
) -> String {
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", mt)
        .body(body.to_vec())
        .send()
        .unwrap();
    let st = r.status().as_u16();
    assert_eq!(
        st,
        201,
        "manifest PUT {repo}:{reference}: {}",
        r.text().unwrap_or_default()
    );
    let d = digest(body);
    assert_eq!(
        header(&r, "Docker-Content-Digest").as_deref(),
        Some(d.as_str())
    );
    d
}

fn assert_blob(c: &Client, base: &str, repo: &str, data: &[u8], what: &str) {
    let d = digest(data);
    let r = c.get(format!("{base}/v2/{repo}/blobs/{d}")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{what}: GET blob {d} in {repo}");
    assert_eq!(
        header(&r, "Docker-Content-Digest").as_deref(),
        Some(d.as_str()),
        "{what}"
    );
    let got = r.bytes().unwrap();
    assert!(
        got.len() == data.len() && got.as_ref() == data,
        "{what}: blob {d} in {repo} differs ({} bytes read, {} expected)",
        got.len(),
        data.len()
    );
    let r = c
        .head(format!("{base}/v2/{repo}/blobs/{d}"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{what}: HEAD blob");
    assert_eq!(
        header(&r, "Content-Length"),
        Some(data.len().to_string()),
        "{what}: HEAD Content-Length"
    );
}

fn assert_manifest(
    c: &Client,
    base: &str,
    repo: &str,
    reference: &str,
    mt: &str,
    body: &[u8],
    what: &str,
) {
    let d = digest(body);
    let r = c
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("Accept", mt)
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "{what}: GET manifest {repo}:{reference}"
    );
    assert_eq!(
        header(&r, "Content-Type").as_deref(),
        Some(mt),
        "{what}: Content-Type"
    );
    assert_eq!(
        header(&r, "Docker-Content-Digest").as_deref(),
        Some(d.as_str()),
        "{what}: digest"
    );
    let got = r.bytes().unwrap();
    assert!(
        got.as_ref() == body,
        "{what}: manifest {repo}:{reference} bytes differ"
    );
}

fn json_get(c: &Client, url: &str) -> Value {
    let r = c.get(url).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "GET {url}");
    r.json().unwrap()
}

fn content_survives(how: Restart) {
    let (mut s, _dir) = Server::start();
    let c = client();
    let base = s.url().to_string();

    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})).unwrap();
    let layer1 = bytes(1, 3 * 1024 * 1024 + 17);
    let layer2 = bytes(2, 4096);
    let other_only = bytes(3, 1000);

    let cfg_d = push_blob(&c, &base, "acme/app", &config);
    let l1_d = push_blob_two_step(&c, &base, "acme/app", &layer1);
    let l2_d = push_blob(&c, &base, "acme/app", &layer2);
    push_blob(&c, &base, "other", &other_only);

    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg_d, "size": config.len()},
        "layers": [
            {"mediaType": OCI_LAYER, "digest": l1_d, "size": layer1.len()},
            {"mediaType": OCI_LAYER, "digest": l2_d, "size": layer2.len()},
        ],
    }))
    .unwrap();
    let m_d = push_manifest(&c, &base, "acme/app", "1.0", OCI_MANIFEST, &manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": m_d, "size": manifest.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .unwrap();
    let i_d = push_manifest(&c, &base, "acme/app", "multi", OCI_INDEX, &index);
    // Pushed by digest only, no tag.
    let untagged = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg_d, "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER, "digest": l2_d, "size": layer2.len()}],
        "annotations": {"untagged": "yes"},
    }))
    .unwrap();
    let u_d = digest(&untagged);
    push_manifest(&c, &base, "acme/app", &u_d, OCI_MANIFEST, &untagged);

    do_restart(&mut s, how);
    let base = s.url().to_string();
    let what = format!("after {how:?} restart");

    for data in [&config, &layer1, &layer2] {
        assert_blob(&c, &base, "acme/app", data, &what);
    }
    assert_blob(&c, &base, "other", &other_only, &what);
    // Links survive too: the blob of "other" is still not served by acme/app.
    let st = c
        .get(format!("{base}/v2/acme/app/blobs/{}", digest(&other_only)))
        .send()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(
        st, 404,
        "{what}: blob of another repository became readable"
    );

    assert_manifest(&c, &base, "acme/app", "1.0", OCI_MANIFEST, &manifest, &what);
    assert_manifest(&c, &base, "acme/app", &m_d, OCI_MANIFEST, &manifest, &what);
    assert_manifest(&c, &base, "acme/app", "multi", OCI_INDEX, &index, &what);
    assert_manifest(&c, &base, "acme/app", &i_d, OCI_INDEX, &index, &what);
    assert_manifest(&c, &base, "acme/app", &u_d, OCI_MANIFEST, &untagged, &what);

    let tags = json_get(&c, &format!("{base}/v2/acme/app/tags/list"));
    assert_eq!(
        tags,
        json!({"name": "acme/app", "tags": ["1.0", "multi"]}),
        "{what}: tags"
    );
    let cat = json_get(&c, &format!("{base}/v2/_catalog"));
    let repos: Vec<&str> = cat["repositories"]
        .as_array()
        .expect("repositories")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        repos.contains(&"acme/app") && repos.contains(&"other"),
        "{what}: catalog {cat}"
    );

    // Still writable: push after restart, restart again, read back.
    let layer3 = bytes(4, 70_000);
    push_blob(&c, &base, "acme/app", &layer3);
    do_restart(&mut s, how);
    let base = s.url().to_string();
    assert_blob(&c, &base, "acme/app", &layer3, &format!("{what} (second)"));
    assert_blob(&c, &base, "acme/app", &layer1, &format!("{what} (second)"));

    common::assert_blob_store_consistent(s.data_dir());
}

#[test]
fn pushed_content_survives_sigterm_restart() {
    content_survives(Restart::Graceful);
}

#[test]
fn pushed_content_survives_kill9() {
    content_survives(Restart::Crash);
}

fn upload_survives(how: Restart) {
    let (mut s, _dir) = Server::start();
    let c = client();
    let base = s.url().to_string();
    let repo = "acme/upload";
    let blob = bytes(7, 700_000);
    let d = digest(&blob);
    let (n1, n2) = (256 * 1024, 300_000); // chunk 1: [0, n1), chunk 2: [n1, n1+n2), rest in PUT

    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "POST upload");
    assert_eq!(
        header(&r, "Range").as_deref(),
        Some("0-0"),
        "Range of an empty session"
    );
    assert!(
        header(&r, "Docker-Upload-UUID").is_some(),
        "Docker-Upload-UUID"
    );
    let loc = header(&r, "Location").expect("Location");

    let r = c
        .patch(abs(&base, &loc))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", format!("0-{}", n1 - 1))
        .body(blob[..n1].to_vec())
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        202,
        "PATCH chunk 1: {}",
        r.text().unwrap_or_default()
    );
    assert_eq!(
        header(&r, "Range"),
        Some(format!("0-{}", n1 - 1)),
        "Range after chunk 1"
    );
    let loc = header(&r, "Location").expect("Location after PATCH");

    do_restart(&mut s, how);
    let base = s.url().to_string();
    let what = format!("after {how:?} restart");

    // Not visible before it is finished.
    let st = c
        .head(format!("{base}/v2/{repo}/blobs/{d}"))
        .send()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(st, 404, "{what}: unfinished upload is visible as a blob");

    let r = c.get(abs(&base, &loc)).send().unwrap();
    assert_eq!(r.status().as_u16(), 204, "{what}: GET session");
    assert_eq!(
        header(&r, "Range"),
        Some(format!("0-{}", n1 - 1)),
        "{what}: session Range"
    );
    let loc = header(&r, "Location").unwrap_or(loc);

    // Chunk 2 as chunked transfer encoding (no Content-Length), with Content-Range.
    let r = c
        .patch(abs(&base, &loc))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", format!("{}-{}", n1, n1 + n2 - 1))
        .body(Body::new(std::io::Cursor::new(blob[n1..n1 + n2].to_vec())))
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        202,
        "{what}: PATCH chunk 2: {}",
        r.text().unwrap_or_default()
    );
    assert_eq!(
        header(&r, "Range"),
        Some(format!("0-{}", n1 + n2 - 1)),
        "{what}: Range after chunk 2"
    );
    let loc = header(&r, "Location").expect("Location after PATCH 2");

    // Finish with the last bytes in the PUT body.
    let r = c
        .put(with_param(&abs(&base, &loc), &format!("digest={d}")))
        .header("Content-Type", "application/octet-stream")
        .body(blob[n1 + n2..].to_vec())
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        201,
        "{what}: PUT finishing the session: {}",
        r.text().unwrap_or_default()
    );
    assert_eq!(
        header(&r, "Location").as_deref(),
        Some(format!("/v2/{repo}/blobs/{d}").as_str()),
        "{what}: Location"
    );
    assert_eq!(
        header(&r, "Docker-Content-Digest").as_deref(),
        Some(d.as_str())
    );
    assert_blob(&c, &base, repo, &blob, &what);

    // The session is gone.
    let r = c.get(abs(&base, &loc)).send().unwrap();
    assert_eq!(
        r.status().as_u16(),
        404,
        "{what}: finished session still answers"
    );
    let code = r
        .json::<Value>()
        .ok()
        .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_string));
    assert_eq!(code.as_deref(), Some("BLOB_UPLOAD_UNKNOWN"));

    // The acknowledged blob survives another restart of the same kind.
    do_restart(&mut s, how);
    let base = s.url().to_string();
    assert_blob(&c, &base, repo, &blob, &format!("{what} (after finishing)"));
    common::assert_blob_store_consistent(s.data_dir());
}

#[test]
fn chunked_upload_survives_sigterm_restart() {
    upload_survives(Restart::Graceful);
}

#[test]
fn chunked_upload_survives_kill9() {
    upload_survives(Restart::Crash);
}

/// Several sessions in different states at the moment of a crash: each
/// resumes from the offset it reports, and none leaks a blob.
#[test]
fn many_sessions_survive_kill9() {
    let (mut s, _dir) = Server::start();
    let c = client();
    let base = s.url().to_string();
    let repo = "acme/many";
    let blobs: Vec<Vec<u8>> = (0..5)
        .map(|i| bytes(100 + i, 50_000 + i as usize * 1000))
        .collect();
    let mut sessions = Vec::new();
    for (i, b) in blobs.iter().enumerate() {
        let r = c
            .post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let mut loc = header(&r, "Location").unwrap();
        // Session i has received i chunks of 10000 bytes.
        for k in 0..i {
            let r = c
                .patch(abs(&base, &loc))
                .header("Content-Type", "application/octet-stream")
                .header(
                    "Content-Range",
                    format!("{}-{}", k * 10_000, k * 10_000 + 9_999),
                )
                .body(b[k * 10_000..(k + 1) * 10_000].to_vec())
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 202, "session {i} chunk {k}");
            loc = header(&r, "Location").unwrap();
        }
        sessions.push(loc);
    }
    s.crash_restart();
    let base = s.url().to_string();
    for (i, (b, loc)) in blobs.iter().zip(&sessions).enumerate() {
        let d = digest(b);
        let st = c
            .head(format!("{base}/v2/{repo}/blobs/{d}"))
            .send()
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(st, 404, "session {i}: unfinished blob visible");
        let r = c.get(abs(&base, loc)).send().unwrap();
        assert_eq!(r.status().as_u16(), 204, "session {i}: GET after crash");
        let expected = if i == 0 {
            "0-0".to_string()
        } else {
            format!("0-{}", i * 10_000 - 1)
        };
        assert_eq!(
            header(&r, "Range"),
            Some(expected),
            "session {i}: Range after crash"
        );
        let loc = header(&r, "Location").unwrap_or_else(|| loc.clone());
        let r = c
            .put(with_param(&abs(&base, &loc), &format!("digest={d}")))
            .header("Content-Type", "application/octet-stream")
            .body(b[i * 10_000..].to_vec())
            .send()
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            201,
            "session {i}: finish after crash: {}",
            r.text().unwrap_or_default()
        );
        assert_blob(&c, &base, repo, b, &format!("session {i}"));
    }
    common::assert_blob_store_consistent(s.data_dir());
}
