//! Names (namespaces, repositories) being deleted: hidden at once, while
//! their rows are purged in the background.

use std::collections::HashSet;
use std::sync::RwLock;

use berth_oci::RepoName;

/// Names (namespaces, repositories) being deleted: their content is
/// invisible at once while rows are purged in the background.
#[derive(Default)]
pub(crate) struct Deleting {
    // Why a RwLock: read on every /v2 request, written only when a
    // deletion starts or ends.
    names: RwLock<HashSet<String>>,
}

impl Deleting {
    pub(crate) fn ns_key(ns: &str) -> String {
        format!("ns:{ns}")
    }
    pub(crate) fn repo_key(repo: &str) -> String {
        format!("repo:{repo}")
    }
    pub(crate) fn insert(&self, k: String) {
        self.names
            .write()
            .expect("deleting lock poisoned")
            .insert(k);
    }
    pub(crate) fn remove(&self, k: &str) {
        self.names
            .write()
            .expect("deleting lock poisoned")
            .remove(k);
    }
    pub(crate) fn hides(&self, repo: &RepoName) -> bool {
        let g = self.names.read().expect("deleting lock poisoned");
        Self::hidden_in(&g, repo)
    }

    fn hidden_in(g: &HashSet<String>, repo: &RepoName) -> bool {
        Self::name_hidden_in(g, repo.as_str())
    }

    /// [`Deleting::hidden_in`] for a name read back from a `repos` key
    /// (checked when written, not parsed again).
    fn name_hidden_in(g: &HashSet<String>, repo: &str) -> bool {
        let ns = repo.split('/').next().unwrap_or(repo);
        !g.is_empty() && (g.contains(&Self::ns_key(ns)) || g.contains(&Self::repo_key(repo)))
    }

    /// The names hidden now. Take it before reading rows: a deletion that
    /// finishes while the rows are read then cannot leave its rows listed.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot(self.names.read().expect("deleting lock poisoned").clone())
    }
}

/// The names being deleted at one moment.
pub(crate) struct Snapshot(HashSet<String>);

impl Snapshot {
    pub(crate) fn hides_name(&self, repo: &str) -> bool {
        Deleting::name_hidden_in(&self.0, repo)
    }
}
