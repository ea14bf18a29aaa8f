//! Tags: names for a repository's manifests, listed in lexical order.

use berth_oci::{Digest, RepoName};

use crate::error::{Error, Result};
use crate::layout::keys;
use crate::meta::{self, MetaDbExt, Table, TxResult, Txn};
use crate::records::{ManifestRecord, Millis, RepoRecord, TagRecord};
use crate::{Page, Registry};

/// A tag with what it points at.
#[derive(Debug, Clone)]
pub struct TagInfo {
    /// Tag name.
    pub name: String,
    /// Manifest digest.
    pub digest: Digest,
    /// When set.
    pub pushed_at: Millis,
}

/// Inside a transaction: `tag` no longer names the manifest `digest` of
/// `repo`; drops it from that manifest's list of tags.
pub(crate) fn untag_in_tx(
    tx: &dyn Txn,
    repo: &RepoName,
    digest: &Digest,
    tag: &str,
) -> TxResult<()> {
    let key = keys::manifest(repo, digest);
    if let Some(mut rec) = meta::tx_get::<ManifestRecord>(tx, Table::Manifests, &key)? {
        if rec.tags.iter().any(|t| t == tag) {
            rec.tags.retain(|t| t != tag);
            meta::tx_put(tx, Table::Manifests, &key, &rec)?;
        }
    }
    Ok(())
}

/// A fresh value for [`RepoRecord::tags_version`].
pub(crate) fn new_tags_version() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

/// Inside a transaction that adds, moves or removes a tag of `repo`: the
/// repository gets a new tags version, so that listings cached under the
/// old one stop being served (on every process sharing the metadata).
pub(crate) fn tags_changed_in_tx(tx: &dyn Txn, repo: &RepoName) -> TxResult<()> {
    let key = keys::repo(repo);
    if let Some(mut rec) = meta::tx_get::<RepoRecord>(tx, Table::Repos, &key)? {
        rec.tags_version = new_tags_version();
        meta::tx_put(tx, Table::Repos, &key, &rec)?;
    }
    Ok(())
}

fn tag_name(repo: &RepoName, k: &[u8]) -> Result<String> {
    keys::tag_of(repo, k)
        .map(str::to_string)
        .ok_or_else(|| meta::bad_key(Table::Tags, k))
}

impl Registry {
    /// Tags of a repository in lexical order, after `last`, at most `n`.
    pub async fn tags(&self, repo: &RepoName, last: Option<&str>, n: usize) -> Result<Page> {
        let repo = repo.clone();
        let last = last.map(str::to_owned);
        self.meta(move |r| r.tags_blocking(&repo, last.as_deref(), n))
            .await
    }

    /// [`Registry::tags`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn tags_blocking(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: usize,
    ) -> Result<Page> {
        if !self.repo_exists_blocking(repo)? {
            return Err(Error::RepoUnknown {
                name: repo.to_string(),
            });
        }
        let prefix = keys::repo_rows(repo);
        let after = last.map(|l| keys::tag(repo, l));
        let keys =
            self.db()
                .scan_keys(Table::Tags, &prefix, after.as_deref(), n.saturating_add(1))?;
        crate::page(keys.iter().map(|k| tag_name(repo, k)), n)
    }

    /// The repository's tags version: it changes whenever a tag is added,
    /// moved or removed, so a whole listing kept under one version is
    /// current while this still returns it. One point read.
    pub async fn tags_version(&self, repo: &RepoName) -> Result<u64> {
        self.meta_point(|r| {
            let rec = if r.inner.deleting.hides(repo) {
                None
            } else {
                r.db()
                    .get_json::<RepoRecord>(Table::Repos, &keys::repo(repo))?
            };
            match rec {
                Some(rec) if !rec.deleting => Ok(rec.tags_version),
                _ => Err(Error::RepoUnknown {
                    name: repo.to_string(),
                }),
            }
        })
        .await
    }

    /// Tags with their digests, in lexical order.
    pub async fn tag_list(&self, repo: &RepoName) -> Result<Vec<TagInfo>> {
        let repo = repo.clone();
        self.meta(move |r| r.tag_list_blocking(&repo)).await
    }

    /// [`Registry::tag_list`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn tag_list_blocking(&self, repo: &RepoName) -> Result<Vec<TagInfo>> {
        if !self.repo_exists_blocking(repo)? || self.inner.deleting.hides(repo) {
            return Err(Error::RepoUnknown {
                name: repo.to_string(),
            });
        }
        let rows = self
            .db()
            .scan(Table::Tags, &keys::repo_rows(repo), None, usize::MAX)?;
        rows.into_iter()
            .map(|(k, v)| {
                let t: TagRecord = meta::decode(Table::Tags, &v)?;
                Ok(TagInfo {
                    name: tag_name(repo, &k)?,
                    digest: t.digest,
                    pushed_at: t.pushed_at,
                })
            })
            .collect()
    }
}
