//! Garbage collection that never needs downtime.
//!
//! Every blob record counts what needs it: `links` (repositories that may
//! serve it) and `refs` (manifests that reference it: configs, layers,
//! index children). Both counters change in the same transaction as the
//! rows they count, so a blob with `links == 0 && refs == 0` is needed by
//! nothing. Deleting one is a three-step protocol:
//!
//! 1. In one transaction, re-check the counters and the grace period
//!    (`updated_at` older than the grace), then mark the record `Deleting`.
//! 2. Remove the bytes.
//! 3. In one transaction, remove the record.
//!
//! Every transaction that links or references a blob first checks that it
//! is `Live` (and fails with a retryable error otherwise), so a concurrent
//! push can never end with a manifest whose blob is gone: either it linked
//! the blob before step 1 (and step 1 sees the counter), or it sees
//! `Deleting` and waits for step 3, then writes the bytes again.
//!
//! The offline pass (`berth gc`) is a full mark-and-sweep over the
//! metadata that also recomputes the counters and removes orphan objects;
//! it is the backstop after crashes and restores.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use berth_oci::{Digest, ManifestKind, Reference, RepoName};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{
    now_millis, BlobRecord, BlobState, LinkRecord, ManifestRecord, Millis, TagRecord, UploadRecord,
};
use crate::Registry;

/// Options of one garbage-collection run (persisted in runs: lenient).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GcOptions {
    /// Report what would be deleted; delete nothing.
    pub dry_run: bool,
    /// Also delete manifests no tag reaches (through index children and
    /// referrer subjects).
    pub delete_untagged: bool,
    /// Apply every namespace's retention policies first.
    #[serde(default)]
    pub apply_retention: bool,
}

/// What a run deleted (or, dry, would delete). Persisted in runs: lenient.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct GcReport {
    /// Whether nothing was actually deleted.
    pub dry_run: bool,
    /// Untagged manifests deleted, as `repo@digest`.
    pub manifests_deleted: Vec<String>,
    /// Blobs deleted.
    pub blobs_deleted: u64,
    /// Bytes of blobs deleted.
    pub bytes_freed: u64,
    /// Upload sessions expired, with their partial data.
    pub uploads_expired: u64,
    /// Objects with no metadata removed (leftovers of crashes).
    pub orphans_removed: u64,
    /// Blobs that could be deleted but are within the grace period.
    pub blobs_in_grace: u64,
    /// Tags and untagged artifacts removed by retention policies.
    #[serde(default)]
    pub retention_deleted: Vec<String>,
    /// Every manifest deleted (or, dry, that would be), with why.
    #[serde(default)]
    pub manifests: Vec<GcManifest>,
    /// Every blob deleted (or, dry, that would be).
    #[serde(default)]
    pub blobs: Vec<GcBlob>,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
}

/// A manifest a run deletes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct GcManifest {
    /// Full repository name.
    pub repository: String,
    /// Manifest digest.
    pub digest: String,
    /// Tags pointing at it (none: only manifests no tag reaches go).
    pub tags: Vec<String>,
    /// Why it goes.
    pub reason: String,
}

/// A blob a run deletes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct GcBlob {
    /// Digest.
    pub digest: String,
    /// Bytes.
    pub size: u64,
}

/// Counters of a long maintenance run (garbage collection, fsck), read by
/// whoever shows progress.
#[derive(Debug, Default)]
pub struct Progress {
    // Why atomics: the run updates them, a display task reads them; no
    // value depends on another.
    /// Items handled so far in the current phase.
    pub done: std::sync::atomic::AtomicU64,
    /// Items the current phase will handle.
    pub total: std::sync::atomic::AtomicU64,
    /// Bytes handled so far (deleted, or read and hashed).
    pub bytes: std::sync::atomic::AtomicU64,
}

impl Progress {
    pub(crate) fn start(&self, total: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.done.store(0, Relaxed);
        self.bytes.store(0, Relaxed);
        self.total.store(total, Relaxed);
    }
    pub(crate) fn step(&self, bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.done.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }
}

impl Registry {
    /// Deletes one unneeded blob with the three-step protocol. Returns the
    /// bytes freed, or `None` if the blob turned out to be needed, too
    /// young, or already gone.
    async fn delete_blob_if_unneeded(
        &self,
        digest: &Digest,
        grace: Duration,
        dry_run: bool,
    ) -> Result<Option<u64>> {
        let key = digest.to_string();
        let cutoff = now_millis() - grace.as_millis() as i64;
        let marked = self.meta().transact(|tx| {
            let Some(mut rec) = meta::tx_get::<BlobRecord>(tx, Table::Blobs, key.as_bytes())?
            else {
                return Ok(None);
            };
            let deletable = rec.state == BlobState::Deleting
                || (rec.links == 0 && rec.refs == 0 && rec.updated_at <= cutoff);
            if !deletable {
                return Ok(None);
            }
            if !dry_run && rec.state != BlobState::Deleting {
                rec.state = BlobState::Deleting;
                meta::tx_put(tx, Table::Blobs, key.as_bytes(), &rec)?;
            }
            Ok(Some(rec.size))
        })?;
        let Some(size) = marked else { return Ok(None) };
        if dry_run {
            return Ok(Some(size));
        }
        self.durable().await?;
        self.inner
            .objects
            .delete_all(&[layout::blob_path(digest)])
            .await;
        self.inner.manifest_cache.forget(digest);
        self.meta().transact(|tx| {
            if let Some(rec) = meta::tx_get::<BlobRecord>(tx, Table::Blobs, key.as_bytes())? {
                if rec.state == BlobState::Deleting {
                    tx.delete(Table::Blobs, key.as_bytes())?;
                }
            }
            Ok(())
        })?;
        self.durable().await?;
        Ok(Some(size))
    }

    /// Manifests that no tag reaches, per repository: roots are tagged
    /// manifests; an index keeps its children; a kept manifest keeps its
    /// referrers. Manifests pushed within the grace period are kept too
    /// (an index's children are pushed before the index).
    fn untagged_manifests(&self, grace: Duration) -> Result<Vec<(RepoName, Digest)>> {
        let cutoff = now_millis() - grace.as_millis() as i64;
        let mut by_repo: BTreeMap<String, BTreeMap<Digest, ManifestRecord>> = BTreeMap::new();
        for (k, v) in self.meta().scan(Table::Manifests, b"", None, usize::MAX)? {
            let (repo, digest) = split_repo_key(&k)?;
            by_repo.entry(repo).or_default().insert(
                digest.parse().map_err(|_| corrupt("manifest key"))?,
                meta::decode(Table::Manifests, &v)?,
            );
        }
        let mut tagged: HashMap<String, BTreeSet<Digest>> = HashMap::new();
        for (k, v) in self.meta().scan(Table::Tags, b"", None, usize::MAX)? {
            let (repo, _) = split_repo_key(&k)?;
            let t: TagRecord = meta::decode(Table::Tags, &v)?;
            tagged.entry(repo).or_default().insert(t.digest);
        }
        let mut out = Vec::new();
        for (repo, manifests) in by_repo {
            let mut keep: BTreeSet<Digest> = tagged.remove(&repo).unwrap_or_default();
            keep.extend(
                manifests
                    .iter()
                    .filter(|(_, m)| m.pushed_at > cutoff)
                    .map(|(d, _)| d.clone()),
            );
            // Fixpoint: children of kept indexes, referrers of kept subjects.
            loop {
                let before = keep.len();
                for (d, m) in &manifests {
                    if keep.contains(d) && m.kind == ManifestKind::Index {
                        keep.extend(m.children.iter().map(|(c, _)| c.clone()));
                    }
                    if m.subject.as_ref().is_some_and(|s| keep.contains(s)) {
                        keep.insert(d.clone());
                    }
                }
                if keep.len() == before {
                    break;
                }
            }
            let name: RepoName = repo.parse().map_err(|_| corrupt("repository key"))?;
            for d in manifests.keys() {
                if !keep.contains(d) {
                    out.push((name.clone(), d.clone()));
                }
            }
        }
        Ok(out)
    }

    /// The untagged manifests a run deletes, with their tags and why.
    fn describe_untagged(&self, untagged: &[(RepoName, Digest)]) -> Result<Vec<GcManifest>> {
        let mut out = Vec::with_capacity(untagged.len());
        for (repo, d) in untagged {
            let rec: Option<ManifestRecord> = self
                .meta()
                .get_json(Table::Manifests, &layout::repo_key(repo, &d.to_string()))?;
            let reason = match &rec {
                Some(r) if r.subject.is_some() => {
                    "untagged: a referrer whose subject no tag reaches"
                }
                Some(r) if r.kind == ManifestKind::Index => "untagged: an index no tag reaches",
                _ => "untagged: no tag reaches it (directly, through an index or as a referrer)",
            };
            out.push(GcManifest {
                repository: repo.to_string(),
                digest: d.to_string(),
                tags: rec.map(|r| r.tags).unwrap_or_default(),
                reason: reason.to_string(),
            });
        }
        Ok(out)
    }

    /// Upload sessions idle for longer than `ttl`.
    fn expired_uploads(&self, ttl: Duration) -> Result<Vec<(String, UploadRecord)>> {
        let cutoff = now_millis() - ttl.as_millis() as i64;
        let mut out = Vec::new();
        for (k, v) in self.meta().scan(Table::Uploads, b"", None, usize::MAX)? {
            let rec: UploadRecord = meta::decode(Table::Uploads, &v)?;
            if rec.updated_at <= cutoff {
                out.push((String::from_utf8_lossy(&k).to_string(), rec));
            }
        }
        Ok(out)
    }

    /// One garbage-collection run while serving: untagged manifests (if
    /// asked), expired uploads, then every blob nothing needs and that left
    /// the grace period.
    pub async fn gc_run(
        &self,
        opts: &GcOptions,
        grace: Duration,
        upload_ttl: Duration,
    ) -> Result<GcReport> {
        let start = Instant::now();
        let mut report = GcReport {
            dry_run: opts.dry_run,
            ..Default::default()
        };
        let untagged = if opts.delete_untagged {
            self.untagged_manifests(grace)?
        } else {
            Vec::new()
        };
        report.manifests_deleted = untagged.iter().map(|(r, d)| format!("{r}@{d}")).collect();
        report.manifests = self.describe_untagged(&untagged)?;
        report.uploads_expired = self.expired_uploads(upload_ttl)?.len() as u64;
        if opts.dry_run {
            let (blobs, in_grace) = self.simulate(&untagged, grace)?;
            report.blobs_deleted = blobs.len() as u64;
            report.bytes_freed = blobs.iter().map(|b| b.size).sum();
            report.blobs = blobs;
            report.blobs_in_grace = in_grace;
            report.duration_ms = start.elapsed().as_millis() as u64;
            return Ok(report);
        }
        for (repo, d) in &untagged {
            match self
                .manifest_delete(repo, &Reference::Digest(d.clone()))
                .await
            {
                Ok(()) | Err(Error::ManifestUnknown { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for (id, _) in self.expired_uploads(upload_ttl)? {
            self.expire_upload(&id, upload_ttl).await?;
        }
        self.sweep_unreferenced_links(grace).await?;
        let candidates: Vec<Digest> = self
            .meta()
            .scan(Table::Blobs, b"", None, usize::MAX)?
            .into_iter()
            .filter_map(|(k, v)| {
                let d = std::str::from_utf8(&k).ok()?.parse::<Digest>().ok()?;
                let r: BlobRecord = meta::decode(Table::Blobs, &v).ok()?;
                (r.state == BlobState::Deleting || (r.links == 0 && r.refs == 0)).then_some(d)
            })
            .collect();
        self.inner.progress.start(candidates.len() as u64);
        for d in candidates {
            match self.delete_blob_if_unneeded(&d, grace, false).await? {
                Some(size) => {
                    report.blobs_deleted += 1;
                    report.bytes_freed += size;
                    report.blobs.push(GcBlob {
                        digest: d.to_string(),
                        size,
                    });
                    self.inner.progress.step(size);
                }
                None => {
                    report.blobs_in_grace += 1;
                    self.inner.progress.step(0);
                }
            }
        }
        report.duration_ms = start.elapsed().as_millis() as u64;
        tracing::info!(?report, "garbage collection finished");
        Ok(report)
    }

    /// Links that no manifest of their repository references and that no
    /// push touched within the grace period: layers of deleted images,
    /// blobs uploaded and never used. Removing them is what lets the bytes
    /// go. A push that relied on such a link between its upload and its
    /// manifest gets `MANIFEST_BLOB_UNKNOWN` and uploads again.
    async fn sweep_unreferenced_links(&self, grace: Duration) -> Result<u64> {
        let cutoff = now_millis() - grace.as_millis() as i64;
        let mut removed = 0;
        for (k, v) in self.meta().scan(Table::Links, b"", None, usize::MAX)? {
            let link: LinkRecord = meta::decode(Table::Links, &v)?;
            if link.refs > 0 || link.touched_at.max(link.created_at) > cutoff {
                continue;
            }
            let (repo, d) = split_repo_key(&k)?;
            let (Ok(repo), Ok(d)) = (repo.parse::<RepoName>(), d.parse::<Digest>()) else {
                continue;
            };
            let gone = self.meta().transact(|tx| {
                let Some(link) = meta::tx_get::<LinkRecord>(tx, Table::Links, &k)? else {
                    return Ok(false);
                };
                // A manifest's own link stays while the manifest does.
                if link.refs > 0
                    || link.touched_at.max(link.created_at) > cutoff
                    || tx.get(Table::Manifests, &k)?.is_some()
                {
                    return Ok(false);
                }
                tx.delete(Table::Links, &k)?;
                tx.delete(Table::BlobLinks, &layout::blob_link_key(&d, &repo))?;
                crate::blobs::counters::count_in_tx(tx, &d, -1, 0)?;
                Ok(true)
            })?;
            removed += gone as u64;
        }
        if removed > 0 {
            self.durable().await?;
        }
        Ok(removed)
    }

    /// What a real run would delete, computed on a copy of the counters:
    /// untagged manifests deleted, then unreferenced links, then blobs.
    /// Counters a step changes restart their grace period, as in a real run.
    fn simulate(
        &self,
        untagged: &[(RepoName, Digest)],
        grace: Duration,
    ) -> Result<(Vec<GcBlob>, u64)> {
        let now = now_millis();
        let cutoff = now - grace.as_millis() as i64;
        let mut blobs: HashMap<Digest, BlobRecord> = HashMap::new();
        for (k, v) in self.meta().scan(Table::Blobs, b"", None, usize::MAX)? {
            if let Some(d) = std::str::from_utf8(&k).ok().and_then(|s| s.parse().ok()) {
                blobs.insert(d, meta::decode(Table::Blobs, &v)?);
            }
        }
        let mut links: BTreeMap<(String, Digest), LinkRecord> = BTreeMap::new();
        for (k, v) in self.meta().scan(Table::Links, b"", None, usize::MAX)? {
            let (repo, d) = split_repo_key(&k)?;
            if let Ok(d) = d.parse() {
                links.insert((repo, d), meta::decode(Table::Links, &v)?);
            }
        }
        let mut manifests: BTreeSet<(String, Digest)> = BTreeSet::new();
        for (k, _) in self.meta().scan(Table::Manifests, b"", None, usize::MAX)? {
            let (repo, d) = split_repo_key(&k)?;
            if let Ok(d) = d.parse() {
                manifests.insert((repo, d));
            }
        }
        let touch = |b: &mut BlobRecord, links: i64, refs: i64| {
            b.links = (b.links as i64 + links).max(0) as u64;
            b.refs = (b.refs as i64 + refs).max(0) as u64;
            b.updated_at = now;
        };
        for (repo, d) in untagged {
            let key = layout::repo_key(repo, &d.to_string());
            let Some(rec) = self
                .meta()
                .get_json::<ManifestRecord>(Table::Manifests, &key)?
            else {
                continue;
            };
            for target in rec.references() {
                if self
                    .meta()
                    .get(Table::BlobRefs, &layout::blob_ref_key(&target, repo, d))?
                    .is_some()
                {
                    if let Some(b) = blobs.get_mut(&target) {
                        touch(b, 0, -1);
                    }
                    if let Some(l) = links.get_mut(&(repo.to_string(), target.clone())) {
                        l.refs = l.refs.saturating_sub(1);
                        l.touched_at = now;
                    }
                }
            }
            manifests.remove(&(repo.to_string(), d.clone()));
            if links.remove(&(repo.to_string(), d.clone())).is_some() {
                if let Some(b) = blobs.get_mut(d) {
                    touch(b, -1, 0);
                }
            }
        }
        let unreferenced: Vec<(String, Digest)> = links
            .iter()
            .filter(|(k, l)| {
                l.refs == 0 && l.touched_at.max(l.created_at) <= cutoff && !manifests.contains(k)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (_, d) in unreferenced {
            if let Some(b) = blobs.get_mut(&d) {
                touch(b, -1, 0);
            }
        }
        let (mut gone, mut in_grace) = (Vec::new(), 0);
        for (d, b) in &blobs {
            if b.state == BlobState::Deleting
                || (b.links == 0 && b.refs == 0 && b.updated_at <= cutoff)
            {
                gone.push(GcBlob {
                    digest: d.to_string(),
                    size: b.size,
                });
            } else if b.links == 0 && b.refs == 0 {
                in_grace += 1;
            }
        }
        gone.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok((gone, in_grace))
    }

    async fn expire_upload(&self, id: &str, ttl: Duration) -> Result<()> {
        let uuid = uuid::Uuid::parse_str(id).map_err(|_| corrupt("upload key"))?;
        // Hold the session's lock: a chunk arriving now either lands
        // before the expiry (and the session is kept) or finds it gone.
        let live = self.inner.uploads.entry(uuid);
        let _guard = live.lock().await;
        let rec: Option<UploadRecord> = self.meta().get_json(Table::Uploads, id.as_bytes())?;
        let Some(rec) = rec else {
            self.inner.uploads.remove(&uuid);
            return Ok(());
        };
        if rec.updated_at > now_millis() - ttl.as_millis() as i64 {
            return Ok(());
        }
        let paths: Vec<_> = (0..rec.parts.len())
            .map(|i| layout::upload_part_path(&uuid, i))
            .collect();
        self.meta()
            .transact(|tx| tx.delete(Table::Uploads, id.as_bytes()))?;
        self.durable().await?;
        self.inner.objects.delete_all(&paths).await;
        // Forget the in-memory state too, so the session answers 404.
        self.inner.uploads.remove(&uuid);
        Ok(())
    }

    /// The offline pass: a full mark-and-sweep over the metadata, with the
    /// registry not serving. Recomputes every blob's counters from the link
    /// and manifest tables, deletes what nothing needs (no grace period:
    /// nothing else is writing), expired uploads, and objects that have no
    /// metadata at all.
    pub async fn gc_offline(&self, opts: &GcOptions, upload_ttl: Duration) -> Result<GcReport> {
        let start = Instant::now();
        self.recount()?;
        let mut report = self.gc_run(opts, Duration::ZERO, upload_ttl).await?;
        report.orphans_removed = self.sweep_orphans(opts.dry_run).await?;
        report.duration_ms = start.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Rebuilds `links`, `refs` and the reverse indexes from the link and
    /// manifest tables, which are the source of truth.
    pub(crate) fn recount(&self) -> Result<()> {
        let mut links: HashMap<Digest, u64> = HashMap::new();
        let mut reverse_links = Vec::new();
        for (k, _) in self.meta().scan(Table::Links, b"", None, usize::MAX)? {
            let (repo, d) = split_repo_key(&k)?;
            let d: Digest = d.parse().map_err(|_| corrupt("link key"))?;
            let repo: RepoName = repo.parse().map_err(|_| corrupt("link key"))?;
            *links.entry(d.clone()).or_default() += 1;
            reverse_links.push(layout::blob_link_key(&d, &repo));
        }
        let mut refs: HashMap<Digest, u64> = HashMap::new();
        let mut link_refs: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut ref_keys = Vec::new();
        for (k, v) in self.meta().scan(Table::Manifests, b"", None, usize::MAX)? {
            let (repo, d) = split_repo_key(&k)?;
            let m: Digest = d.parse().map_err(|_| corrupt("manifest key"))?;
            let repo: RepoName = repo.parse().map_err(|_| corrupt("manifest key"))?;
            let rec: ManifestRecord = meta::decode(Table::Manifests, &v)?;
            for target in rec.references() {
                if self
                    .meta()
                    .get(Table::Blobs, target.to_string().as_bytes())?
                    .is_some()
                {
                    *refs.entry(target.clone()).or_default() += 1;
                    *link_refs
                        .entry(layout::repo_key(&repo, &target.to_string()))
                        .or_default() += 1;
                    ref_keys.push(layout::blob_ref_key(&target, &repo, &m));
                }
            }
        }
        // Replace the reverse indexes wholesale, in batches.
        for table in [Table::BlobLinks, Table::BlobRefs] {
            loop {
                let rows = self.meta().scan(table, b"", None, 1000)?;
                if rows.is_empty() {
                    break;
                }
                self.meta().transact(|tx| {
                    for (k, _) in &rows {
                        tx.delete(table, k)?;
                    }
                    Ok(())
                })?;
            }
        }
        for (table, keys) in [
            (Table::BlobLinks, &reverse_links),
            (Table::BlobRefs, &ref_keys),
        ] {
            for chunk in keys.chunks(1000) {
                self.meta().transact(|tx| {
                    for k in chunk {
                        tx.put(table, k, b"")?;
                    }
                    Ok(())
                })?;
            }
        }
        let link_rows = self.meta().scan(Table::Links, b"", None, usize::MAX)?;
        for chunk in link_rows.chunks(1000) {
            self.meta().transact(|tx| {
                for (k, v) in chunk {
                    let mut link: LinkRecord = meta::decode(Table::Links, v)?;
                    let want = link_refs.get(k).copied().unwrap_or(0);
                    if link.refs != want {
                        link.refs = want;
                        meta::tx_put(tx, Table::Links, k, &link)?;
                    }
                }
                Ok(())
            })?;
        }
        let blobs = self.meta().scan(Table::Blobs, b"", None, usize::MAX)?;
        for chunk in blobs.chunks(1000) {
            self.meta().transact(|tx| {
                for (k, v) in chunk {
                    let mut rec: BlobRecord = meta::decode(Table::Blobs, v)?;
                    let d: Digest = std::str::from_utf8(k)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| corrupt("blob key"))?;
                    let (l, r) = (
                        links.get(&d).copied().unwrap_or(0),
                        refs.get(&d).copied().unwrap_or(0),
                    );
                    if rec.links != l || rec.refs != r {
                        rec.links = l;
                        rec.refs = r;
                        meta::tx_put(tx, Table::Blobs, k, &rec)?;
                    }
                }
                Ok(())
            })?;
        }
        self.meta().flush()
    }

    /// Objects under `blobs/` without a record and chunks under `uploads/`
    /// of no recorded session: leftovers of crashes mid-write.
    async fn sweep_orphans(&self, dry_run: bool) -> Result<u64> {
        let mut orphans = Vec::new();
        let mut blobs = self.inner.objects.list("blobs");
        while let Some(meta) = blobs.next().await {
            let meta = meta?;
            let p = meta.location.as_ref();
            let digest = p.strip_prefix("blobs/").and_then(|rest| {
                let mut it = rest.split('/');
                let (alg, _, hex) = (it.next()?, it.next()?, it.next()?);
                format!("{alg}:{hex}").parse::<Digest>().ok()
            });
            let known = match &digest {
                Some(d) => self
                    .meta()
                    .get(Table::Blobs, d.to_string().as_bytes())?
                    .is_some(),
                None => false,
            };
            if !known {
                orphans.push(meta.location);
            }
        }
        let mut uploads = self.inner.objects.list("uploads");
        while let Some(meta) = uploads.next().await {
            let meta = meta?;
            let id = layout::upload_id_of(&meta.location).unwrap_or_default();
            if self.meta().get(Table::Uploads, id.as_bytes())?.is_none() {
                orphans.push(meta.location);
            }
        }
        if !dry_run {
            self.inner.objects.delete_all(&orphans).await;
        }
        Ok(orphans.len() as u64)
    }
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt {
        what: format!("malformed {what} in metadata; run `berth fsck`"),
    }
}

/// Splits `<repo>\0<rest>`.
pub(crate) fn split_repo_key(k: &[u8]) -> Result<(String, String)> {
    let pos = k
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| corrupt("key"))?;
    let repo = std::str::from_utf8(&k[..pos]).map_err(|_| corrupt("key"))?;
    let rest = std::str::from_utf8(&k[pos + 1..]).map_err(|_| corrupt("key"))?;
    Ok((repo.to_string(), rest.to_string()))
}

/// A stored run of garbage collection, for `GET /api/v1/gc/runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GcRun {
    /// Run id (UUID).
    pub id: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// What started it: `api`, `schedule`.
    pub trigger: String,
    /// Options.
    #[serde(default)]
    pub options: GcOptions,
    /// Start.
    pub started_at: Millis,
    /// End.
    #[serde(default)]
    pub finished_at: Option<Millis>,
    /// The report, once finished.
    #[serde(default)]
    pub report: Option<GcReport>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// At most one garbage-collection run at a time: runs are long, and two
/// would only race each other for the same blobs.
#[derive(Default)]
pub(crate) struct RunGuard {
    // Why an AtomicBool: set by whoever starts a run, cleared when it ends;
    // a second start sees it set and is refused.
    busy: std::sync::atomic::AtomicBool,
}

/// The claim on [`RunGuard`] of the run going on: clears the flag when
/// dropped, so a run that fails, panics or is never spawned frees the way
/// for the next.
pub(crate) struct RunningFlag {
    reg: Registry,
}

impl RunningFlag {
    pub(crate) fn claim(reg: &Registry) -> Result<RunningFlag> {
        use std::sync::atomic::Ordering;
        reg.inner
            .gc_running
            .busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| Error::GcBusy)?;
        Ok(RunningFlag { reg: reg.clone() })
    }
}

impl Drop for RunningFlag {
    fn drop(&mut self) {
        self.reg
            .inner
            .gc_running
            .busy
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

/// How often the scheduler looks at the clock.
const SCHEDULER_TICK: Duration = Duration::from_secs(20);

impl Registry {
    /// Starts a run in the background and returns its record; refused with
    /// `GcBusy` while another run is going.
    pub async fn gc_start(&self, options: GcOptions, trigger: &str) -> Result<GcRun> {
        use futures::FutureExt;
        let running = RunningFlag::claim(self)?;
        let run = GcRun {
            id: uuid::Uuid::new_v4().to_string(),
            status: "running".into(),
            trigger: trigger.into(),
            options,
            started_at: now_millis(),
            finished_at: None,
            report: None,
            error: None,
        };
        self.save_run(&run).await?;
        let this = self.clone();
        let mut done = run.clone();
        tokio::spawn(async move {
            // Moved into the task: the flag clears when the task ends, by
            // return or by panic.
            let _running = running;
            let (grace, ttl) = (this.inner.cfg.gc_grace, this.inner.cfg.upload_ttl);
            let work = async {
                #[cfg(test)]
                this.inner.hooks.maybe_panic_in_gc();
                let retention_deleted = if done.options.apply_retention && !done.options.dry_run {
                    this.retention_run_all().await?
                } else {
                    Vec::new()
                };
                let mut report = this.gc_run(&done.options, grace, ttl).await?;
                report.retention_deleted = retention_deleted;
                Ok::<_, Error>(report)
            };
            // A panic in the run is recorded as a failure instead of leaving
            // the run "running" forever; everything the run touched is in
            // committed transactions, so nothing is half-written.
            let result = match std::panic::AssertUnwindSafe(work).catch_unwind().await {
                Ok(r) => r,
                Err(p) => {
                    let what = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(Error::GcPanicked { what })
                }
            };
            done.finished_at = Some(now_millis());
            match result {
                Ok(r) => {
                    done.status = "succeeded".into();
                    done.report = Some(r);
                }
                Err(e) => {
                    tracing::error!(error = %e, run = %done.id, "garbage collection failed");
                    done.status = "failed".into();
                    done.error = Some(e.to_string());
                }
            }
            if let Err(e) = this.save_run(&done).await {
                tracing::error!(error = %e, "could not record the garbage-collection run");
            }
        });
        Ok(run)
    }

    async fn save_run(&self, run: &GcRun) -> Result<()> {
        self.meta()
            .transact(|tx| meta::tx_put(tx, Table::GcRuns, run.id.as_bytes(), run))?;
        self.durable().await
    }

    /// Every recorded run, most recent first.
    pub fn gc_runs(&self) -> Result<Vec<GcRun>> {
        let mut runs: Vec<GcRun> = self
            .meta()
            .scan(Table::GcRuns, b"", None, usize::MAX)?
            .into_iter()
            .map(|(_, v)| meta::decode(Table::GcRuns, &v))
            .collect::<Result<_>>()?;
        runs.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
        Ok(runs)
    }

    /// One run.
    pub fn gc_run_get(&self, id: &str) -> Result<GcRun> {
        self.meta()
            .get_json(Table::GcRuns, id.as_bytes())?
            .ok_or_else(|| Error::GcRunUnknown { id: id.to_string() })
    }

    /// Runs still `running` in the database were cut short by a stop.
    pub(crate) fn mark_interrupted_gc_runs(&self) -> Result<()> {
        for mut run in self.gc_runs()? {
            if run.status == "running" {
                run.status = "failed".into();
                run.error = Some("interrupted by a server stop; start a new run".into());
                run.finished_at = Some(now_millis());
                self.meta()
                    .transact(|tx| meta::tx_put(tx, Table::GcRuns, run.id.as_bytes(), &run))?;
            }
        }
        Ok(())
    }

    /// Starts a run at each scheduled weekday and `HH:MM` (UTC) of the
    /// registry settings, once per slot.
    pub(crate) fn spawn_gc_scheduler(&self) {
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut last_slot: Option<String> = None;
            let mut tick = tokio::time::interval(SCHEDULER_TICK);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let reg = Registry { inner };
                let Ok(settings) = reg.settings() else {
                    continue;
                };
                let Some(schedule) = settings.garbage_collection_schedule else {
                    continue;
                };
                let now = time::OffsetDateTime::now_utc();
                let weekday = now.weekday().to_string().to_lowercase();
                let hhmm = format!("{:02}:{:02}", now.hour(), now.minute());
                let slot = format!("{} {weekday} {hhmm}", now.date());
                if schedule.days.contains(&weekday)
                    && schedule.time == hhmm
                    && last_slot.as_deref() != Some(slot.as_str())
                {
                    last_slot = Some(slot);
                    let opts = GcOptions {
                        apply_retention: true,
                        ..GcOptions::default()
                    };
                    match reg.gc_start(opts, "schedule").await {
                        Ok(run) => {
                            tracing::info!(run = %run.id, "scheduled garbage collection started")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "scheduled garbage collection not started")
                        }
                    }
                }
            }
        });
    }
}
