//! Concurrent pushes of the same blob, tag or manifest are safe:
//! every push is acknowledged, and what reads back is
//! exactly one of the things pushed.

mod common;

use common::{bytes, with_param};

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{client, digest, Server};
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

const THREADS: usize = 8;

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn abs(base: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        loc.to_string()
    } else {
        format!("{base}{loc}")
    }
}

/// [`common::all_at_once`] with this suite's number of threads.
fn all_at_once<T: Send + 'static>(f: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    common::all_at_once(THREADS, f)
}

/// (status, Docker-Content-Digest, Location, body text)
type Outcome = (u16, Option<String>, Option<String>, String);

fn outcome(r: Response) -> Outcome {
    let st = r.status().as_u16();
    let d = header(&r, "Docker-Content-Digest");
    let l = header(&r, "Location");
    (st, d, l, r.text().unwrap_or_default())
}

fn monolithic(c: &Client, base: &str, repo: &str, data: &[u8]) -> Outcome {
    let d = digest(data);
    outcome(
        c.post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .expect("POST"),
    )
}

/// POST, two PATCH chunks, PUT ?digest= with no body.
fn via_session(c: &Client, base: &str, repo: &str, data: &[u8]) -> Outcome {
    let d = digest(data);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .expect("POST");
    if r.status().as_u16() != 202 {
        return outcome(r);
    }
    let mut loc = header(&r, "Location").expect("Location");
    let mid = data.len() / 2;
    for (start, end) in [(0, mid), (mid, data.len())] {
        let r = c
            .patch(abs(base, &loc))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{}-{}", start, end - 1))
            .body(data[start..end].to_vec())
            .send()
            .expect("PATCH");
        if r.status().as_u16() != 202 {
            return outcome(r);
        }
        assert_eq!(
            header(&r, "Range"),
            Some(format!("0-{}", end - 1)),
            "Range after PATCH"
        );
        loc = header(&r, "Location").expect("Location after PATCH");
    }
    outcome(
        c.put(with_param(&abs(base, &loc), &format!("digest={d}")))
            .send()
            .expect("PUT"),
    )
}

fn assert_all_created(outcomes: &[Outcome], d: &str, location: &str, what: &str) {
    for (i, (st, dig, loc, body)) in outcomes.iter().enumerate() {
        assert_eq!(*st, 201, "{what}: thread {i} got {st}: {body}");
        assert_eq!(
            dig.as_deref(),
            Some(d),
            "{what}: thread {i} Docker-Content-Digest"
        );
        assert_eq!(
            loc.as_deref(),
            Some(location),
            "{what}: thread {i} Location"
        );
    }
}

fn assert_blob(c: &Client, base: &str, repo: &str, data: &[u8], what: &str) {
    let d = digest(data);
    let r = c.get(format!("{base}/v2/{repo}/blobs/{d}")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{what}: GET {repo} blob {d}");
    assert_eq!(
        header(&r, "Docker-Content-Digest").as_deref(),
        Some(d.as_str())
    );
    let got = r.bytes().unwrap();
    assert!(
        got.as_ref() == data,
        "{what}: blob {d} in {repo} reads back differently ({} bytes vs {})",
        got.len(),
        data.len()
    );
}

#[test]
fn same_blob_pushed_by_many_at_once() {
    let (s, _dir) = Server::start();
    let base = s.url().to_string();
    let c = client();

    for round in 0..3u64 {
        // Monolithic, same repository.
        let data = Arc::new(bytes(round, 1024 * 1024 + round as usize));
        let d = digest(&data);
        let (b, dd) = (base.clone(), data.clone());
        let out = all_at_once(move |_| monolithic(&client(), &b, "conc/blob", &dd));
        assert_all_created(
            &out,
            &d,
            &format!("/v2/conc/blob/blobs/{d}"),
            &format!("monolithic round {round}"),
        );
        assert_blob(&c, &base, "conc/blob", &data, "monolithic");

        // Via sessions, same repository.
        let data = Arc::new(bytes(100 + round, 600_000 + round as usize));
        let d = digest(&data);
        let (b, dd) = (base.clone(), data.clone());
        let out = all_at_once(move |_| via_session(&client(), &b, "conc/blob", &dd));
        assert_all_created(
            &out,
            &d,
            &format!("/v2/conc/blob/blobs/{d}"),
            &format!("sessions round {round}"),
        );
        assert_blob(&c, &base, "conc/blob", &data, "sessions");

        // Same blob into eight different repositories, half of them by session.
        let data = Arc::new(bytes(200 + round, 300_000));
        let d = digest(&data);
        let (b, dd) = (base.clone(), data.clone());
        let out = all_at_once(move |i| {
            let repo = format!("conc/r{i}");
            if i % 2 == 0 {
                monolithic(&client(), &b, &repo, &dd)
            } else {
                via_session(&client(), &b, &repo, &dd)
            }
        });
        for (i, o) in out.iter().enumerate() {
            assert_all_created(
                std::slice::from_ref(o),
                &d,
                &format!("/v2/conc/r{i}/blobs/{d}"),
                &format!("cross-repo round {round}"),
            );
            assert_blob(&c, &base, &format!("conc/r{i}"), &data, "cross-repo");
        }
    }
    common::assert_blob_store_consistent(s.data_dir());
}

/// Each thread pushes the shared blobs and then a manifest referencing them:
/// a manifest PUT after the thread's own 201 must never see the blob as
/// unknown, whatever the other threads are doing to it.
#[test]
fn manifest_after_concurrent_blob_pushes() {
    let (s, _dir) = Server::start();
    let base = s.url().to_string();
    let config =
        Arc::new(serde_json::to_vec(&json!({"architecture": "arm64", "os": "linux"})).unwrap());
    let layer = Arc::new(bytes(9, 200_000));
    let (b, cf, ly) = (base.clone(), config.clone(), layer.clone());
    let out = all_at_once(move |i| {
        let c = client();
        let repo = "conc/img";
        for data in [&*cf, &*ly] {
            let o = if i % 2 == 0 {
                monolithic(&c, &b, repo, data)
            } else {
                via_session(&c, &b, repo, data)
            };
            assert_eq!(o.0, 201, "thread {i}: blob push: {}", o.3);
        }
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest(&cf), "size": cf.len()},
            "layers": [{"mediaType": OCI_LAYER, "digest": digest(&ly), "size": ly.len()}],
            "annotations": {"thread": i.to_string()},
        }))
        .unwrap();
        let r = c
            .put(format!("{b}/v2/{repo}/manifests/t{i}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(m.clone())
            .send()
            .unwrap();
        (outcome(r), m)
    });
    let c = client();
    for (i, (o, m)) in out.iter().enumerate() {
        assert_eq!(o.0, 201, "thread {i}: manifest push: {}", o.3);
        let r = c
            .get(format!("{base}/v2/conc/img/manifests/t{i}"))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(
            r.bytes().unwrap().as_ref() == m.as_slice(),
            "t{i} reads back differently"
        );
    }
    assert_blob(&c, &base, "conc/img", &layer, "layer");
    assert_blob(&c, &base, "conc/img", &config, "config");
    common::assert_blob_store_consistent(s.data_dir());
}

fn setup_image_blobs(c: &Client, base: &str, repo: &str) -> (Value, Value) {
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux"})).unwrap();
    let layer = bytes(42, 10_000);
    for data in [&config, &layer] {
        let o = monolithic(c, base, repo, data);
        assert_eq!(o.0, 201, "setup blob push: {}", o.3);
    }
    (
        json!({"mediaType": OCI_CONFIG, "digest": digest(&config), "size": config.len()}),
        json!({"mediaType": OCI_LAYER, "digest": digest(&layer), "size": layer.len()}),
    )
}

fn manifest_with(config: &Value, layer: &Value, note: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": [layer],
        "annotations": {"note": note},
    }))
    .unwrap()
}

fn put_manifest(c: &Client, base: &str, repo: &str, reference: &str, body: &[u8]) -> Outcome {
    outcome(
        c.put(format!("{base}/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(body.to_vec())
            .send()
            .expect("PUT manifest"),
    )
}

#[test]
fn different_manifests_to_one_tag_at_once() {
    let (s, _dir) = Server::start();
    let base = s.url().to_string();
    let c = client();
    let repo = "conc/tag";
    let (config, layer) = setup_image_blobs(&c, &base, repo);

    for round in 0..5 {
        let manifests: Arc<Vec<Vec<u8>>> = Arc::new(
            (0..THREADS)
                .map(|i| manifest_with(&config, &layer, &format!("round {round} thread {i}")))
                .collect(),
        );
        let pushed: BTreeSet<String> = manifests.iter().map(|m| digest(m)).collect();
        assert_eq!(pushed.len(), THREADS);
        let (b, ms) = (base.clone(), manifests.clone());
        let out = all_at_once(move |i| put_manifest(&client(), &b, repo, "latest", &ms[i]));
        for (i, o) in out.iter().enumerate() {
            let d = digest(&manifests[i]);
            assert_all_created(
                std::slice::from_ref(o),
                &d,
                &format!("/v2/{repo}/manifests/{d}"),
                &format!("round {round}"),
            );
        }

        let r = c
            .get(format!("{base}/v2/{repo}/manifests/latest"))
            .header("Accept", OCI_MANIFEST)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "round {round}: GET latest");
        let dcd = header(&r, "Docker-Content-Digest").expect("Docker-Content-Digest");
        let body = r.bytes().unwrap();
        assert_eq!(
            digest(&body),
            dcd,
            "round {round}: body of the tag does not hash to its Docker-Content-Digest"
        );
        assert!(
            pushed.contains(&dcd),
            "round {round}: tag resolves to {dcd}, which nobody pushed"
        );

        let r = c
            .head(format!("{base}/v2/{repo}/manifests/latest"))
            .header("Accept", OCI_MANIFEST)
            .send()
            .unwrap();
        assert_eq!(
            header(&r, "Docker-Content-Digest").as_deref(),
            Some(dcd.as_str()),
            "round {round}: HEAD and GET disagree"
        );

        let tags: Value = c
            .get(format!("{base}/v2/{repo}/tags/list"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            tags,
            json!({"name": repo, "tags": ["latest"]}),
            "round {round}"
        );

        // Every acknowledged manifest stays reachable by digest.
        for m in manifests.iter() {
            let d = digest(m);
            let r = c
                .get(format!("{base}/v2/{repo}/manifests/{d}"))
                .header("Accept", OCI_MANIFEST)
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "round {round}: {d} by digest");
            assert!(
                r.bytes().unwrap().as_ref() == m.as_slice(),
                "round {round}: {d} differs"
            );
        }
    }
    common::assert_blob_store_consistent(s.data_dir());
}

#[test]
fn same_manifest_at_once() {
    let (s, _dir) = Server::start();
    let base = s.url().to_string();
    let c = client();
    let repo = "conc/same";
    let (config, layer) = setup_image_blobs(&c, &base, repo);

    for round in 0..4 {
        let m = Arc::new(manifest_with(&config, &layer, &format!("same {round}")));
        let d = digest(&m);
        let by_tag = round % 2 == 1;
        let (b, mm, dd) = (base.clone(), m.clone(), d.clone());
        let out = all_at_once(move |_| {
            let reference = if by_tag {
                "same".to_string()
            } else {
                dd.clone()
            };
            put_manifest(&client(), &b, repo, &reference, &mm)
        });
        assert_all_created(
            &out,
            &d,
            &format!("/v2/{repo}/manifests/{d}"),
            &format!(
                "round {round} (by {})",
                if by_tag { "tag" } else { "digest" }
            ),
        );
        let r = c
            .get(format!("{base}/v2/{repo}/manifests/{d}"))
            .header("Accept", OCI_MANIFEST)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(header(&r, "Content-Type").as_deref(), Some(OCI_MANIFEST));
        assert!(
            r.bytes().unwrap().as_ref() == m.as_slice(),
            "round {round}: manifest differs"
        );
        if by_tag {
            let r = c
                .get(format!("{base}/v2/{repo}/manifests/same"))
                .header("Accept", OCI_MANIFEST)
                .send()
                .unwrap();
            assert_eq!(
                header(&r, "Docker-Content-Digest").as_deref(),
                Some(d.as_str()),
                "round {round}: tag"
            );
        }
    }
    let tags: Value = c
        .get(format!("{base}/v2/{repo}/tags/list"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(tags, json!({"name": repo, "tags": ["same"]}));
    common::assert_blob_store_consistent(s.data_dir());
}
