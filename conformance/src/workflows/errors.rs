//! Error handling: the spec's error body, invalid names, digests and tags,
//! unknown routes and methods.

use reqwest::Method;
use serde_json::Value;

use crate::client::{digest, Payload};
use crate::fixtures::{oci_image, push_blobs, put_manifest, start_upload, OCI_MANIFEST};
use crate::Suite;

const W: &str = "errors";

/// Runs the error-handling checks.
pub fn errors(s: &mut Suite) {
    let repo = s.ctx().repo("errors");

    s.check(W, "error-body-shape", |c| {
        let d = digest(&c.data("errors/absent", 10));
        let r = c.get(&format!("/v2/{repo}/blobs/{d}"))?;
        r.expect(404)?;
        let codes = r.error_codes()?;
        ensure!(
            codes.iter().any(|x| x == "BLOB_UNKNOWN"),
            "codes {codes:?} lack BLOB_UNKNOWN"
        );
        let v = r.json()?;
        for e in v["errors"].as_array().into_iter().flatten() {
            ensure!(
                e.get("message").is_some_and(Value::is_string),
                "error without a \"message\" string: {e}"
            );
            let extra: Vec<&String> = e
                .as_object()
                .map(|o| {
                    o.keys()
                        .filter(|k| !["code", "message", "detail"].contains(&k.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            ensure!(
                extra.is_empty(),
                "error has fields outside code/message/detail: {e}"
            );
        }
        Ok(())
    });

    let prefix = s.ctx().repo_prefix();
    let too_long = format!("{prefix}/{}", "a".repeat(256 - prefix.len() - 1));
    let bad_names: Vec<(&str, String, bool)> = vec![
        (
            "name-invalid-uppercase",
            format!("{prefix}/UpperCase"),
            false,
        ),
        (
            "name-invalid-leading-separator",
            format!("{prefix}/-dash"),
            false,
        ),
        (
            "name-invalid-trailing-separator",
            format!("{prefix}/dash-"),
            false,
        ),
        (
            "name-invalid-triple-underscore",
            format!("{prefix}/a___b"),
            false,
        ),
        ("name-invalid-empty-component", format!("{prefix}//x"), true),
        ("name-invalid-too-long", too_long, false),
        ("name-invalid-dot-dot", format!("{prefix}/../x"), true),
        (
            "name-invalid-encoded-dot-dot",
            format!("{prefix}/%2e%2e/x"),
            true,
        ),
    ];
    for (name, bad, raw) in &bad_names {
        s.check(W, name, |c| {
            let target = format!("/v2/{bad}/blobs/uploads/");
            let r = if *raw {
                c.raw("POST", &target)?
            } else {
                c.send(Method::POST, &target, &[], Payload::None)?
            };
            r.expect_error(400, "NAME_INVALID")
        });
    }
    s.check(W, "name-of-255-characters-accepted", |c| {
        let name = format!("{prefix}/{}", "a".repeat(255 - prefix.len() - 1));
        ensure!(name.len() == 255, "test bug: name of {} chars", name.len());
        let loc = start_upload(c, &name)?;
        c.delete(&loc)?.expect(204).map(|_| ())
    });
    s.check(W, "name-valid-separators-accepted", |c| {
        let name = format!("{prefix}/a__b.c--d_e/f.g-h");
        let img = oci_image(c, "errors/separators", 1);
        img.push(c, &name, "latest")?;
        let r = c.get(&format!("/v2/{name}/manifests/latest"))?;
        r.expect(200)?;
        r.body_is(&img.manifest)
    });
    s.check(W, "name-invalid-on-manifest-get", |c| {
        c.get(&format!("/v2/{prefix}/Upper/manifests/latest"))?
            .expect_error(400, "NAME_INVALID")
    });

    let hex = hex_of("errors");
    let bad_digests: Vec<(&str, String)> = vec![
        (
            "digest-invalid-blob-path-not-hex",
            format!("/v2/{repo}/blobs/sha256:{}", "z".repeat(64)),
        ),
        (
            "digest-invalid-blob-path-short",
            format!("/v2/{repo}/blobs/sha256:{}", &hex[..20]),
        ),
        (
            "digest-invalid-blob-path-traversal",
            format!("/v2/{repo}/blobs/sha256:..%2F..%2F..%2Fetc%2Fpasswd"),
        ),
        (
            "digest-invalid-referrers-path",
            format!("/v2/{repo}/referrers/sha256:{}", "z".repeat(64)),
        ),
    ];
    for (name, target) in &bad_digests {
        s.check(W, name, |c| {
            c.raw("GET", target)?.expect_error(400, "DIGEST_INVALID")
        });
    }
    // The OCI distribution-spec conformance suite names a nonexistent
    // manifest `.INVALID_MANIFEST_NAME` and expects 404 on GET and HEAD:
    // a reference that is neither a tag nor a digest names no manifest.
    s.check(W, "manifest-invalid-reference-is-unknown", |c| {
        let img = oci_image(c, "errors/invalid-reference", 1);
        img.push(c, &repo, "latest")?;
        for bad in [
            ".INVALID_MANIFEST_NAME".to_string(),
            "-leading-dash".to_string(),
            format!("sha256:{}", &hex[..20]),
        ] {
            let target = format!("/v2/{repo}/manifests/{bad}");
            c.get(&target)?.expect_error(404, "MANIFEST_UNKNOWN")?;
            c.head(&target)?.expect(404)?;
            c.delete(&target)?.expect_error(404, "MANIFEST_UNKNOWN")?;
        }
        // PUT with such a reference is still refused as invalid.
        put_manifest(
            c,
            &repo,
            ".INVALID_MANIFEST_NAME",
            OCI_MANIFEST,
            &img.manifest,
        )?
        .expect_error_any(&[(400, "MANIFEST_INVALID"), (400, "TAG_INVALID")])?;
        put_manifest(
            c,
            &repo,
            &format!("sha256:{}", &hex[..20]),
            OCI_MANIFEST,
            &img.manifest,
        )?
        .expect_error(400, "DIGEST_INVALID")?;
        c.get(&format!("/v2/{repo}/manifests/latest"))?
            .expect(200)
            .map(|_| ())
    });
    s.check(W, "digest-invalid-upload-put-query", |c| {
        let data = c.data("errors/bad-put-digest", 10);
        for bad in ["sha256:nothex", "sha256:..%2F..%2F..%2Fescape", "sha256"] {
            let loc = start_upload(c, &repo)?;
            let sep = if loc.contains('?') { '&' } else { '?' };
            c.send(
                Method::PUT,
                &format!("{loc}{sep}digest={bad}"),
                &[("Content-Type", "application/octet-stream")],
                Payload::Bytes(data.clone()),
            )?
            .expect_error(400, "DIGEST_INVALID")?;
        }
        Ok(())
    });
    s.check(W, "digest-invalid-monolithic-post-query", |c| {
        c.send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest=sha256:nothex"),
            &[("Content-Type", "application/octet-stream")],
            Payload::Bytes(c.data("errors/bad-post-digest", 10)),
        )?
        .expect_error(400, "DIGEST_INVALID")
    });
    s.check(W, "digest-invalid-mount-query", |c| {
        let from = c.repo("pull");
        c.send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?mount=sha256:..%2F..%2Fx&from={from}"),
            &[],
            Payload::None,
        )?
        .expect_error(400, "DIGEST_INVALID")
    });

    s.check(W, "tag-invalid", |c| {
        let img = oci_image(c, "errors/tag", 1);
        push_blobs(c, &repo, &img.blobs)?;
        for bad in ["-leading-dash".to_string(), "a".repeat(129)] {
            put_manifest(c, &repo, &bad, OCI_MANIFEST, &img.manifest)?
                .expect_error(400, "MANIFEST_INVALID")?;
        }
        Ok(())
    });

    s.check(W, "tag-of-128-characters-accepted", |c| {
        let img = oci_image(c, "errors/long-tag", 1);
        push_blobs(c, &repo, &img.blobs)?;
        let tag = format!("Tag_{}", "9.-_".repeat(31));
        ensure!(tag.len() == 128, "test bug: tag of {} chars", tag.len());
        put_manifest(c, &repo, &tag, OCI_MANIFEST, &img.manifest)?.expect(201)?;
        let r = c.get(&format!("/v2/{repo}/manifests/{tag}"))?;
        r.expect(200)?;
        r.body_is(&img.manifest)
    });

    s.check(W, "unknown-route-404", |c| {
        c.get(&format!("/v2/{repo}/no-such-endpoint"))?
            .expect(404)?;
        c.get("/v3/")?.expect(404).map(|_| ())
    });

    s.check(W, "wrong-method-405", |c| {
        let r = c.send(
            Method::PATCH,
            &format!("/v2/{repo}/manifests/latest"),
            &[],
            Payload::Bytes(b"{}".to_vec()),
        )?;
        r.expect_error(405, "UNSUPPORTED")?;
        let r = c.send(
            Method::POST,
            &format!("/v2/{repo}/tags/list"),
            &[],
            Payload::None,
        )?;
        r.expect_error(405, "UNSUPPORTED")
    });
}

fn hex_of(label: &str) -> String {
    digest(label.as_bytes())["sha256:".len()..].to_string()
}
