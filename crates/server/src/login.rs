//! Logins: checking a user name and password (or a scoped-token secret),
//! failed-login throttling, and the bounded pool password hashing runs on.
//!
//! Three bounds hold whatever clients do:
//!
//! - An attempt is counted (reserved) against its client address and its
//!   user name before it is evaluated, so a burst of concurrent guesses
//!   evaluates at most `max_failed_logins` of them; a success gives the
//!   reservation back and clears the counters, a failure keeps it.
//! - Argon2 verification (about 19 MiB and tens of milliseconds each) runs
//!   on a pool of `workers` long-lived threads of its own (about the number
//!   of cores), with at most `queue` verifications waiting; beyond, callers
//!   get 429 with `Retry-After`. Long-lived threads matter: the allocator
//!   keeps a freed argon2 block per thread that used one, so hashing on
//!   the shared blocking pool (up to 512 threads) would keep memory grown
//!   after a burst. Unknown
//!   user names cost one verification too (against a dummy hash), on the
//!   same pool, so that timing does not tell which names exist.
//! - Identical credentials in flight at once are verified once (docker
//!   sends many requests in parallel), and verified passwords are
//!   remembered for a minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_store::{TokenCheck, UserInfo, TOKEN_PREFIX};
use sha2::Digest as _;
use tokio::sync::{oneshot, OnceCell};

use crate::auth::{AuthFailure, Principal, FAILURE_WINDOW};
use crate::metrics::Throttle;
use crate::AppState;

/// How long a verified password is remembered (argon2 costs tens of
/// milliseconds; clients using Basic on every request would pay it each
/// time).
const LOGIN_CACHE_TTL: Duration = Duration::from_secs(60);
const LOGIN_CACHE_MAX: usize = 10_000;
/// Longest user name kept in the failure counters (and the audit log):
/// the name is chosen by the client.
const MAX_NAME_KEPT: usize = 256;
/// Seconds a caller refused because the pool is full is told to wait.
const BUSY_RETRY_SECS: u64 = 1;

/// What one evaluation of a password concluded; shared by every request
/// that presented the same credentials at the same time.
#[derive(Clone)]
enum Verdict {
    Valid(UserInfo),
    Invalid,
    Throttled(u64),
    Busy,
    Failed,
}

type Flight = Arc<OnceCell<Verdict>>;

/// Login state shared by all requests.
pub struct Logins {
    // Why a Mutex: counters read and updated by every login attempt, for a
    // map lookup; check and reservation happen under one lock so that no
    // two concurrent attempts both see room for one more.
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    // Why a Mutex: a small map of recently verified passwords, touched for
    // an insert or a lookup.
    cache: Mutex<HashMap<[u8; 32], (String, u64, Instant)>>,
    // Why a Mutex: the verifications in flight, by credentials, so that
    // identical concurrent logins share one; held for an insert or remove.
    flights: Mutex<HashMap<[u8; 32], Flight>>,
    pool: HashPool,
}

/// A verification, run on a pool thread with that thread's argon2 memory.
type Job = Box<dyn FnOnce(&mut berth_store::PasswordMemory) + Send>;

/// Threads that verify passwords, fed through a bounded channel.
struct HashPool {
    // Why a bounded channel: it is the wait queue; a full one means the
    // caller is told to come back (429) instead of waiting without bound.
    // Why a Mutex: `SyncSender` is shared by every request; held for a
    // `try_send`.
    jobs: Mutex<std::sync::mpsc::SyncSender<Job>>,
}

impl HashPool {
    fn new(workers: usize, queue: usize) -> HashPool {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(queue.max(1));
        // Why a Mutex: the workers share the one receiver, each holding it
        // only while taking the next job.
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("berth-login-{i}"))
                .spawn(move || {
                    let mut mem = berth_store::PasswordMemory::default();
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut mem),
                            // Every sender is gone: the state was dropped.
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password-hashing thread");
            }
        }
        HashPool {
            jobs: Mutex::new(tx),
        }
    }

    /// Queues `job`; `false` when the queue is full.
    fn submit(&self, job: Job) -> bool {
        self.jobs
            .lock()
            .map(|tx| tx.try_send(job).is_ok())
            .unwrap_or(false)
    }
}

impl Default for Logins {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Logins::new(cores, (cores * 16).max(16))
    }
}

impl Logins {
    /// At most `workers` verifications at once, `queue` callers waiting.
    pub fn new(workers: usize, queue: usize) -> Logins {
        Logins {
            failures: Mutex::default(),
            cache: Mutex::default(),
            flights: Mutex::default(),
            pool: HashPool::new(workers, queue),
        }
    }

    /// Reserves one attempt on every key, unless one of them has used up
    /// its attempts: then the seconds until the window ends.
    fn reserve(&self, keys: &[String], limit: u32) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let over = keys
            .iter()
            .filter_map(|k| map.get(k))
            .filter(|(n, since)| *n >= limit && now.duration_since(*since) < FAILURE_WINDOW)
            .map(|(_, since)| (FAILURE_WINDOW - now.duration_since(*since)).as_secs() + 1)
            .max();
        if let Some(after) = over {
            return Err(after);
        }
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
        }
        for k in keys {
            let e = map.entry(k.clone()).or_insert((0, now));
            if now.duration_since(e.1) >= FAILURE_WINDOW {
                *e = (0, now);
            }
            e.0 += 1;
        }
        Ok(())
    }

    /// Gives a reservation back (the attempt was not evaluated).
    fn release(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            if let Some(e) = map.get_mut(k) {
                e.0 = e.0.saturating_sub(1);
            }
        }
    }

    fn clear(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            map.remove(k);
        }
    }

    fn cached(&self, key: &[u8; 32]) -> Option<(String, u64)> {
        let map = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|(_, _, at)| at.elapsed() < LOGIN_CACHE_TTL)
            .map(|(n, v, _)| (n.clone(), *v))
    }

    fn remember(&self, key: [u8; 32], user: &UserInfo) {
        let mut map = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= LOGIN_CACHE_MAX {
            map.clear();
        }
        map.insert(
            key,
            (user.name.clone(), user.secret_version, Instant::now()),
        );
    }

    /// Forgets remembered passwords.
    pub fn forget(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// A reserved attempt: given back if dropped before it is settled (the
/// request went away before its guess was evaluated).
struct Reservation<'a> {
    logins: &'a Logins,
    keys: &'a [String],
    settled: bool,
}

impl Reservation<'_> {
    fn succeeded(mut self) {
        self.logins.clear(self.keys);
        self.settled = true;
    }

    fn failed(mut self) {
        self.settled = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.logins.release(self.keys);
        }
    }
}

fn reserve<'a>(state: &'a AppState, keys: &'a [String]) -> Result<Reservation<'a>, AuthFailure> {
    let logins = &state.auth.logins;
    logins
        .reserve(keys, state.config.auth.max_failed_logins)
        .map_err(AuthFailure::Throttled)?;
    Ok(Reservation {
        logins,
        keys,
        settled: false,
    })
}

fn throttle_keys(addr: IpAddr, user: &str) -> Vec<String> {
    let mut keys = vec![format!("addr:{addr}")];
    if !user.is_empty() {
        keys.push(format!(
            "user:{}",
            berth_store::truncate_str(user, MAX_NAME_KEPT)
        ));
    }
    keys
}

fn unauthorized(why: &str) -> AuthFailure {
    AuthFailure::Unauthorized(format!("{why}; check the user name and password or token"))
}

/// Checks a user name and password (or a scoped-token secret as the
/// password, whatever the user name), with throttling per address and per
/// user name. A password that looks like a token secret but is none is
/// tried as the user's password.
pub async fn login(
    state: &AppState,
    addr: IpAddr,
    user: &str,
    password: &str,
) -> Result<Principal, AuthFailure> {
    if password.starts_with(TOKEN_PREFIX) {
        let token_keys = throttle_keys(addr, "");
        let r = reserve(state, &token_keys).inspect_err(|_| {
            state.metrics.throttled(Throttle::failed_logins);
        })?;
        match state.registry.token_verify(password).await {
            Ok(TokenCheck::Valid(t)) => {
                r.succeeded();
                return Ok(Principal::Token(t));
            }
            Ok(TokenCheck::Expired(_)) => {
                r.failed();
                crate::auth::audit_failure(state, addr, "token", "the token has expired").await;
                return Err(unauthorized("the token has expired"));
            }
            Ok(TokenCheck::Invalid) if user.is_empty() => {
                r.failed();
                crate::auth::audit_failure(state, addr, "token", "invalid or revoked token").await;
                return Err(unauthorized("invalid or revoked token"));
            }
            // Not a token: a user's password that happens to begin like
            // one. The password check below counts the attempt.
            Ok(TokenCheck::Invalid) => drop(r),
            Err(e) => return Err(store_failure(e)),
        }
    }
    check_password(state, addr, user, password)
        .await
        .map(Principal::User)
}

/// Checks a user's password under the throttle and the bounded pool; a
/// wrong one is counted and audited as a failed login.
pub async fn check_password(
    state: &AppState,
    addr: IpAddr,
    user: &str,
    password: &str,
) -> Result<UserInfo, AuthFailure> {
    let logins = &state.auth.logins;
    let cache_key: [u8; 32] = {
        let mut h = sha2::Sha256::new();
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    };
    if let Some((name, version)) = logins.cached(&cache_key) {
        if let Ok(Some(u)) = state.registry.user(&name).await {
            if u.secret_version == version {
                return Ok(u);
            }
        }
    }
    let flight: Flight = logins
        .flights
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(cache_key)
        .or_default()
        .clone();
    let verdict = flight
        .get_or_init(|| evaluate(state, addr, user, password, cache_key))
        .await
        .clone();
    {
        let mut flights = logins.flights.lock().unwrap_or_else(|p| p.into_inner());
        if flights
            .get(&cache_key)
            .is_some_and(|f| Arc::ptr_eq(f, &flight))
        {
            flights.remove(&cache_key);
        }
    }
    match verdict {
        Verdict::Valid(u) => Ok(u),
        Verdict::Invalid => Err(unauthorized("invalid user name or password")),
        Verdict::Throttled(after) => {
            state.metrics.throttled(Throttle::failed_logins);
            Err(AuthFailure::Throttled(after))
        }
        Verdict::Busy => {
            state.metrics.throttled(Throttle::login_checks);
            Err(AuthFailure::Busy(BUSY_RETRY_SECS))
        }
        Verdict::Failed => Err(AuthFailure::Unauthorized(
            "credentials could not be checked; retry".into(),
        )),
    }
}

/// One evaluation: reservation, then argon2 on the pool.
async fn evaluate(
    state: &AppState,
    addr: IpAddr,
    user: &str,
    password: &str,
    cache_key: [u8; 32],
) -> Verdict {
    let logins = &state.auth.logins;
    let keys = throttle_keys(addr, user);
    let r = match reserve(state, &keys) {
        Ok(r) => r,
        Err(AuthFailure::Throttled(after)) => return Verdict::Throttled(after),
        Err(_) => return Verdict::Failed,
    };
    let (tx, rx) = oneshot::channel();
    let (reg, name, pw) = (
        state.registry.clone(),
        user.to_string(),
        password.to_string(),
    );
    let job: Job = Box::new(move |mem| {
        let _ = tx.send(reg.user_verify_blocking(&name, &pw, mem));
    });
    if !logins.pool.submit(job) {
        // Not evaluated: the reservation is given back on drop.
        return Verdict::Busy;
    }
    let Ok(result) = rx.await else {
        return Verdict::Failed;
    };
    match result {
        Ok(Some(u)) => {
            r.succeeded();
            logins.remember(cache_key, &u);
            Verdict::Valid(u)
        }
        Ok(None) => {
            r.failed();
            crate::auth::audit_failure(state, addr, user, "invalid user name or password").await;
            Verdict::Invalid
        }
        Err(e) => {
            tracing::error!(error = %e, "credential check failed");
            Verdict::Failed
        }
    }
}

fn store_failure(e: berth_store::Error) -> AuthFailure {
    tracing::error!(error = %e, "credential check failed");
    AuthFailure::Unauthorized("credentials could not be checked; retry".into())
}
