//! Finding a repository named in a management path: shared by the
//! handlers and by the one authorisation decision, which must answer a
//! hidden repository exactly like a missing one.

use berth_oci::RepoName;

use crate::error::MgmtError;
use crate::AppState;

type Result<T> = std::result::Result<T, MgmtError>;

/// Finds a repository given relative to its namespace or in full.
pub(crate) async fn resolve_repo(state: &AppState, ns: &str, repo: &str) -> Result<RepoName> {
    let reg = &state.registry;
    reg.namespace(ns).await?;
    let mut candidates = vec![format!("{ns}/{repo}")];
    if repo == ns || repo.starts_with(&format!("{ns}/")) {
        candidates.push(repo.to_string());
    }
    for c in &candidates {
        if let Ok(name) = c.parse::<RepoName>() {
            if reg.repo_exists(&name).await? {
                return Ok(name);
            }
        }
    }
    Err(repo_not_found(ns, repo))
}

/// The answer for a repository that does not exist, and, word for word,
/// for one the caller may not see.
pub(crate) fn repo_not_found(ns: &str, repo: &str) -> MgmtError {
    MgmtError::not_found(format!(
        "repository {repo:?} does not exist in namespace {ns:?}"
    ))
}
