//! Namespaces and repositories: their lifecycle (created on first push or
//! through the management plane, deleted in the background), the catalog,
//! what they hold and how large it is ([`usage`]), registry settings
//! ([`settings`]), and batched pull times ([`pulls`]).
//!
//! Tables owned (keys in `crate::layout::keys`): `namespaces`, `repos`,
//! `settings`. Deleting a repository purges its rows of the blob and
//! manifest parts' tables too ([`repo_delete`]).

mod deleting;
mod pulls;
mod repo_delete;
mod settings;
mod usage;

pub(crate) use deleting::Deleting;
pub(crate) use pulls::Pulls;
pub use settings::{Features, GcSchedule, RegistrySettings, Toggle};
pub use usage::{ArtifactInfo, RepoDetail, RepoSummary};

use std::collections::BTreeSet;

use berth_oci::RepoName;

use crate::error::{Error, Result};
use crate::events::{self, Event, EventContext, EventKind};
use crate::layout::keys;
use crate::meta::{self, MetaDb, MetaDbExt, Table, TxResult, Txn};
use crate::records::{now_millis, NamespaceRecord, NamespaceStatus, RepoRecord};
use crate::{Page, Registry};

/// A namespace with its derived figures.
#[derive(Debug, Clone)]
pub struct NamespaceInfo {
    /// Name.
    pub name: String,
    /// Stored record.
    pub record: NamespaceRecord,
    /// Number of repositories.
    pub repo_count: u64,
    /// Distinct bytes stored for it.
    pub size: u64,
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Validates a namespace name: one component of the repository-name
/// grammar.
pub fn validate_namespace_name(name: &str) -> Result<()> {
    if name.contains('/') || name.parse::<RepoName>().is_err() {
        return Err(invalid(
            "name",
            format!("{name:?} is not a namespace name: lower-case letters and digits, separated by '.', '_', '__' or '-', at most 255 characters"),
        ));
    }
    Ok(())
}

/// The repositories of a namespace, by name.
fn repos_of_namespace(db: &dyn MetaDb, ns: &str) -> Result<Vec<RepoName>> {
    Ok(repo_records_of_namespace(db, ns)?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// The repositories of a namespace with their stored records, by name.
fn repo_records_of_namespace(db: &dyn MetaDb, ns: &str) -> Result<Vec<(RepoName, RepoRecord)>> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    let prefix = keys::repos_prefix(ns);
    loop {
        let rows = db.scan(Table::Repos, &prefix, after.as_deref(), 1000)?;
        let Some((last, _)) = rows.last() else { break };
        after = Some(last.clone());
        for (k, v) in &rows {
            if let Some(name) = keys::parse_repo(k) {
                if name.namespace() == ns {
                    out.push((name, meta::decode(Table::Repos, v)?));
                }
            }
        }
    }
    Ok(out)
}

/// How stale a repository's push time may be left by blob pushes
/// (milliseconds); manifest pushes record theirs exactly.
const BLOB_PUSH_RESOLUTION_MS: crate::records::Millis = 1_000;

impl Registry {
    /// Deletions a stop interrupted (here or on another replica), now
    /// hidden again: the namespaces, and the repositories outside them, to
    /// purge. Purging the same names as another replica is safe: every
    /// step reads its rows again in its transaction. On a blocking thread
    /// (inside [`Registry::meta`]).
    pub(crate) fn load_deleting(&self) -> Result<(Vec<String>, Vec<RepoName>)> {
        deleting::index_flags_once(self.db())?;
        self.inner.deleting.refresh(self.db())?;
        let hidden = self.inner.deleting.snapshot();
        let mut namespaces = Vec::new();
        let mut repos = Vec::new();
        for name in hidden.names() {
            let bad = || meta::bad_key(Table::Deleting, name.as_bytes());
            match keys::parse_deleting(name).ok_or_else(bad)? {
                keys::BeingDeleted::Namespace(ns) => namespaces.push(ns.to_string()),
                keys::BeingDeleted::Repo(repo) => {
                    let r: RepoName = repo.parse().map_err(|_| bad())?;
                    if !hidden.names().contains(&Deleting::ns_key(r.namespace())) {
                        repos.push(r);
                    }
                }
            }
        }
        Ok((namespaces, repos))
    }

    /// Reads, once a second, the names other replicas are deleting, for
    /// as long as the registry is open. Only where several processes can
    /// share the metadata (a database server): on sled this process is the
    /// only writer and its set is always current.
    pub(crate) fn spawn_deleting_refresh(&self) {
        if !self.inner.meta.remote() {
            return;
        }
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(deleting::REFRESH);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let reg = Registry { inner };
                if let Err(e) = reg.meta(|r| r.inner.deleting.refresh(r.db())).await {
                    tracing::warn!(error = %e, "could not read the names being deleted");
                }
            }
        });
    }

    /// Every namespace's stored record, without the figures: one scan of
    /// the namespace table, for listings that sort and page before they
    /// compute figures ([`Registry::namespace_figures`]) for one page.
    pub async fn namespace_records(&self) -> Result<Vec<(String, NamespaceRecord)>> {
        self.meta(move |r| {
            let rows = r.db().scan(Table::Namespaces, b"", None, usize::MAX)?;
            rows.into_iter()
                .map(|(k, v)| {
                    Ok((
                        keys::parse_namespace(&k),
                        meta::decode(Table::Namespaces, &v)?,
                    ))
                })
                .collect()
        })
        .await
    }

    /// Figures (repositories and distinct bytes) added to namespaces and
    /// their records, as read by [`Registry::namespace_records`], in one
    /// trip to the metadata.
    pub async fn namespace_figures(
        &self,
        rows: Vec<(String, NamespaceRecord)>,
    ) -> Result<Vec<NamespaceInfo>> {
        self.meta(move |r| {
            rows.into_iter()
                .map(|(name, record)| r.namespace_figures_blocking(name, record))
                .collect()
        })
        .await
    }

    /// Every namespace with its figures.
    pub async fn namespaces(&self) -> Result<Vec<NamespaceInfo>> {
        self.meta(move |r| r.namespaces_blocking()).await
    }

    /// [`Registry::namespaces`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn namespaces_blocking(&self) -> Result<Vec<NamespaceInfo>> {
        let rows = self.db().scan(Table::Namespaces, b"", None, usize::MAX)?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            let name = keys::parse_namespace(&k);
            let record: NamespaceRecord = meta::decode(Table::Namespaces, &v)?;
            out.push(self.namespace_figures_blocking(name, record)?);
        }
        Ok(out)
    }

    fn namespace_figures_blocking(
        &self,
        name: String,
        record: NamespaceRecord,
    ) -> Result<NamespaceInfo> {
        let (repo_count, size) = if record.status == NamespaceStatus::Deleting {
            (0, 0)
        } else {
            let repos = repos_of_namespace(self.db(), &name)?;
            let mut digests = BTreeSet::new();
            for r in &repos {
                digests.extend(self.linked_digests(r)?);
            }
            (repos.len() as u64, self.sum_sizes(&digests)?)
        };
        Ok(NamespaceInfo {
            name,
            record,
            repo_count,
            size,
        })
    }

    /// One namespace.
    pub async fn namespace(&self, name: &str) -> Result<NamespaceInfo> {
        let name = name.to_owned();
        self.meta(move |r| r.namespace_blocking(&name)).await
    }

    /// [`Registry::namespace`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn namespace_blocking(&self, name: &str) -> Result<NamespaceInfo> {
        let rec: NamespaceRecord = self
            .db()
            .get_json(Table::Namespaces, &keys::namespace(name))?
            .ok_or_else(|| Error::NamespaceUnknown { name: name.into() })?;
        self.namespace_figures_blocking(name.to_string(), rec)
    }

    /// Creates a namespace.
    pub async fn namespace_create(
        &self,
        name: &str,
        description: &str,
        project_id: &str,
        is_public: bool,
    ) -> Result<NamespaceInfo> {
        validate_namespace_name(name)?;
        let now = now_millis();
        let rec = NamespaceRecord {
            id: uuid::Uuid::new_v4().to_string(),
            created_at: now,
            updated_at: now,
            description: description.to_string(),
            project_id: project_id.to_string(),
            is_public,
            status: NamespaceStatus::Ready,
            status_message: String::new(),
        };
        let owned = name.to_owned();
        self.meta(move |r| {
            let name = owned.as_str();
            r.db().transact(|tx| {
                if tx.get(Table::Namespaces, &keys::namespace(name))?.is_some() {
                    return Err(Error::NamespaceExists { name: name.into() }.into());
                }
                meta::tx_put(tx, Table::Namespaces, &keys::namespace(name), &rec)
            })
        })
        .await?;
        self.durable().await?;
        self.namespace(name).await
    }

    /// Updates a namespace's description and visibility.
    pub async fn namespace_update(
        &self,
        name: &str,
        description: Option<&str>,
        is_public: Option<bool>,
    ) -> Result<NamespaceInfo> {
        let owned = name.to_owned();
        let description = description.map(str::to_owned);
        self.meta(move |r| {
            let (name, description) = (owned.as_str(), description.as_deref());
            r.db().transact(|tx| {
                let Some(mut rec) =
                    meta::tx_get::<NamespaceRecord>(tx, Table::Namespaces, &keys::namespace(name))?
                else {
                    return Err(Error::NamespaceUnknown { name: name.into() }.into());
                };
                if rec.status == NamespaceStatus::Deleting {
                    return Err(Error::BeingDeleted {
                        what: format!("namespace {name}"),
                    }
                    .into());
                }
                if let Some(d) = description {
                    rec.description = d.to_string();
                }
                if let Some(p) = is_public {
                    rec.is_public = p;
                }
                rec.updated_at = now_millis();
                meta::tx_put(tx, Table::Namespaces, &keys::namespace(name), &rec)
            })
        })
        .await?;
        self.durable().await?;
        self.namespace(name).await
    }

    /// Deletes a namespace: its repositories vanish at once; rows are
    /// purged in the background, then the namespace record goes. Blob bytes
    /// nothing else links are reclaimed by garbage collection.
    pub async fn namespace_delete(&self, name: &str) -> Result<()> {
        self.namespace_delete_by(name, &EventContext::default())
            .await
    }

    /// [`Registry::namespace_delete`], writing `namespace.deleted` with
    /// `ctx` in the transaction that marks the namespace; its webhooks go
    /// with its rows.
    pub async fn namespace_delete_by(&self, name: &str, ctx: &EventContext) -> Result<()> {
        let (owned, ctx) = (name.to_owned(), ctx.clone());
        self.meta(move |r| {
            let name = owned.as_str();
            r.db().transact(|tx| {
                let Some(mut rec) =
                    meta::tx_get::<NamespaceRecord>(tx, Table::Namespaces, &keys::namespace(name))?
                else {
                    return Err(Error::NamespaceUnknown { name: name.into() }.into());
                };
                rec.status = NamespaceStatus::Deleting;
                rec.status_message = "deletion in progress".into();
                rec.updated_at = now_millis();
                meta::tx_put(tx, Table::Namespaces, &keys::namespace(name), &rec)?;
                tx.put(Table::Deleting, &keys::deleting_namespace(name), b"")?;
                let e = Event::new(EventKind::NamespaceDeleted, name, &ctx);
                events::write_in_tx(tx, &e)
            })?;
            r.inner.deleting.insert(Deleting::ns_key(name));
            Ok(())
        })
        .await?;
        self.durable().await?;
        self.events_wake();
        self.spawn_namespace_purge(name.to_string());
        Ok(())
    }

    pub(crate) fn spawn_namespace_purge(&self, name: String) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.purge_namespace(&name).await {
                tracing::error!(namespace = %name, error = %e, "namespace deletion failed; it will resume on restart");
                let e = e.to_string();
                let _ = this
                    .meta(move |r| {
                        r.db().transact(|tx| {
                            if let Some(mut rec) = meta::tx_get::<NamespaceRecord>(
                                tx,
                                Table::Namespaces,
                                &keys::namespace(&name),
                            )? {
                                rec.status_message =
                                    format!("deletion failed: {e}; retried on restart");
                                meta::tx_put(tx, Table::Namespaces, &keys::namespace(&name), &rec)?;
                            }
                            Ok(())
                        })
                    })
                    .await;
            }
        });
    }

    async fn purge_namespace(&self, name: &str) -> Result<()> {
        let owned = name.to_owned();
        for repo in self
            .meta(move |r| repos_of_namespace(r.db(), &owned))
            .await?
        {
            self.meta(move |r| r.purge_repo_rows(&repo)).await?;
        }
        let owned = name.to_owned();
        self.meta(move |r| {
            // Before the record goes: webhook creation refuses a namespace
            // being deleted, so none can be added after this.
            r.purge_namespace_webhooks(&owned)?;
            r.db().transact(|tx| {
                tx.delete(Table::Namespaces, &keys::namespace(&owned))?;
                tx.delete(Table::Deleting, &keys::deleting_namespace(&owned))
            })?;
            // In the same gate call as the delete, no await between the
            // record going and the name becoming usable again: a push right
            // after the namespace reads as gone succeeds.
            r.inner.deleting.remove(&Deleting::ns_key(&owned));
            Ok(())
        })
        .await?;
        self.durable().await?;
        tracing::info!(namespace = %name, "namespace deleted");
        Ok(())
    }

    /// Fails with `BeingDeleted` when pushes to `repo` must be refused.
    pub(crate) fn check_writable(&self, repo: &RepoName) -> Result<()> {
        if self.inner.deleting.hides(repo) {
            return Err(Error::BeingDeleted {
                what: format!("namespace {}", repo.namespace()),
            });
        }
        Ok(())
    }

    /// Whether the repository exists (and is not being deleted).
    pub async fn repo_exists(&self, repo: &RepoName) -> Result<bool> {
        let repo = repo.clone();
        self.meta_point(move |r| r.repo_exists_blocking(&repo))
            .await
    }

    /// [`Registry::repo_exists`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn repo_exists_blocking(&self, repo: &RepoName) -> Result<bool> {
        Ok(!self.inner.deleting.hides(repo)
            && self.db().get(Table::Repos, &keys::repo(repo))?.is_some())
    }

    /// Inside a transaction: creates the repository and its namespace on
    /// first push, and records the push time. A blob's push (not a
    /// manifest's, `exact`) leaves a push time less than
    /// [`BLOB_PUSH_RESOLUTION_MS`] old as it is: every layer of every
    /// parallel push would otherwise rewrite the repository's record, and
    /// on PostgreSQL each such write conflicts with all the others.
    pub(crate) fn ensure_repo_in_tx(
        &self,
        tx: &dyn Txn,
        repo: &RepoName,
        exact: bool,
    ) -> TxResult<()> {
        let now = now_millis();
        let ns = repo.namespace();
        if let Some(rec) =
            meta::tx_get::<NamespaceRecord>(tx, Table::Namespaces, &keys::namespace(ns))?
        {
            if rec.status == NamespaceStatus::Deleting {
                return Err(Error::BeingDeleted {
                    what: format!("namespace {ns}"),
                }
                .into());
            }
        } else {
            meta::tx_put(
                tx,
                Table::Namespaces,
                &keys::namespace(ns),
                &NamespaceRecord {
                    id: uuid::Uuid::new_v4().to_string(),
                    created_at: now,
                    updated_at: now,
                    description: String::new(),
                    project_id: String::new(),
                    is_public: false,
                    status: Default::default(),
                    status_message: String::new(),
                },
            )?;
        }
        let key = keys::repo(repo);
        let mut rec: RepoRecord = meta::tx_get(tx, Table::Repos, &key)?.unwrap_or(RepoRecord {
            created_at: now,
            last_push: None,
            last_pull: None,
            deleting: false,
            tags_version: crate::manifests::new_tags_version(),
        });
        if rec.deleting {
            return Err(Error::BeingDeleted {
                what: format!("repository {repo}"),
            }
            .into());
        }
        let recent = rec
            .last_push
            .is_some_and(|t| now.saturating_sub(t) < BLOB_PUSH_RESOLUTION_MS);
        if recent && !exact {
            return Ok(());
        }
        rec.last_push = Some(now);
        meta::tx_put(tx, Table::Repos, &key, &rec)
    }

    /// Repository names in lexical order, after `last`, at most `n`.
    pub async fn catalog(&self, last: Option<&str>, n: usize) -> Result<Page> {
        let last = last.map(str::to_owned);
        self.meta(move |r| r.catalog_blocking(last.as_deref(), n))
            .await
    }

    /// [`Registry::catalog`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn catalog_blocking(&self, last: Option<&str>, n: usize) -> Result<Page> {
        let mut names = Vec::new();
        let mut after = last.map(keys::repo_after);
        let hidden = self.inner.deleting.snapshot();
        // Repositories being deleted are skipped, so scan until the page is
        // full or the table ends.
        loop {
            let want = n.saturating_add(1) - names.len();
            let keys = self
                .db()
                .scan_keys(Table::Repos, b"", after.as_deref(), want)?;
            let exhausted = keys.len() < want;
            for k in keys {
                let name = keys::repo_name(&k)
                    .map(str::to_string)
                    .ok_or_else(|| meta::bad_key(Table::Repos, &k));
                if !name.as_ref().is_ok_and(|r| hidden.hides_name(r)) {
                    names.push(name);
                }
                after = Some(k);
            }
            if exhausted || names.len() > n {
                break;
            }
        }
        crate::page(names.into_iter(), n)
    }

    /// A namespace's stored record without the figures (cheap: one point
    /// read), `None` when it does not exist.
    pub async fn namespace_record(&self, ns: &str) -> Result<Option<NamespaceRecord>> {
        let ns = ns.to_owned();
        self.meta_point(move |r| r.namespace_record_blocking(&ns))
            .await
    }

    /// [`Registry::namespace_record`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn namespace_record_blocking(&self, ns: &str) -> Result<Option<NamespaceRecord>> {
        self.db().get_json(Table::Namespaces, &keys::namespace(ns))
    }
}
