//! The PostgreSQL engine: every table of the model is a range of one
//! table `berth_kv (tbl, k, v)`, whose primary key (a b-tree on `tbl, k`,
//! bytes compared as bytes) is the index that prefix scans, tag and catalog
//! pages and the collector's scans walk in key order. Transactions run at
//! `SERIALIZABLE` and run again when PostgreSQL reports a conflict, as the
//! seam allows; a commit is durable when it returns, so `flush` has
//! nothing to do.
//!
//! The seam is synchronous: its methods run on threads that may block
//! (the store's gates put them on the blocking pool, or mark the worker as
//! blocking), and wait for the asynchronous driver with
//! `Handle::block_on`, whose connections the runtime drives.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::runtime::Handle;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::{MetaDb, Table, TxError, TxResult, Txn};
use crate::error::{Error, Result};

/// The schema this binary creates and reads. A database whose recorded
/// version is newer is refused (written by a newer Berth).
const SCHEMA_VERSION: i32 = 1;

/// Conflicting transactions are run again this many times before the
/// conflict is reported.
const MAX_ATTEMPTS: usize = 64;
/// After this many conflicts in a row, a transaction runs alone: it takes
/// [`CONTENDED_LOCK`] exclusively, where every other transaction holds it
/// shared. A transaction that keeps losing a hot row (the event sequence,
/// one repository's record under parallel pushes) then commits instead of
/// being aborted by fresh ones again and again.
const QUEUE_AFTER: usize = 8;

pub(crate) struct PgDb {
    pool: Pool,
    rt: Handle,
    /// The connection holding this process's share of the owner lock (see
    /// [`PgDb::open`]); dropped with it.
    _owner: tokio_postgres::Client,
}

/// Key of the session advisory lock: servers hold it shared (any number of
/// replicas serve one database), offline maintenance holds it exclusive;
/// and key of the transaction lock schema migrations take.
const OWNER_LOCK: i64 = 7_380_916;
const MIGRATION_LOCK: i64 = 7_380_917;
/// Lock that every transaction holds shared (a transaction lock) and one
/// that conflicted repeatedly holds exclusive (a session lock around its
/// transaction, see [`PgDb::attempts`]).
const CONTENDED_LOCK: i64 = 7_380_918;

fn pg(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    // tokio-postgres says only "db error" and keeps what the server said
    // (its SQLSTATE and message) as the error's source: the message
    // carries the whole chain, so that a log line says what happened.
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    Error::Metadata {
        source: text.into(),
    }
}

/// A PostgreSQL URL with its password replaced, for messages and
/// printed configurations.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl PgDb {
    /// Connects a pool of at most `max_connections` to `url` and brings
    /// the schema up to this binary's version (with `migrate`; otherwise
    /// a database without the schema is refused). Also takes the owner
    /// lock: shared by servers, so several replicas serve one database;
    /// `exclusive` for offline maintenance (`berth gc`, `berth fsck`),
    /// whose passes assume nothing else writes, so that it is refused
    /// while a server runs and a server is refused while it runs.
    pub(crate) async fn open(
        url: &str,
        max_connections: usize,
        migrate: bool,
        exclusive: bool,
    ) -> Result<PgDb> {
        let cfg: tokio_postgres::Config = url.parse().map_err(|e| Error::Config {
            what: format!(
                "metadata.url {} is not a PostgreSQL URL ({e}); expected \
                 postgres://user:password@host:5432/database",
                redact(url)
            ),
        })?;
        let mgr = Manager::from_config(
            cfg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let owner = take_owner_lock(&cfg, url, exclusive).await?;
        let pool = Pool::builder(mgr)
            .max_size(max_connections.max(1))
            .build()
            .map_err(pg)?;
        let db = PgDb {
            pool,
            rt: Handle::current(),
            _owner: owner,
        };
        let client = db.pool.get().await.map_err(|e| Error::Config {
            what: format!(
                "cannot connect to PostgreSQL at {}: {e}; check metadata.url and that the \
                 server is reachable",
                redact(url)
            ),
        })?;
        if migrate {
            migrate_schema(&client).await?;
        } else {
            check_schema(&client).await?;
        }
        Ok(db)
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
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
        client: &mut deadpool_postgres::Object,
        body: &dyn Fn(&dyn Txn) -> TxResult<()>,
        queued: &mut bool,
    ) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > QUEUE_AFTER && !*queued {
                self.block_on(client.execute("SELECT pg_advisory_lock($1)", &[&CONTENDED_LOCK]))
                    .map_err(pg)?;
                *queued = true;
            }
            let tx = self
                .block_on(
                    client
                        .build_transaction()
                        .isolation_level(tokio_postgres::IsolationLevel::Serializable)
                        .start(),
                )
                .map_err(pg)?;
            if !*queued {
                self.block_on(tx.execute(
                    "SELECT pg_advisory_xact_lock_shared($1)",
                    &[&CONTENDED_LOCK],
                ))
                .map_err(pg)?;
            }
            let txn = PgTxn { tx: &tx, db: self };
            let outcome = match body(&txn) {
                Ok(()) => self.block_on(tx.commit()).map_err(TxError::from_pg),
                Err(e) => {
                    let _ = self.block_on(tx.rollback());
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

    fn client(&self) -> Result<deadpool_postgres::Object> {
        self.block_on(self.pool.get()).map_err(pg)
    }
}

/// A connection of its own holding [`OWNER_LOCK`] (exclusive or shared),
/// or the error saying which kind of process holds it the other way.
async fn take_owner_lock(
    cfg: &tokio_postgres::Config,
    url: &str,
    exclusive: bool,
) -> Result<tokio_postgres::Client> {
    let (client, conn) = cfg.connect(NoTls).await.map_err(|e| Error::Config {
        what: format!(
            "cannot connect to PostgreSQL at {}: {e}; check metadata.url and that the server \
             is reachable",
            redact(url)
        ),
    })?;
    // The connection's I/O runs as a task of its own for as long as the
    // client lives; the lock goes with the connection.
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::error!(error = %e, "the PostgreSQL connection holding the owner lock failed");
        }
    });
    let (sql, held_by) = if exclusive {
        (
            "SELECT pg_try_advisory_lock($1)",
            "Berth servers are running on this database; stop every `berth serve` first",
        )
    } else {
        (
            "SELECT pg_try_advisory_lock_shared($1)",
            "an offline Berth command (`berth gc`, `berth fsck`) is running on this database; \
             wait for it to finish",
        )
    };
    let got: bool = client
        .query_one(sql, &[&OWNER_LOCK])
        .await
        .map_err(pg)?
        .get(0);
    if !got {
        return Err(Error::Locked {
            path: redact(url),
            source: held_by.into(),
        });
    }
    Ok(client)
}

/// Creates the schema, or brings an older one up to [`SCHEMA_VERSION`],
/// in one transaction under an advisory lock (replicas starting together
/// migrate once).
async fn migrate_schema(client: &deadpool_postgres::Object) -> Result<()> {
    client
        .batch_execute(&format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE TABLE IF NOT EXISTS berth_schema (version integer NOT NULL);
             CREATE TABLE IF NOT EXISTS berth_kv (
                 tbl smallint NOT NULL,
                 k bytea NOT NULL,
                 v bytea NOT NULL,
                 PRIMARY KEY (tbl, k)
             );
             COMMIT;"
        ))
        .await
        .map_err(pg)?;
    let version = schema_version(client).await?;
    match version {
        None => {
            client
                .execute(
                    "INSERT INTO berth_schema (version) SELECT $1 WHERE NOT EXISTS \
                     (SELECT 1 FROM berth_schema)",
                    &[&SCHEMA_VERSION],
                )
                .await
                .map_err(pg)?;
        }
        Some(v) if v > SCHEMA_VERSION => return Err(newer(v)),
        Some(_) => {}
    }
    Ok(())
}

async fn schema_version(client: &deadpool_postgres::Object) -> Result<Option<i32>> {
    let row = client
        .query_opt("SELECT max(version) FROM berth_schema", &[])
        .await
        .map_err(pg)?;
    Ok(row.and_then(|r| r.get::<_, Option<i32>>(0)))
}

async fn check_schema(client: &deadpool_postgres::Object) -> Result<()> {
    let exists: bool = client
        .query_one("SELECT to_regclass('berth_schema') IS NOT NULL", &[])
        .await
        .map_err(pg)?
        .get(0);
    let version = if exists {
        schema_version(client).await?
    } else {
        None
    };
    match version {
        None => Err(Error::Config {
            what: "the PostgreSQL database has no Berth schema: run `berth migrate-schema` \
                   (or start `berth serve` with metadata.migrate = true)"
                .into(),
        }),
        Some(v) if v > SCHEMA_VERSION => Err(newer(v)),
        Some(v) if v < SCHEMA_VERSION => Err(Error::Config {
            what: format!(
                "the PostgreSQL schema is at version {v}, this binary needs {SCHEMA_VERSION}: \
                 run `berth migrate-schema`"
            ),
        }),
        Some(_) => Ok(()),
    }
}

fn newer(v: i32) -> Error {
    Error::Config {
        what: format!(
            "the PostgreSQL schema is at version {v}, written by a newer Berth; this binary \
             reads version {SCHEMA_VERSION} and older: run the newer version"
        ),
    }
}

/// The smallest key greater than every key starting with `prefix`, or
/// none when no such key exists (an empty prefix, or one of 0xff bytes).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn tbl(t: Table) -> i16 {
    t.index() as i16
}

/// Rows of a table under `prefix` strictly after `after`, in key order:
/// the statement, its lower bound and its upper bound (`$2`, `$3`).
fn range_query(
    what: &str,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: Option<usize>,
) -> (String, Vec<u8>, Option<Vec<u8>>) {
    // The lower bound: after `after` (exclusive), else the prefix itself.
    let (lower, strict) = match after {
        Some(a) if a >= prefix => (a.to_vec(), true),
        _ => (prefix.to_vec(), false),
    };
    let end = prefix_end(prefix);
    let mut sql = format!(
        "SELECT {what} FROM berth_kv WHERE tbl = $1 AND k {} $2",
        if strict { ">" } else { ">=" }
    );
    if end.is_some() {
        sql.push_str(" AND k < $3");
    }
    if what != "count(*)" {
        sql.push_str(" ORDER BY k");
    }
    if let Some(n) = limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    (sql, lower, end)
}

impl PgDb {
    fn rows(
        &self,
        what: &str,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: Option<usize>,
    ) -> Result<Vec<tokio_postgres::Row>> {
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        // `usize::MAX` means every row; LIMIT takes an i64.
        let limit = limit.filter(|n| *n < i64::MAX as usize);
        let (sql, lower, end) = range_query(what, prefix, after, limit);
        let t = tbl(table);
        let client = self.client()?;
        self.block_on(async {
            match &end {
                Some(e) => client.query(&sql, &[&t, &lower, e]).await,
                None => client.query(&sql, &[&t, &lower]).await,
            }
        })
        .map_err(pg)
    }
}

impl MetaDb for PgDb {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let client = self.client()?;
        let row = self
            .block_on(client.query_opt(
                "SELECT v FROM berth_kv WHERE tbl = $1 AND k = $2",
                &[&tbl(table), &key],
            ))
            .map_err(pg)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self
            .rows("k, v", table, prefix, after, Some(limit))?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn scan_keys(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .rows("k", table, prefix, after, Some(limit))?
            .into_iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn count(&self, table: Table, prefix: &[u8]) -> Result<usize> {
        let rows = self.rows("count(*)", table, prefix, None, None)?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0) as usize)
    }

    fn transact_dyn(&self, body: &dyn Fn(&dyn Txn) -> TxResult<()>) -> Result<()> {
        let mut client = self.client()?;
        let mut queued = false;
        let outcome = self.attempts(&mut client, body, &mut queued);
        if queued {
            let unlocked =
                self.block_on(client.execute("SELECT pg_advisory_unlock($1)", &[&CONTENDED_LOCK]));
            if unlocked.is_err() {
                // A connection that may still hold the lock must not go
                // back to the pool: every transaction of every replica
                // would wait on it. Taken out, it is closed.
                drop(deadpool_postgres::Object::take(client));
            }
        }
        outcome
    }

    fn flush(&self) -> Result<()> {
        // A commit returns once PostgreSQL has made it durable.
        Ok(())
    }

    fn remote(&self) -> bool {
        true
    }
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

struct PgTxn<'t, 'c> {
    tx: &'t deadpool_postgres::Transaction<'c>,
    db: &'t PgDb,
}

impl Txn for PgTxn<'_, '_> {
    fn get(&self, table: Table, key: &[u8]) -> TxResult<Option<Vec<u8>>> {
        let row = self
            .db
            .block_on(self.tx.query_opt(
                "SELECT v FROM berth_kv WHERE tbl = $1 AND k = $2",
                &[&tbl(table), &key],
            ))
            .map_err(TxError::from_pg)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.db
            .block_on(self.tx.execute(
                "INSERT INTO berth_kv (tbl, k, v) VALUES ($1, $2, $3) \
                 ON CONFLICT (tbl, k) DO UPDATE SET v = EXCLUDED.v",
                &[&tbl(table), &key, &value],
            ))
            .map_err(TxError::from_pg)?;
        Ok(())
    }

    fn delete(&self, table: Table, key: &[u8]) -> TxResult<()> {
        self.db
            .block_on(self.tx.execute(
                "DELETE FROM berth_kv WHERE tbl = $1 AND k = $2",
                &[&tbl(table), &key],
            ))
            .map_err(TxError::from_pg)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_are_the_next_key_after_the_range() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://berth:s3cret@db:5432/berth"),
            "postgres://berth:***@db:5432/berth"
        );
        assert_eq!(redact("postgres://db/berth"), "postgres://db/berth");
    }

    /// The engine suite against a real server: `tests/backends/run.sh`
    /// starts one and sets `BERTH_TEST_PG_URL`.
    #[test]
    #[ignore = "needs PostgreSQL: run by tests/backends/run.sh"]
    fn postgres_passes_the_engine_suite() {
        let url = std::env::var("BERTH_TEST_PG_URL").expect("BERTH_TEST_PG_URL");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // Servers share the database; offline maintenance is refused
        // beside one.
        let db = rt.block_on(PgDb::open(&url, 8, true, false)).unwrap();
        let second = rt.block_on(PgDb::open(&url, 1, true, false));
        assert!(second.is_ok(), "a second server was refused");
        drop(second);
        let offline = rt.block_on(PgDb::open(&url, 1, true, true));
        assert!(
            matches!(offline, Err(Error::Locked { .. })),
            "offline maintenance opened beside a server"
        );
        rt.block_on(async {
            let c = db.pool.get().await.unwrap();
            c.execute("DELETE FROM berth_kv", &[]).await.unwrap();
            // A schema written by a newer binary is refused, with or
            // without migration, and so is a database without the schema
            // when migrations are left to `berth migrate-schema`.
            c.execute("UPDATE berth_schema SET version = 99", &[])
                .await
                .unwrap();
            for migrate in [true, false] {
                let e = PgDb::open(&url, 1, migrate, false)
                    .await
                    .err()
                    .expect("opened");
                assert!(e.to_string().contains("newer Berth"), "{e}");
            }
            c.execute("UPDATE berth_schema SET version = $1", &[&SCHEMA_VERSION])
                .await
                .unwrap();
            c.batch_execute("CREATE SCHEMA IF NOT EXISTS empty")
                .await
                .unwrap();
            let (base, _) = url.split_once('?').unwrap_or((&url, ""));
            let bare = format!("{base}?options=-csearch_path%3Dempty");
            let e = PgDb::open(&bare, 1, false, false)
                .await
                .err()
                .expect("opened");
            assert!(e.to_string().contains("berth migrate-schema"), "{e}");
        });
        let db = std::sync::Arc::new(db);
        let d = db.clone();
        rt.block_on(rt.spawn_blocking(move || {
            crate::meta::tests::suite(&*d);
            // As many writers as connections on one key, each holding its
            // transaction open a while (as a push's several statements
            // do): attempts keep conflicting, transactions reach the
            // exclusive lock and must commit under it.
            crate::meta::tests::conflicts(&*d, 8, 40);
        }))
        .unwrap();
        // And the other way round: with the servers gone (their lock goes
        // with their connection, which the server closes shortly after),
        // maintenance opens, and then a server is refused.
        drop(db);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let offline = loop {
            match rt.block_on(PgDb::open(&url, 1, true, true)) {
                Ok(o) => break o,
                Err(Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                Err(e) => panic!("offline maintenance with no server: {e}"),
            }
        };
        let server = rt.block_on(PgDb::open(&url, 1, true, false));
        assert!(
            matches!(server, Err(Error::Locked { .. })),
            "a server opened beside offline maintenance"
        );
        drop(offline);
    }
}
