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

/// The files under `uploads/` of a data directory, with their sizes.
fn upload_files(data: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let Ok(rd) = std::fs::read_dir(data.join("uploads")) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd
        .map(|e| {
            let p = e.unwrap().path();
            let len = std::fs::metadata(&p).unwrap().len();
            (p, len)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn chunks_on_the_local_disk_append_to_one_file_that_the_commit_renames() {
    use std::os::unix::fs::MetadataExt;
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open_fs(dir.path()).await;
        let r = repo("up/app");
        let data = noise(11, 3 * 90_000);
        let s = reg.upload_start(&r).await.unwrap();
        for i in 0..3 {
            let part = &data[i * 90_000..(i + 1) * 90_000];
            reg.upload_append(&r, &s.id, Some((i * 90_000) as u64), body(part), None)
                .await
                .unwrap();
            let files = upload_files(dir.path());
            assert_eq!(files.len(), 1, "one staging file per session: {files:?}");
            assert_eq!(files[0].1, ((i + 1) * 90_000) as u64);
        }
        let staged = std::fs::metadata(&upload_files(dir.path())[0].0)
            .unwrap()
            .ino();
        let d = sha(&data);
        reg.upload_finish(&r, &s.id, &d, None).await.unwrap();
        assert!(upload_files(dir.path()).is_empty());
        let blob = std::fs::metadata(blob_file(dir.path(), &d)).unwrap();
        assert_eq!(blob.ino(), staged, "the commit renames, it does not copy");
        assert_eq!(read_blob(&reg, &r, &d).await, data);
    });
}

#[test]
fn a_refused_chunk_leaves_the_session_file_as_it_was() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open_fs(dir.path()).await;
        let r = repo("up/app");
        let data = noise(12, 100_000);
        let s = reg.upload_start(&r).await.unwrap();
        reg.upload_append(&r, &s.id, Some(0), body(&data[..40_000]), None)
            .await
            .unwrap();
        // Declares more than it sends.
        let e = reg
            .upload_append(
                &r,
                &s.id,
                Some(40_000),
                body(&data[40_000..50_000]),
                Some(20_000),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::SizeMismatch { .. }), "{e:?}");
        assert_eq!(upload_files(dir.path())[0].1, 40_000);
        assert_eq!(reg.upload_status(&r, &s.id).await.unwrap().size, 40_000);
        reg.upload_append(&r, &s.id, Some(40_000), body(&data[40_000..]), None)
            .await
            .unwrap();
        reg.upload_finish(&r, &s.id, &sha(&data), None)
            .await
            .unwrap();
        assert_eq!(read_blob(&reg, &r, &sha(&data)).await, data);
    });
}

#[test]
fn bytes_a_crash_left_after_the_last_recorded_chunk_are_cut_off() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let r = repo("up/app");
    let data = noise(13, 120_000);
    let id = rt().block_on(async {
        let reg = open_fs(dir.path()).await;
        let s = reg.upload_start(&r).await.unwrap();
        reg.upload_append(&r, &s.id, Some(0), body(&data[..70_000]), None)
            .await
            .unwrap();
        s.id
    });
    // As if the process died after writing a chunk and before recording it.
    let files = upload_files(dir.path());
    assert_eq!(files.len(), 1);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&files[0].0)
        .unwrap()
        .write_all(&noise(99, 5_000))
        .unwrap();
    rt().block_on(async {
        let reg = open_fs(dir.path()).await;
        assert_eq!(reg.upload_status(&r, &id).await.unwrap().size, 70_000);
        assert_eq!(upload_files(dir.path())[0].1, 70_000);
        reg.upload_finish(&r, &id, &sha(&data), Some((body(&data[70_000..]), None)))
            .await
            .unwrap();
        assert_eq!(read_blob(&reg, &r, &sha(&data)).await, data);
    });
}

#[test]
fn a_final_chunk_whose_commit_fails_is_not_part_of_the_session() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open_fs(dir.path()).await;
        let r = repo("up/app");
        let data = noise(14, 90_000);
        let d = sha(&data);
        let s = reg.upload_start(&r).await.unwrap();
        reg.upload_append(&r, &s.id, Some(0), body(&data[..60_000]), None)
            .await
            .unwrap();
        // A file where the blob's directory must go: the commit cannot
        // place the blob.
        let blob_dir = blob_file(dir.path(), &d).parent().unwrap().to_path_buf();
        std::fs::create_dir_all(blob_dir.parent().unwrap()).unwrap();
        std::fs::write(&blob_dir, b"in the way").unwrap();
        let final_chunk = || Some((body(&data[60_000..]), Some(30_000)));
        reg.upload_finish(&r, &s.id, &d, final_chunk())
            .await
            .unwrap_err();
        assert!(!has_blob(&reg, &r, &d).await);
        // The final chunk was not acknowledged: the session stands where
        // its last acknowledged chunk left it, on disk too.
        assert_eq!(reg.upload_status(&r, &s.id).await.unwrap().size, 60_000);
        assert_eq!(upload_files(dir.path())[0].1, 60_000);
        std::fs::remove_file(&blob_dir).unwrap();
        reg.upload_finish(&r, &s.id, &d, final_chunk())
            .await
            .unwrap();
        assert_eq!(read_blob(&reg, &r, &d).await, data);
    });
}
