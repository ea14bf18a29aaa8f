//! The audit log: who did what, newest first.

use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::layout::keys;
use crate::meta::{self, MetaDbExt, Table};
use crate::records::Millis;
use crate::Registry;

/// One audit-log entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: Millis,
    /// Who: a user name, `token:<name>`, or `anonymous`.
    pub actor: String,
    /// What, e.g. `push`, `delete`, `namespace.update`, `grant`, `login.failed`.
    pub action: String,
    /// On what, e.g. `acme/web:1` or `/api/v1/registry`.
    pub target: String,
    /// Client address.
    pub address: String,
    /// Outcome or detail (status code, role granted, ...).
    #[serde(default)]
    pub detail: String,
}

/// Longest actor, target or detail stored in an audit entry, in bytes.
pub const MAX_AUDIT_FIELD: usize = 256;

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Orders audit entries written within the same millisecond.
static AUDIT_SEQ: AtomicU32 = AtomicU32::new(0);

impl Registry {
    /// Appends to the audit log. Actor, target and detail are cut to
    /// [`MAX_AUDIT_FIELD`] bytes: a client chooses the user name it tries,
    /// and the log must not store whatever length it sends.
    pub async fn audit(&self, e: &AuditEntry) -> Result<()> {
        let e = e.clone();
        self.meta(move |r| r.audit_blocking(&e)).await
    }

    /// [`Registry::audit`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn audit_blocking(&self, e: &AuditEntry) -> Result<()> {
        let capped;
        let e = if [&e.actor, &e.target, &e.detail]
            .iter()
            .any(|f| f.len() > MAX_AUDIT_FIELD)
        {
            capped = AuditEntry {
                actor: truncate(&e.actor, MAX_AUDIT_FIELD).to_string(),
                target: truncate(&e.target, MAX_AUDIT_FIELD).to_string(),
                detail: truncate(&e.detail, MAX_AUDIT_FIELD).to_string(),
                ..e.clone()
            };
            &capped
        } else {
            e
        };
        let first = AUDIT_SEQ.fetch_add(1, Ordering::Relaxed);
        self.db().transact(|tx| {
            // Newest first in key order (see the key's layout). Another
            // replica counts its own sequence and may have written the same
            // millisecond and number: the next free number is taken (the
            // database serialises two writers of one key).
            let mut seq = first;
            loop {
                let key = keys::audit(e.at, seq);
                if tx.get(Table::Audit, &key)?.is_none() {
                    return meta::tx_put(tx, Table::Audit, &key, e);
                }
                seq = seq.wrapping_add(1);
            }
        })
    }

    /// Deletes audit entries written before `before` (milliseconds since
    /// the epoch), at most `limit` of them; returns how many went.
    pub async fn audit_prune(&self, before: Millis, limit: usize) -> Result<usize> {
        // Keys hold the inverted time: older entries sort after this key.
        let after = keys::audit_older_than(before);
        let n = self
            .meta(move |r| {
                let rows = r.db().scan(Table::Audit, b"", Some(&after), limit)?;
                if rows.is_empty() {
                    return Ok(0);
                }
                r.db().transact(|tx| {
                    for (k, _) in &rows {
                        tx.delete(Table::Audit, k)?;
                    }
                    Ok(())
                })?;
                Ok(rows.len())
            })
            .await?;
        if n == 0 {
            return Ok(0);
        }
        self.durable().await?;
        Ok(n)
    }

    /// A page of the audit log, newest first, and the number of entries.
    pub async fn audit_page(&self, skip: usize, limit: usize) -> Result<(Vec<AuditEntry>, usize)> {
        self.meta(move |r| r.audit_page_blocking(skip, limit)).await
    }

    /// [`Registry::audit_page`] on a blocking thread (inside [`Registry::meta`]).
    pub(crate) fn audit_page_blocking(
        &self,
        skip: usize,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, usize)> {
        let total = self.db().count(Table::Audit, b"")?;
        let rows = self
            .db()
            .scan(Table::Audit, b"", None, skip.saturating_add(limit))?;
        let entries = rows
            .into_iter()
            .skip(skip)
            .map(|(_, v)| meta::decode(Table::Audit, &v))
            .collect::<Result<_>>()?;
        Ok((entries, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::now_millis;

    #[tokio::test]
    async fn audit_entries_older_than_retention_are_pruned_and_fields_capped() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(crate::StoreConfig::new(dir.path()))
            .await
            .unwrap();
        let now = now_millis();
        let day = 86_400_000;
        for (i, at) in [now - 100 * day, now - 91 * day, now - 89 * day, now]
            .iter()
            .enumerate()
        {
            reg.audit(&AuditEntry {
                at: *at,
                actor: "x".repeat(if i == 3 { 45_000 } else { 3 }),
                action: format!("act{i}"),
                target: String::new(),
                address: "127.0.0.1".into(),
                detail: String::new(),
            })
            .await
            .unwrap();
        }
        assert_eq!(reg.audit_prune(now - 90 * day, 1).await.unwrap(), 1);
        assert_eq!(reg.audit_prune(now - 90 * day, 1000).await.unwrap(), 1);
        assert_eq!(reg.audit_prune(now - 90 * day, 1000).await.unwrap(), 0);
        let (page, total) = reg.audit_page(0, 10).await.unwrap();
        assert_eq!(total, 2);
        assert_eq!(page[0].action, "act3");
        assert_eq!(page[0].actor.len(), MAX_AUDIT_FIELD);
        assert_eq!(page[1].action, "act2");
    }
}
