//! The manifest protocol of the store: put and get by tag and by digest,
//! tag listing in pages, referrers, and deletion by tag and by digest.

mod common;

use berth_store::Error;
use bytes::Bytes;
use common::*;

#[test]
fn put_then_get_by_tag_and_by_digest_returns_the_bytes_as_pushed() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("m/app");
        let img = push_image(&reg, &r, &tag("v1"), b"layer one").await;
        for reference in [tag("v1"), by_digest(&img.manifest)] {
            let got = reg.manifest_get(&r, &reference).await.unwrap();
            assert_eq!(got.digest, img.manifest);
            assert_eq!(got.media_type, OCI_MANIFEST);
            assert_eq!(got.size, img.manifest_size as u64);
            assert_eq!(sha(&got.bytes), img.manifest);
            let head = reg.manifest_head(&r, &reference).await.unwrap();
            assert_eq!(
                (head.digest, head.size, head.media_type),
                (got.digest, got.size, got.media_type)
            );
        }
        assert!(reg.repo_exists(&r).await.unwrap());
        // The manifest is a blob of its repository too.
        assert!(has_blob(&reg, &r, &img.manifest).await);
        // Another repository does not see it.
        let other = repo("m/other");
        assert!(matches!(
            reg.manifest_get(&other, &tag("v1")).await,
            Err(Error::ManifestUnknown { .. })
        ));
        assert!(matches!(
            reg.manifest_get(&r, &tag("v2")).await,
            Err(Error::ManifestUnknown { .. })
        ));
    });
}

#[test]
fn a_manifest_naming_a_blob_the_repository_lacks_is_refused() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("m/app");
        let config = put_blob(&reg, &r, b"{}").await;
        let absent = sha(b"never pushed");
        let m = image_manifest((&config, 2), &[(&absent, 12)], None, None);
        assert!(matches!(
            reg.manifest_put(&r, &tag("v1"), Some(OCI_MANIFEST), Bytes::from(m))
                .await,
            Err(Error::ManifestBlobUnknown { .. })
        ));
        // Bytes that are no manifest are refused as invalid.
        assert!(matches!(
            reg.manifest_put(&r, &tag("v1"), Some(OCI_MANIFEST), Bytes::from_static(b"{"))
                .await,
            Err(Error::ManifestInvalid { .. })
        ));
        assert!(matches!(
            reg.manifest_get(&r, &tag("v1")).await,
            Err(Error::ManifestUnknown { .. })
        ));
    });
}

#[test]
fn a_tag_moves_to_the_manifest_pushed_last() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("m/app");
        let one = push_image(&reg, &r, &tag("latest"), b"first").await;
        let two = push_image(&reg, &r, &tag("latest"), b"second").await;
        assert_ne!(one.manifest, two.manifest);
        let got = reg.manifest_get(&r, &tag("latest")).await.unwrap();
        assert_eq!(got.digest, two.manifest);
        // The old manifest stays reachable by digest.
        let old = reg
            .manifest_get(&r, &by_digest(&one.manifest))
            .await
            .unwrap();
        assert_eq!(old.digest, one.manifest);
    });
}

fn page(p: &berth_store::Page) -> (Vec<&str>, bool) {
    (p.items.iter().map(String::as_str).collect(), p.more)
}

#[test]
fn tags_list_in_lexical_pages() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("m/app");
        let img = push_image(&reg, &r, &tag("a"), b"layer").await;
        let bytes = reg.manifest_get(&r, &tag("a")).await.unwrap().bytes;
        for t in ["c", "b", "e", "d"] {
            reg.manifest_put(&r, &tag(t), Some(OCI_MANIFEST), bytes.clone())
                .await
                .unwrap();
        }
        let all = reg.tags(&r, None, 100).await.unwrap();
        assert_eq!(all.items, ["a", "b", "c", "d", "e"]);
        assert!(!all.more);
        let p1 = reg.tags(&r, None, 2).await.unwrap();
        assert_eq!(page(&p1), (vec!["a", "b"], true));
        let p2 = reg.tags(&r, Some("b"), 2).await.unwrap();
        assert_eq!(page(&p2), (vec!["c", "d"], true));
        let p3 = reg.tags(&r, Some("d"), 2).await.unwrap();
        assert_eq!(page(&p3), (vec!["e"], false));
        let p4 = reg.tags(&r, Some("e"), 2).await.unwrap();
        assert!(p4.items.is_empty() && !p4.more);
        // Exactly a page's worth: nothing more follows.
        let exact = reg.tags(&r, Some("c"), 2).await.unwrap();
        assert_eq!(page(&exact), (vec!["d", "e"], false));
        assert!(matches!(
            reg.tags(&repo("m/none"), None, 10).await,
            Err(Error::RepoUnknown { .. })
        ));
        // The repository is in the catalog.
        let cat = reg.catalog(None, 100).await.unwrap();
        assert!(cat.items.contains(&"m/app".to_string()), "{cat:?}");
        let _ = img;
    });
}

#[test]
fn referrers_list_the_manifests_whose_subject_is_given() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("m/app");
        let subject = push_image(&reg, &r, &tag("v1"), b"subject layer").await;
        let mut pushed = Vec::new();
        for (i, ty) in ["application/sbom", "application/sig", "application/sbom"]
            .iter()
            .enumerate()
        {
            let cfg = put_blob(&reg, &r, format!("{{\"i\":{i}}}").as_bytes()).await;
            let layer = put_blob(&reg, &r, format!("referrer {i}").as_bytes()).await;
            let m = image_manifest(
                (&cfg, 7),
                &[(&layer, 10)],
                Some((&subject.manifest, subject.manifest_size)),
                Some(ty),
            );
            let put = reg
                .manifest_put(&r, &by_digest(&sha(&m)), Some(OCI_MANIFEST), Bytes::from(m))
                .await
                .unwrap();
            assert_eq!(put.subject.as_ref(), Some(&subject.manifest));
            pushed.push((put.digest, *ty));
        }
        let all = reg.referrers(&r, &subject.manifest, None).await.unwrap();
        let mut got: Vec<_> = all
            .iter()
            .map(|d| {
                (
                    d.digest.clone(),
                    d.artifact_type.clone().unwrap_or_default(),
                )
            })
            .collect();
        got.sort();
        let mut want: Vec<_> = pushed
            .iter()
            .map(|(d, t)| (d.clone(), t.to_string()))
            .collect();
        want.sort();
        assert_eq!(got, want);
        let sboms = reg
            .referrers(&r, &subject.manifest, Some("application/sbom"))
            .await
            .unwrap();
        assert_eq!(sboms.len(), 2);
        assert!(sboms
            .iter()
            .all(|d| d.artifact_type.as_deref() == Some("application/sbom")));
        // A subject with no referrers lists none; deleting a referrer drops it.
        assert!(reg
            .referrers(&r, &pushed[0].0, None)
            .await
            .unwrap()
            .is_empty());
        reg.manifest_delete(&r, &by_digest(&pushed[1].0))
            .await
            .unwrap();
        assert_eq!(
            reg.referrers(&r, &subject.manifest, None)
                .await
                .unwrap()
                .len(),
            2
        );
        assert!(reg
            .referrers(&r, &subject.manifest, Some("application/sig"))
            .await
            .unwrap()
            .is_empty());
    });
}

#[test]
fn delete_by_tag_keeps_the_manifest_and_by_digest_drops_every_tag() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("m/app");
        let img = push_image(&reg, &r, &tag("v1"), b"layer").await;
        let bytes = reg.manifest_get(&r, &tag("v1")).await.unwrap().bytes;
        for t in ["v2", "v3"] {
            reg.manifest_put(&r, &tag(t), Some(OCI_MANIFEST), bytes.clone())
                .await
                .unwrap();
        }
        reg.manifest_delete(&r, &tag("v1")).await.unwrap();
        assert!(matches!(
            reg.manifest_get(&r, &tag("v1")).await,
            Err(Error::ManifestUnknown { .. })
        ));
        assert_eq!(reg.tags(&r, None, 10).await.unwrap().items, ["v2", "v3"]);
        assert!(reg
            .manifest_head(&r, &by_digest(&img.manifest))
            .await
            .is_ok());
        assert!(matches!(
            reg.manifest_delete(&r, &tag("v1")).await,
            Err(Error::ManifestUnknown { .. })
        ));

        reg.manifest_delete(&r, &by_digest(&img.manifest))
            .await
            .unwrap();
        for reference in [tag("v2"), tag("v3"), by_digest(&img.manifest)] {
            assert!(matches!(
                reg.manifest_get(&r, &reference).await,
                Err(Error::ManifestUnknown { .. })
            ));
        }
        assert!(reg.tags(&r, None, 10).await.unwrap().items.is_empty());
        assert!(!has_blob(&reg, &r, &img.manifest).await);
        // The layers stay linked until a collection takes them.
        assert!(has_blob(&reg, &r, &img.layer).await);
        assert!(matches!(
            reg.manifest_delete(&r, &by_digest(&img.manifest)).await,
            Err(Error::ManifestUnknown { .. })
        ));
    });
}

#[test]
fn manifests_and_tags_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo("m/app");
    let img = rt().block_on(async {
        let reg = open(dir.path()).await;
        push_image(&reg, &r, &tag("v1"), b"durable layer").await
    });
    rt().block_on(async {
        let reg = open(dir.path()).await;
        let got = reg.manifest_get(&r, &tag("v1")).await.unwrap();
        assert_eq!(got.digest, img.manifest);
        assert_eq!(sha(&got.bytes), img.manifest);
        assert_eq!(read_blob(&reg, &r, &img.layer).await, b"durable layer");
        assert_eq!(reg.tags(&r, None, 10).await.unwrap().items, ["v1"]);
    });
}
