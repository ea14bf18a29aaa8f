//! Content management: deleting tags, manifests and blobs.

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Payload;

use crate::client::digest;
use crate::fixtures::{
    descriptor, manifest_bytes, oci_image, push_blob, push_blobs, push_manifest, put_manifest,
    EMPTY_JSON, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST,
};
use crate::{Outcome, Suite};

const W: &str = "content-management";

fn tags_of(c: &crate::client::Ctx, repo: &str) -> Outcome<Option<Vec<String>>> {
    let r = c.get(&format!("/v2/{repo}/tags/list"))?;
    if r.status == 404 {
        r.expect_error(404, "NAME_UNKNOWN")?;
        return Ok(None);
    }
    r.expect(200)?;
    let v = r.json()?;
    let tags = match &v["tags"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a
            .iter()
            .map(|t| t.as_str().unwrap_or("?").to_string())
            .collect(),
        other => return Err(format!("\"tags\" is {other}: {}", r.show())),
    };
    Ok(Some(tags))
}

/// Runs the content management workflow.
pub fn management(s: &mut Suite) {
    let repo = s.ctx().repo("management");
    let names = [
        "delete-tag-keeps-manifest",
        "delete-manifest-by-digest-removes-tags",
        "delete-manifest-twice",
        "push-again-after-delete",
    ];
    let setup = s.setup(W, "setup", |c| {
        let m1 = oci_image(c, "management/one", 1);
        let m2 = oci_image(c, "management/two", 1);
        m1.push(c, &repo, "t1")?;
        push_manifest(c, &repo, "t2", OCI_MANIFEST, &m1.manifest)?;
        m2.push(c, &repo, "keep")?;
        Ok(m1)
    });
    if let Some(m1) = setup {
        s.check(W, names[0], |c| {
            let r = c.delete(&format!("/v2/{repo}/manifests/t1"))?;
            r.expect(202)?;
            c.get(&format!("/v2/{repo}/manifests/t1"))?
                .expect_error(404, "MANIFEST_UNKNOWN")?;
            let r = c.get(&format!("/v2/{repo}/manifests/{}", m1.digest))?;
            r.expect(200)?;
            r.body_is(&m1.manifest)?;
            let r = c.get(&format!("/v2/{repo}/manifests/t2"))?;
            r.expect(200)?;
            r.body_is(&m1.manifest)?;
            let tags = tags_of(c, &repo)?;
            ensure!(
                tags == Some(vec!["keep".into(), "t2".into()]),
                "tags after deleting t1: {tags:?}, want [keep, t2]"
            );
            Ok(())
        });
        s.check(W, names[1], |c| {
            let r = c.delete(&format!("/v2/{repo}/manifests/{}", m1.digest))?;
            r.expect(202)?;
            c.get(&format!("/v2/{repo}/manifests/{}", m1.digest))?
                .expect_error(404, "MANIFEST_UNKNOWN")?;
            c.head(&format!("/v2/{repo}/manifests/{}", m1.digest))?
                .expect(404)?;
            c.get(&format!("/v2/{repo}/manifests/t2"))?
                .expect_error(404, "MANIFEST_UNKNOWN")?;
            let tags = tags_of(c, &repo)?;
            ensure!(
                tags == Some(vec!["keep".into()]),
                "tags after deleting the manifest: {tags:?}, want [keep]"
            );
            c.get(&format!("/v2/{repo}/manifests/keep"))?.expect(200)?;
            Ok(())
        });
        s.check(W, names[2], |c| {
            c.delete(&format!("/v2/{repo}/manifests/{}", m1.digest))?
                .expect_error(404, "MANIFEST_UNKNOWN")
        });
        s.check(W, names[3], |c| {
            let r = push_manifest(c, &repo, "t1", OCI_MANIFEST, &m1.manifest)?;
            r.hdr_eq("docker-content-digest", &m1.digest)?;
            for reference in ["t1", m1.digest.as_str()] {
                let r = c.get(&format!("/v2/{repo}/manifests/{reference}"))?;
                r.expect(200)?;
                r.body_is(&m1.manifest)?;
            }
            let tags = tags_of(c, &repo)?;
            ensure!(
                tags == Some(vec!["keep".into(), "t1".into()]),
                "tags after pushing t1 again: {tags:?}, want [keep, t1]"
            );
            Ok(())
        });
    } else {
        s.skipped(W, &names, "setup");
    }

    s.check(W, "delete-unknown-manifest", |c| {
        let d = digest(&c.data("management/absent", 10));
        c.delete(&format!("/v2/{repo}/manifests/{d}"))?
            .expect_error(404, "MANIFEST_UNKNOWN")
    });

    s.check(W, "delete-unknown-tag", |c| {
        c.delete(&format!("/v2/{repo}/manifests/no-such-tag"))?
            .expect_error(404, "MANIFEST_UNKNOWN")
    });

    s.check(W, "delete-blob", |c| {
        let data = c.data("management/blob", 800);
        let d = push_blob(c, &repo, &data)?;
        c.head(&format!("/v2/{repo}/blobs/{d}"))?.expect(200)?;
        c.delete(&format!("/v2/{repo}/blobs/{d}"))?.expect(202)?;
        c.head(&format!("/v2/{repo}/blobs/{d}"))?.expect(404)?;
        c.get(&format!("/v2/{repo}/blobs/{d}"))?
            .expect_error(404, "BLOB_UNKNOWN")?;
        c.delete(&format!("/v2/{repo}/blobs/{d}"))?
            .expect_error(404, "BLOB_UNKNOWN")?;
        // A manifest may no longer reference it...
        let config = c.data("management/blob-config", 60);
        push_blob(c, &repo, &config)?;
        let m = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &data)],
        }));
        put_manifest(c, &repo, "deleted-blob", OCI_MANIFEST, &m)?
            .expect_error(400, "MANIFEST_BLOB_UNKNOWN")?;
        // ...until it is uploaded again.
        push_blob(c, &repo, &data)?;
        let r = c.get(&format!("/v2/{repo}/blobs/{d}"))?;
        r.expect(200)?;
        r.body_is(&data)?;
        push_manifest(c, &repo, "deleted-blob", OCI_MANIFEST, &m).map(|_| ())
    });

    s.check(W, "delete-blob-only-affects-its-repository", |c| {
        let other = c.repo("management-other");
        let data = c.data("management/shared-blob", 800);
        let d = push_blob(c, &repo, &data)?;
        push_blob(c, &other, &data)?;
        c.delete(&format!("/v2/{repo}/blobs/{d}"))?.expect(202)?;
        c.head(&format!("/v2/{repo}/blobs/{d}"))?.expect(404)?;
        let r = c.get(&format!("/v2/{other}/blobs/{d}"))?;
        r.expect(200)?;
        r.body_is(&data)
    });

    s.check(W, "mount-of-deleted-blob-gives-session", |c| {
        let src = c.repo("management-mount-source");
        let dst = c.repo("management-mount-target");
        let data = c.data("management/mount-deleted", 321);
        let d = push_blob(c, &src, &data)?;
        c.delete(&format!("/v2/{src}/blobs/{d}"))?.expect(202)?;
        for query in [format!("mount={d}&from={src}"), format!("mount={d}")] {
            let r = c.send(
                Method::POST,
                &format!("/v2/{dst}/blobs/uploads/?{query}"),
                &[],
                Payload::None,
            )?;
            r.expect(202)?;
            let loc = r.need("location")?;
            c.delete(&loc)?.expect(204)?;
        }
        c.head(&format!("/v2/{dst}/blobs/{d}"))?
            .expect(404)
            .map(|_| ())
    });

    s.check(W, "delete-referrer-updates-referrers", |c| {
        let subject = oci_image(c, "management/subject", 1);
        subject.push(c, &repo, "subject")?;
        let layer = c.data("management/referrer-layer", 100);
        push_blobs(c, &repo, &[EMPTY_JSON.to_vec(), layer.clone()])?;
        let m = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.conformance.deleted.v1",
            "config": descriptor(OCI_EMPTY, EMPTY_JSON),
            "layers": [descriptor("application/vnd.conformance.deleted.layer.v1", &layer)],
            "subject": subject.descriptor(),
        }));
        let d = digest(&m);
        push_manifest(c, &repo, &d, OCI_MANIFEST, &m)?;
        let target = format!("/v2/{repo}/referrers/{}", subject.digest);
        let r = c.get(&target)?;
        r.expect(200)?;
        r.content_type_is(OCI_INDEX)?;
        ensure!(
            r.json()?["manifests"][0]["digest"] == json!(d),
            "referrer not listed: {}",
            r.show()
        );
        c.delete(&format!("/v2/{repo}/manifests/{d}"))?
            .expect(202)?;
        let r = c.get(&target)?;
        r.expect(200)?;
        ensure!(
            r.json()?["manifests"]
                .as_array()
                .is_some_and(|a| a.is_empty()),
            "deleted referrer still listed: {}",
            r.show()
        );
        Ok(())
    });
}
