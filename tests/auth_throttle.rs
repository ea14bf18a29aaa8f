//! Failed-login throttling under concurrency, and the bounded pool that
//! password hashing runs on, black-box against a real `berth serve`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::all_at_once;
use common::authkit::*;
use reqwest::Method;
use serde_json::json;

fn v2_status(c: &reqwest::blocking::Client, url: &str, user: &str, pw: &str) -> u16 {
    c.get(format!("{url}/v2/"))
        .basic_auth(user, Some(pw))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// `login.failed` entries in the audit log (read by the admin from another
/// address, so that its own login is not throttled).
fn failed_logins_audited(url: &str) -> usize {
    let c = client_from("127.0.0.9");
    let (s, v) = api(
        &c,
        Method::GET,
        url,
        "/audit?page_size=100",
        &basic("admin", ADMIN_PW),
        None,
    );
    assert_eq!(s, 200, "{v}");
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login.failed")
        .count()
}

#[test]
fn concurrent_wrong_guesses_evaluate_at_most_the_limit() {
    let (p, _dir) = token_server("max_failed_logins = 3\n", &[("bob", PW)]);
    let c = client();
    let n = 40;
    let url = p.url.clone();
    let statuses = {
        let c = c.clone();
        all_at_once(n, move |i| {
            v2_status(&c, &url, "bob", &format!("wrong-guess-{i}"))
        })
    };
    let evaluated = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        evaluated <= 3,
        "{evaluated} of {n} concurrent guesses were evaluated: {statuses:?}"
    );
    assert!(failed_logins_audited(&p.url) <= 3);
    // The right password right after the burst is refused too.
    assert_eq!(v2_status(&c, &p.url, "bob", PW), 429);
}

#[test]
fn concurrent_correct_logins_are_not_throttled() {
    // Docker sends many requests at once with the same Basic credentials:
    // they share one verification and none counts as a failure.
    let (p, _dir) = token_server("max_failed_logins = 2\n", &[("bob", PW)]);
    let c = client();
    let n = 20;
    let url = p.url.clone();
    let statuses = all_at_once(n, move |_| v2_status(&c, &url, "bob", PW));
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

#[test]
fn unknown_user_logins_are_bounded_in_memory_and_healthz_stays_fast() {
    let (p, _dir) = token_server(
        "max_failed_logins = 3\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        &[],
    );
    let c = client();
    // Warm up (the dummy hash, the thread pool) before the baseline.
    assert_eq!(v2_status(&c, &p.url, "nobody", "wrong-password"), 401);
    let base = rss_kib(p.pid());
    let n = 150;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pid = p.pid();
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let health = {
        let (done, url) = (done.clone(), p.url.clone());
        std::thread::spawn(move || {
            let c = client();
            let mut worst = Duration::ZERO;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let s = c.get(format!("{url}/healthz")).send().unwrap().status();
                assert_eq!(s, 200);
                worst = worst.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(50));
            }
            worst
        })
    };
    let url = p.url.clone();
    let statuses = all_at_once(n, move |i| {
        let r = c
            .get(format!("{url}/v2/"))
            .header(
                "x-forwarded-for",
                format!("10.0.{}.{}", i / 200, i % 200 + 1),
            )
            .basic_auth(format!("unknown-user-{i}"), Some("some-password"))
            .send()
            .unwrap();
        let s = r.status().as_u16();
        if s == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
        s
    });
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let worst = health.join().unwrap();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&401),
        "no login was evaluated: {statuses:?}"
    );
    let grew_mib = peak.saturating_sub(base) / 1024;
    assert!(
        grew_mib < 200,
        "RSS grew by {grew_mib} MiB ({base} KiB -> {peak} KiB)"
    );
    assert!(worst < Duration::from_secs(2), "/healthz took {worst:?}");
}

#[test]
fn wrong_current_password_is_throttled_and_audited() {
    let (p, _dir) = token_server("max_failed_logins = 3\n", &[("bob", PW)]);
    // Bob's own Basic login is cached, so only the password change counts.
    let c = client_from("127.0.0.3");
    let bob = basic("bob", PW);
    let mut statuses = Vec::new();
    for i in 0..5 {
        let (s, _) = api(
            &c,
            Method::PUT,
            &p.url,
            "/users/bob/password",
            &bob,
            Some(
                json!({"current_password": format!("wrong-current-{i}"), "password": "new-password-1"}),
            ),
        );
        statuses.push(s);
    }
    assert_eq!(statuses[..3], [400, 400, 400], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(failed_logins_audited(&p.url), 3);
    // The user name is throttled too, from anywhere.
    let other = client_from("127.0.0.4");
    assert_eq!(v2_status(&other, &p.url, "bob", "another-wrong"), 429);
}
