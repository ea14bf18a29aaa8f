//! Batched pull times: a pull records when a repository and a manifest
//! were last pulled, without a metadata write per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_oci::{Digest, RepoName};

use crate::error::Result;
use crate::events::{self, EventContext, EventKind};
use crate::layout::keys;
use crate::manifests::manifest_event;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{now_millis, ManifestRecord, Millis, RepoRecord};
use crate::Registry;

/// Pull times waiting to be written: pulls must not turn every GET into a
/// metadata write, so they are gathered here and written every few seconds.
#[derive(Default)]
pub(crate) struct Pulls {
    // Why a Mutex: many request tasks record, one flusher drains; held for
    // an insert or a swap only.
    pending: Mutex<HashMap<(RepoName, Digest), Millis>>,
}

impl Pulls {
    pub(crate) fn record(&self, repo: &RepoName, digest: &Digest) {
        self.pending
            .lock()
            .expect("pulls lock poisoned")
            .insert((repo.clone(), digest.clone()), now_millis());
    }

    fn take(&self) -> HashMap<(RepoName, Digest), Millis> {
        std::mem::take(&mut *self.pending.lock().expect("pulls lock poisoned"))
    }
}

/// How often pull times are written.
const PULL_FLUSH_SECS: u64 = 2;

impl Registry {
    /// Writes gathered pull times (also called on shutdown); on a blocking
    /// thread (inside [`Registry::meta`]).
    pub(crate) fn flush_pulls(&self) -> Result<()> {
        let pending = self.inner.pulls.take();
        if pending.is_empty() {
            return Ok(());
        }
        // Pull events only while some webhook wants them: otherwise the
        // flush writes pull times and nothing more.
        let report = self.subscribed_blocking(EventKind::ArtifactPulled)?;
        let mut by_repo: HashMap<&RepoName, Millis> = HashMap::new();
        for ((repo, _), t) in &pending {
            let e = by_repo.entry(repo).or_insert(*t);
            *e = (*e).max(*t);
        }
        self.db().transact(|tx| {
            for (repo, t) in &by_repo {
                let key = keys::repo(repo);
                if let Some(mut r) = meta::tx_get::<RepoRecord>(tx, Table::Repos, &key)? {
                    // The latest wins: another replica may have written a
                    // later pull of the same repository first.
                    r.last_pull = r.last_pull.max(Some(*t));
                    meta::tx_put(tx, Table::Repos, &key, &r)?;
                }
            }
            for ((repo, d), t) in &pending {
                let key = keys::manifest(repo, d);
                if let Some(mut m) = meta::tx_get::<ManifestRecord>(tx, Table::Manifests, &key)? {
                    m.last_pull = m.last_pull.max(Some(*t));
                    meta::tx_put(tx, Table::Manifests, &key, &m)?;
                    if report {
                        let mut e = manifest_event(
                            EventKind::ArtifactPulled,
                            repo,
                            d,
                            &m,
                            &EventContext::default(),
                        );
                        e.at = *t;
                        events::write_in_tx(tx, &e)?;
                    }
                }
            }
            Ok(())
        })?;
        if report {
            self.events_wake();
        }
        Ok(())
    }

    /// Writes batched pull times every few seconds for as long as the
    /// registry is open.
    pub(crate) fn spawn_pull_flusher(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(PULL_FLUSH_SECS));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let reg = Registry { inner };
                if let Err(e) = reg.meta(|r| r.flush_pulls()).await {
                    tracing::warn!(error = %e, "could not record pull times");
                }
            }
        });
    }
}
