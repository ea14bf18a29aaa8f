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
/// Bodies up to this size are written with one `put`; larger ones stream
/// through a multipart upload so memory stays bounded.
const SMALL_BODY: usize = 1 << 20;
/// Multipart chunk size: memory per streaming upload is bounded by this
/// times the in-flight chunk count below.
const PART_SIZE: usize = 1 << 20;
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
}

impl Objects {
    pub(crate) fn new(os: Arc<dyn ObjectStore>) -> Objects {
        Objects { os }
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
            [one] => match self.os.rename_if_not_exists(one, dest).await {
                Ok(()) => {}
                Err(object_store::Error::AlreadyExists { .. }) => return Ok(false),
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
