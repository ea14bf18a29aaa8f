//! `berth fsck`: verifies every blob's bytes against its digest and size,
//! every manifest's references and every metadata link; with `repair`,
//! removes dangling metadata (never blob data that something references)
//! and recomputes the garbage-collection counters.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use berth_oci::{Algorithm, Digest, ManifestKind};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::Result;
use crate::layout::{self, keys};
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{BlobRecord, ManifestRecord, TagRecord};
use crate::Registry;

/// What fsck found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FsckReport {
    /// Blobs whose bytes were read and hashed.
    pub blobs_checked: u64,
    /// Manifests checked.
    pub manifests_checked: u64,
    /// One line per problem.
    pub problems: Vec<String>,
    /// One line per repair made.
    pub repairs: Vec<String>,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
}

impl FsckReport {
    /// Whether nothing is wrong (or everything found was repaired).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Registry {
    /// Checks everything; repairs dangling metadata when `repair` is set.
    pub async fn fsck(&self, repair: bool) -> Result<FsckReport> {
        let start = Instant::now();
        let mut r = FsckReport::default();
        let mut dangling: Vec<(Table, Vec<u8>)> = Vec::new();

        // Blob bytes against their records.
        let blobs = self
            .meta(|reg| reg.db().scan(Table::Blobs, b"", None, usize::MAX))
            .await?;
        let mut known: BTreeSet<Digest> = BTreeSet::new();
        self.inner.progress.start(blobs.len() as u64);
        for (k, v) in &blobs {
            let Some(d) = keys::parse_blob(k) else {
                r.problems.push(format!(
                    "blob record with a malformed key {:?}",
                    String::from_utf8_lossy(k)
                ));
                continue;
            };
            let rec: BlobRecord = meta::decode(Table::Blobs, v)?;
            r.blobs_checked += 1;
            self.inner.progress.step(rec.size);
            match self.hash_object(&d).await {
                Ok((size, actual)) => {
                    if size != rec.size {
                        r.problems.push(format!(
                            "blob {d}: {size} bytes stored, {} recorded",
                            rec.size
                        ));
                    }
                    if actual != d {
                        r.problems
                            .push(format!("blob {d}: content hashes to {actual}"));
                    }
                    known.insert(d);
                }
                Err(e) => r
                    .problems
                    .push(format!("blob {d}: bytes unreadable or missing: {e}")),
            }
        }

        // Links point at stored blobs.
        for (k, _) in self
            .meta(|reg| reg.db().scan(Table::Links, b"", None, usize::MAX))
            .await?
        {
            let (repo, d) = scoped(Table::Links, &k)?;
            if !d.parse::<Digest>().is_ok_and(|d| known.contains(&d)) {
                r.problems
                    .push(format!("repository {repo} links {d}, which is not stored"));
                dangling.push((Table::Links, k));
            }
        }

        // Manifests: their own bytes, their references, their link.
        let mut manifests: HashMap<(String, Digest), ManifestRecord> = HashMap::new();
        for (k, v) in self
            .meta(|reg| reg.db().scan(Table::Manifests, b"", None, usize::MAX))
            .await?
        {
            let (repo, d) = scoped(Table::Manifests, &k)?;
            let Ok(d) = d.parse::<Digest>() else {
                r.problems
                    .push(format!("manifest key {repo}@{d} is malformed"));
                continue;
            };
            let rec: ManifestRecord = meta::decode(Table::Manifests, &v)?;
            r.manifests_checked += 1;
            if !known.contains(&d) {
                r.problems
                    .push(format!("manifest {repo}@{d}: its bytes are not stored"));
            }
            if rec.kind != ManifestKind::Other {
                for b in rec.config.iter().chain(rec.layers.iter()) {
                    if !known.contains(&b.digest)
                        && !berth_oci::media_type::is_foreign_layer(&b.media_type)
                    {
                        r.problems.push(format!(
                            "manifest {repo}@{d} references {}, which is not stored",
                            b.digest
                        ));
                    }
                }
            }
            manifests.insert((repo, d), rec);
        }
        for ((repo, d), rec) in &manifests {
            for (child, _) in &rec.children {
                if !manifests.contains_key(&(repo.clone(), child.clone())) {
                    r.problems.push(format!(
                        "index {repo}@{d} lists {child}, which is not a manifest of {repo}"
                    ));
                }
            }
        }

        // Tags point at manifests of their repository.
        for (k, v) in self
            .meta(|reg| reg.db().scan(Table::Tags, b"", None, usize::MAX))
            .await?
        {
            let (repo, tag) = scoped(Table::Tags, &k)?;
            let t: TagRecord = meta::decode(Table::Tags, &v)?;
            if !manifests.contains_key(&(repo.clone(), t.digest.clone())) {
                r.problems.push(format!(
                    "tag {repo}:{tag} points at {}, which is not a manifest of {repo}",
                    t.digest
                ));
                dangling.push((Table::Tags, k));
            }
        }

        // Counters and reverse indexes: compare with a recount.
        let before: HashMap<Digest, (u64, u64)> = blobs
            .iter()
            .filter_map(|(k, v)| {
                let rec: BlobRecord = meta::decode(Table::Blobs, v).ok()?;
                Some((keys::parse_blob(k)?, (rec.links, rec.refs)))
            })
            .collect();
        let expected = self.meta(|reg| reg.expected_counts()).await?;
        for (d, (links, refs)) in &before {
            let (el, er) = expected.get(d).copied().unwrap_or((0, 0));
            if (el, er) != (*links, *refs) {
                r.problems.push(format!(
                    "blob {d}: counters say {links} links / {refs} references, metadata has {el} / {er}"
                ));
            }
        }

        // Objects with no record are garbage, not damage: `berth gc` removes
        // them. Report them so the operator knows.
        let mut orphans = 0u64;
        let mut list = self.inner.objects.list(layout::BLOBS_DIR);
        while let Some(m) = list.next().await {
            let m = m?;
            if !layout::blob_of_path(&m.location).is_some_and(|d| known.contains(&d)) {
                orphans += 1;
            }
        }
        if orphans > 0 {
            tracing::info!(orphans, "objects without metadata (removed by `berth gc`)");
        }

        if repair && !r.problems.is_empty() {
            let repairs = self
                .meta(move |reg| {
                    let mut repairs = Vec::new();
                    for (table, key) in &dangling {
                        reg.db().transact(|tx| {
                            tx.delete(*table, key)?;
                            if *table == Table::Links {
                                if let Some((repo, d)) = keys::parse_link(key) {
                                    tx.delete(Table::BlobLinks, &keys::blob_link(&d, &repo))?;
                                }
                            }
                            if *table == Table::Tags {
                                if let Some((repo, _)) = keys::parse_tag(key) {
                                    crate::manifests::tags_changed_in_tx(tx, &repo)?;
                                }
                            }
                            Ok(())
                        })?;
                        let (repo, item) = scoped(*table, key)?;
                        repairs.push(format!(
                            "removed dangling {} row {repo} {item}",
                            table.name()
                        ));
                    }
                    reg.recount()?;
                    Ok(repairs)
                })
                .await?;
            r.repairs.extend(repairs);
            r.repairs
                .push("recomputed link and reference counters".into());
            // What remains (missing or corrupt bytes) cannot be repaired
            // from here: it needs the content pushed again.
            let again = Box::pin(self.fsck(false)).await?;
            r.problems = again.problems;
        }
        self.durable().await?;
        r.duration_ms = start.elapsed().as_millis() as u64;
        Ok(r)
    }

    async fn hash_object(&self, d: &Digest) -> Result<(u64, Digest)> {
        let mut s = self
            .inner
            .objects
            .read(&layout::blob_path(d), None)
            .await?
            .body;
        let mut s256 = Sha256::new();
        let mut s512 = Sha512::new();
        let mut n = 0u64;
        while let Some(c) = s.next().await {
            let c = c?;
            n += c.len() as u64;
            match d.algorithm() {
                Algorithm::Sha256 => s256.update(&c),
                Algorithm::Sha512 => s512.update(&c),
            }
        }
        let actual = match d.algorithm() {
            Algorithm::Sha256 => Digest::from_raw(Algorithm::Sha256, &s256.finalize()),
            Algorithm::Sha512 => Digest::from_raw(Algorithm::Sha512, &s512.finalize()),
        };
        Ok((n, actual))
    }

    /// What the counters of every blob should be, from the link and
    /// manifest tables. On a blocking thread (inside [`Registry::meta`]).
    fn expected_counts(&self) -> Result<HashMap<Digest, (u64, u64)>> {
        let mut out: HashMap<Digest, (u64, u64)> = HashMap::new();
        for (k, _) in self.db().scan(Table::Links, b"", None, usize::MAX)? {
            if let Some((_, d)) = keys::parse_link(&k) {
                out.entry(d).or_default().0 += 1;
            }
        }
        for (_, v) in self.db().scan(Table::Manifests, b"", None, usize::MAX)? {
            let rec: ManifestRecord = meta::decode(Table::Manifests, &v)?;
            for target in rec.references() {
                if self.db().get(Table::Blobs, &keys::blob(&target))?.is_some() {
                    out.entry(target).or_default().1 += 1;
                }
            }
        }
        Ok(out)
    }
}

/// The two parts of a repository-scoped key, as text: fsck reports a part
/// that does not parse instead of failing on it.
fn scoped(table: Table, k: &[u8]) -> Result<(String, String)> {
    let (repo, rest) = keys::split_scoped(k).ok_or_else(|| meta::bad_key(table, k))?;
    Ok((repo.to_string(), rest.to_string()))
}
