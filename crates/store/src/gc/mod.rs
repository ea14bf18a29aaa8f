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
//! A run does not look at every blob: the transactions that may make
//! something garbage queue it for review ([`queue`]), and a run reviews
//! only what is due, in batches.
//!
//! The offline pass (`berth gc`, [`offline`]) is a full mark-and-sweep over
//! the metadata that also recomputes the counters and removes orphan
//! objects; it is the backstop after crashes and restores.
//!
//! Tables owned (keys in `crate::layout::keys`): `gc_runs` ([`runs`]),
//! `gc_queue` ([`queue`]) and `retention` ([`retention`]). The counters live in the blob part's tables
//! and change only through `crate::blobs::counters`; [`fsck`] reads every
//! table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use berth_oci::{Digest, ManifestKind, Reference, RepoName};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::layout::keys;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{now_millis, ManifestRecord, TagRecord, UploadRecord};
use crate::Registry;

mod dry_run;
mod fsck;
mod offline;
pub(crate) mod queue;
#[cfg(test)]
mod queue_tests;
mod retention;
mod runs;

pub use fsck::FsckReport;
pub use retention::{tag_pattern, PlannedArtifact, PlannedTag, RetentionPlan, RetentionPolicy};
pub use runs::GcRun;
pub(crate) use runs::RunGuard;

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
    /// Manifests that no tag reaches, per repository: roots are tagged
    /// manifests; an index keeps its children; a kept manifest keeps its
    /// referrers. Manifests pushed within the grace period are kept too
    /// (an index's children are pushed before the index).
    fn untagged_manifests(&self, grace: Duration) -> Result<Vec<(RepoName, Digest)>> {
        let cutoff = now_millis() - grace.as_millis() as i64;
        let mut by_repo: BTreeMap<RepoName, BTreeMap<Digest, ManifestRecord>> = BTreeMap::new();
        for (k, v) in self.db().scan(Table::Manifests, b"", None, usize::MAX)? {
            let (repo, digest) =
                keys::parse_manifest(&k).ok_or_else(|| meta::bad_key(Table::Manifests, &k))?;
            by_repo
                .entry(repo)
                .or_default()
                .insert(digest, meta::decode(Table::Manifests, &v)?);
        }
        let mut tagged: HashMap<RepoName, BTreeSet<Digest>> = HashMap::new();
        for (k, v) in self.db().scan(Table::Tags, b"", None, usize::MAX)? {
            let (repo, _) = keys::parse_tag(&k).ok_or_else(|| meta::bad_key(Table::Tags, &k))?;
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
            for d in manifests.keys() {
                if !keep.contains(d) {
                    out.push((repo.clone(), d.clone()));
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
                .db()
                .get_json(Table::Manifests, &keys::manifest(repo, d))?;
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
    fn expired_uploads(&self, ttl: Duration) -> Result<Vec<(Uuid, UploadRecord)>> {
        let cutoff = now_millis() - ttl.as_millis() as i64;
        let mut out = Vec::new();
        for (k, v) in self.db().scan(Table::Uploads, b"", None, usize::MAX)? {
            let rec: UploadRecord = meta::decode(Table::Uploads, &v)?;
            if rec.updated_at <= cutoff {
                let id = keys::parse_upload(&k).ok_or_else(|| meta::bad_key(Table::Uploads, &k))?;
                out.push((id, rec));
            }
        }
        Ok(out)
    }

    /// One garbage-collection run while serving: untagged manifests (if
    /// asked), expired uploads, then what the review queue ([`queue`])
    /// holds from before the grace period: unused links, then blobs nothing
    /// needs.
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
        let (delete_untagged, dry_run) = (opts.delete_untagged, opts.dry_run);
        // The scans of the plan, in one gate call.
        let (untagged, manifests, uploads_expired, simulated) = self
            .meta(move |r| {
                let untagged = if delete_untagged {
                    r.untagged_manifests(grace)?
                } else {
                    Vec::new()
                };
                let manifests = r.describe_untagged(&untagged)?;
                let uploads_expired = r.expired_uploads(upload_ttl)?.len() as u64;
                let simulated = if dry_run {
                    Some(r.simulate(&untagged, grace)?)
                } else {
                    None
                };
                Ok((untagged, manifests, uploads_expired, simulated))
            })
            .await?;
        report.manifests_deleted = untagged.iter().map(|(r, d)| format!("{r}@{d}")).collect();
        report.manifests = manifests;
        report.uploads_expired = uploads_expired;
        if let Some((blobs, in_grace)) = simulated {
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
        for (id, _) in self.meta(move |r| r.expired_uploads(upload_ttl)).await? {
            self.expire_upload(id, upload_ttl).await?;
        }
        self.seed_review_queue().await?;
        self.inner.progress.start(0);
        self.review_links(grace).await?;
        self.review_blobs(grace, &mut report).await?;
        report.blobs_in_grace = self.blob_reviews_waiting().await?;
        report.duration_ms = start.elapsed().as_millis() as u64;
        tracing::info!(?report, "garbage collection finished");
        Ok(report)
    }

    async fn expire_upload(&self, uuid: Uuid, ttl: Duration) -> Result<()> {
        let key = keys::upload(&uuid);
        // Hold the session's lock: a chunk arriving now either lands
        // before the expiry (and the session is kept) or finds it gone.
        let live = self.inner.uploads.entry(uuid);
        let _guard = live.lock().await;
        // Decided inside the transaction: a chunk recorded meanwhile on
        // another replica (which does not take this process's lock) makes
        // the session fresh again, and it stays.
        let cutoff = now_millis() - ttl.as_millis() as i64;
        let expired: Option<UploadRecord> = self
            .meta(move |r| {
                r.db().transact(|tx| {
                    let rec = meta::tx_get::<UploadRecord>(tx, Table::Uploads, &key)?;
                    match rec {
                        Some(rec) if rec.updated_at <= cutoff => {
                            tx.delete(Table::Uploads, &key)?;
                            Ok(Some(rec))
                        }
                        _ => Ok(None),
                    }
                })
            })
            .await?;
        let Some(rec) = expired else {
            return Ok(());
        };
        let paths = crate::blobs::uploads::part_paths(uuid, &rec);
        self.durable().await?;
        self.inner.objects.delete_all(&paths).await;
        // Forget the in-memory state too, so the session answers 404.
        self.inner.uploads.remove(&uuid);
        Ok(())
    }
}
