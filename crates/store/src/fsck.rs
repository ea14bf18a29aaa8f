//! `berth fsck`: verifies every blob's bytes against its digest and size,
//! every manifest's references and every metadata link; with `repair`,
//! removes dangling metadata (never blob data that something references)
//! and recomputes the garbage-collection counters.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use berth_oci::{Algorithm, Digest, ManifestKind, RepoName};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::Result;
use crate::gc::split_repo_key;
use crate::layout;
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
        let blobs = self.meta().scan(Table::Blobs, b"", None, usize::MAX)?;
        let mut known: BTreeSet<Digest> = BTreeSet::new();
        self.inner.progress.start(blobs.len() as u64);
        for (k, v) in &blobs {
            let Some(d) = std::str::from_utf8(k)
                .ok()
                .and_then(|s| s.parse::<Digest>().ok())
            else {
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
        for (k, _) in self.meta().scan(Table::Links, b"", None, usize::MAX)? {
            let (repo, d) = split_repo_key(&k)?;
            if !d.parse::<Digest>().is_ok_and(|d| known.contains(&d)) {
                r.problems
                    .push(format!("repository {repo} links {d}, which is not stored"));
                dangling.push((Table::Links, k));
            }
        }

        // Manifests: their own bytes, their references, their link.
        let mut manifests: HashMap<(String, Digest), ManifestRecord> = HashMap::new();
        for (k, v) in self.meta().scan(Table::Manifests, b"", None, usize::MAX)? {
            let (repo, d) = split_repo_key(&k)?;
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
        for (k, v) in self.meta().scan(Table::Tags, b"", None, usize::MAX)? {
            let (repo, tag) = split_repo_key(&k)?;
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
        let before: HashMap<Vec<u8>, (u64, u64)> = blobs
            .iter()
            .filter_map(|(k, v)| {
                let rec: BlobRecord = meta::decode(Table::Blobs, v).ok()?;
                Some((k.clone(), (rec.links, rec.refs)))
            })
            .collect();
        let expected = self.expected_counts()?;
        for (k, (links, refs)) in &before {
            let (el, er) = expected.get(k).copied().unwrap_or((0, 0));
            if (el, er) != (*links, *refs) {
                r.problems.push(format!(
                    "blob {}: counters say {links} links / {refs} references, metadata has {el} / {er}",
                    String::from_utf8_lossy(k)
                ));
            }
        }

        // Objects with no record are garbage, not damage: `berth gc` removes
        // them. Report them so the operator knows.
        let mut orphans = 0u64;
        let mut list = self.inner.objects.list("blobs");
        while let Some(m) = list.next().await {
            let m = m?;
            let p = m.location.as_ref().to_string();
            let parts: Vec<&str> = p.split('/').collect();
            let digest = (parts.len() == 4)
                .then(|| format!("{}:{}", parts[1], parts[3]).parse::<Digest>().ok())
                .flatten();
            if !digest.is_some_and(|d| known.contains(&d)) {
                orphans += 1;
            }
        }
        if orphans > 0 {
            tracing::info!(orphans, "objects without metadata (removed by `berth gc`)");
        }

        if repair && !r.problems.is_empty() {
            for (table, key) in &dangling {
                self.meta().transact(|tx| {
                    tx.delete(*table, key)?;
                    if *table == Table::Links {
                        if let Ok((repo, d)) = split_repo_key(key) {
                            if let (Ok(repo), Ok(d)) =
                                (repo.parse::<RepoName>(), d.parse::<Digest>())
                            {
                                tx.delete(Table::BlobLinks, &layout::blob_link_key(&d, &repo))?;
                            }
                        }
                    }
                    Ok(())
                })?;
                let (repo, item) = split_repo_key(key)?;
                r.repairs.push(format!(
                    "removed dangling {} row {repo} {item}",
                    table.name()
                ));
            }
            self.recount()?;
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
    /// manifest tables.
    fn expected_counts(&self) -> Result<HashMap<Vec<u8>, (u64, u64)>> {
        let mut out: HashMap<Vec<u8>, (u64, u64)> = HashMap::new();
        for (k, _) in self.meta().scan(Table::Links, b"", None, usize::MAX)? {
            let (_, d) = split_repo_key(&k)?;
            out.entry(d.into_bytes()).or_default().0 += 1;
        }
        for (_, v) in self.meta().scan(Table::Manifests, b"", None, usize::MAX)? {
            let rec: ManifestRecord = meta::decode(Table::Manifests, &v)?;
            for target in rec.references() {
                let key = target.to_string().into_bytes();
                if self.meta().get(Table::Blobs, &key)?.is_some() {
                    out.entry(key).or_default().1 += 1;
                }
            }
        }
        Ok(out)
    }
}
