//! The concurrent attacks of a hostile client, against a real `berth serve`
//! in token mode on loopback: stalled bodies holding every connection slot,
//! a burst of wrong passwords from one address, and 150 logins of unknown
//! users from 150 addresses, all at once. Bounded in count and time (well
//! under a minute); every request goes to 127.0.0.0/8.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::hardening::*;

const MAX_CONNECTIONS: usize = 64;

/// Bounds of the login part: password verification runs on a small bounded
/// pool, so a login storm can neither slow /healthz past 2 s nor grow the
/// server's memory by more than a fixed amount.
const LOGIN_HEALTHZ_BOUND: Duration = Duration::from_secs(2);
const LOGIN_RSS_GROWTH_MIB: u64 = 200;

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap())
        })
        .unwrap()
}

/// A stalled request of a kind that is let through to its body: a token
/// form (anonymous), or a management body with credentials.
fn stall(a: &str, i: usize, basic: &str) -> TcpStream {
    if i % 2 == 0 {
        stalled(
            a,
            "POST",
            "/auth/token",
            "Content-Type: application/x-www-form-urlencoded\r\n",
            4000,
            100,
        )
    } else {
        stalled(
            a,
            "POST",
            "/api/v1/namespaces",
            &format!("Authorization: Basic {basic}\r\nContent-Type: application/json\r\n"),
            4000,
            100,
        )
    }
}

fn healthz(url: &str) -> Duration {
    let start = Instant::now();
    let r = common::client()
        .get(format!("{url}/healthz"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    start.elapsed()
}

#[test]
fn concurrent_attacks_leave_the_server_responsive_with_bounded_memory() {
    let test_start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    add_admin(&dir.path().join("data"));
    let cfg = dir.path().join("berth.toml");
    std::fs::write(
        &cfg,
        format!(
            "[auth]\nmode = \"token\"\nmax_failed_logins = 3\n[server]\nmax_connections = {MAX_CONNECTIONS}\nbody_read_timeout_secs = 1\n"
        ),
    )
    .unwrap();
    let server = common::Server::start_in(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let url = server.url().to_string();
    let a = url.trim_start_matches("http://").to_string();
    let basic = base64_basic("admin", ADMIN_PW);
    // One login first, so the administrator's password is verified once.
    let r = common::client()
        .get(format!("{url}/api/v1/namespaces"))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    // 1. Stalled bodies on every connection slot: they are dropped after
    //    the body read timeout, so /healthz gets a slot within 2 s.
    let held: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|i| stall(&a, i, &basic)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let took = healthz(&url);
    assert!(
        took < Duration::from_secs(2),
        "/healthz took {took:?} with {MAX_CONNECTIONS} stalled bodies"
    );
    drop(held);

    // 2. Everything at once: stalled bodies again, a burst of wrong
    //    passwords (and the right one) from one address, and 150 logins of
    //    unknown users from 150 addresses, while /healthz is polled.
    let base_rss = rss_kib(server.pid(), "VmRSS:");
    let done = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(Mutex::new(Duration::ZERO));
    let monitor = {
        let (url, done, worst) = (url.clone(), done.clone(), worst.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let t = healthz(&url);
                let mut w = worst.lock().unwrap();
                *w = (*w).max(t);
                drop(w);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let stallers: Vec<_> = (0..MAX_CONNECTIONS)
        .map(|i| {
            let (a, basic) = (a.clone(), basic.clone());
            std::thread::spawn(move || {
                let mut s = stall(&a, i, &basic);
                // Stays silent; the server must cut it off.
                let head = read_head(&mut s, Duration::from_secs(30));
                let _ = s.write_all(b"late");
                status_of(&head)
            })
        })
        .collect();
    let mut logins = Vec::new();
    for i in 0..41 {
        let url = url.clone();
        logins.push(std::thread::spawn(move || {
            let pw = if i == 40 { ADMIN_PW } else { "wrong-guess" };
            client_from("127.0.0.2")
                .get(format!("{url}/auth/token?service=berth"))
                .basic_auth("admin", Some(pw))
                .send()
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }));
    }
    for i in 0..150u32 {
        let url = url.clone();
        logins.push(std::thread::spawn(move || {
            let ip = format!("127.0.{}.{}", 10 + i / 200, 1 + i % 200);
            client_from(&ip)
                .get(format!("{url}/auth/token?service=berth"))
                .basic_auth(format!("nobody-{i}"), Some("some-password"))
                .send()
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }));
    }
    let login_statuses: Vec<u16> = logins.into_iter().map(|h| h.join().unwrap()).collect();
    let stall_statuses: Vec<u16> = stallers.into_iter().map(|h| h.join().unwrap()).collect();
    done.store(true, Ordering::Relaxed);
    monitor.join().unwrap();
    let peak = rss_kib(server.pid(), "VmHWM:");
    let worst = *worst.lock().unwrap();
    eprintln!(
        "load: worst /healthz {worst:?}, RSS {} MiB -> peak {} MiB, {:?} in all",
        base_rss / 1024,
        peak / 1024,
        test_start.elapsed()
    );

    // Every login got an answer (no connection dropped or timed out), and
    // no unknown user got in.
    assert!(
        login_statuses.iter().all(|s| [200, 401, 429].contains(s)),
        "{login_statuses:?}"
    );
    assert!(
        login_statuses[41..].iter().all(|s| *s != 200),
        "an unknown user logged in"
    );
    // Every stalled body was answered: 408 after the body read timeout, or
    // 429 from the head alone for the administrator's credentials once the
    // wrong guesses throttled that user (or, for a connection that waited
    // in the accept queue past its own read timeout here, closed).
    assert!(
        stall_statuses.iter().all(|s| [408, 429, 0].contains(s)),
        "{stall_statuses:?}"
    );
    assert!(
        stall_statuses.iter().filter(|s| **s == 408).count() >= MAX_CONNECTIONS / 2,
        "{stall_statuses:?}"
    );
    assert!(
        worst < LOGIN_HEALTHZ_BOUND,
        "/healthz took {worst:?} during the login attack"
    );
    let growth = peak.saturating_sub(base_rss) / 1024;
    assert!(
        growth < LOGIN_RSS_GROWTH_MIB,
        "RSS grew by {growth} MiB during the login attack"
    );
    // The server is still there and answers at once.
    assert!(healthz(&url) < Duration::from_secs(2));
    assert!(test_start.elapsed() < Duration::from_secs(60));
}
