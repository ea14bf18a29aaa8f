//! The embedded default engine: one sled database, one sled tree per table.

use std::path::Path;

use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;

use super::{MetaDb, Table, TxError, TxResult, Txn};
use crate::error::{Error, Result};

pub(crate) struct SledDb {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

impl SledDb {
    pub(crate) fn open(path: &Path, cache_bytes: u64) -> Result<SledDb> {
        let db = sled::Config::new()
            .path(path)
            // Flushing is explicit (every acknowledged write flushes before
            // its answer); the background flush only bounds what a crash
            // loses of non-acknowledged updates such as pull times.
            .flush_every_ms(Some(1000))
            // sled's page cache defaults to 1 GiB; a registry's metadata
            // working set is far smaller, and RSS must stay bounded.
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| match e {
                // sled wraps the failed flock(2) in an I/O error of its own.
                sled::Error::Io(ref io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.raw_os_error() == Some(11)
                        || io.to_string().contains("could not acquire lock") =>
                {
                    Error::Locked {
                        path: path.display().to_string(),
                        source: e.into(),
                    }
                }
                sled::Error::Corruption { .. } => Error::CorruptDatabase {
                    path: path.display().to_string(),
                    source: e.into(),
                },
                other => Error::from(other),
            })?;
        let trees = Table::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(SledDb { db, trees })
    }

    fn tree(&self, t: Table) -> &sled::Tree {
        &self.trees[t.index()]
    }
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Metadata { source: e.into() }
    }
}

struct SledTxn<'a> {
    trees: &'a [TransactionalTree],
}

fn engine(e: UnabortableTransactionError) -> TxError {
    TxError::Engine(Box::new(e))
}

impl Txn for SledTxn<'_> {
    fn get(&self, table: Table, key: &[u8]) -> TxResult<Option<Vec<u8>>> {
        self.trees[table.index()]
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(engine)
    }

    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.trees[table.index()]
            .insert(key, value)
            .map(|_| ())
            .map_err(engine)
    }

    fn delete(&self, table: Table, key: &[u8]) -> TxResult<()> {
        self.trees[table.index()]
            .remove(key)
            .map(|_| ())
            .map_err(engine)
    }
}

impl SledDb {
    /// Rows under `prefix` strictly after `after`, at most `limit`, each
    /// turned into what the caller keeps (a listing that needs only keys
    /// does not copy the values).
    fn rows<T>(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        keep: impl Fn(&[u8], &[u8]) -> T,
    ) -> Result<Vec<T>> {
        let tree = self.tree(table);
        let mut out = Vec::new();
        let iter = match after {
            Some(a) => {
                let mut start = a.to_vec();
                // Strictly after `a`: the smallest key greater than `a`.
                start.push(0);
                tree.range(start..)
            }
            None => tree.range(prefix.to_vec()..),
        };
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push(keep(&k, &v));
        }
        Ok(out)
    }
}

impl MetaDb for SledDb {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree(table).get(key)?.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.rows(table, prefix, after, limit, |k, v| (k.to_vec(), v.to_vec()))
    }

    fn scan_keys(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>> {
        self.rows(table, prefix, after, limit, |k, _| k.to_vec())
    }

    fn count(&self, table: Table, prefix: &[u8]) -> Result<usize> {
        let mut n = 0;
        for item in self.tree(table).scan_prefix(prefix) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    fn transact_dyn(&self, body: &dyn Fn(&dyn Txn) -> TxResult<()>) -> Result<()> {
        let r = self.trees.as_slice().transaction(|trees| {
            let tx = SledTxn { trees };
            match body(&tx) {
                Ok(()) => Ok(()),
                Err(TxError::Abort(e)) => Err(ConflictableTransactionError::Abort(e)),
                Err(TxError::Engine(any)) => match any.downcast::<UnabortableTransactionError>() {
                    Ok(e) => Err((*e).into()),
                    Err(_) => Err(ConflictableTransactionError::Abort(Error::Metadata {
                        source: "foreign engine error in sled transaction".into(),
                    })),
                },
            }
        });
        match r {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sled_passes_the_engine_suite() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::SledDb::open(&dir.path().join("meta"), 8 << 20).unwrap();
        crate::meta::tests::suite(&db);
        crate::meta::tests::conflicts(&db, 4, 25);
    }
}
