//! The upload protocol of the store: sessions, chunks in order, the digest
//! check at commit, cancellation, and sessions that outlive a reopen.

mod common;

use berth_store::Error;
use common::*;

#[test]
fn chunks_in_order_commit_to_a_readable_blob() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("up/app");
        let data = noise(1, 300_000);
        let s = reg.upload_start(&r).await.unwrap();
        assert_eq!(s.size, 0);
        let a = reg
            .upload_append(&r, &s.id, Some(0), body(&data[..100_000]), Some(100_000))
            .await
            .unwrap();
        assert_eq!((a.id.as_str(), a.size), (s.id.as_str(), 100_000));
        // Without a start offset a chunk goes at the end.
        let b = reg
            .upload_append(&r, &s.id, None, body(&data[100_000..250_000]), None)
            .await
            .unwrap();
        assert_eq!(b.size, 250_000);
        assert_eq!(reg.upload_status(&r, &s.id).await.unwrap().size, 250_000);
        let d = sha(&data);
        reg.upload_finish(&r, &s.id, &d, Some((body(&data[250_000..]), Some(50_000))))
            .await
            .unwrap();
        assert_eq!(reg.blob_size(&r, &d).await.unwrap(), 300_000);
        assert_eq!(read_blob(&reg, &r, &d).await, data);
        // A finished session is gone.
        assert!(matches!(
            reg.upload_status(&r, &s.id).await,
            Err(Error::UploadUnknown { .. })
        ));
    });
}

#[test]
fn a_chunk_at_the_wrong_offset_is_refused_and_changes_nothing() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("up/app");
        let data = noise(2, 20_000);
        let s = reg.upload_start(&r).await.unwrap();
        reg.upload_append(&r, &s.id, Some(0), body(&data[..10_000]), None)
            .await
            .unwrap();
        for start in [0, 9_999, 10_001] {
            match reg
                .upload_append(&r, &s.id, Some(start), body(&data[10_000..]), None)
                .await
            {
                Err(Error::UploadOffset { expected, got }) => {
                    assert_eq!((expected, got), (10_000, start))
                }
                other => panic!("chunk at {start}: {other:?}"),
            }
            assert_eq!(reg.upload_status(&r, &s.id).await.unwrap().size, 10_000);
        }
        // A declared length the body does not have is refused too.
        assert!(matches!(
            reg.upload_append(&r, &s.id, Some(10_000), body(&data[10_000..]), Some(5))
                .await,
            Err(Error::SizeMismatch {
                declared: 5,
                actual: 10_000
            })
        ));
        assert_eq!(reg.upload_status(&r, &s.id).await.unwrap().size, 10_000);
        // The right offset still works afterwards.
        reg.upload_append(&r, &s.id, Some(10_000), body(&data[10_000..]), None)
            .await
            .unwrap();
        reg.upload_finish(&r, &s.id, &sha(&data), None)
            .await
            .unwrap();
        assert_eq!(read_blob(&reg, &r, &sha(&data)).await, data);
    });
}

#[test]
fn a_wrong_digest_at_commit_discards_the_session_and_stores_nothing() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("up/app");
        let data = noise(3, 5_000);
        let wrong = sha(b"something else");
        let s = reg.upload_start(&r).await.unwrap();
        reg.upload_append(&r, &s.id, None, body(&data), None)
            .await
            .unwrap();
        match reg.upload_finish(&r, &s.id, &wrong, None).await {
            Err(Error::DigestMismatch { expected, actual }) => {
                assert_eq!((expected, actual), (wrong.clone(), sha(&data)))
            }
            other => panic!("commit with a wrong digest: {other:?}"),
        }
        assert!(!has_blob(&reg, &r, &wrong).await);
        assert!(!has_blob(&reg, &r, &sha(&data)).await);
        assert!(matches!(
            reg.upload_status(&r, &s.id).await,
            Err(Error::UploadUnknown { .. })
        ));
        // A monolithic put with a wrong digest stores nothing either.
        assert!(matches!(
            reg.blob_put(&r, &wrong, body(&data), Some(data.len() as u64))
                .await,
            Err(Error::DigestMismatch { .. })
        ));
        assert!(!has_blob(&reg, &r, &wrong).await);
        assert!(!has_blob(&reg, &r, &sha(&data)).await);
    });
}

#[test]
fn a_cancelled_session_is_gone_and_stores_nothing() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("up/app");
        let data = noise(4, 8_000);
        let s = reg.upload_start(&r).await.unwrap();
        reg.upload_append(&r, &s.id, None, body(&data), None)
            .await
            .unwrap();
        reg.upload_cancel(&r, &s.id).await.unwrap();
        for res in [
            reg.upload_status(&r, &s.id).await.map(|_| ()),
            reg.upload_append(&r, &s.id, None, body(b"x"), None)
                .await
                .map(|_| ()),
            reg.upload_finish(&r, &s.id, &sha(&data), None).await,
            reg.upload_cancel(&r, &s.id).await,
        ] {
            assert!(matches!(res, Err(Error::UploadUnknown { .. })), "{res:?}");
        }
        assert!(!has_blob(&reg, &r, &sha(&data)).await);
    });
}

#[test]
fn a_session_belongs_to_its_repository_and_unknown_ids_are_refused() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let (a, b) = (repo("up/a"), repo("up/b"));
        let s = reg.upload_start(&a).await.unwrap();
        assert!(matches!(
            reg.upload_status(&b, &s.id).await,
            Err(Error::UploadUnknown { .. })
        ));
        for id in ["not-a-uuid", "00000000-0000-0000-0000-000000000000"] {
            assert!(matches!(
                reg.upload_status(&a, id).await,
                Err(Error::UploadUnknown { .. })
            ));
        }
        assert_eq!(reg.upload_status(&a, &s.id).await.unwrap().size, 0);
    });
}

#[test]
fn a_session_resumes_after_the_registry_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo("up/app");
    let data = noise(5, 120_000);
    let id = rt().block_on(async {
        let reg = open(dir.path()).await;
        let s = reg.upload_start(&r).await.unwrap();
        reg.upload_append(&r, &s.id, Some(0), body(&data[..70_000]), None)
            .await
            .unwrap();
        s.id
    });
    // The first runtime is gone with every task of the first handle.
    rt().block_on(async {
        let reg = open(dir.path()).await;
        let s = reg.upload_status(&r, &id).await.unwrap();
        assert_eq!(s.size, 70_000, "the reopened session reports what it holds");
        assert!(matches!(
            reg.upload_append(&r, &id, Some(0), body(&data[70_000..]), None)
                .await,
            Err(Error::UploadOffset {
                expected: 70_000,
                got: 0
            })
        ));
        reg.upload_append(&r, &id, Some(70_000), body(&data[70_000..100_000]), None)
            .await
            .unwrap();
        // The digest covers the chunks written before the reopen.
        reg.upload_finish(&r, &id, &sha(&data), Some((body(&data[100_000..]), None)))
            .await
            .unwrap();
        assert_eq!(read_blob(&reg, &r, &sha(&data)).await, data);
    });
}

#[test]
fn a_stored_blob_mounts_into_another_repository_and_unlinks_per_repository() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let (a, b) = (repo("up/a"), repo("up/b"));
        let d = put_blob(&reg, &a, b"shared bytes").await;
        assert!(!has_blob(&reg, &b, &d).await);
        assert!(reg.blob_mount(&b, &d, Some(&a)).await.unwrap());
        assert_eq!(read_blob(&reg, &b, &d).await, b"shared bytes");
        reg.blob_unlink(&a, &d).await.unwrap();
        assert!(!has_blob(&reg, &a, &d).await);
        assert!(
            has_blob(&reg, &b, &d).await,
            "unlinking in one repository keeps the other's"
        );
        // Mounting from a repository that does not link it mounts nothing.
        assert!(!reg.blob_mount(&repo("up/c"), &d, Some(&a)).await.unwrap());
        assert!(matches!(
            reg.blob_unlink(&a, &d).await,
            Err(Error::BlobUnknown { .. })
        ));
    });
}
