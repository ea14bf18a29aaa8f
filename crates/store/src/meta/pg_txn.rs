//! Transactions of the PostgreSQL engine.
//!
//! A transaction costs the engine's round trips, so it takes as few as
//! the seam allows: `BEGIN` and the shared lock go in one, each read the
//! body makes is one (statements are prepared once per connection), and
//! the writes are kept in memory (reads see them) and sent at the end
//! together with the notice for other processes' caches and the `COMMIT`,
//! pipelined: one more round trip, however many rows the body wrote.

use std::cell::RefCell;
use std::collections::BTreeMap;

use deadpool_postgres::Object;
use tokio_postgres::error::SqlState;

use super::pg_cache::{self, ALL, CHANNEL, MAX_PAYLOAD};
use super::pg_db::{pg, tbl, PgDb};
use super::{Table, TxError, TxResult, Txn};
use crate::error::{Error, Result};

/// Conflicting transactions are run again this many times before the
/// conflict is reported.
const MAX_ATTEMPTS: usize = 64;
/// After this many conflicts in a row, a transaction runs alone: it takes
/// [`CONTENDED_LOCK`] exclusively, where every other transaction holds it
/// shared. A transaction that keeps losing a hot row (the event sequence,
/// one repository's record under parallel pushes) then commits instead of
/// being aborted by fresh ones again and again.
const QUEUE_AFTER: usize = 8;
/// Lock that every transaction holds shared (a transaction lock) and one
/// that conflicted repeatedly holds exclusive (a session lock around its
/// transaction, see [`PgDb::attempts`]).
const CONTENDED_LOCK: i64 = 7_380_918;

pub(super) const GET: &str = "SELECT v FROM berth_kv WHERE tbl = $1 AND k = $2";
const UPSERT: &str = "INSERT INTO berth_kv (tbl, k, v) \
     SELECT * FROM unnest($1::int2[], $2::bytea[], $3::bytea[]) \
     ON CONFLICT (tbl, k) DO UPDATE SET v = EXCLUDED.v";
const DELETE: &str = "DELETE FROM berth_kv WHERE (tbl, k) IN \
     (SELECT * FROM unnest($1::int2[], $2::bytea[]))";
const NOTIFY: &str = "SELECT pg_notify($1, $2)";

/// A transaction's writes, by table and key: the value, or `None` for a
/// deletion. The last write of a key is the one sent.
type Writes = BTreeMap<(i16, Vec<u8>), Option<Vec<u8>>>;

impl PgDb {
    /// [`super::MetaDb::transact_dyn`] for this engine.
    pub(super) fn run_transaction(&self, body: &dyn Fn(&dyn Txn) -> TxResult<()>) -> Result<()> {
        let client = self.client()?;
        let mut queued = false;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.attempts(&client, body, &mut queued)
        }));
        let release = || {
            self.block_on(
                client.batch_execute(&format!("SELECT pg_advisory_unlock({CONTENDED_LOCK})")),
            )
        };
        match outcome {
            Ok(outcome) => {
                if queued && release().is_err() {
                    // A connection that may still hold the lock must not go
                    // back to the pool: every transaction of every replica
                    // would wait on it. Taken out, it is closed.
                    drop(Object::take(client));
                }
                outcome
            }
            Err(panic) => {
                // The body panicked inside an open transaction: the
                // connection is closed rather than handed to someone else
                // in the middle of it (or holding the lock).
                drop(Object::take(client));
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Runs `body` in a serializable transaction until it commits, is
    /// aborted, or conflicted [`MAX_ATTEMPTS`] times. From the
    /// [`QUEUE_AFTER`]th conflict on it holds [`CONTENDED_LOCK`]
    /// exclusively, as a session lock taken *before* `BEGIN` (and
    /// `queued` says so, for the caller to release it): a serializable
    /// transaction's snapshot is taken by its first statement, so a lock
    /// waited for inside the transaction would leave it with a snapshot
    /// older than the commits it waited for, and it would conflict anyway.
    fn attempts(
        &self,
        client: &Object,
        body: &dyn Fn(&dyn Txn) -> TxResult<()>,
        queued: &mut bool,
    ) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > QUEUE_AFTER && !*queued {
                self.block_on(
                    client.batch_execute(&format!("SELECT pg_advisory_lock({CONTENDED_LOCK})")),
                )
                .map_err(pg)?;
                *queued = true;
            }
            let begin = if *queued {
                "BEGIN ISOLATION LEVEL SERIALIZABLE".to_string()
            } else {
                format!(
                    "BEGIN ISOLATION LEVEL SERIALIZABLE; \
                     SELECT pg_advisory_xact_lock_shared({CONTENDED_LOCK})"
                )
            };
            if let Err(e) = self.block_on(client.batch_execute(&begin)) {
                let _ = self.block_on(client.batch_execute("ROLLBACK"));
                return Err(pg(e));
            }
            let txn = PgTxn {
                client,
                db: self,
                writes: RefCell::new(Writes::new()),
            };
            let outcome = match body(&txn) {
                Ok(()) => {
                    let writes = txn.writes.into_inner();
                    let done = self.block_on(commit(client, &writes));
                    if done.is_ok() {
                        // This process reads its own writes from here on,
                        // before any notice comes back.
                        self.cache
                            .drop_keys(writes.keys().map(|(t, k)| (*t, k.as_slice())));
                    }
                    done.map_err(TxError::from_pg)
                }
                Err(e) => {
                    let _ = self.block_on(client.batch_execute("ROLLBACK"));
                    Err(e)
                }
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(TxError::Abort(e)) => return Err(e),
                Err(TxError::Engine(any)) => {
                    let e = match any.downcast::<tokio_postgres::Error>() {
                        Ok(e) => *e,
                        Err(_) => {
                            return Err(Error::Metadata {
                                source: "foreign engine error in a PostgreSQL transaction".into(),
                            })
                        }
                    };
                    let retry = matches!(
                        e.code(),
                        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                            || *c == SqlState::T_R_DEADLOCK_DETECTED
                    );
                    if !retry || attempt >= MAX_ATTEMPTS {
                        return Err(pg(e));
                    }
                    // Back off, twice as long with each conflict (up to
                    // 25 ms) and by a random part of that, so that the
                    // transactions that collided do not collide again.
                    let cap = (500u64 << attempt.min(6)).min(25_000);
                    std::thread::sleep(std::time::Duration::from_micros(
                        cap * u64::from(fastrand_u8()) / 255 + 100,
                    ));
                }
            }
        }
    }
}

/// Sends a transaction's writes, the notice naming the cached rows among
/// them, and `COMMIT`, pipelined (each is sent before any answer is
/// awaited). An error of a statement ends the transaction: PostgreSQL
/// answers the `COMMIT` that follows it with a rollback, and the first
/// error is the one returned.
async fn commit(
    client: &Object,
    writes: &Writes,
) -> std::result::Result<(), tokio_postgres::Error> {
    let (mut put_t, mut put_k, mut put_v) = (Vec::new(), Vec::new(), Vec::new());
    let (mut del_t, mut del_k) = (Vec::new(), Vec::new());
    let mut notice = String::new();
    for ((t, k), v) in writes {
        match v {
            Some(v) => {
                put_t.push(*t);
                put_k.push(k.as_slice());
                put_v.push(v.as_slice());
            }
            None => {
                del_t.push(*t);
                del_k.push(k.as_slice());
            }
        }
        if cached_number(*t) && notice != ALL {
            let line = pg_cache::notice_line(*t, k);
            if notice.len() + line.len() + 1 > MAX_PAYLOAD {
                notice = ALL.to_string();
            } else {
                if !notice.is_empty() {
                    notice.push('\n');
                }
                notice.push_str(&line);
            }
        }
    }
    // Prepared once per connection; later transactions pay no round trip.
    let upsert = client.prepare_cached(UPSERT).await?;
    let delete = client.prepare_cached(DELETE).await?;
    let notify = client.prepare_cached(NOTIFY).await?;
    let puts = async {
        if put_t.is_empty() {
            return Ok(0);
        }
        client.execute(&upsert, &[&put_t, &put_k, &put_v]).await
    };
    let dels = async {
        if del_t.is_empty() {
            return Ok(0);
        }
        client.execute(&delete, &[&del_t, &del_k]).await
    };
    let notified = async {
        if notice.is_empty() {
            return Ok(0);
        }
        client.execute(&notify, &[&CHANNEL, &notice]).await
    };
    let (p, d, n, c) = futures::join!(puts, dels, notified, client.batch_execute("COMMIT"));
    p?;
    d?;
    n?;
    c
}

/// Whether the table numbered `t` is one whose rows caches keep.
fn cached_number(t: i16) -> bool {
    Table::ALL
        .get(t as usize)
        .is_some_and(|table| pg_cache::cached(*table))
}

/// A few random bits for backoff jitter.
fn fastrand_u8() -> u8 {
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    b[0]
}

impl TxError {
    fn from_pg(e: tokio_postgres::Error) -> TxError {
        TxError::Engine(Box::new(e))
    }
}

struct PgTxn<'t> {
    client: &'t Object,
    db: &'t PgDb,
    /// What the body wrote so far (see [`Writes`]). RefCell: the seam's
    /// methods take `&self`, and a body runs on one thread.
    writes: RefCell<Writes>,
}

impl Txn for PgTxn<'_> {
    fn get(&self, table: Table, key: &[u8]) -> TxResult<Option<Vec<u8>>> {
        if let Some(v) = self.writes.borrow().get(&(tbl(table), key.to_vec())) {
            return Ok(v.clone());
        }
        let row = self
            .db
            .block_on(async {
                let st = self.client.prepare_cached(GET).await?;
                self.client.query_opt(&st, &[&tbl(table), &key]).await
            })
            .map_err(TxError::from_pg)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.writes
            .borrow_mut()
            .insert((tbl(table), key.to_vec()), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&self, table: Table, key: &[u8]) -> TxResult<()> {
        self.writes
            .borrow_mut()
            .insert((tbl(table), key.to_vec()), None);
        Ok(())
    }
}
