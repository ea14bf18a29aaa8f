//! Push: blob uploads (monolithic, chunked, streamed), sessions, mounts,
//! repository isolation and manifest uploads of every supported kind.

use reqwest::Method;
use serde_json::json;

use crate::client::{digest, path_of, with_query, Ctx, Payload, Resp};
use crate::fixtures::{
    descriptor, docker_image, index_of, manifest_bytes, oci_image, oci_image_arch, push_blob,
    push_blobs, put_manifest, start_upload, CUSTOM_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST,
    OCI_INDEX, OCI_LAYER, OCI_MANIFEST,
};
use crate::{Outcome, Suite};

const W: &str = "push";
const OCTET: (&str, &str) = ("Content-Type", "application/octet-stream");

/// PATCH one chunk; `range` adds `Content-Range: start-end`.
fn patch(
    c: &Ctx,
    loc: &str,
    chunk: &[u8],
    range: Option<(usize, usize)>,
    content_type: bool,
    stream: bool,
) -> Outcome<Resp> {
    let cr = range.map(|(a, b)| format!("{a}-{b}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if content_type {
        headers.push(OCTET);
    }
    if let Some(cr) = &cr {
        headers.push(("Content-Range", cr));
    }
    let payload = if stream {
        Payload::Chunked(chunk.to_vec())
    } else {
        Payload::Bytes(chunk.to_vec())
    };
    c.send(Method::PATCH, loc, &headers, payload)
}

/// Checks a 202 answer to a PATCH: `Location` present, `Range: 0-<end>`;
/// returns the new `Location`.
fn accepted(r: &Resp, end: usize) -> Outcome<String> {
    r.expect(202)?;
    r.hdr_eq("range", &format!("0-{end}"))?;
    r.need("location")
}

/// Checks a 201 answer to a blob upload.
fn created_blob(r: &Resp, repo: &str, d: &str) -> Outcome {
    r.expect(201)?;
    r.location_is(&format!("/v2/{repo}/blobs/{d}"))?;
    r.hdr_eq("docker-content-digest", d)
}

/// GETs the blob back and compares bytes.
pub fn verify_blob(c: &Ctx, repo: &str, data: &[u8]) -> Outcome {
    let r = c.get(&format!("/v2/{repo}/blobs/{}", digest(data)))?;
    r.expect(200)?;
    r.body_is(data)
}

fn put_digest(c: &Ctx, loc: &str, d: &str, payload: Payload) -> Outcome<Resp> {
    let headers: &[(&str, &str)] = match payload {
        Payload::None => &[],
        _ => &[OCTET],
    };
    c.send(
        Method::PUT,
        &with_query(loc, &format!("digest={d}")),
        headers,
        payload,
    )
}

/// Runs the push workflow.
pub fn push(s: &mut Suite) {
    let repo = s.ctx().repo("push");
    blob_uploads(s, &repo);
    sessions(s, &repo);
    mounts(s);
    isolation(s);
    manifests(s, &repo);
}

fn blob_uploads(s: &mut Suite, repo: &str) {
    s.check(W, "blob-post-then-put", |c| {
        let data = c.data("push/post-put", 1234);
        let d = digest(&data);
        let r = c.send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            Payload::None,
        )?;
        r.expect(202)?;
        let loc = r.need("location")?;
        ensure!(
            path_of(&loc).starts_with(&format!("/v2/{repo}/blobs/uploads/")),
            "upload Location {loc:?} is not under /v2/{repo}/blobs/uploads/"
        );
        if let Some(range) = r.hdr("range") {
            ensure!(range == "0-0", "new session has Range {range:?}, want 0-0");
        }
        let r = put_digest(c, &loc, &d, Payload::Bytes(data.clone()))?;
        created_blob(&r, repo, &d)?;
        verify_blob(c, repo, &data)?;
        // A completed session is gone.
        c.get(&loc)?.expect_error(404, "BLOB_UPLOAD_UNKNOWN")
    });

    s.check(W, "blob-empty", |c| {
        let d = digest(b"");
        let loc = start_upload(c, repo)?;
        let r = put_digest(c, &loc, &d, Payload::Bytes(Vec::new()))?;
        created_blob(&r, repo, &d)?;
        let h = c.head(&format!("/v2/{repo}/blobs/{d}"))?;
        h.expect(200)?;
        h.content_length_is(0)?;
        verify_blob(c, repo, b"")
    });

    s.check(W, "blob-chunked-large", |c| {
        // Chunk sizes that are not multiples of any usual buffer size.
        let data = c.data("push/large", 4_700_001);
        let d = digest(&data);
        let mut loc = start_upload(c, repo)?;
        for (a, b) in [(0, 1_048_577), (1_048_577, 3_000_000)] {
            let r = patch(c, &loc, &data[a..b], Some((a, b - 1)), true, true)?;
            loc = accepted(&r, b - 1)?;
        }
        let r = put_digest(c, &loc, &d, Payload::Chunked(data[3_000_000..].to_vec()))?;
        created_blob(&r, repo, &d)?;
        let h = c.head(&format!("/v2/{repo}/blobs/{d}"))?;
        h.expect(200)?;
        h.content_length_is(data.len())?;
        verify_blob(c, repo, &data)
    });

    s.check(W, "blob-monolithic-post-with-digest", |c| {
        let data = c.data("push/monolithic", 2048);
        let d = digest(&data);
        let r = c.send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            &[OCTET],
            Payload::Bytes(data.clone()),
        )?;
        created_blob(&r, repo, &d)?;
        verify_blob(c, repo, &data)
    });

    s.check(W, "blob-monolithic-post-streamed", |c| {
        let data = c.data("push/monolithic-streamed", 3333);
        let d = digest(&data);
        let r = c.send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            &[OCTET],
            Payload::Chunked(data.clone()),
        )?;
        created_blob(&r, repo, &d)?;
        verify_blob(c, repo, &data)
    });

    s.check(W, "blob-monolithic-post-digest-mismatch", |c| {
        let data = c.data("push/monolithic-mismatch", 512);
        let claimed = digest(&c.data("push/monolithic-mismatch-claimed", 512));
        c.send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={claimed}"),
            &[OCTET],
            Payload::Bytes(data.clone()),
        )?
        .expect_error(400, "DIGEST_INVALID")?;
        c.head(&format!("/v2/{repo}/blobs/{claimed}"))?
            .expect(404)?;
        c.head(&format!("/v2/{repo}/blobs/{}", digest(&data)))?
            .expect(404)?;
        Ok(())
    });

    s.check(W, "blob-chunked-with-content-range", |c| {
        let data = c.data("push/chunked", 3000);
        let d = digest(&data);
        let mut loc = start_upload(c, repo)?;
        for (a, b) in [(0, 1000), (1000, 2100), (2100, 3000)] {
            let r = patch(c, &loc, &data[a..b], Some((a, b - 1)), true, false)?;
            loc = accepted(&r, b - 1)?;
        }
        let r = put_digest(c, &loc, &d, Payload::None)?;
        created_blob(&r, repo, &d)?;
        verify_blob(c, repo, &data)
    });

    s.check(W, "blob-chunked-transfer-encoding-no-content-length", |c| {
        let data = c.data("push/streamed", 5000);
        let d = digest(&data);
        let mut loc = start_upload(c, repo)?;
        // One streamed chunk with Content-Range, one without.
        for (a, b, with_range) in [(0, 2000, true), (2000, 3500, false)] {
            let range = with_range.then_some((a, b - 1));
            let r = patch(c, &loc, &data[a..b], range, true, true)?;
            loc = accepted(&r, b - 1)?;
        }
        // The last chunk streamed in the closing PUT.
        let r = put_digest(c, &loc, &d, Payload::Chunked(data[3500..].to_vec()))?;
        created_blob(&r, repo, &d)?;
        verify_blob(c, repo, &data)
    });

    s.check(W, "blob-patch-without-content-type", |c| {
        let data = c.data("push/no-content-type", 1500);
        let d = digest(&data);
        let loc = start_upload(c, repo)?;
        let r = patch(c, &loc, &data[..700], Some((0, 699)), false, false)?;
        let loc = accepted(&r, 699)?;
        let r = patch(c, &loc, &data[700..], None, false, false)?;
        let loc = accepted(&r, 1499)?;
        let r = put_digest(c, &loc, &d, Payload::None)?;
        created_blob(&r, repo, &d)?;
        verify_blob(c, repo, &data)
    });

    s.check(W, "blob-put-with-final-chunk", |c| {
        let data = c.data("push/final-chunk", 2500);
        let d = digest(&data);
        let loc = start_upload(c, repo)?;
        let r = patch(c, &loc, &data[..1000], Some((0, 999)), true, false)?;
        let loc = accepted(&r, 999)?;
        let r = put_digest(c, &loc, &d, Payload::Bytes(data[1000..].to_vec()))?;
        created_blob(&r, repo, &d)?;
        verify_blob(c, repo, &data)
    });

    s.check(W, "blob-chunk-out-of-order-416", |c| {
        let data = c.data("push/out-of-order", 30);
        let loc = start_upload(c, repo)?;
        let r = patch(c, &loc, &data[..10], Some((0, 9)), true, false)?;
        let loc = accepted(&r, 9)?;
        let r = patch(c, &loc, &data[20..30], Some((20, 29)), true, false)?;
        r.expect(416)?;
        if !r.body.is_empty() {
            r.error_codes()?;
        }
        // Re-sending bytes the session already has is out of order too.
        let r = patch(c, &loc, &data[..10], Some((0, 9)), true, false)?;
        r.expect(416)?;
        // The session is intact and can be completed.
        let st = c.get(&loc)?;
        st.expect(204)?;
        st.hdr_eq("range", "0-9")?;
        let r = patch(c, &loc, &data[10..], Some((10, 29)), true, false)?;
        let loc = accepted(&r, 29)?;
        let d = digest(&data);
        let r = put_digest(c, &loc, &d, Payload::None)?;
        created_blob(&r, repo, &d)?;
        verify_blob(c, repo, &data)
    });

    s.check(W, "blob-same-content-two-sessions", |c| {
        let data = c.data("push/twice", 1111);
        let d = digest(&data);
        let one = start_upload(c, repo)?;
        let two = start_upload(c, repo)?;
        ensure!(
            path_of(&one) != path_of(&two),
            "two POSTs gave the same session {one:?}"
        );
        let one = accepted(&patch(c, &one, &data, None, true, false)?, 1110)?;
        let two = accepted(&patch(c, &two, &data, None, true, false)?, 1110)?;
        created_blob(&put_digest(c, &one, &d, Payload::None)?, repo, &d)?;
        created_blob(&put_digest(c, &two, &d, Payload::None)?, repo, &d)?;
        // And once more, monolithically, now that the blob exists.
        let three = start_upload(c, repo)?;
        created_blob(
            &put_digest(c, &three, &d, Payload::Bytes(data.clone()))?,
            repo,
            &d,
        )?;
        verify_blob(c, repo, &data)
    });

    s.check(W, "blob-digest-mismatch-rejected", |c| {
        let data = c.data("push/mismatch", 600);
        let claimed = digest(&c.data("push/mismatch-claimed", 600));
        let loc = start_upload(c, repo)?;
        put_digest(c, &loc, &claimed, Payload::Bytes(data.clone()))?
            .expect_error(400, "DIGEST_INVALID")?;
        c.head(&format!("/v2/{repo}/blobs/{claimed}"))?
            .expect(404)?;
        c.head(&format!("/v2/{repo}/blobs/{}", digest(&data)))?
            .expect(404)?;
        Ok(())
    });

    s.check(W, "blob-put-without-digest-rejected", |c| {
        let data = c.data("push/no-digest", 100);
        let loc = start_upload(c, repo)?;
        c.send(Method::PUT, &loc, &[OCTET], Payload::Bytes(data.clone()))?
            .expect_error(400, "DIGEST_INVALID")?;
        c.head(&format!("/v2/{repo}/blobs/{}", digest(&data)))?
            .expect(404)?;
        Ok(())
    });
}

fn sessions(s: &mut Suite, repo: &str) {
    s.check(W, "upload-status", |c| {
        let data = c.data("push/status", 100);
        let loc = start_upload(c, repo)?;
        let r = patch(c, &loc, &data[..40], Some((0, 39)), true, false)?;
        let loc = accepted(&r, 39)?;
        let st = c.get(&loc)?;
        st.expect(204)?;
        st.hdr_eq("range", "0-39")?;
        let loc2 = st.need("location")?;
        ensure!(
            path_of(&loc2).starts_with(&format!("/v2/{repo}/blobs/uploads/")),
            "status Location {loc2:?} is not under /v2/{repo}/blobs/uploads/"
        );
        let r = patch(c, &loc2, &data[40..], Some((40, 99)), true, false)?;
        let loc = accepted(&r, 99)?;
        let st = c.get(&loc)?;
        st.expect(204)?;
        st.hdr_eq("range", "0-99")?;
        Ok(())
    });

    s.check(W, "upload-cancel", |c| {
        let data = c.data("push/cancel", 100);
        let loc = start_upload(c, repo)?;
        let r = patch(c, &loc, &data, Some((0, 99)), true, false)?;
        let loc = accepted(&r, 99)?;
        c.delete(&loc)?.expect(204)?;
        c.get(&loc)?.expect_error(404, "BLOB_UPLOAD_UNKNOWN")?;
        patch(c, &loc, &data, None, true, false)?.expect_error(404, "BLOB_UPLOAD_UNKNOWN")?;
        put_digest(c, &loc, &digest(&data), Payload::None)?
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN")?;
        c.delete(&loc)?.expect_error(404, "BLOB_UPLOAD_UNKNOWN")?;
        c.head(&format!("/v2/{repo}/blobs/{}", digest(&data)))?
            .expect(404)?;
        Ok(())
    });

    s.check(W, "upload-unknown-session", |c| {
        c.get(&format!(
            "/v2/{repo}/blobs/uploads/00000000-0000-4000-8000-000000000000"
        ))?
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN")
    });

    s.check(W, "upload-session-of-other-repository", |c| {
        let loc = start_upload(c, repo)?;
        let other = c.repo("push-other");
        let foreign = loc.replacen(&format!("/v2/{repo}/"), &format!("/v2/{other}/"), 1);
        ensure!(foreign != loc, "cannot rewrite Location {loc:?}");
        let data = c.data("push/foreign", 10);
        patch(c, &foreign, &data, Some((0, 9)), true, false)?.expect_error_any(&[
            (404, "BLOB_UPLOAD_UNKNOWN"),
            (404, "BLOB_UPLOAD_INVALID"),
            (400, "BLOB_UPLOAD_INVALID"),
        ])?;
        // The session still belongs to its own repository, untouched.
        let st = c.get(&loc)?;
        st.expect(204)?;
        st.hdr_eq("range", "0-0")?;
        c.delete(&loc)?.expect(204).map(|_| ())
    });
}

fn mounts(s: &mut Suite) {
    let c = s.ctx();
    let src = c.repo("mount/source");
    let blob = c.data("push/mount", 4000);
    let d = digest(&blob);
    let src_ok = s.setup(W, "mount-setup", |c| push_blob(c, &src, &blob).map(|_| ()));
    if src_ok.is_none() {
        s.skipped(W, &["mount-from", "mount-without-from"], "mount-setup");
    } else {
        s.check(W, "mount-from", |c| {
            let dst = c.repo("mount/with-from");
            let r = c.send(
                Method::POST,
                &format!("/v2/{dst}/blobs/uploads/?mount={d}&from={src}"),
                &[],
                Payload::None,
            )?;
            r.expect(201)?;
            r.location_is(&format!("/v2/{dst}/blobs/{d}"))?;
            let h = c.head(&format!("/v2/{dst}/blobs/{d}"))?;
            h.expect(200)?;
            h.content_length_is(blob.len())?;
            verify_blob(c, &dst, &blob)
        });
        s.check(W, "mount-without-from", |c| {
            let dst = c.repo("mount/without-from");
            let r = c.send(
                Method::POST,
                &format!("/v2/{dst}/blobs/uploads/?mount={d}"),
                &[],
                Payload::None,
            )?;
            r.expect(201)?;
            r.location_is(&format!("/v2/{dst}/blobs/{d}"))?;
            verify_blob(c, &dst, &blob)
        });
    }
    s.check(W, "mount-unknown-blob-gives-session", |c| {
        let dst = c.repo("mount/failed");
        let data = c.data("push/mount-missing", 700);
        let missing = digest(&data);
        let r = c.send(
            Method::POST,
            &format!("/v2/{dst}/blobs/uploads/?mount={missing}&from={src}"),
            &[],
            Payload::None,
        )?;
        r.expect(202)?;
        let loc = r.need("location")?;
        let r = put_digest(c, &loc, &missing, Payload::Bytes(data.clone()))?;
        created_blob(&r, &dst, &missing)?;
        verify_blob(c, &dst, &data)
    });
}

fn isolation(s: &mut Suite) {
    let c = s.ctx();
    let a = c.repo("isolation/a");
    let b = c.repo("isolation/b");
    let only_a = c.data("push/isolation-a", 900);
    let d = digest(&only_a);
    let ok = s.setup(W, "isolation-setup", |c| {
        push_blob(c, &a, &only_a)?;
        push_blob(c, &b, &c.data("push/isolation-b", 900))?;
        Ok(())
    });
    if ok.is_none() {
        s.skipped(
            W,
            &[
                "blob-not-readable-from-other-repository",
                "manifest-blob-only-in-other-repository",
                "index-child-only-in-other-repository",
            ],
            "isolation-setup",
        );
        return;
    }
    s.check(W, "blob-not-readable-from-other-repository", |c| {
        c.head(&format!("/v2/{a}/blobs/{d}"))?.expect(200)?;
        c.head(&format!("/v2/{b}/blobs/{d}"))?.expect(404)?;
        c.get(&format!("/v2/{b}/blobs/{d}"))?
            .expect_error(404, "BLOB_UNKNOWN")?;
        let never = c.repo("isolation/never-pushed");
        c.get(&format!("/v2/{never}/blobs/{d}"))?
            .expect_error_any(&[(404, "BLOB_UNKNOWN"), (404, "NAME_UNKNOWN")])
    });
    s.check(W, "manifest-blob-only-in-other-repository", |c| {
        // A manifest in b whose layer only a has: the registry must not
        // accept it (clients that skip uploads because HEAD said 200 elsewhere
        // would otherwise end up with broken images).
        let config = c.data("push/isolation-config", 50);
        push_blob(c, &b, &config)?;
        let m = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": [descriptor(OCI_LAYER, &only_a)],
        }));
        put_manifest(c, &b, "leak", OCI_MANIFEST, &m)?
            .expect_error(400, "MANIFEST_BLOB_UNKNOWN")?;
        c.get(&format!("/v2/{b}/manifests/leak"))?
            .expect_error_any(&[(404, "MANIFEST_UNKNOWN"), (404, "NAME_UNKNOWN")])
    });
    s.check(W, "index-child-only-in-other-repository", |c| {
        let child = oci_image(c, "push/isolation-child", 1);
        child.push(c, &a, &child.digest)?;
        c.get(&format!("/v2/{b}/manifests/{}", child.digest))?
            .expect_error(404, "MANIFEST_UNKNOWN")?;
        let idx = index_of(OCI_INDEX, &[(&child, "amd64")]);
        put_manifest(c, &b, "leak-index", OCI_INDEX, &idx.manifest)?
            .expect_error(400, "MANIFEST_BLOB_UNKNOWN")
    });
}

fn created_manifest(r: &Resp, repo: &str, d: &str) -> Outcome {
    r.expect(201)?;
    r.location_is(&format!("/v2/{repo}/manifests/{d}"))?;
    r.hdr_eq("docker-content-digest", d)
}

fn verify_manifest(c: &Ctx, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> Outcome {
    let r = c.get(&format!("/v2/{repo}/manifests/{reference}"))?;
    r.expect(200)?;
    r.content_type_is(media_type)?;
    r.hdr_eq("docker-content-digest", &digest(body))?;
    r.body_is(body)?;
    let h = c.head(&format!("/v2/{repo}/manifests/{reference}"))?;
    h.expect(200)?;
    h.content_type_is(media_type)?;
    h.content_length_is(body.len())?;
    h.hdr_eq("docker-content-digest", &digest(body))
}

fn manifests(s: &mut Suite, repo: &str) {
    s.check(W, "manifest-put-by-tag", |c| {
        let img = oci_image(c, "push/by-tag", 1);
        push_blobs(c, repo, &img.blobs)?;
        let r = put_manifest(c, repo, "by-tag", OCI_MANIFEST, &img.manifest)?;
        created_manifest(&r, repo, &img.digest)?;
        // Pushing the same manifest again is fine.
        let r = put_manifest(c, repo, "by-tag", OCI_MANIFEST, &img.manifest)?;
        created_manifest(&r, repo, &img.digest)?;
        verify_manifest(c, repo, "by-tag", OCI_MANIFEST, &img.manifest)?;
        verify_manifest(c, repo, &img.digest, OCI_MANIFEST, &img.manifest)
    });

    s.check(W, "manifest-put-by-digest", |c| {
        let img = oci_image(c, "push/by-digest", 2);
        push_blobs(c, repo, &img.blobs)?;
        let r = put_manifest(c, repo, &img.digest, OCI_MANIFEST, &img.manifest)?;
        created_manifest(&r, repo, &img.digest)?;
        verify_manifest(c, repo, &img.digest, OCI_MANIFEST, &img.manifest)
    });

    s.check(W, "manifest-oci-index", |c| {
        let amd = oci_image_arch(c, "push/index-amd64", 1, "amd64");
        let arm = oci_image_arch(c, "push/index-arm64", 1, "arm64");
        amd.push(c, repo, &amd.digest)?;
        arm.push(c, repo, &arm.digest)?;
        let idx = index_of(OCI_INDEX, &[(&amd, "amd64"), (&arm, "arm64")]);
        let r = put_manifest(c, repo, "oci-index", OCI_INDEX, &idx.manifest)?;
        created_manifest(&r, repo, &idx.digest)?;
        verify_manifest(c, repo, "oci-index", OCI_INDEX, &idx.manifest)?;
        verify_manifest(c, repo, &idx.digest, OCI_INDEX, &idx.manifest)
    });

    s.check(W, "manifest-docker-schema2", |c| {
        let img = docker_image(c, "push/docker", "amd64");
        push_blobs(c, repo, &img.blobs)?;
        let r = put_manifest(c, repo, "docker", DOCKER_MANIFEST, &img.manifest)?;
        created_manifest(&r, repo, &img.digest)?;
        verify_manifest(c, repo, "docker", DOCKER_MANIFEST, &img.manifest)
    });

    s.check(W, "manifest-docker-manifest-list", |c| {
        let amd = docker_image(c, "push/docker-list-amd64", "amd64");
        let arm = docker_image(c, "push/docker-list-arm64", "arm64");
        amd.push(c, repo, &amd.digest)?;
        arm.push(c, repo, &arm.digest)?;
        let list = index_of(DOCKER_LIST, &[(&amd, "amd64"), (&arm, "arm64")]);
        let r = put_manifest(c, repo, "docker-list", DOCKER_LIST, &list.manifest)?;
        created_manifest(&r, repo, &list.digest)?;
        verify_manifest(c, repo, "docker-list", DOCKER_LIST, &list.manifest)
    });

    s.check(W, "manifest-artifact-with-custom-blob-types", |c| {
        let config = c.data("push/artifact-config", 64);
        let layer = c.data("push/artifact-layer", 640);
        push_blobs(c, repo, &[config.clone(), layer.clone()])?;
        let m = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.conformance.artifact.v1",
            "config": descriptor("application/vnd.conformance.config.v1+json", &config),
            "layers": [descriptor("application/vnd.conformance.layer.v1+tar", &layer)],
        }));
        let r = put_manifest(c, repo, "artifact", OCI_MANIFEST, &m)?;
        created_manifest(&r, repo, &digest(&m))?;
        verify_manifest(c, repo, "artifact", OCI_MANIFEST, &m)
    });

    s.check(W, "manifest-unknown-media-type-stored-as-pushed", |c| {
        let config = c.data("push/custom-config", 64);
        let layer = c.data("push/custom-layer", 640);
        push_blobs(c, repo, &[config.clone(), layer.clone()])?;
        let m = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": CUSTOM_MANIFEST,
            "config": descriptor("application/vnd.conformance.config.v1+json", &config),
            "layers": [descriptor("application/vnd.conformance.layer.v1+tar", &layer)],
        }));
        let r = put_manifest(c, repo, "custom", CUSTOM_MANIFEST, &m)?;
        created_manifest(&r, repo, &digest(&m))?;
        verify_manifest(c, repo, "custom", CUSTOM_MANIFEST, &m)?;
        verify_manifest(c, repo, &digest(&m), CUSTOM_MANIFEST, &m)
    });

    s.check(W, "manifest-without-layers", |c| {
        let config = c.data("push/no-layers-config", 80);
        push_blob(c, repo, &config)?;
        let m = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.conformance.config-only.v1",
            "config": descriptor("application/vnd.conformance.config.v1+json", &config),
            "layers": [],
        }));
        let r = put_manifest(c, repo, "no-layers", OCI_MANIFEST, &m)?;
        created_manifest(&r, repo, &digest(&m))?;
        verify_manifest(c, repo, "no-layers", OCI_MANIFEST, &m)
    });

    s.check(W, "manifest-unknown-blob-rejected", |c| {
        let config = c.data("push/unknown-blob-config", 64);
        push_blob(c, repo, &config)?;
        let never = c.data("push/never-uploaded", 64);
        let m = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": [descriptor(OCI_LAYER, &never)],
        }));
        put_manifest(c, repo, "missing-blob", OCI_MANIFEST, &m)?
            .expect_error(400, "MANIFEST_BLOB_UNKNOWN")?;
        c.get(&format!("/v2/{repo}/manifests/missing-blob"))?
            .expect_error(404, "MANIFEST_UNKNOWN")?;
        c.get(&format!("/v2/{repo}/manifests/{}", digest(&m)))?
            .expect_error(404, "MANIFEST_UNKNOWN")
    });

    s.check(W, "manifest-unknown-config-rejected", |c| {
        let layer = c.data("push/unknown-config-layer", 64);
        push_blob(c, repo, &layer)?;
        let never = c.data("push/never-uploaded-config", 64);
        let m = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &never),
            "layers": [descriptor(OCI_LAYER, &layer)],
        }));
        put_manifest(c, repo, "missing-config", OCI_MANIFEST, &m)?
            .expect_error(400, "MANIFEST_BLOB_UNKNOWN")
    });

    s.check(W, "index-unknown-child-rejected", |c| {
        let child = oci_image(c, "push/index-missing-child", 1);
        let idx = index_of(OCI_INDEX, &[(&child, "amd64")]);
        put_manifest(c, repo, "missing-child", OCI_INDEX, &idx.manifest)?
            .expect_error(400, "MANIFEST_BLOB_UNKNOWN")
    });

    s.check(W, "manifest-over-4mib-rejected-413", |c| {
        let config = c.data("push/big-config", 64);
        push_blob(c, repo, &config)?;
        let pad = "x".repeat(4 * 1024 * 1024 + 1);
        let m = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": [],
            "annotations": { "conformance.padding": pad },
        }));
        let r = put_manifest(c, repo, "too-big", OCI_MANIFEST, &m)?;
        r.expect(413)?;
        if !r.body.is_empty() {
            r.error_codes()?;
        }
        c.get(&format!("/v2/{repo}/manifests/too-big"))?
            .expect_error(404, "MANIFEST_UNKNOWN")
    });

    s.check(W, "manifest-of-4mib-accepted", |c| {
        let config = c.data("push/4mib-config", 64);
        push_blob(c, repo, &config)?;
        let build = |pad: usize| {
            manifest_bytes(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
                "layers": [],
                "annotations": { "conformance.padding": "x".repeat(pad) },
            }))
        };
        let limit = 4 * 1024 * 1024;
        let m = build(limit - build(0).len());
        ensure!(m.len() == limit, "test bug: manifest of {} bytes", m.len());
        let r = put_manifest(c, repo, "four-mib", OCI_MANIFEST, &m)?;
        created_manifest(&r, repo, &digest(&m))?;
        verify_manifest(c, repo, "four-mib", OCI_MANIFEST, &m)
    });

    s.check(W, "manifest-digest-mismatch-rejected", |c| {
        let img = oci_image(c, "push/manifest-mismatch", 1);
        push_blobs(c, repo, &img.blobs)?;
        let wrong = digest(&c.data("push/manifest-mismatch-other", 10));
        put_manifest(c, repo, &wrong, OCI_MANIFEST, &img.manifest)?
            .expect_error(400, "DIGEST_INVALID")?;
        c.get(&format!("/v2/{repo}/manifests/{wrong}"))?
            .expect_error(404, "MANIFEST_UNKNOWN")?;
        c.get(&format!("/v2/{repo}/manifests/{}", img.digest))?
            .expect_error(404, "MANIFEST_UNKNOWN")
    });

    s.check(W, "manifest-invalid-json-rejected", |c| {
        put_manifest(
            c,
            repo,
            "garbage",
            OCI_MANIFEST,
            b"{\"schemaVersion\": 2, \"config\": ",
        )?
        .expect_error(400, "MANIFEST_INVALID")?;
        put_manifest(c, repo, "garbage", OCI_MANIFEST, b"this is not json")?
            .expect_error(400, "MANIFEST_INVALID")?;
        c.get(&format!("/v2/{repo}/manifests/garbage"))?
            .expect_error(404, "MANIFEST_UNKNOWN")
    });

    s.check(W, "manifest-invalid-structure-rejected", |c| {
        for body in [
            json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST }),
            json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": "nope", "layers": [] }),
            json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": {} }),
            json!([1, 2, 3]),
        ] {
            let ct = if body["mediaType"] == json!(OCI_INDEX) { OCI_INDEX } else { OCI_MANIFEST };
            put_manifest(c, repo, "bad-structure", ct, &manifest_bytes(&body))?
                .expect_error(400, "MANIFEST_INVALID")?;
        }
        Ok(())
    });

    s.check(W, "manifest-retag-moves-tag", |c| {
        let one = oci_image(c, "push/retag-1", 1);
        let two = oci_image(c, "push/retag-2", 1);
        one.push(c, repo, "moving")?;
        verify_manifest(c, repo, "moving", OCI_MANIFEST, &one.manifest)?;
        two.push(c, repo, "moving")?;
        verify_manifest(c, repo, "moving", OCI_MANIFEST, &two.manifest)?;
        // The first manifest stays reachable by digest.
        verify_manifest(c, repo, &one.digest, OCI_MANIFEST, &one.manifest)
    });

    s.check(W, "first-push-creates-single-component-repository", |c| {
        let name = format!("conformance-{}", c.run_id());
        let img = oci_image(c, "push/single-component", 1);
        img.push(c, &name, "latest")?;
        verify_manifest(c, &name, "latest", OCI_MANIFEST, &img.manifest)?;
        Ok(())
    });
}
