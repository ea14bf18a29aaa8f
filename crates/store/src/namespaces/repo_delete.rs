//! Repository deletion: a durable mark first (the repository is hidden
//! everywhere from then on, across restarts), then the rows, the
//! repository row last. A purge a stop cut short resumes when the store
//! opens again.

use berth_oci::RepoName;

use super::Deleting;
use crate::error::{Error, Result};
use crate::events::{self, Event, EventContext, EventKind};
use crate::layout::keys;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{ManifestRecord, RepoRecord};
use crate::Registry;

impl Registry {
    /// Deletes a repository with all its tags and artifacts; it disappears
    /// from `_catalog` and `/v2` at once. The mark that hides it is durable
    /// before any row goes, so a crash part-way leaves it hidden, and the
    /// purge resumes on restart: it is either all there or all gone.
    pub async fn repository_delete(&self, repo: &RepoName) -> Result<()> {
        self.repository_delete_by(repo, &EventContext::default())
            .await
    }

    /// [`Registry::repository_delete`], writing `repository.deleted` with
    /// `ctx` in the transaction of the durable mark.
    pub async fn repository_delete_by(&self, repo: &RepoName, ctx: &EventContext) -> Result<()> {
        let (owned, ctx) = (repo.clone(), ctx.clone());
        self.meta(move |r| r.mark_repo_deleting(&owned, &ctx))
            .await?;
        self.durable().await?;
        self.events_wake();
        self.purge_repo(repo).await
    }

    /// The durable mark of [`Registry::repository_delete`], then the name
    /// hidden in memory; on a blocking thread (inside [`Registry::meta`]).
    fn mark_repo_deleting(&self, repo: &RepoName, ctx: &EventContext) -> Result<()> {
        let unknown = || Error::RepoUnknown {
            name: repo.to_string(),
        };
        if !self.repo_exists_blocking(repo)? || self.inner.deleting.hides(repo) {
            return Err(unknown());
        }
        let key = keys::repo(repo);
        self.db().transact(|tx| {
            let Some(mut rec) = meta::tx_get::<RepoRecord>(tx, Table::Repos, &key)? else {
                return Err(unknown().into());
            };
            if rec.deleting {
                return Err(unknown().into());
            }
            rec.deleting = true;
            meta::tx_put(tx, Table::Repos, &key, &rec)?;
            tx.put(Table::Deleting, &keys::deleting_repo(repo.as_str()), b"")?;
            let e = Event::new(EventKind::RepositoryDeleted, repo.namespace(), ctx).in_repo(repo);
            events::write_in_tx(tx, &e)
        })?;
        self.inner
            .deleting
            .insert(Deleting::repo_key(repo.as_str()));
        Ok(())
    }

    /// Purges a repository marked as being deleted, then makes its name
    /// usable again.
    async fn purge_repo(&self, repo: &RepoName) -> Result<()> {
        #[cfg(test)]
        self.inner.hooks.pause_in_repo_purge().await;
        let owned = repo.clone();
        self.meta(move |r| {
            r.purge_repo_rows(&owned)?;
            r.inner.deleting.remove(&Deleting::repo_key(owned.as_str()));
            Ok(())
        })
        .await?;
        self.durable().await?;
        tracing::info!(repository = %repo, "repository deleted");
        Ok(())
    }

    pub(crate) fn spawn_repo_purge(&self, repo: RepoName) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.purge_repo(&repo).await {
                tracing::error!(repository = %repo, error = %e, "repository deletion failed; it will resume on restart");
            }
        });
    }

    /// Removes every row of a repository, the repository row last; on a
    /// blocking thread (inside [`Registry::meta`]).
    pub(crate) fn purge_repo_rows(&self, repo: &RepoName) -> Result<()> {
        let prefix = keys::repo_rows(repo);
        for table in [
            Table::Tags,
            Table::Referrers,
            Table::Manifests,
            Table::Links,
        ] {
            loop {
                let rows = self.db().scan(table, &prefix, None, 1000)?;
                if rows.is_empty() {
                    break;
                }
                self.db().transact(|tx| {
                    for (k, _) in &rows {
                        // Read again inside the transaction: a row another
                        // transaction removed since the scan (garbage
                        // collection sweeping a link, a manifest deleted) is
                        // gone with its counters already; counting it again
                        // would leave the blob's counters short.
                        let Some(v) = tx.get(table, k)? else {
                            continue;
                        };
                        tx.delete(table, k)?;
                        match table {
                            Table::Links => {
                                let Some((_, d)) = keys::parse_link(k) else {
                                    continue;
                                };
                                tx.delete(Table::BlobLinks, &keys::blob_link(&d, repo))?;
                                crate::blobs::counters::count_in_tx(tx, &d, -1, 0)?;
                            }
                            Table::Manifests => {
                                let Some((_, d)) = keys::parse_manifest(k) else {
                                    continue;
                                };
                                let rec: ManifestRecord = meta::decode(Table::Manifests, &v)?;
                                for target in rec.references() {
                                    crate::blobs::counters::remove_ref_in_tx(
                                        tx, &target, repo, &d,
                                    )?;
                                }
                            }
                            _ => {}
                        }
                    }
                    Ok(())
                })?;
            }
        }
        self.db().transact(|tx| {
            tx.delete(Table::Repos, &keys::repo(repo))?;
            tx.delete(Table::Deleting, &keys::deleting_repo(repo.as_str()))
        })?;
        Ok(())
    }
}
