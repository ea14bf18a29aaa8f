//! The metadata engine seam.
//!
//! Everything the store knows besides blob bytes lives in a small ordered
//! key-value model: a fixed set of tables, point reads, prefix scans in key
//! order, and multi-table transactions. That is all the rest of the store
//! may use, so that a second engine (PostgreSQL, for several replicas) can
//! be added by implementing [`MetaDb`] and running the same test suite
//! (as in garage's `db` crate).

pub(crate) mod pg_db;
pub(crate) mod sled_db;

use std::cell::RefCell;

use crate::error::{Error, Result};

/// The tables of the metadata model. The key layout of each is drawn in
/// `crate::layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Namespaces,
    Repos,
    Blobs,
    Links,
    Manifests,
    Tags,
    Referrers,
    Uploads,
    Settings,
    BlobLinks,
    Users,
    Grants,
    Tokens,
    Audit,
    Secrets,
    BlobRefs,
    GcRuns,
    Retention,
    Webhooks,
    Outbox,
    Deliveries,
    DeliveryQueue,
    Deleting,
    Leases,
    GcQueue,
}

impl Table {
    pub(crate) const ALL: [Table; 25] = [
        Table::Namespaces,
        Table::Repos,
        Table::Blobs,
        Table::Links,
        Table::Manifests,
        Table::Tags,
        Table::Referrers,
        Table::Uploads,
        Table::Settings,
        Table::BlobLinks,
        Table::Users,
        Table::Grants,
        Table::Tokens,
        Table::Audit,
        Table::Secrets,
        Table::BlobRefs,
        Table::GcRuns,
        Table::Retention,
        Table::Webhooks,
        Table::Outbox,
        Table::Deliveries,
        Table::DeliveryQueue,
        Table::Deleting,
        Table::Leases,
        Table::GcQueue,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Namespaces => "namespaces",
            Table::Repos => "repos",
            Table::Blobs => "blobs",
            Table::Links => "links",
            Table::Manifests => "manifests",
            Table::Tags => "tags",
            Table::Referrers => "referrers",
            Table::Uploads => "uploads",
            Table::Settings => "settings",
            Table::BlobLinks => "blob_links",
            Table::Users => "users",
            Table::Grants => "grants",
            Table::Tokens => "tokens",
            Table::Audit => "audit",
            Table::Secrets => "secrets",
            Table::BlobRefs => "blob_refs",
            Table::GcRuns => "gc_runs",
            Table::Retention => "retention",
            Table::Webhooks => "webhooks",
            Table::Outbox => "outbox",
            Table::Deliveries => "deliveries",
            Table::DeliveryQueue => "delivery_queue",
            Table::Deleting => "deleting",
            Table::Leases => "leases",
            Table::GcQueue => "gc_queue",
        }
    }

    pub(crate) fn index(self) -> usize {
        Table::ALL.iter().position(|t| *t == self).expect("listed")
    }
}

/// Why a transaction body stopped.
pub(crate) enum TxError {
    /// The body decided to abort with a store error; nothing is written.
    Abort(Error),
    /// The engine needs the body to run again (conflict) or failed; opaque
    /// to the body, interpreted by the engine that produced it.
    Engine(Box<dyn std::any::Any + Send>),
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        TxError::Abort(e)
    }
}

pub(crate) type TxResult<T> = std::result::Result<T, TxError>;

/// Reads and writes inside one transaction. Reads see the transaction's own
/// writes; nothing is visible to others until the body returns `Ok`.
pub(crate) trait Txn {
    fn get(&self, table: Table, key: &[u8]) -> TxResult<Option<Vec<u8>>>;
    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> TxResult<()>;
    fn delete(&self, table: Table, key: &[u8]) -> TxResult<()>;
}

/// A metadata engine.
pub(crate) trait MetaDb: Send + Sync + 'static {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Entries whose key starts with `prefix` and sorts strictly after
    /// `after` (when given), in key order, at most `limit` of them.
    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// [`MetaDb::scan`] for listings that need only the keys.
    fn scan_keys(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>>;
    /// Number of entries under a prefix.
    fn count(&self, table: Table, prefix: &[u8]) -> Result<usize>;
    /// Runs `body` atomically; the engine may run it more than once.
    fn transact_dyn(&self, body: &dyn Fn(&dyn Txn) -> TxResult<()>) -> Result<()>;
    /// Makes every committed transaction durable.
    fn flush(&self) -> Result<()>;
    /// Whether calls wait on a network round trip (a database server)
    /// rather than, mostly, on a cache in this process: the store's gates
    /// then keep even point reads off the async workers.
    fn remote(&self) -> bool {
        false
    }
}

/// Typed conveniences over [`MetaDb`].
pub(crate) trait MetaDbExt: MetaDb {
    fn transact<T>(&self, body: impl Fn(&dyn Txn) -> TxResult<T>) -> Result<T> {
        // The body may run several times; keep only the last successful
        // result. RefCell: the engine runs the body on this thread.
        let out = RefCell::new(None);
        self.transact_dyn(&|tx| {
            let v = body(tx)?;
            *out.borrow_mut() = Some(v);
            Ok(())
        })?;
        Ok(out.into_inner().expect("transaction body returned Ok"))
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        key: &[u8],
    ) -> Result<Option<T>> {
        match self.get(table, key)? {
            Some(v) => Ok(Some(decode(table, &v)?)),
            None => Ok(None),
        }
    }
}

impl<D: MetaDb + ?Sized> MetaDbExt for D {}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(table: Table, v: &[u8]) -> Result<T> {
    serde_json::from_slice(v).map_err(|source| Error::CorruptRecord {
        table: table.name(),
        source,
    })
}

/// A key that does not have the layout of its table's keys.
pub(crate) fn bad_key(table: Table, key: &[u8]) -> Error {
    Error::Corrupt {
        what: format!(
            "malformed key {:?} in metadata table {}; run `berth fsck`",
            String::from_utf8_lossy(key),
            table.name()
        ),
    }
}

pub(crate) fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("metadata records always serialise")
}

/// JSON helpers inside a transaction.
pub(crate) fn tx_get<T: serde::de::DeserializeOwned>(
    tx: &dyn Txn,
    table: Table,
    key: &[u8],
) -> TxResult<Option<T>> {
    match tx.get(table, key)? {
        Some(v) => Ok(Some(decode(table, &v)?)),
        None => Ok(None),
    }
}

pub(crate) fn tx_put<T: serde::Serialize>(
    tx: &dyn Txn,
    table: Table,
    key: &[u8],
    v: &T,
) -> TxResult<()> {
    tx.put(table, key, &encode(v))
}

#[cfg(test)]
pub(crate) mod tests {
    //! One suite, run against every engine.
    use super::*;

    pub(crate) fn suite(db: &dyn MetaDb) {
        db.transact_dyn(&|tx| {
            tx.put(Table::Tags, b"r\0b", b"2")?;
            tx.put(Table::Tags, b"r\0a", b"1")?;
            tx.put(Table::Tags, b"r\0c", b"3")?;
            tx.put(Table::Tags, b"s\0a", b"x")?;
            assert_eq!(tx.get(Table::Tags, b"r\0a")?, Some(b"1".to_vec()));
            Ok(())
        })
        .unwrap();
        let all = db.scan(Table::Tags, b"r\0", None, 10).unwrap();
        let keys: Vec<_> = all.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            vec![b"r\0a".to_vec(), b"r\0b".to_vec(), b"r\0c".to_vec()]
        );
        let after = db.scan(Table::Tags, b"r\0", Some(b"r\0a"), 1).unwrap();
        assert_eq!(after[0].0, b"r\0b".to_vec());
        assert_eq!(after.len(), 1);
        assert_eq!(db.scan_keys(Table::Tags, b"r\0", None, 10).unwrap(), keys);
        assert_eq!(
            db.scan_keys(Table::Tags, b"r\0", Some(b"r\0a"), 1).unwrap(),
            vec![b"r\0b".to_vec()]
        );
        assert_eq!(db.count(Table::Tags, b"r\0").unwrap(), 3);
        // Tables are independent.
        assert!(db.get(Table::Repos, b"r\0a").unwrap().is_none());
        // An aborted transaction writes nothing.
        let r = db.transact_dyn(&|tx| {
            tx.put(Table::Tags, b"r\0z", b"9")?;
            Err(TxError::Abort(Error::Corrupt {
                what: "test".into(),
            }))
        });
        assert!(r.is_err());
        assert!(db.get(Table::Tags, b"r\0z").unwrap().is_none());
        db.transact_dyn(&|tx| tx.delete(Table::Tags, b"r\0a"))
            .unwrap();
        assert!(db.get(Table::Tags, b"r\0a").unwrap().is_none());
        db.flush().unwrap();
        // Paging edges: a limit of zero, `after` past the range, a prefix
        // that is the whole table.
        assert!(db.scan(Table::Tags, b"r\0", None, 0).unwrap().is_empty());
        assert!(db
            .scan(Table::Tags, b"r\0", Some(b"r\0z"), 5)
            .unwrap()
            .is_empty());
        assert_eq!(
            db.scan_keys(Table::Tags, b"", None, usize::MAX)
                .unwrap()
                .len(),
            3
        );
        assert_eq!(db.count(Table::Tags, b"").unwrap(), 3);
        // Keys with bytes above 0x7f sort as bytes.
        db.transact_dyn(&|tx| {
            tx.put(Table::Repos, b"\xff\x01", b"hi")?;
            tx.put(Table::Repos, b"\x7f", b"lo")
        })
        .unwrap();
        let keys = db.scan_keys(Table::Repos, b"", None, 10).unwrap();
        assert_eq!(keys, vec![b"\x7f".to_vec(), b"\xff\x01".to_vec()]);
        assert_eq!(
            db.scan_keys(Table::Repos, b"\xff", None, 10).unwrap().len(),
            1
        );
    }

    /// Transactions on `threads` threads that read and write one key, `each`
    /// per thread: every one commits (the engine reruns conflicting bodies,
    /// however hot the key) and none of the increments is lost.
    pub(crate) fn conflicts(db: &dyn MetaDb, threads: usize, each: usize) {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for _ in 0..each {
                        db.transact_dyn(&|tx| {
                            let n = tx
                                .get(Table::Settings, b"counter")?
                                .map(|v| String::from_utf8(v).unwrap().parse::<usize>().unwrap())
                                .unwrap_or(0);
                            std::thread::sleep(std::time::Duration::from_millis(2));
                            tx.put(Table::Settings, b"counter", (n + 1).to_string().as_bytes())
                        })
                        .unwrap();
                    }
                });
            }
        });
        let n = db.get(Table::Settings, b"counter").unwrap().unwrap();
        assert_eq!(String::from_utf8(n).unwrap(), (threads * each).to_string());
    }
}
