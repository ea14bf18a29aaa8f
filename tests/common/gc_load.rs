//! The load of the online garbage-collection suites (`gc_online.rs`, and
//! `replicas.rs` across several replicas): threads push images (sometimes
//! by mounting), delete repositories, and start GC runs back to back;
//! then every acknowledged image of a surviving repository must pull.

use super::digest;
use super::gc::*;
use super::Rng;
use super::{bytes, with_param};
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the load test saw.
#[derive(Default)]
pub struct Log {
    /// Acknowledged (201) images.
    pub acked: Vec<Image>,
    /// Repositories whose rounds are complete and not deleted.
    pub live: Vec<String>,
    /// Repositories deleted through the management API.
    pub deleted: BTreeSet<String>,
    /// Non-success answers to pushes, by status (retried or given up).
    pub refusals: BTreeMap<u16, u64>,
    /// Examples of those answers.
    pub refusal_examples: Vec<String>,
    /// Things that must not happen.
    pub errors: Vec<String>,
    /// Finished GC runs: (status, report).
    pub runs: Vec<Value>,
    pub gc_conflicts: u64,
}

fn note_refusal(log: &Mutex<Log>, what: &str, r: &R) {
    let mut l = log.lock().unwrap();
    *l.refusals.entry(r.status).or_default() += 1;
    if l.refusal_examples.len() < 20 {
        l.refusal_examples
            .push(format!("{what}: {} {}", r.status, r.text));
    }
    if r.status >= 500 && r.status != 503 {
        l.errors.push(format!("{what}: {} {}", r.status, r.text));
    }
}

/// Pushes one blob, sometimes by mounting it (no `from`, as containerd
/// does), retrying refusals; returns whether it got a 201.
fn load_push_blob(
    c: &Client,
    base: &str,
    repo: &str,
    data: &[u8],
    mount: bool,
    log: &Mutex<Log>,
) -> bool {
    let d = digest(data);
    for _ in 0..40 {
        let r = if mount {
            let r = send_with(
                c,
                Method::POST,
                &format!("{base}/v2/{repo}/blobs/uploads/?mount={d}"),
                &[],
                None,
            );
            match r {
                Ok(r) if r.status == 202 => {
                    let loc = abs(base, &r.header("location").unwrap_or_default());
                    send_with(
                        c,
                        Method::PUT,
                        &with_param(&loc, &format!("digest={d}")),
                        &[("Content-Type", "application/octet-stream")],
                        Some(data.to_vec()),
                    )
                }
                other => other,
            }
        } else {
            push_blob_with(c, base, repo, data)
        };
        match r {
            Ok(r) if r.status == 201 => return true,
            Ok(r) => note_refusal(log, &format!("blob {d} to {repo}"), &r),
            Err(e) => log.lock().unwrap().errors.push(e),
        }
        thread::sleep(Duration::from_millis(25));
    }
    false
}

pub fn pusher(
    t: u64,
    base: String,
    deadline: Instant,
    shared_base: Arc<Vec<u8>>,
    log: Arc<Mutex<Log>>,
) {
    let c = super::client();
    let mut rng = Rng(0x1234_5678 + t * 0x9E37_79B9);
    let mut round = 0u64;
    while Instant::now() < deadline {
        let repo = format!("load/t{t}-r{round}");
        for i in 0..2u64 {
            // Medium layers come in a few variants: each is held by few
            // repositories, so deletes make it unneeded while other threads
            // keep uploading the same bytes.
            let variant = bytes(5_000 + rng.below(24), 16 * 1024);
            let unique = bytes(1_000_000 + t * 100_000 + round * 10 + i, 4096);
            let img = plain_image(
                &repo,
                Some(&format!("v{i}")),
                &format!("{repo}-{i}"),
                &[&shared_base, &variant, &unique],
            );
            let mut ok = true;
            for (k, (_, b)) in img.blobs.iter().enumerate() {
                let mount = k > 0 && k < 3 && rng.below(2) == 0;
                if !load_push_blob(&c, &base, &repo, b, mount, &log) {
                    ok = false;
                    break;
                }
            }
            if !ok {
                continue;
            }
            match put_manifest_with(&c, &base, &img) {
                Ok(r) if r.status == 201 => {
                    if r.header("docker-content-digest").as_deref() != Some(img.digest.as_str()) {
                        log.lock()
                            .unwrap()
                            .errors
                            .push(format!("{repo}: wrong digest header on 201"));
                    }
                    log.lock().unwrap().acked.push(img);
                }
                Ok(r) => note_refusal(&log, &format!("manifest {repo}:v{i}"), &r),
                Err(e) => log.lock().unwrap().errors.push(e),
            }
        }
        log.lock().unwrap().live.push(repo);
        // Delete an earlier repository (of any thread) now and then, more
        // often as they pile up.
        let victim = {
            let mut l = log.lock().unwrap();
            if !l.live.is_empty() && (l.live.len() > 48 || rng.below(3) == 0) {
                let i = rng.below(l.live.len() as u64) as usize;
                let v = l.live.swap_remove(i);
                l.deleted.insert(v.clone());
                Some(v)
            } else {
                None
            }
        };
        if let Some(v) = victim {
            let name = v.strip_prefix("load/").unwrap();
            match send_with(
                &c,
                Method::DELETE,
                &format!("{base}/api/v1/namespaces/load/repositories/{name}"),
                &[],
                None,
            ) {
                Ok(r) if r.status == 204 => {}
                Ok(r) => log
                    .lock()
                    .unwrap()
                    .errors
                    .push(format!("DELETE repository {v}: {} {}", r.status, r.text)),
                Err(e) => log.lock().unwrap().errors.push(e),
            }
        }
        round += 1;
    }
}

/// Starts GC runs back to back through `base` until `stop`, waiting for
/// each; a refusal because a run is going (409) is counted and retried.
fn gc_driver(base: String, stop: Arc<AtomicBool>, log: Arc<Mutex<Log>>) {
    let c = super::client();
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let body = json!({"delete_untagged": k % 2 == 0}).to_string();
        let r = send_with(
            &c,
            Method::POST,
            &format!("{base}/api/v1/gc"),
            &[("Content-Type", "application/json")],
            Some(body.into_bytes()),
        );
        match r {
            Ok(r) if r.status == 202 => {
                let id = r.json["id"].as_str().unwrap_or_default().to_string();
                match gc_wait_with(&c, &base, &id) {
                    Ok(run) => {
                        let mut l = log.lock().unwrap();
                        if run["status"] != "succeeded" {
                            l.errors.push(format!("GC run did not succeed: {run}"));
                        }
                        l.runs.push(run);
                    }
                    Err(e) => log.lock().unwrap().errors.push(e),
                }
            }
            Ok(r) if r.status == 409 => {
                log.lock().unwrap().gc_conflicts += 1;
                thread::sleep(Duration::from_millis(10));
            }
            Ok(r) => log
                .lock()
                .unwrap()
                .errors
                .push(format!("POST /api/v1/gc: {} {}", r.status, r.text)),
            Err(e) => log.lock().unwrap().errors.push(e),
        }
    }
}

/// Runs the load for `secs` seconds: `pushers` threads, pusher `t` through
/// `bases[t % len]`, and one GC driver per base (so that with several
/// replicas, runs are started on all of them at once). Returns what it saw
/// after printing a summary.
pub fn run(bases: &[String], pushers: u64, secs: u64) -> Log {
    let log = Arc::new(Mutex::new(Log::default()));
    let shared_base = Arc::new(bytes(99, 64 * 1024));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let drivers: Vec<_> = bases
        .iter()
        .map(|b| {
            let (base, log, stop) = (b.clone(), log.clone(), stop.clone());
            thread::spawn(move || gc_driver(base, stop, log))
        })
        .collect();
    let threads: Vec<_> = (0..pushers)
        .map(|t| {
            let base = bases[t as usize % bases.len()].clone();
            let (log, shared_base) = (log.clone(), shared_base.clone());
            thread::spawn(move || pusher(t, base, deadline, shared_base, log))
        })
        .collect();
    for p in threads {
        p.join().expect("pusher panicked");
    }
    stop.store(true, Ordering::Relaxed);
    for d in drivers {
        d.join().expect("gc thread panicked");
    }
    let log = Arc::try_unwrap(log).ok().unwrap().into_inner().unwrap();
    let freed: u64 = log
        .runs
        .iter()
        .filter_map(|r| r["report"]["bytes_freed"].as_u64())
        .sum();
    eprintln!(
        "load: {} images acknowledged, {} repositories deleted, {} GC runs ({} blobs, {freed} bytes freed, \
         {} conflicts), refusals {:?}, e.g. {:#?}",
        log.acked.len(),
        log.deleted.len(),
        log.runs.len(),
        blobs_deleted(&log),
        log.gc_conflicts,
        log.refusals,
        log.refusal_examples
    );
    log
}

fn blobs_deleted(log: &Log) -> u64 {
    log.runs
        .iter()
        .filter_map(|r| r["report"]["blobs_deleted"].as_u64())
        .sum()
}

/// What must hold after [`run`]: no errors, enough pushes, deletes and
/// runs to mean something, GC freed blobs, and every acknowledged image
/// of a surviving repository pulls with verified digests, image `i`
/// through `bases[(i + 1) % len]` (another replica than most pushed it).
#[track_caller]
pub fn check(log: &Log, bases: &[String]) {
    assert!(
        log.errors.is_empty(),
        "errors under load: {:#?}",
        log.errors
    );
    assert!(
        log.acked.len() >= 80,
        "too few pushes to mean anything: {}",
        log.acked.len()
    );
    assert!(
        log.deleted.len() >= 10,
        "too few deletes: {}",
        log.deleted.len()
    );
    assert!(log.runs.len() >= 3, "too few GC runs: {}", log.runs.len());
    assert!(
        blobs_deleted(log) > 0,
        "GC never deleted anything under load"
    );
    let c = super::client();
    let mut failures = Vec::new();
    let mut verified = 0;
    let surviving = log.acked.iter().filter(|i| !log.deleted.contains(&i.repo));
    for (i, img) in surviving.enumerate() {
        match verify_pull_with(&c, &bases[(i + 1) % bases.len()], img) {
            Ok(()) => verified += 1,
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} acknowledged images in surviving repositories do not pull: {:#?}",
        failures.len(),
        verified + failures.len(),
        failures
    );
    assert!(verified >= 20, "only {verified} images verified");
}
