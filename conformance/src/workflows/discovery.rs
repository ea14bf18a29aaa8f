//! Content discovery: tag listing, the catalog and the referrers API.

use serde_json::{json, Value};

use crate::client::{digest, pct, query_param, Ctx, Resp};
use crate::fixtures::{
    descriptor, manifest_bytes, oci_image, push_blobs, put_manifest, Image, EMPTY_JSON, OCI_EMPTY,
    OCI_INDEX, OCI_MANIFEST,
};
use crate::{Outcome, Suite};

const W: &str = "content-discovery";

/// Tags pushed, in push order (deliberately not sorted).
const TAGS: &[&str] = &[
    "v2",
    "v10",
    "latest",
    "1.0",
    "1.0-rc1",
    "_internal",
    "alpha",
    "Zulu",
];

/// The `rel="next"` target of a `Link` header, if any.
pub fn next_link(r: &Resp) -> Outcome<Option<String>> {
    let Some(link) = r.hdr("link") else {
        return Ok(None);
    };
    let (Some(a), Some(b)) = (link.find('<'), link.find('>')) else {
        return Err(format!("malformed Link header {link:?}: {}", r.show()));
    };
    ensure!(
        a < b && link[b..].replace(' ', "").contains("rel=\"next\""),
        "Link header {link:?} is not <url>; rel=\"next\": {}",
        r.show()
    );
    Ok(Some(link[a + 1..b].to_string()))
}

fn string_list(r: &Resp, field: &str) -> Outcome<Vec<String>> {
    let v = r.json()?;
    let arr = v
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("body has no \"{field}\" array: {}", r.show()))?;
    arr.iter()
        .map(|x| {
            x.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("non-string entry in \"{field}\": {}", r.show()))
        })
        .collect()
}

fn tags_page(c: &Ctx, target: &str, repo: &str) -> Outcome<(Resp, Vec<String>)> {
    let r = c.get(target)?;
    r.expect(200)?;
    let v = r.json()?;
    ensure!(
        v.get("name").and_then(Value::as_str) == Some(repo),
        "tags list \"name\" is not {repo:?}: {}",
        r.show()
    );
    let tags = string_list(&r, "tags")?;
    Ok((r, tags))
}

/// Runs the content discovery workflow.
pub fn discovery(s: &mut Suite) {
    tags(s);
    catalog(s);
    referrers(s);
}

fn tags(s: &mut Suite) {
    let repo = s.ctx().repo("discovery");
    let mut sorted: Vec<String> = TAGS.iter().map(|t| t.to_string()).collect();
    sorted.sort();
    let names = [
        "tags-list-all-sorted",
        "tags-list-n",
        "tags-list-follow-link",
        "tags-list-last",
        "tags-list-n-and-last",
        "tags-list-n-zero",
        "tags-list-last-not-a-tag",
        "tags-list-n-larger-than-count",
    ];
    let ok = s.setup(W, "tags-setup", |c| {
        let img = oci_image(c, "discovery", 1);
        push_blobs(c, &repo, &img.blobs)?;
        for t in TAGS {
            put_manifest(c, &repo, t, OCI_MANIFEST, &img.manifest)?.expect(201)?;
        }
        Ok(())
    });
    if ok.is_none() {
        s.skipped(W, &names, "tags-setup");
    } else {
        s.check(W, names[0], |c| {
            let (r, tags) = tags_page(c, &format!("/v2/{repo}/tags/list"), &repo)?;
            ensure!(
                tags == sorted,
                "tags {tags:?}, want {sorted:?}: {}",
                r.show()
            );
            Ok(())
        });
        s.check(W, names[1], |c| {
            let (r, tags) = tags_page(c, &format!("/v2/{repo}/tags/list?n=3"), &repo)?;
            ensure!(
                tags == sorted[..3],
                "n=3 gave {tags:?}, want {:?}: {}",
                &sorted[..3],
                r.show()
            );
            let next = next_link(&r)?
                .ok_or_else(|| format!("no Link header although more tags remain: {}", r.show()))?;
            ensure!(
                next.contains(&format!("/v2/{repo}/tags/list")),
                "Link {next:?} does not point to the tags list"
            );
            ensure!(
                query_param(&next, "n").as_deref() == Some("3"),
                "Link {next:?} does not carry n=3"
            );
            ensure!(
                query_param(&next, "last").as_deref() == Some(&pct(&sorted[2])[..])
                    || query_param(&next, "last").as_deref() == Some(&sorted[2][..]),
                "Link {next:?} does not carry last={}",
                sorted[2]
            );
            Ok(())
        });
        s.check(W, names[2], |c| {
            let mut target = format!("/v2/{repo}/tags/list?n=3");
            let mut all = Vec::new();
            for _ in 0..10 {
                let (r, tags) = tags_page(c, &target, &repo)?;
                ensure!(
                    tags.len() <= 3,
                    "page of {} tags with n=3: {}",
                    tags.len(),
                    r.show()
                );
                all.extend(tags);
                match next_link(&r)? {
                    Some(next) => target = next,
                    None => break,
                }
            }
            ensure!(all == sorted, "pages joined give {all:?}, want {sorted:?}");
            Ok(())
        });
        s.check(W, names[3], |c| {
            let last = &sorted[3];
            let (r, tags) = tags_page(
                c,
                &format!("/v2/{repo}/tags/list?last={}", pct(last)),
                &repo,
            )?;
            ensure!(
                tags == sorted[4..],
                "last={last} gave {tags:?}, want {:?}: {}",
                &sorted[4..],
                r.show()
            );
            Ok(())
        });
        s.check(W, names[4], |c| {
            let last = &sorted[2];
            let (r, tags) = tags_page(
                c,
                &format!("/v2/{repo}/tags/list?n=2&last={}", pct(last)),
                &repo,
            )?;
            ensure!(
                tags == sorted[3..5],
                "n=2&last={last} gave {tags:?}, want {:?}: {}",
                &sorted[3..5],
                r.show()
            );
            ensure!(
                next_link(&r)?.is_some(),
                "no Link header although more tags remain: {}",
                r.show()
            );
            Ok(())
        });
        s.check(W, names[5], |c| {
            let (r, tags) = tags_page(c, &format!("/v2/{repo}/tags/list?n=0"), &repo)?;
            ensure!(tags.is_empty(), "n=0 gave {tags:?}: {}", r.show());
            Ok(())
        });
        s.check(W, names[6], |c| {
            let want: Vec<String> = sorted
                .iter()
                .filter(|t| t.as_str() > "b")
                .cloned()
                .collect();
            let (r, tags) = tags_page(c, &format!("/v2/{repo}/tags/list?last=b"), &repo)?;
            ensure!(
                tags == want,
                "last=b gave {tags:?}, want {want:?}: {}",
                r.show()
            );
            Ok(())
        });
        s.check(W, names[7], |c| {
            let (r, tags) = tags_page(c, &format!("/v2/{repo}/tags/list?n=100"), &repo)?;
            ensure!(
                tags == sorted,
                "n=100 gave {tags:?}, want {sorted:?}: {}",
                r.show()
            );
            ensure!(
                next_link(&r)?.is_none(),
                "Link header although no tags remain: {}",
                r.show()
            );
            Ok(())
        });
    }
    s.check(W, "tags-list-unknown-repository", |c| {
        let other = c.repo("discovery-never-pushed");
        c.get(&format!("/v2/{other}/tags/list"))?
            .expect_error(404, "NAME_UNKNOWN")
    });
}

fn catalog(s: &mut Suite) {
    let c = s.ctx();
    let base = c.repo("catalog");
    let repos: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|x| format!("{base}/{x}"))
        .collect();
    let names = ["catalog-list", "catalog-pagination", "catalog-n-zero"];
    let ok = s.setup(W, "catalog-setup", |c| {
        let img = oci_image(c, "catalog", 1);
        for r in &repos {
            img.push(c, r, "latest")?;
        }
        Ok(())
    });
    if ok.is_none() {
        s.skipped(W, &names, "catalog-setup");
        return;
    }
    s.check(W, names[0], |c| {
        let r = c.get("/v2/_catalog")?;
        r.expect(200)?;
        let first = string_list(&r, "repositories")?;
        ensure!(!first.is_empty(), "catalog is empty: {}", r.show());
        // Walk the part of the catalog that belongs to this run.
        let prefix = c.repo_prefix();
        let mut target = format!("/v2/_catalog?n=50&last={}", pct(&prefix));
        let mut mine = Vec::new();
        for _ in 0..20 {
            let r = c.get(&target)?;
            r.expect(200)?;
            let page = string_list(&r, "repositories")?;
            ensure!(
                page.len() <= 50,
                "page of {} entries with n=50: {}",
                page.len(),
                r.show()
            );
            let done = page.iter().any(|p| !p.starts_with(&prefix));
            mine.extend(page.into_iter().filter(|p| p.starts_with(&prefix)));
            match next_link(&r)? {
                Some(next) if !done => target = next,
                _ => break,
            }
        }
        ensure!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "catalog pages are not in lexical order: {mine:?}"
        );
        let pull = c.repo("pull");
        for want in repos.iter().chain(std::iter::once(&pull)) {
            ensure!(
                mine.contains(want),
                "catalog lacks {want}; this run's entries: {mine:?}"
            );
        }
        Ok(())
    });
    s.check(W, names[1], |c| {
        let r = c.get(&format!("/v2/_catalog?n=2&last={}", pct(&base)))?;
        r.expect(200)?;
        let page = string_list(&r, "repositories")?;
        ensure!(
            page == repos[..2],
            "n=2&last={base} gave {page:?}, want {:?}: {}",
            &repos[..2],
            r.show()
        );
        let next = next_link(&r)?.ok_or_else(|| format!("no Link header: {}", r.show()))?;
        ensure!(
            next.contains("/v2/_catalog"),
            "Link {next:?} does not point to the catalog"
        );
        ensure!(
            query_param(&next, "n").as_deref() == Some("2"),
            "Link {next:?} does not carry n=2"
        );
        let r = c.get(&next)?;
        r.expect(200)?;
        let page = string_list(&r, "repositories")?;
        ensure!(
            page.first() == Some(&repos[2]),
            "page after the Link starts with {:?}, want {}: {}",
            page.first(),
            repos[2],
            r.show()
        );
        Ok(())
    });
    s.check(W, names[2], |c| {
        let r = c.get("/v2/_catalog?n=0")?;
        r.expect(200)?;
        let page = string_list(&r, "repositories")?;
        ensure!(
            page.is_empty(),
            "n=0 gave {} entries: {}",
            page.len(),
            r.show()
        );
        Ok(())
    });
}

const SIG: &str = "application/vnd.conformance.signature.v1";
const SBOM_CONFIG: &str = "application/vnd.conformance.sbom.config.v1+json";
const BUNDLE: &str = "application/vnd.conformance.bundle.v1";

/// Everything the referrers checks need.
struct Referrers {
    repo: String,
    subject: Image,
    /// Pushed later: a manifest referring to it exists before it does.
    late_subject: Image,
    sig: Vec<u8>,
    sbom: Vec<u8>,
    bundle: Vec<u8>,
    orphan: Vec<u8>,
}

fn referrers_setup(c: &Ctx) -> Outcome<Referrers> {
    let repo = c.repo("referrers");
    let subject = oci_image(c, "referrers/subject", 1);
    subject.push(c, &repo, "subject")?;
    let late_subject = oci_image(c, "referrers/late-subject", 1);
    let sig_layer = c.data("referrers/sig-layer", 300);
    let sbom_config = manifest_bytes(&json!({ "run": c.run_id(), "kind": "sbom" }));
    let sbom_layer = c.data("referrers/sbom-layer", 500);
    push_blobs(
        c,
        &repo,
        &[
            EMPTY_JSON.to_vec(),
            sig_layer.clone(),
            sbom_config.clone(),
            sbom_layer.clone(),
        ],
    )?;
    let sig = manifest_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIG,
        "config": descriptor(OCI_EMPTY, EMPTY_JSON),
        "layers": [descriptor("application/vnd.conformance.signature.layer.v1", &sig_layer)],
        "subject": subject.descriptor(),
        "annotations": { "conformance.kind": "signature", "org.opencontainers.image.created": "2024-01-01T00:00:00Z" },
    }));
    let sbom = manifest_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(SBOM_CONFIG, &sbom_config),
        "layers": [descriptor("application/vnd.conformance.sbom.layer.v1+json", &sbom_layer)],
        "subject": subject.descriptor(),
        "annotations": { "conformance.kind": "sbom" },
    }));
    let bundle = manifest_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": BUNDLE,
        "manifests": [],
        "subject": subject.descriptor(),
        "annotations": { "conformance.kind": "bundle" },
    }));
    let orphan = manifest_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIG,
        "config": descriptor(OCI_EMPTY, EMPTY_JSON),
        "layers": [descriptor("application/vnd.conformance.signature.layer.v1", &sig_layer)],
        "subject": late_subject.descriptor(),
        "annotations": { "conformance.kind": "orphan-signature" },
    }));
    Ok(Referrers {
        repo,
        subject,
        late_subject,
        sig,
        sbom,
        bundle,
        orphan,
    })
}

/// GET the referrers of `d`, checking the index envelope; returns the answer
/// and its descriptors.
fn get_referrers(
    c: &Ctx,
    repo: &str,
    d: &str,
    filter: Option<&str>,
) -> Outcome<(Resp, Vec<Value>)> {
    let mut target = format!("/v2/{repo}/referrers/{d}");
    if let Some(f) = filter {
        target.push_str(&format!("?artifactType={}", pct(f)));
    }
    let r = c.get(&target)?;
    r.expect(200)?;
    r.content_type_is(OCI_INDEX)?;
    let v = r.json()?;
    ensure!(
        v["schemaVersion"] == json!(2),
        "referrers index without schemaVersion 2: {}",
        r.show()
    );
    ensure!(
        v["mediaType"] == json!(OCI_INDEX),
        "referrers index mediaType is not {OCI_INDEX}: {}",
        r.show()
    );
    let list = v["manifests"].as_array().cloned().ok_or_else(|| {
        format!(
            "referrers index without a \"manifests\" array: {}",
            r.show()
        )
    })?;
    if filter.is_some() {
        r.hdr_eq("oci-filters-applied", "artifactType")?;
    } else if let Some(h) = r.hdr("oci-filters-applied") {
        return Err(format!(
            "OCI-Filters-Applied {h:?} although no filter was asked for: {}",
            r.show()
        ));
    }
    Ok((r, list))
}

fn find<'a>(list: &'a [Value], d: &str) -> Option<&'a Value> {
    list.iter().find(|x| x["digest"] == json!(d))
}

/// Checks one referrer descriptor against what was pushed.
fn check_desc(
    list: &[Value],
    manifest: &[u8],
    media_type: &str,
    artifact_type: &str,
    annotations: &Value,
) -> Outcome {
    let d = digest(manifest);
    let x = find(list, &d).ok_or_else(|| format!("referrers lack {d}: {list:?}"))?;
    ensure!(
        x["mediaType"] == json!(media_type),
        "descriptor mediaType {} want {media_type}: {x}",
        x["mediaType"]
    );
    ensure!(
        x["size"] == json!(manifest.len()),
        "descriptor size {} want {}: {x}",
        x["size"],
        manifest.len()
    );
    ensure!(
        x["artifactType"] == json!(artifact_type),
        "descriptor artifactType {} want {artifact_type}: {x}",
        x["artifactType"]
    );
    ensure!(
        x["annotations"] == *annotations,
        "descriptor annotations {} want {annotations}: {x}",
        x["annotations"]
    );
    Ok(())
}

fn digests(list: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = list
        .iter()
        .map(|x| x["digest"].as_str().unwrap_or("?").to_string())
        .collect();
    v.sort();
    v
}

fn referrers(s: &mut Suite) {
    let names = [
        "referrers-empty-for-manifest-without-referrers",
        "manifest-with-subject-answers-oci-subject",
        "index-with-subject-answers-oci-subject",
        "manifest-with-missing-subject-accepted",
        "referrers-list",
        "referrers-artifact-type",
        "referrers-artifact-type-falls-back-to-config",
        "referrers-annotations-copied",
        "referrers-filter-artifact-type",
        "referrers-filter-no-match",
        "referrers-after-subject-pushed",
    ];
    s.check(W, "referrers-empty-for-unknown-digest", |c| {
        let repo = c.repo("referrers");
        let d = digest(&c.data("referrers/nothing", 10));
        let (r, list) = get_referrers(c, &repo, &d, None)?;
        ensure!(
            list.is_empty(),
            "referrers of an unknown digest not empty: {}",
            r.show()
        );
        Ok(())
    });
    let Some(st) = s.setup(W, "referrers-setup", referrers_setup) else {
        s.skipped(W, &names, "referrers-setup");
        return;
    };
    let repo = &st.repo;
    let subject = &st.subject.digest;
    s.check(W, names[0], |c| {
        let (r, list) = get_referrers(c, repo, subject, None)?;
        ensure!(
            list.is_empty(),
            "referrers of a manifest nobody refers to not empty: {}",
            r.show()
        );
        Ok(())
    });
    s.check(W, names[1], |c| {
        for m in [&st.sig, &st.sbom] {
            let r = put_manifest(c, repo, &digest(m), OCI_MANIFEST, m)?;
            r.expect(201)?;
            r.hdr_eq("docker-content-digest", &digest(m))?;
            r.hdr_eq("oci-subject", subject)?;
        }
        Ok(())
    });
    s.check(W, names[2], |c| {
        let r = put_manifest(c, repo, &digest(&st.bundle), OCI_INDEX, &st.bundle)?;
        r.expect(201)?;
        r.hdr_eq("oci-subject", subject)
    });
    s.check(W, names[3], |c| {
        let r = put_manifest(c, repo, &digest(&st.orphan), OCI_MANIFEST, &st.orphan)?;
        r.expect(201)?;
        r.hdr_eq("oci-subject", &st.late_subject.digest)?;
        c.get(&format!("/v2/{repo}/manifests/{}", st.late_subject.digest))?
            .expect_error(404, "MANIFEST_UNKNOWN")?;
        let (r, list) = get_referrers(c, repo, &st.late_subject.digest, None)?;
        let want = vec![digest(&st.orphan)];
        ensure!(
            digests(&list) == want,
            "referrers of the missing subject: {}",
            r.show()
        );
        Ok(())
    });
    s.check(W, names[4], |c| {
        let (r, list) = get_referrers(c, repo, subject, None)?;
        let mut want = vec![digest(&st.sig), digest(&st.sbom), digest(&st.bundle)];
        want.sort();
        ensure!(
            digests(&list) == want,
            "referrers {:?}, want {want:?}: {}",
            digests(&list),
            r.show()
        );
        Ok(())
    });
    s.check(W, names[5], |c| {
        let (_, list) = get_referrers(c, repo, subject, None)?;
        check_desc(&list, &st.sig, OCI_MANIFEST, SIG, &json!({ "conformance.kind": "signature", "org.opencontainers.image.created": "2024-01-01T00:00:00Z" }))?;
        check_desc(&list, &st.bundle, OCI_INDEX, BUNDLE, &json!({ "conformance.kind": "bundle" }))
    });
    s.check(W, names[6], |c| {
        let (_, list) = get_referrers(c, repo, subject, None)?;
        check_desc(
            &list,
            &st.sbom,
            OCI_MANIFEST,
            SBOM_CONFIG,
            &json!({ "conformance.kind": "sbom" }),
        )
    });
    s.check(W, names[7], |c| {
        let (_, list) = get_referrers(c, repo, subject, None)?;
        for (m, kind) in [
            (&st.sig, "signature"),
            (&st.sbom, "sbom"),
            (&st.bundle, "bundle"),
        ] {
            let d = digest(m);
            let x = find(&list, &d).ok_or_else(|| format!("referrers lack {d}"))?;
            ensure!(
                x["annotations"]["conformance.kind"] == json!(kind),
                "annotations of {d} not copied: {x}"
            );
        }
        Ok(())
    });
    s.check(W, names[8], |c| {
        let (r, list) = get_referrers(c, repo, subject, Some(SIG))?;
        ensure!(
            digests(&list) == vec![digest(&st.sig)],
            "artifactType={SIG} gave {:?}: {}",
            digests(&list),
            r.show()
        );
        let (r, list) = get_referrers(c, repo, subject, Some(SBOM_CONFIG))?;
        ensure!(
            digests(&list) == vec![digest(&st.sbom)],
            "artifactType={SBOM_CONFIG} (config fallback) gave {:?}: {}",
            digests(&list),
            r.show()
        );
        Ok(())
    });
    s.check(W, names[9], |c| {
        let (r, list) = get_referrers(
            c,
            repo,
            subject,
            Some("application/vnd.conformance.nothing"),
        )?;
        ensure!(
            list.is_empty(),
            "filter matching nothing gave entries: {}",
            r.show()
        );
        Ok(())
    });
    s.check(W, names[10], |c| {
        st.late_subject.push(c, repo, "late-subject")?;
        let (r, list) = get_referrers(c, repo, &st.late_subject.digest, None)?;
        ensure!(
            digests(&list) == vec![digest(&st.orphan)],
            "referrers after pushing the subject: {}",
            r.show()
        );
        Ok(())
    });
}
