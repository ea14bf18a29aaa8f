//! Names (namespaces, repositories) being deleted: hidden at once, while
//! their rows are purged in the background.
//!
//! What decides is durable: the namespace's `deleting` status and the
//! repository's `deleting` flag, checked inside the transactions that
//! write. Reads are not transactions, so each process keeps the names in
//! memory; the `deleting` table lists them (written in the transactions
//! that set and clear the flags) so that every replica can refresh its set
//! from a few rows instead of scanning every repository.

use std::collections::HashSet;
use std::sync::RwLock;
use std::time::Duration;

use berth_oci::RepoName;

use crate::error::Result;
use crate::layout::keys;
use crate::meta::{MetaDb, Table};
use crate::records::{NamespaceRecord, NamespaceStatus, RepoRecord};

/// How often a replica reads the names other replicas are deleting: the
/// longest a name stays visible here after another replica hid it.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

/// Names (namespaces, repositories) being deleted: their content is
/// invisible at once while rows are purged in the background.
#[derive(Default)]
pub(crate) struct Deleting {
    // Why a RwLock: read on every /v2 request, written when a deletion
    // starts or ends here and by the refresh once a second.
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    names: HashSet<String>,
    /// Bumped by every change made here: a refresh that read the table
    /// before the change would undo it, so it is dropped instead.
    epoch: u64,
}

impl Deleting {
    pub(crate) fn ns_key(ns: &str) -> String {
        String::from_utf8(keys::deleting_namespace(ns)).expect("names are UTF-8")
    }
    pub(crate) fn repo_key(repo: &str) -> String {
        String::from_utf8(keys::deleting_repo(repo)).expect("names are UTF-8")
    }
    pub(crate) fn insert(&self, k: String) {
        let mut g = self.state.write().expect("deleting lock poisoned");
        g.names.insert(k);
        g.epoch += 1;
    }
    pub(crate) fn remove(&self, k: &str) {
        let mut g = self.state.write().expect("deleting lock poisoned");
        g.names.remove(k);
        g.epoch += 1;
    }
    pub(crate) fn hides(&self, repo: &RepoName) -> bool {
        let g = self.state.read().expect("deleting lock poisoned");
        Self::name_hidden_in(&g.names, repo.as_str())
    }

    /// Whether a repository name read back from a `repos` key (checked when
    /// written, not parsed again) is hidden by one of `names`.
    fn name_hidden_in(names: &HashSet<String>, repo: &str) -> bool {
        let ns = repo.split('/').next().unwrap_or(repo);
        !names.is_empty()
            && (names.contains(&Self::ns_key(ns)) || names.contains(&Self::repo_key(repo)))
    }

    /// The names hidden now. Take it before reading rows: a deletion that
    /// finishes while the rows are read then cannot leave its rows listed.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot(
            self.state
                .read()
                .expect("deleting lock poisoned")
                .names
                .clone(),
        )
    }

    /// Replaces the set with the names the `deleting` table lists (other
    /// replicas' deletions start and end there too), unless a change was
    /// made here meanwhile; that round is then skipped. On a blocking
    /// thread.
    pub(crate) fn refresh(&self, db: &dyn MetaDb) -> Result<()> {
        let epoch = self.state.read().expect("deleting lock poisoned").epoch;
        let names = listed(db)?;
        let mut g = self.state.write().expect("deleting lock poisoned");
        if g.epoch == epoch {
            g.names = names;
        }
        Ok(())
    }
}

/// The names in the `deleting` table.
fn listed(db: &dyn MetaDb) -> Result<HashSet<String>> {
    let mut names = HashSet::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = db.scan_keys(Table::Deleting, b"", after.as_deref(), 1000)?;
        let done = page.len() < 1000;
        for k in &page {
            names.insert(String::from_utf8_lossy(k).into_owned());
        }
        after = page.last().cloned();
        if done {
            return Ok(names);
        }
    }
}

/// Fills the `deleting` table from the flags, once, for a database written
/// before the table existed (a deletion a stop interrupted there would
/// otherwise never resume). On a blocking thread.
pub(crate) fn index_flags_once(db: &dyn MetaDb) -> Result<()> {
    use crate::meta::MetaDbExt;
    if db.get(Table::Settings, keys::DELETING_INDEXED)?.is_some() {
        return Ok(());
    }
    let mut marks = Vec::new();
    for (k, v) in db.scan(Table::Namespaces, b"", None, usize::MAX)? {
        let rec: NamespaceRecord = crate::meta::decode(Table::Namespaces, &v)?;
        if rec.status == NamespaceStatus::Deleting {
            marks.push(keys::deleting_namespace(&keys::parse_namespace(&k)));
        }
    }
    for (k, v) in db.scan(Table::Repos, b"", None, usize::MAX)? {
        let rec: RepoRecord = crate::meta::decode(Table::Repos, &v)?;
        if let (true, Some(name)) = (rec.deleting, keys::parse_repo(&k)) {
            marks.push(keys::deleting_repo(name.as_str()));
        }
    }
    db.transact(|tx| {
        for m in &marks {
            tx.put(Table::Deleting, m, b"")?;
        }
        tx.put(Table::Settings, keys::DELETING_INDEXED, b"{}")
    })
}

/// The names being deleted at one moment.
pub(crate) struct Snapshot(HashSet<String>);

impl Snapshot {
    pub(crate) fn names(&self) -> &HashSet<String> {
        &self.0
    }

    pub(crate) fn hides_name(&self, repo: &str) -> bool {
        Deleting::name_hidden_in(&self.0, repo)
    }
}
