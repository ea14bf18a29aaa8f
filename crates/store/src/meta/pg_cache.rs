//! Point reads of the PostgreSQL engine served from memory, kept fresh
//! across replicas by `LISTEN`/`NOTIFY`.
//!
//! A request's path reads a handful of rows that rarely change (settings,
//! a namespace's visibility, a tag and its manifest record, a role): on
//! PostgreSQL each read is a network round trip and most of a manifest
//! GET's cost. Every transaction that writes rows of a cached table sends
//! their keys on the channel [`CHANNEL`], in the transaction itself, so
//! PostgreSQL delivers the notice only once the rows are visible; every
//! process (this one included) drops those keys when the notice arrives,
//! and the writing process drops them too as soon as its commit returns,
//! so a process reads its own writes at once. A replica's view lags a
//! commit on another replica by the delivery of one notice (well under a
//! millisecond on one network), and never by more than [`MAX_AGE`]: an
//! entry is read again when it is older, whatever the notices say.
//!
//! Reads that raced a notice must not be kept: every drop advances an
//! epoch, and a read keeps its answer only when the epoch is still the one
//! it saw before asking the database. While the listening connection is
//! down (not yet up, or lost), nothing is served from memory: a notice
//! missed then would leave a stale entry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use super::Table;

/// The channel the engine's transactions notify on.
pub(super) const CHANNEL: &str = "berth_kv";
/// The longest an entry is served without being read again.
const MAX_AGE: Duration = Duration::from_secs(1);
/// Bound on kept keys and values; past it the cache starts over.
const CACHE_BYTES: usize = 8 << 20;
/// Notice payloads are at most 8,000 bytes; a transaction whose keys do
/// not fit in this sends [`ALL`], which drops everything.
pub(super) const MAX_PAYLOAD: usize = 7_000;
pub(super) const ALL: &str = "*";
/// How long the listener waits before connecting again after losing its
/// connection.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Tables whose point reads are cached: those read on request paths.
/// Upload sessions, leases and the delivery and run tables are read by
/// code that needs the last committed row (a chunk's offset, who holds
/// the collector), and are always read from the database.
pub(super) fn cached(t: Table) -> bool {
    !matches!(
        t,
        Table::Uploads
            | Table::Leases
            | Table::GcRuns
            | Table::Outbox
            | Table::Deliveries
            | Table::DeliveryQueue
            | Table::Audit
    )
}

/// The cache key of a row: its table's number, then its key.
fn cache_key(t: i16, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 2);
    k.extend_from_slice(&t.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// One line of a notice: `<table>:<key in hex>`.
pub(super) fn notice_line(t: i16, key: &[u8]) -> String {
    format!("{t}:{}", hex::encode(key))
}

struct Entry {
    value: Option<Vec<u8>>,
    read_at: Instant,
}

#[derive(Default)]
struct State {
    map: HashMap<Vec<u8>, Entry>,
    bytes: usize,
    /// Advanced by every drop: a read that saw another epoch before it
    /// asked the database may hold what a drop meant to remove.
    epoch: u64,
}

/// The outcome of looking a row up.
pub(super) enum Lookup {
    /// Served from memory (`None`: the row does not exist).
    Hit(Option<Vec<u8>>),
    /// Not kept: read it, then [`ReadCache::fill`] under this epoch.
    Miss(u64),
    /// The cache is off (no listening connection): read, keep nothing.
    Off,
}

/// The cache; shared by the engine and its listener task.
#[derive(Default)]
pub(super) struct ReadCache {
    // Why a Mutex: lookups, fills and drops are short (a hash probe, an
    // insert, a few removals), from request threads and the listener; it
    // is never held across an await or a database call.
    state: Mutex<State>,
    /// Whether the listening connection is up, so notices arrive.
    listening: AtomicBool,
}

impl ReadCache {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("read cache lock poisoned")
    }

    pub(super) fn lookup(&self, t: i16, key: &[u8]) -> Lookup {
        if !self.listening.load(Ordering::Acquire) {
            return Lookup::Off;
        }
        let k = cache_key(t, key);
        let st = self.state();
        match st.map.get(&k) {
            Some(e) if e.read_at.elapsed() < MAX_AGE => Lookup::Hit(e.value.clone()),
            _ => Lookup::Miss(st.epoch),
        }
    }

    /// Keeps what a read returned, unless a drop happened since `epoch`.
    pub(super) fn fill(&self, epoch: u64, t: i16, key: &[u8], value: Option<&[u8]>) {
        let mut st = self.state();
        if st.epoch != epoch || !self.listening.load(Ordering::Acquire) {
            return;
        }
        let k = cache_key(t, key);
        let size = k.len() + value.map_or(0, <[u8]>::len);
        if st.bytes + size > CACHE_BYTES {
            st.map.clear();
            st.bytes = 0;
        }
        st.bytes += size;
        let entry = Entry {
            value: value.map(<[u8]>::to_vec),
            read_at: Instant::now(),
        };
        if let Some(old) = st.map.insert(k, entry) {
            st.bytes -= old.value.map_or(0, |v| v.len()) + 2 + key.len();
        }
    }

    /// Drops the given rows (after a commit of this process).
    pub(super) fn drop_keys<'a>(&self, rows: impl Iterator<Item = (i16, &'a [u8])>) {
        let mut st = self.state();
        st.epoch += 1;
        for (t, key) in rows {
            if let Some(old) = st.map.remove(&cache_key(t, key)) {
                st.bytes -= old.value.map_or(0, |v| v.len()) + 2 + key.len();
            }
        }
    }

    /// Drops everything.
    fn drop_all(&self) {
        let mut st = self.state();
        st.epoch += 1;
        st.map.clear();
        st.bytes = 0;
    }

    /// Applies a notice's payload; a line it cannot read drops everything
    /// (dropping too much costs reads, keeping too much serves stale rows).
    fn apply(&self, payload: &str) {
        let mut rows = Vec::new();
        for line in payload.lines() {
            let parsed = line
                .split_once(':')
                .and_then(|(t, k)| Some((t.parse::<i16>().ok()?, hex::decode(k).ok()?)));
            match parsed {
                Some(row) if line != ALL => rows.push(row),
                _ => return self.drop_all(),
            }
        }
        self.drop_keys(rows.iter().map(|(t, k)| (*t, k.as_slice())));
    }

    fn set_listening(&self, on: bool) {
        // Whatever arrived or was missed before, start from nothing.
        self.drop_all();
        self.listening.store(on, Ordering::Release);
    }
}

/// Keeps a connection listening on [`CHANNEL`] for as long as the task
/// runs, reconnecting when it is lost; the cache is on only while one is
/// up.
pub(super) async fn listen(cfg: tokio_postgres::Config, cache: Arc<ReadCache>) {
    loop {
        match cfg.connect(NoTls).await {
            Ok((client, mut conn)) => {
                let notices = cache.clone();
                // The connection's messages (notices among them) are read
                // by a task of its own, which also drives the LISTEN below.
                let mut driver = tokio::spawn(async move {
                    let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(AsyncMessage::Notification(n)) => notices.apply(n.payload()),
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "the PostgreSQL listening connection failed");
                                break;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        cache.set_listening(true);
                        let _ = (&mut driver).await;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot LISTEN on PostgreSQL"),
                }
                driver.abort();
                cache.set_listening(false);
                drop(client);
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect the PostgreSQL listener"),
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::meta::pg_db::PgDb;
    use crate::meta::{MetaDb, MetaDbExt};

    /// Polls `done` for at most half of [`MAX_AGE`], so that passing
    /// proves a notice arrived (not that an entry aged out).
    fn within_a_notice(what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < MAX_AGE / 2, "{what}: no notice arrived");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Two engines on one database, as two replicas: reads are served
    /// from memory, a write on one reaches the other's reads by notice,
    /// and the writer reads its own write at once.
    pub(in crate::meta) fn across_processes(a: &PgDb, b: &PgDb) {
        let t = Table::Settings;
        let n = super::super::pg_db::tbl(t);
        within_a_notice("listening", || b.cache.listening.load(Ordering::Acquire));
        let put = |db: &PgDb, key: &[u8], v: &[u8]| {
            db.transact(|tx| tx.put(t, key, v)).unwrap();
        };
        put(a, b"cached", b"1");
        // The write's own notice may reach `b` after its first read
        // (dropping what that read kept); the next one is kept.
        within_a_notice("kept", || {
            assert_eq!(b.get(t, b"cached").unwrap(), Some(b"1".to_vec()));
            matches!(b.cache.lookup(n, b"cached"), Lookup::Hit(Some(_)))
        });
        assert_eq!(a.get(t, b"cached").unwrap(), Some(b"1".to_vec()));
        put(a, b"cached", b"2");
        assert_eq!(
            a.get(t, b"cached").unwrap(),
            Some(b"2".to_vec()),
            "own write"
        );
        within_a_notice("a change", || {
            b.get(t, b"cached").unwrap() == Some(b"2".to_vec())
        });
        // Absent rows are kept and dropped the same way.
        assert_eq!(b.get(t, b"later").unwrap(), None);
        put(a, b"later", b"x");
        within_a_notice("a new row", || b.get(t, b"later").unwrap().is_some());
        a.transact(|tx| tx.delete(t, b"later")).unwrap();
        within_a_notice("a deletion", || b.get(t, b"later").unwrap().is_none());
        // Keys too many for one notice drop everything.
        within_a_notice("kept again", || {
            b.get(t, b"cached").unwrap();
            matches!(b.cache.lookup(n, b"cached"), Lookup::Hit(Some(_)))
        });
        a.transact(|tx| {
            for i in 0..1000u32 {
                tx.put(t, format!("many-{i:06}").as_bytes(), b"")?;
            }
            Ok(())
        })
        .unwrap();
        within_a_notice("a notice of many keys", || {
            !matches!(b.cache.lookup(n, b"cached"), Lookup::Hit(_))
        });
        // Upload sessions are never served from memory.
        assert!(!cached(Table::Uploads));
        assert_eq!(b.get(Table::Uploads, b"u").unwrap(), None);
        assert!(matches!(
            b.cache
                .lookup(super::super::pg_db::tbl(Table::Uploads), b"u"),
            Lookup::Miss(_)
        ));
    }

    fn on() -> ReadCache {
        let c = ReadCache::default();
        c.set_listening(true);
        c
    }

    fn hit(c: &ReadCache, t: i16, key: &[u8]) -> Option<Option<Vec<u8>>> {
        match c.lookup(t, key) {
            Lookup::Hit(v) => Some(v),
            _ => None,
        }
    }

    fn epoch(c: &ReadCache, t: i16, key: &[u8]) -> u64 {
        match c.lookup(t, key) {
            Lookup::Miss(e) => e,
            _ => panic!("expected a miss"),
        }
    }

    #[test]
    fn serves_what_was_read_until_a_notice_drops_it() {
        let c = on();
        let e = epoch(&c, 1, b"a");
        c.fill(e, 1, b"a", Some(b"v1"));
        c.fill(e, 1, b"b", None);
        assert_eq!(hit(&c, 1, b"a"), Some(Some(b"v1".to_vec())));
        assert_eq!(hit(&c, 1, b"b"), Some(None), "absent rows are kept too");
        assert_eq!(hit(&c, 2, b"a"), None, "tables are apart");
        c.apply(&notice_line(1, b"a"));
        assert_eq!(hit(&c, 1, b"a"), None);
        assert_eq!(hit(&c, 1, b"b"), Some(None));
        c.apply(ALL);
        assert_eq!(hit(&c, 1, b"b"), None);
    }

    #[test]
    fn a_read_that_raced_a_drop_is_not_kept() {
        let c = on();
        let e = epoch(&c, 1, b"a");
        // A commit lands (and its notice arrives) while the read is out.
        c.drop_keys([(1, &b"a"[..])].into_iter());
        c.fill(e, 1, b"a", Some(b"old"));
        assert_eq!(hit(&c, 1, b"a"), None);
    }

    #[test]
    fn nothing_is_served_without_a_listening_connection() {
        let c = on();
        let e = epoch(&c, 1, b"a");
        c.fill(e, 1, b"a", Some(b"v"));
        c.set_listening(false);
        assert!(matches!(c.lookup(1, b"a"), Lookup::Off));
        c.set_listening(true);
        assert_eq!(
            hit(&c, 1, b"a"),
            None,
            "a notice may have been missed meanwhile"
        );
    }

    #[test]
    fn unreadable_notices_drop_everything() {
        let c = on();
        let e = epoch(&c, 1, b"a");
        c.fill(e, 1, b"a", Some(b"v"));
        c.apply("1:zz");
        assert_eq!(hit(&c, 1, b"a"), None);
    }

    #[test]
    fn sizes_are_bounded() {
        let c = on();
        let big = vec![0u8; 1 << 20];
        for i in 0..20u8 {
            let e = epoch(&c, 1, &[i]);
            c.fill(e, 1, &[i], Some(&big));
        }
        assert!(c.state().bytes <= CACHE_BYTES);
        assert!(hit(&c, 1, &[19]).is_some());
    }
}
