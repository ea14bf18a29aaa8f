//! Pull: fetching manifests and blobs that were pushed.

use reqwest::Method;

use crate::client::{digest, Payload};
use crate::fixtures::{oci_image, Image, OCI_MANIFEST};
use crate::Suite;

const W: &str = "pull";

/// Runs the pull workflow.
pub fn pull(s: &mut Suite) {
    s.check(W, "api-version-check", |c| {
        let r = c.get("/v2/")?;
        r.expect(200)?;
        r.hdr_eq("docker-distribution-api-version", "registry/2.0")?;
        let v = r.json()?;
        ensure!(
            v.is_object(),
            "GET /v2/ body is not a JSON object: {}",
            r.show()
        );
        Ok(())
    });

    let repo = s.ctx().repo("pull");
    if let Some(img) = s.setup(W, "setup-push-image", |c| {
        let img = oci_image(c, "pull", 2);
        img.push(c, &repo, "v1")?;
        Ok(img)
    }) {
        with_image(s, &repo, &img);
    } else {
        s.skipped(
            W,
            &[
                "manifest-get-by-tag",
                "manifest-get-by-digest",
                "manifest-head-by-tag",
                "manifest-head-by-digest",
                "blob-head",
                "blob-get",
                "blob-get-range",
                "blob-get-range-open-ended",
                "blob-get-range-unsatisfiable",
            ],
            "setup-push-image",
        );
    }
    s.check(W, "manifest-get-unknown-tag", |c| {
        c.get(&format!("/v2/{repo}/manifests/no-such-tag"))?
            .expect_error(404, "MANIFEST_UNKNOWN")
    });
    s.check(W, "manifest-get-unknown-digest", |c| {
        let d = digest(&c.data("pull/absent-manifest", 100));
        c.get(&format!("/v2/{repo}/manifests/{d}"))?
            .expect_error(404, "MANIFEST_UNKNOWN")
    });
    s.check(W, "manifest-head-unknown", |c| {
        c.head(&format!("/v2/{repo}/manifests/no-such-tag"))?
            .expect(404)
            .map(|_| ())
    });
    s.check(W, "manifest-get-unknown-repository", |c| {
        let other = c.repo("pull-never-pushed");
        c.get(&format!("/v2/{other}/manifests/latest"))?
            .expect_error_any(&[(404, "NAME_UNKNOWN"), (404, "MANIFEST_UNKNOWN")])
    });

    s.check(W, "blob-get-unknown", |c| {
        let d = digest(&c.data("pull/absent-blob", 10));
        c.get(&format!("/v2/{repo}/blobs/{d}"))?
            .expect_error(404, "BLOB_UNKNOWN")
    });
    s.check(W, "blob-head-unknown", |c| {
        let d = digest(&c.data("pull/absent-blob", 10));
        let r = c.head(&format!("/v2/{repo}/blobs/{d}"))?;
        r.expect(404)?;
        ensure!(r.body.is_empty(), "HEAD answered with a body");
        Ok(())
    });
}

/// The checks that need the pushed image.
fn with_image(s: &mut Suite, repo: &str, img: &Image) {
    let layer = &img.blobs[1];
    let layer_digest = digest(layer);

    for (name, reference) in [
        ("manifest-get-by-tag", "v1".to_string()),
        ("manifest-get-by-digest", img.digest.clone()),
    ] {
        s.check(W, name, |c| {
            let r = c.get(&format!("/v2/{repo}/manifests/{reference}"))?;
            r.expect(200)?;
            r.content_type_is(OCI_MANIFEST)?;
            r.hdr_eq("docker-content-digest", &img.digest)?;
            r.content_length_is(img.manifest.len())?;
            r.body_is(&img.manifest)
        });
    }
    for (name, reference) in [
        ("manifest-head-by-tag", "v1".to_string()),
        ("manifest-head-by-digest", img.digest.clone()),
    ] {
        s.check(W, name, |c| {
            let r = c.head(&format!("/v2/{repo}/manifests/{reference}"))?;
            r.expect(200)?;
            r.content_type_is(OCI_MANIFEST)?;
            r.hdr_eq("docker-content-digest", &img.digest)?;
            r.content_length_is(img.manifest.len())
        });
    }
    s.check(W, "blob-head", |c| {
        let r = c.head(&format!("/v2/{repo}/blobs/{layer_digest}"))?;
        r.expect(200)?;
        r.content_length_is(layer.len())?;
        r.hdr_eq("docker-content-digest", &layer_digest)
    });
    s.check(W, "blob-get", |c| {
        let r = c.get(&format!("/v2/{repo}/blobs/{layer_digest}"))?;
        r.expect(200)?;
        r.content_length_is(layer.len())?;
        r.hdr_eq("docker-content-digest", &layer_digest)?;
        r.body_is(layer)?;
        ensure!(digest(&r.body) == layer_digest, "digest of body differs");
        Ok(())
    });
    s.check(W, "blob-get-range", |c| {
        let r = c.send(
            Method::GET,
            &format!("/v2/{repo}/blobs/{layer_digest}"),
            &[("Range", "bytes=10-109")],
            Payload::None,
        )?;
        r.expect(206)?;
        r.hdr_eq("content-range", &format!("bytes 10-109/{}", layer.len()))?;
        r.content_length_is(100)?;
        r.body_is(&layer[10..110])
    });
    s.check(W, "blob-get-range-open-ended", |c| {
        let from = layer.len() - 77;
        let r = c.send(
            Method::GET,
            &format!("/v2/{repo}/blobs/{layer_digest}"),
            &[("Range", &format!("bytes={from}-"))],
            Payload::None,
        )?;
        r.expect(206)?;
        r.hdr_eq(
            "content-range",
            &format!("bytes {from}-{}/{}", layer.len() - 1, layer.len()),
        )?;
        r.body_is(&layer[from..])
    });
    s.check(W, "blob-get-range-unsatisfiable", |c| {
        let n = layer.len();
        let r = c.send(
            Method::GET,
            &format!("/v2/{repo}/blobs/{layer_digest}"),
            &[("Range", &format!("bytes={}-{}", n + 10, n + 20))],
            Payload::None,
        )?;
        r.expect(416).map(|_| ())
    });
}
