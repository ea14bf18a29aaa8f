//! Blob bytes: the only module that talks to `object_store`.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use berth_oci::{Algorithm, ByteRange, Digest};
use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use futures::Stream;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, WriteMultipart,
};
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, Result};

/// Reads from local files go in blocks this large: 4 KiB reads cost 3-4x in
/// throughput and CPU against sendfile.
const READ_BLOCK: usize = 1 << 20;
/// Multipart chunk size: S3 refuses parts under 5 MiB (but the last), and
/// memory per streaming upload is bounded by this times the in-flight
/// chunk count below. Only stores other than the local disk stream this
/// way (the local disk appends to files).
const PART_SIZE: usize = 5 << 20;
/// Bodies up to this size are written with one `put` (one request to S3
/// instead of three); larger ones stream through a multipart upload.
const SMALL_BODY: usize = PART_SIZE;
const PARTS_IN_FLIGHT: usize = 2;

/// A stream of body bytes handed to the store.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A blob being read: the range served and its bytes.
pub struct BlobRead {
    /// Total size of the blob.
    pub size: u64,
    /// The bytes served (all, or the requested range).
    pub range: Option<ByteRange>,
    /// The bytes.
    pub body: ByteStream,
}

#[derive(Clone)]
pub(crate) struct Objects {
    os: Arc<dyn ObjectStore>,
    /// The directory `os` keeps its objects in, when it is the local disk:
    /// upload chunks are then appended to one file per session instead of
    /// one object per chunk (which the commit would have to copy again).
    local_root: Option<Arc<std::path::PathBuf>>,
    /// Whether `os` refuses a create-if-absent write over an existing
    /// object (checked at start by [`refuses_second_create`]). Without it,
    /// a create is a check and a write: safe, because every object's name
    /// is its content's digest (or a fresh upload id), so a write over an
    /// existing object puts the same bytes there.
    native_create: bool,
    /// Presigns blob pulls answered with a redirect (S3 with
    /// `storage.redirect`).
    signer: Option<crate::backend::UrlSigner>,
}

impl Objects {
    /// Objects in `os`; `local_root` is the directory it keeps them in
    /// when it is a `LocalFileSystem`.
    pub(crate) fn new(
        os: Arc<dyn ObjectStore>,
        local_root: Option<std::path::PathBuf>,
        native_create: bool,
        signer: Option<crate::backend::UrlSigner>,
    ) -> Objects {
        Objects {
            os,
            local_root: local_root.map(Arc::new),
            native_create,
            signer,
        }
    }

    /// A presigned URL of the object at `path` for clients to fetch it
    /// from the bucket themselves; `None` unless redirects are on.
    pub(crate) async fn signed_get(&self, path: &Path) -> Result<Option<String>> {
        match &self.signer {
            Some(s) => Ok(Some(s.get_url(path).await?)),
            None => Ok(None),
        }
    }

    /// The local file of an object path, when objects are local files.
    /// `LocalFileSystem` keeps `a/b` at `<root>/a/b`; the store's object
    /// paths (drawn in `layout`) need no escaping.
    fn local_file(&self, path: &Path) -> Option<std::path::PathBuf> {
        self.local_root.as_ref().map(|r| r.join(path.as_ref()))
    }

    /// Whether [`Objects::append_local`] can be used.
    pub(crate) fn appends(&self) -> bool {
        self.local_root.is_some()
    }

    /// Cuts the local file of `path` back to `len` bytes if it is longer
    /// (bytes a crash left after the last recorded chunk). Nothing to do
    /// when objects are not local files, or the file does not exist.
    pub(crate) async fn truncate_local(&self, path: &Path, len: u64) -> Result<()> {
        let Some(file) = self.local_file(path) else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || cut_back(&file, len))
            .await
            .map_err(|e| Error::BlobFile {
                source: std::io::Error::other(e),
            })?
    }

    /// Appends `body` to the local file of `path` at byte `at` (anything
    /// after `at` is cut first), feeding `hasher`, and makes its bytes
    /// durable before returning how many were appended; with `keep_name`,
    /// a new file's name too (a session's file, which metadata points to;
    /// a monolithic upload's staging file is only ever published by a
    /// rename, which makes the new name durable). On any error the file is
    /// cut back to `at`, so the session stays as it was.
    pub(crate) async fn append_local(
        &self,
        path: &Path,
        at: u64,
        keep_name: bool,
        mut body: impl Stream<Item = Result<Bytes>> + Unpin,
        hasher: &mut Sha256,
    ) -> Result<u64> {
        let file = self
            .local_file(path)
            .expect("append_local is only called when appends() holds");
        // Why a bounded channel: the file is written on the blocking pool
        // while the body arrives here; two chunks in flight keep memory per
        // upload at a few network buffers however fast the client sends.
        // `None` says the body ended well; a dropped sender, that it failed.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Option<Bytes>>(2);
        let writer = tokio::task::spawn_blocking(move || -> Result<u64> {
            use std::io::Write;
            let io = Error::file;
            let created = !file.exists();
            if let Some(dir) = file.parent() {
                make_dir(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&file)
                .map_err(io)?;
            f.set_len(at).map_err(io)?;
            f.seek(SeekFrom::Start(at)).map_err(io)?;
            let mut n = 0u64;
            let done = loop {
                match rx.blocking_recv() {
                    Some(Some(chunk)) => {
                        if let Err(e) = f.write_all(&chunk) {
                            break Err(io(e));
                        }
                        n += chunk.len() as u64;
                    }
                    Some(None) => break f.sync_data().map_err(io),
                    None => {
                        break Err(Error::BlobFile {
                            source: std::io::Error::other("the body ended early"),
                        })
                    }
                }
            };
            if let Err(e) = done {
                drop(f);
                let _ = cut_back(&file, at);
                return Err(e);
            }
            if created && keep_name {
                // The new name must survive a crash as well as the bytes.
                if let Some(dir) = file.parent() {
                    sync_dir(dir)?;
                }
            }
            Ok(n)
        });
        let mut failed = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => {
                    hasher.update(&c);
                    if tx.send(Some(c)).await.is_err() {
                        break; // the writer failed; its error is below
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_none() {
            let _ = tx.send(None).await;
        }
        drop(tx);
        let written = writer.await.map_err(|e| Error::BlobFile {
            source: std::io::Error::other(e),
        })?;
        match failed {
            Some(e) => Err(e),
            None => written,
        }
    }

    /// Streams `body` into `path`, feeding `hasher`; returns the byte count.
    /// On error nothing is left at `path`.
    pub(crate) async fn write_stream(
        &self,
        path: &Path,
        mut body: impl Stream<Item = Result<Bytes>> + Unpin,
        hasher: &mut Sha256,
    ) -> Result<u64> {
        let mut total = 0u64;
        let mut head = BytesMut::new();
        // Gather up to SMALL_BODY; most manifests, configs and small layers
        // end here and take a single put.
        let mut upload: Option<WriteMultipart> = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    if let Some(u) = upload.take() {
                        let _ = u.abort().await;
                    }
                    return Err(e);
                }
            };
            hasher.update(&chunk);
            total += chunk.len() as u64;
            match upload.as_mut() {
                None => {
                    head.extend_from_slice(&chunk);
                    if head.len() > SMALL_BODY {
                        let mp = self.os.put_multipart(path).await?;
                        let mut w = WriteMultipart::new_with_chunk_size(mp, PART_SIZE);
                        w.write(&head);
                        head = BytesMut::new();
                        upload = Some(w);
                    }
                }
                Some(w) => {
                    if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                        let u = upload.take().expect("present");
                        let _ = u.abort().await;
                        return Err(e.into());
                    }
                    w.put(chunk);
                }
            }
        }
        match upload {
            Some(w) => {
                w.finish().await?;
            }
            None => {
                self.os
                    .put(path, PutPayload::from_bytes(head.freeze()))
                    .await?;
            }
        }
        Ok(total)
    }

    /// Writes small bytes create-if-absent; an existing object is fine
    /// (content-addressed, so it holds the same bytes).
    pub(crate) async fn put_if_absent(&self, path: &Path, bytes: Bytes) -> Result<()> {
        if !self.native_create {
            if !self.exists(path).await? {
                self.os.put(path, PutPayload::from_bytes(bytes)).await?;
            }
            return Ok(());
        }
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .os
            .put_opts(path, PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `bytes` at `path`, reads them back and deletes the object:
    /// the object store takes writes, reads and deletes.
    pub(crate) async fn round_trip(&self, path: &Path, bytes: Bytes) -> Result<()> {
        self.os
            .put(path, PutPayload::from_bytes(bytes.clone()))
            .await?;
        let read = self.os.get(path).await;
        let read = match read {
            Ok(r) => r.bytes().await.map_err(Error::from),
            Err(e) => Err(e.into()),
        };
        // Deleted whatever the read gave, so that a failed probe leaves
        // nothing behind.
        let deleted = self.os.delete(path).await;
        if read? != bytes {
            return Err(Error::Corrupt {
                what: format!("the object store returned other bytes for {path}"),
            });
        }
        deleted?;
        Ok(())
    }

    /// Writes `body` to a fresh staging object under `uploads/` that no
    /// metadata names (a crash leaves an orphan for `berth gc`), feeding
    /// `hasher`: straight to its file on the local disk (no multipart
    /// buffers), streamed elsewhere. Returns the object and the byte count;
    /// on error nothing is left.
    pub(crate) async fn write_staging(
        &self,
        body: impl Stream<Item = Result<Bytes>> + Unpin,
        hasher: &mut Sha256,
    ) -> Result<(Path, u64)> {
        let path = crate::layout::upload_part_path(&uuid::Uuid::new_v4(), 0, 0);
        let written = if self.appends() {
            self.append_local(&path, 0, false, body, hasher).await
        } else {
            self.write_stream(&path, body, hasher).await
        };
        match written {
            Ok(n) => Ok((path, n)),
            Err(e) => {
                self.delete_all(std::slice::from_ref(&path)).await;
                Err(e)
            }
        }
    }

    /// The size of the object at `path`, `None` when there is none.
    pub(crate) async fn size(&self, path: &Path) -> Result<Option<u64>> {
        match self.os.head(path).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn exists(&self, path: &Path) -> Result<bool> {
        match self.os.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes the concatenation of `parts` the object `dest` unless `dest`
    /// exists already (content-addressed: it holds the same bytes). A
    /// single part is renamed (no copy); several are streamed into a new
    /// object. `dest` appears atomically either way. Returns whether the
    /// parts were consumed; if not, the caller removes them once the blob
    /// is safely recorded (garbage collection may be deleting `dest`).
    pub(crate) async fn move_parts_if_absent(&self, parts: &[Path], dest: &Path) -> Result<bool> {
        if self.exists(dest).await? {
            return Ok(false);
        }
        match parts {
            [] => self.put_if_absent(dest, Bytes::new()).await?,
            [one] if self.appends() => {
                let (from, to) = (
                    self.local_file(one).expect("local"),
                    self.local_file(dest).expect("local"),
                );
                let published = tokio::task::spawn_blocking(move || publish(&from, &to))
                    .await
                    .map_err(|e| Error::BlobFile {
                        source: std::io::Error::other(e),
                    })??;
                if !published {
                    return Ok(false);
                }
            }
            [one] => match self.os.rename_if_not_exists(one, dest).await {
                Ok(()) => {}
                Err(object_store::Error::AlreadyExists { .. }) => return Ok(false),
                // S3 has no conditional copy: a server-side copy (no byte
                // passes through Berth) over a name checked just above to
                // be absent; a racing identical upload writes the same
                // bytes.
                Err(object_store::Error::NotSupported { .. })
                | Err(object_store::Error::NotImplemented { .. }) => {
                    self.os.copy(one, dest).await?;
                    self.delete_all(std::slice::from_ref(one)).await;
                }
                Err(e) => return Err(e.into()),
            },
            many => {
                let mp = self.os.put_multipart(dest).await?;
                let mut w = WriteMultipart::new_with_chunk_size(mp, PART_SIZE);
                for p in many {
                    let mut s = self.read(p, None).await?.body;
                    while let Some(chunk) = s.next().await {
                        let chunk = match chunk {
                            Ok(c) => c,
                            Err(e) => {
                                let _ = w.abort().await;
                                return Err(e);
                            }
                        };
                        if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                            let _ = w.abort().await;
                            return Err(e.into());
                        }
                        w.put(chunk);
                    }
                }
                w.finish().await?;
                self.delete_all(parts).await;
            }
        }
        Ok(true)
    }

    /// Every object under a prefix.
    pub(crate) fn list(
        &self,
        prefix: &str,
    ) -> BoxStream<'static, Result<object_store::ObjectMeta>> {
        let prefix = Path::from(prefix);
        self.os
            .list(Some(&prefix))
            .map(|r| r.map_err(Error::from))
            .boxed()
    }

    /// Hashes the concatenation of objects with `algorithm` (recovery path:
    /// after a restart, or for sha512 digests).
    pub(crate) async fn hash(
        &self,
        parts: &[Path],
        algorithm: Algorithm,
    ) -> Result<(Digest, Option<Sha256>)> {
        let mut s256 = Sha256::new();
        let mut s512 = Sha512::new();
        for p in parts {
            let mut s = self.read(p, None).await?.body;
            while let Some(chunk) = s.next().await {
                let chunk = chunk?;
                match algorithm {
                    Algorithm::Sha256 => s256.update(&chunk),
                    Algorithm::Sha512 => s512.update(&chunk),
                }
            }
        }
        Ok(match algorithm {
            Algorithm::Sha256 => (
                Digest::from_raw(Algorithm::Sha256, &s256.clone().finalize()),
                Some(s256),
            ),
            Algorithm::Sha512 => (Digest::from_raw(Algorithm::Sha512, &s512.finalize()), None),
        })
    }

    /// Best-effort removal (cleanup after success or failure; whatever is
    /// left is found by `berth gc`).
    pub(crate) async fn delete_all(&self, paths: &[Path]) {
        for p in paths {
            match self.os.delete(p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => tracing::warn!(path = %p, error = %e, "could not remove object"),
            }
        }
    }

    /// Reads an object, or a range of it.
    pub(crate) async fn read(&self, path: &Path, range: Option<ByteRange>) -> Result<BlobRead> {
        let opts = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start..r.end + 1)),
            ..Default::default()
        };
        let res = match self.os.get_opts(path, opts).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::Corrupt {
                    what: format!("object {path} is recorded but missing; run `berth fsck`"),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let size = res.meta.size;
        let served = res.range.clone();
        let body: ByteStream = match res.payload {
            GetResultPayload::File(file, _) => file_stream(file, served.start, served.end),
            GetResultPayload::Stream(s) => s.map(|r| r.map_err(Error::from)).boxed(),
        };
        Ok(BlobRead { size, range, body })
    }
}

/// Whether `os` refuses a second create-if-absent write of `path` (S3's
/// `If-None-Match: *`, which not every S3-compatible server honours). The
/// probe object is removed again. An error means the store cannot be
/// written at all.
pub(crate) async fn refuses_second_create(os: &dyn ObjectStore, path: &Path) -> Result<bool> {
    let create = || PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    let bytes = || PutPayload::from_static(b"berth create-if-absent probe\n");
    let first = os.put_opts(path, bytes(), create()).await;
    let written = first.is_ok();
    let refused = match first {
        Ok(_) => match os.put_opts(path, bytes(), create()).await {
            Err(object_store::Error::AlreadyExists { .. }) => Ok(true),
            Ok(_) | Err(object_store::Error::NotImplemented { .. }) => Ok(false),
            Err(e) => Err(e),
        },
        Err(object_store::Error::NotImplemented { .. })
        | Err(object_store::Error::NotSupported { .. }) => Ok(false),
        Err(e) => Err(e),
    };
    if written {
        match os.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(path = %path, error = %e, "could not remove the probe object"),
        }
    }
    Ok(refused?)
}

/// Makes the durable file `from` the file `to` unless `to` exists; returns
/// whether it did. Only `to`'s name needs to survive a crash: `from` left
/// behind would be an orphan that `berth gc` sweeps, so its removal is not
/// synced (one directory sync per blob instead of two).
fn publish(from: &std::path::Path, to: &std::path::Path) -> Result<bool> {
    let io = Error::file;
    let dir = to.parent().expect("blob paths have a directory");
    make_dir(dir)?;
    match std::fs::hard_link(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io(e)),
    }
    sync_dir(dir)?;
    if let Err(e) = std::fs::remove_file(from) {
        tracing::warn!(error = %e, path = %from.display(), "could not remove a published upload file");
    }
    Ok(true)
}

/// Creates `dir` and its missing parents, durably: each new directory's
/// name is synced in its parent.
fn make_dir(dir: &std::path::Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d.filter(|p| !p.exists()) {
        missing.push(p);
        d = p.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(Error::file)?;
    for p in missing {
        if let Some(up) = p.parent() {
            sync_dir(up)?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::file)
}

/// Cuts `file` back to `len` bytes if it is longer; a missing file is fine.
fn cut_back(file: &std::path::Path, len: u64) -> Result<()> {
    let io = Error::file;
    match std::fs::OpenOptions::new().write(true).open(file) {
        Ok(f) => {
            if f.metadata().map_err(io)?.len() > len {
                f.set_len(len).map_err(io)?;
                f.sync_data().map_err(io)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// Streams `start..end` of a local file in large blocks on the blocking
/// pool. A bounded channel of two blocks keeps memory per download at a few
/// MiB however slow the client is.
fn file_stream(mut file: std::fs::File, start: u64, end: u64) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(2);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(Error::BlobFile { source: e }));
            return;
        }
        let mut left = end - start;
        while left > 0 {
            let n = (left as usize).min(READ_BLOCK);
            // read_to_end fills spare capacity without zeroing it first:
            // zeroing 1 MiB per block was nearly all of a pull's CPU time.
            let mut buf = Vec::with_capacity(n);
            if let Err(e) = (&mut file).take(n as u64).read_to_end(&mut buf) {
                let _ = tx.blocking_send(Err(Error::BlobFile { source: e }));
                return;
            }
            let got = buf.len();
            if got == 0 {
                let _ = tx.blocking_send(Err(Error::Corrupt {
                    what: "blob file is shorter than recorded".into(),
                }));
                return;
            }
            left -= got as u64;
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return; // client went away
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    async fn read_all(o: &Objects, p: &Path) -> Vec<u8> {
        let mut s = o.read(p, None).await.unwrap().body;
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn the_create_probe_sees_a_store_that_refuses_and_leaves_nothing() {
        let os = Arc::new(InMemory::new());
        let probe = Path::from("probe/x");
        assert!(refuses_second_create(&*os, &probe).await.unwrap());
        assert!(os.head(&probe).await.is_err(), "the probe object was left");
    }

    #[tokio::test]
    async fn without_native_create_an_existing_object_is_kept_and_a_missing_one_written() {
        let o = Objects::new(Arc::new(InMemory::new()), None, false, None);
        let p = Path::from("blobs/a");
        o.put_if_absent(&p, Bytes::from_static(b"first"))
            .await
            .unwrap();
        o.put_if_absent(&p, Bytes::from_static(b"second"))
            .await
            .unwrap();
        assert_eq!(read_all(&o, &p).await, b"first");
    }

    #[tokio::test]
    async fn parts_become_one_object_and_an_existing_destination_is_not_touched() {
        let o = Objects::new(Arc::new(InMemory::new()), None, true, None);
        let mut h = Sha256::new();
        let parts: Vec<Path> = (0..3)
            .map(|i| Path::from(format!("uploads/u.{i}")))
            .collect();
        for (i, p) in parts.iter().enumerate() {
            let body = futures::stream::iter([Ok(Bytes::from(vec![b'a' + i as u8; 3]))]);
            o.write_stream(p, body, &mut h).await.unwrap();
        }
        let dest = Path::from("blobs/d");
        assert!(o.move_parts_if_absent(&parts, &dest).await.unwrap());
        assert_eq!(read_all(&o, &dest).await, b"aaabbbccc");
        for p in &parts {
            assert!(!o.exists(p).await.unwrap(), "{p} left behind");
        }
        let one = Path::from("uploads/v.0");
        let body = futures::stream::iter([Ok(Bytes::from_static(b"other"))]);
        o.write_stream(&one, body, &mut h).await.unwrap();
        assert!(!o
            .move_parts_if_absent(std::slice::from_ref(&one), &dest)
            .await
            .unwrap());
        assert_eq!(read_all(&o, &dest).await, b"aaabbbccc");
        assert!(
            o.exists(&one).await.unwrap(),
            "the caller removes unused parts"
        );
    }
}
