//! `storage.redirect = true` on S3: a blob `GET` answers `307` to a
//! presigned URL of its object, which serves the bytes (and a range) to a
//! client without credentials; `HEAD`, manifests and refusals are Berth's
//! own answers as before.
//!
//! The S3 server comes from `tests/backends/run.sh` (`BERTH_TEST_S3_*`);
//! `#[ignore]`d so that the plain `cargo test` run does not start it.

mod common;

use common::authkit::{serve_with, Proc};
use reqwest::blocking::Client;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name}: this test runs from tests/backends/run.sh"))
}

fn server(dir: &std::path::Path) -> Proc {
    let config = format!(
        "[storage]\nbackend = \"s3\"\nredirect = true\nbucket = \"{}\"\nprefix = \"redirect\"\n\
         endpoint = \"{}\"\nallow_http = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        env("BERTH_TEST_S3_BUCKET"),
        env("BERTH_TEST_S3_ENDPOINT"),
        env("BERTH_TEST_S3_ACCESS_KEY"),
        env("BERTH_TEST_S3_SECRET_KEY"),
    );
    serve_with(dir, "127.0.0.1:0", &config, &[], &[], None)
}

#[test]
#[ignore = "needs S3: run by tests/backends/run.sh"]
fn blob_pulls_are_redirected_to_presigned_urls() {
    let dir = tempfile::tempdir().unwrap();
    let p = server(dir.path());
    let c = common::client();
    let data = common::bytes(3, 700_000);
    let d = common::push_blob(&p.url, "acme/app", &data);

    let r = c
        .get(format!("{}/v2/acme/app/blobs/{d}", p.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 307, "{:?}", r.text());
    assert_eq!(r.headers()["docker-content-digest"], d.as_str());
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to.starts_with(&env("BERTH_TEST_S3_ENDPOINT")) && to.contains("X-Amz-Signature="),
        "not a presigned URL of the bucket: {to}"
    );
    // The bucket serves it to a client with no credentials of its own.
    let plain = Client::new();
    let got = plain.get(&to).send().unwrap();
    assert_eq!(got.status(), 200);
    assert!(
        got.bytes().unwrap() == data,
        "the bucket served other bytes"
    );
    let part = plain
        .get(&to)
        .header("range", "bytes=100-199")
        .send()
        .unwrap();
    assert_eq!(part.status(), 206);
    assert!(part.bytes().unwrap() == data[100..200], "another range");
    // A client that follows redirects gets the blob in one call.
    let follows = Client::new();
    let r = follows
        .get(format!("{}/v2/acme/app/blobs/{d}", p.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().unwrap() == data);

    // HEAD is answered here; a blob the repository lacks is refused, not
    // redirected; a forged signature is refused by the bucket.
    let r = c
        .head(format!("{}/v2/acme/app/blobs/{d}", p.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        data.len().to_string().as_str()
    );
    let r = c
        .get(format!("{}/v2/acme/other/blobs/{d}", p.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let forged = to.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    let refused = plain.get(&forged).send().unwrap().status().as_u16();
    assert!(
        matches!(refused, 400 | 403),
        "a forged signature got {refused}"
    );
}
