//! What a namespace's repositories hold, with sizes: repository and
//! artifact summaries for the management plane.
//!
//! Sizes are computed from the link and manifest tables when asked for
//! (one prefix scan per repository), so they are always consistent with
//! what is stored: a repository's size is the sum of the distinct blobs it
//! links (layers shared by several artifacts count once); a namespace's is
//! the sum of the distinct blobs linked by any of its repositories.

use std::collections::{BTreeMap, HashSet};

use berth_oci::{Digest, ManifestKind, Platform, RepoName};

use super::repo_records_of_namespace;
use crate::error::{Error, Result};
use crate::layout::keys;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{
    BlobRecord, BlobRef, LinkRecord, ManifestRecord, NamespaceStatus, RepoRecord,
};
use crate::{Registry, TagInfo};

/// A repository in a listing.
#[derive(Debug, Clone)]
pub struct RepoSummary {
    /// Full name, e.g. `acme/web`.
    pub name: String,
    /// Stored record (times).
    pub record: RepoRecord,
    /// Number of tags.
    pub tag_count: u64,
    /// Number of manifests.
    pub artifact_count: u64,
    /// Distinct bytes linked.
    pub size: u64,
    /// Most recently pushed tag.
    pub latest_tag: Option<String>,
}

/// A manifest with its derived figures.
#[derive(Debug, Clone)]
pub struct ArtifactInfo {
    /// Digest.
    pub digest: Digest,
    /// Stored record.
    pub record: ManifestRecord,
    /// Manifest + config + layers (+ children for indexes), distinct bytes.
    pub size: u64,
    /// Tags pointing at it, sorted.
    pub tags: Vec<String>,
    /// Platforms of an index's children.
    pub platforms: Vec<Platform>,
}

/// A repository in detail.
#[derive(Debug, Clone)]
pub struct RepoDetail {
    /// Summary.
    pub summary: RepoSummary,
    /// Tags, in lexical order.
    pub tags: Vec<TagInfo>,
    /// Artifacts, most recently pushed first.
    pub artifacts: Vec<ArtifactInfo>,
}

impl Registry {
    /// The blobs a repository's artifacts use: its manifests and what they
    /// reference. Links nothing references (uploads not yet in a manifest,
    /// layers of deleted artifacts awaiting garbage collection) do not
    /// count, so deleting an artifact shrinks the sizes at once.
    pub(crate) fn linked_digests(&self, repo: &RepoName) -> Result<Vec<Digest>> {
        let prefix = keys::repo_rows(repo);
        let rows = self.db().scan(Table::Links, &prefix, None, usize::MAX)?;
        let manifests: HashSet<Digest> = self
            .db()
            .scan(Table::Manifests, &prefix, None, usize::MAX)?
            .iter()
            .filter_map(|(k, _)| keys::parse_manifest(k).map(|(_, d)| d))
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in &rows {
            let link: LinkRecord = meta::decode(Table::Links, v)?;
            let Some((_, d)) = keys::parse_link(k) else {
                continue;
            };
            if link.refs == 0 && !manifests.contains(&d) {
                continue;
            }
            out.push(d);
        }
        Ok(out)
    }

    pub(crate) fn sum_sizes<'a>(
        &self,
        digests: impl IntoIterator<Item = &'a Digest>,
    ) -> Result<u64> {
        let mut total = 0;
        for d in digests {
            if let Some(b) = self
                .db()
                .get_json::<BlobRecord>(Table::Blobs, &keys::blob(d))?
            {
                total += b.size;
            }
        }
        Ok(total)
    }

    /// Repositories of a namespace, with their figures.
    pub async fn repositories(&self, ns: &str) -> Result<Vec<RepoSummary>> {
        let ns = ns.to_owned();
        self.meta(move |r| r.repositories_blocking(&ns)).await
    }

    /// [`Registry::repositories`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn repositories_blocking(&self, ns: &str) -> Result<Vec<RepoSummary>> {
        self.repository_records_blocking(ns)?
            .into_iter()
            .map(|(name, record)| self.repo_summary_of(name, record))
            .collect()
    }

    /// Repositories of a namespace with their stored records, without the
    /// figures: one scan, for listings that sort and page before they
    /// summarise one page ([`Registry::repository_summary`]).
    pub async fn repository_records(&self, ns: &str) -> Result<Vec<(RepoName, RepoRecord)>> {
        let ns = ns.to_owned();
        self.meta(move |r| r.repository_records_blocking(&ns)).await
    }

    fn repository_records_blocking(&self, ns: &str) -> Result<Vec<(RepoName, RepoRecord)>> {
        let info = self
            .namespace_record_blocking(ns)?
            .ok_or_else(|| Error::NamespaceUnknown { name: ns.into() })?;
        if info.status == NamespaceStatus::Deleting {
            return Ok(Vec::new());
        }
        Ok(repo_records_of_namespace(self.db(), ns)?
            .into_iter()
            .filter(|(r, rec)| !rec.deleting && !self.inner.deleting.hides(r))
            .collect())
    }

    /// Figures added to repositories and their records, as read by
    /// [`Registry::repository_records`], in one trip to the metadata. A
    /// repository deleted since it was read is left out.
    pub async fn repository_summaries(
        &self,
        rows: Vec<(RepoName, RepoRecord)>,
    ) -> Result<Vec<RepoSummary>> {
        self.meta(move |r| {
            let mut out = Vec::with_capacity(rows.len());
            for (repo, record) in rows {
                match r.repo_summary_of(repo, record) {
                    Ok(s) => out.push(s),
                    Err(Error::RepoUnknown { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
        .await
    }

    fn repo_summary(&self, repo: &RepoName) -> Result<RepoSummary> {
        let record: RepoRecord = self
            .db()
            .get_json(Table::Repos, &keys::repo(repo))?
            .ok_or_else(|| Error::RepoUnknown {
                name: repo.to_string(),
            })?;
        self.repo_summary_of(repo.clone(), record)
    }

    fn repo_summary_of(&self, repo: RepoName, record: RepoRecord) -> Result<RepoSummary> {
        let repo = &repo;
        let tags = self.tag_list_blocking(repo)?;
        let latest_tag = tags
            .iter()
            .max_by(|a, b| a.pushed_at.cmp(&b.pushed_at).then(a.name.cmp(&b.name)))
            .map(|t| t.name.clone());
        let artifact_count = self.db().count(Table::Manifests, &keys::repo_rows(repo))? as u64;
        let size = self.sum_sizes(&self.linked_digests(repo)?)?;
        Ok(RepoSummary {
            name: repo.to_string(),
            record,
            tag_count: tags.len() as u64,
            artifact_count,
            size,
            latest_tag,
        })
    }

    /// A repository with its tags and artifacts.
    pub async fn repository(&self, repo: &RepoName) -> Result<RepoDetail> {
        let repo = repo.clone();
        self.meta(move |r| r.repository_blocking(&repo)).await
    }

    /// [`Registry::repository`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn repository_blocking(&self, repo: &RepoName) -> Result<RepoDetail> {
        if self.inner.deleting.hides(repo) {
            return Err(Error::RepoUnknown {
                name: repo.to_string(),
            });
        }
        let summary = self.repo_summary(repo)?;
        Ok(RepoDetail {
            summary,
            tags: self.tag_list_blocking(repo)?,
            artifacts: self.artifacts_blocking(repo)?,
        })
    }

    /// Every manifest of a repository with sizes, tags and platforms, most
    /// recently pushed first.
    pub async fn artifacts(&self, repo: &RepoName) -> Result<Vec<ArtifactInfo>> {
        let repo = repo.clone();
        self.meta(move |r| r.artifacts_blocking(&repo)).await
    }

    /// [`Registry::artifacts`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn artifacts_blocking(&self, repo: &RepoName) -> Result<Vec<ArtifactInfo>> {
        let tags = self.tag_list_blocking(repo)?;
        let mut tags_by_digest: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        for t in tags {
            tags_by_digest.entry(t.digest).or_default().push(t.name);
        }
        let rows = self
            .db()
            .scan(Table::Manifests, &keys::repo_rows(repo), None, usize::MAX)?;
        let mut records: BTreeMap<Digest, ManifestRecord> = BTreeMap::new();
        for (k, v) in rows {
            if let Some((_, d)) = keys::parse_manifest(&k) {
                records.insert(d, meta::decode(Table::Manifests, &v)?);
            }
        }
        let mut out = Vec::with_capacity(records.len());
        for (d, rec) in &records {
            let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
            add_blobs(&mut blobs, d, rec);
            let mut platforms = Vec::new();
            if rec.kind == ManifestKind::Index {
                for (child, platform) in &rec.children {
                    if let Some(c) = records.get(child) {
                        add_blobs(&mut blobs, child, c);
                    }
                    if let Some(p) = platform {
                        platforms.push(p.clone());
                    }
                }
            }
            out.push(ArtifactInfo {
                digest: d.clone(),
                record: rec.clone(),
                size: blobs.values().sum(),
                tags: tags_by_digest.remove(d).unwrap_or_default(),
                platforms,
            });
        }
        out.sort_by(|a, b| {
            b.record
                .pushed_at
                .cmp(&a.record.pushed_at)
                .then(a.digest.cmp(&b.digest))
        });
        Ok(out)
    }
}

fn add_blobs(into: &mut BTreeMap<Digest, u64>, digest: &Digest, rec: &ManifestRecord) {
    into.insert(digest.clone(), rec.size);
    for b in rec.config.iter().chain(rec.layers.iter()) {
        let BlobRef { digest, size, .. } = b;
        into.insert(digest.clone(), *size);
    }
}
