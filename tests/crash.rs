//! Crash safety: concurrent pushes, chunked uploads, tags and deletes while
//! the server is killed with SIGKILL at random moments, 30 times with a
//! fixed seed (`BERTH_CRASH_ITERATIONS` and `BERTH_CRASH_SEED` for longer
//! release checks). After every restart: everything acknowledged reads
//! back with the right digest, nothing deleted with an acknowledgement
//! comes back, no partial blob is visible, an interrupted upload session
//! resumes from the range the server reports, and `berth fsck` is clean.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{digest as sha, Rng};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// What the server acknowledged, and what it may or may not have done
/// (requests cut off by the kill).
#[derive(Default)]
struct Ledger {
    /// (repo, digest) -> bytes
    blobs: HashMap<(String, String), Vec<u8>>,
    /// (repo, tag) -> manifest digest
    tags: HashMap<(String, String), String>,
    /// (repo, digest) acknowledged as deleted
    deleted: Vec<(String, String)>,
    /// (repo, digest) whose delete was cut off: either state is fine
    uncertain: Vec<(String, String)>,
}

fn worker(url: String, id: usize, mut rng: Rng, stop: Arc<AtomicBool>, ledger: Arc<Mutex<Ledger>>) {
    let c = common::client();
    let repo = format!("crash/w{id}");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let size = 1 + rng.below(200_000) as usize;
        let layer = rng.bytes(size);
        let config =
            format!(r#"{{"architecture":"amd64","os":"linux","n":{n},"w":{id}}}"#).into_bytes();
        let mut ok = true;
        for b in [&layer, &config] {
            let d = sha(b);
            let chunked = rng.below(2) == 0;
            let done = if chunked {
                let Ok(r) = c.post(format!("{url}/v2/{repo}/blobs/uploads/")).send() else {
                    return;
                };
                let Some(loc) = r
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .map(str::to_string)
                else {
                    return;
                };
                let half = b.len() / 2;
                let Ok(r) = c
                    .patch(format!("{url}{loc}"))
                    .header("content-range", format!("0-{}", half.max(1) - 1))
                    .body(b[..half.max(1)].to_vec())
                    .send()
                else {
                    return;
                };
                if r.status() != 202 {
                    ok = false;
                    break;
                }
                let loc = r.headers()["location"].to_str().unwrap().to_string();
                let sep = if loc.contains('?') { '&' } else { '?' };
                c.put(format!("{url}{loc}{sep}digest={d}"))
                    .body(b[half.max(1)..].to_vec())
                    .send()
            } else {
                c.post(format!("{url}/v2/{repo}/blobs/uploads/?digest={d}"))
                    .body(b.to_vec())
                    .send()
            };
            match done {
                Ok(r) if r.status() == 201 => {
                    ledger
                        .lock()
                        .unwrap()
                        .blobs
                        .insert((repo.clone(), d), b.to_vec());
                }
                Ok(r) => panic!("blob push answered {}: {:?}", r.status(), r.text()),
                Err(_) => return, // killed mid-request: outcome unknown
            }
        }
        if !ok {
            return;
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(&layer), "size": layer.len()}],
        })
        .to_string()
        .into_bytes();
        let md = sha(&manifest);
        let tag = format!("t{n}");
        match c
            .put(format!("{url}/v2/{repo}/manifests/{tag}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
        {
            Ok(r) if r.status() == 201 => {
                let mut l = ledger.lock().unwrap();
                l.tags.insert((repo.clone(), tag.clone()), md.clone());
                l.blobs.insert((repo.clone(), md.clone()), manifest);
            }
            Ok(r) => panic!("manifest push answered {}: {:?}", r.status(), r.text()),
            Err(_) => return,
        }
        // Now and then delete an earlier image of ours by digest.
        if rng.below(4) == 0 {
            let victim = {
                let l = ledger.lock().unwrap();
                l.tags
                    .iter()
                    .filter(|((r, _), _)| *r == repo)
                    .map(|(_, d)| d.clone())
                    .next()
            };
            if let Some(d) = victim {
                ledger
                    .lock()
                    .unwrap()
                    .uncertain
                    .push((repo.clone(), d.clone()));
                match c.delete(format!("{url}/v2/{repo}/manifests/{d}")).send() {
                    Ok(r) if r.status() == 202 || r.status() == 404 => {
                        let mut l = ledger.lock().unwrap();
                        l.uncertain.retain(|x| *x != (repo.clone(), d.clone()));
                        l.tags.retain(|_, v| *v != d);
                        l.blobs.remove(&(repo.clone(), d.clone()));
                        l.deleted.push((repo.clone(), d));
                    }
                    Ok(r) => panic!("delete answered {}", r.status()),
                    Err(_) => return,
                }
            }
        }
    }
}

/// Every file under blobs/ holds exactly the content its name says: a
/// partial blob is never visible. `must_exist`: some blob was stored, so a
/// missing blobs/ directory means the check looks in the wrong place.
fn no_partial_blobs(data: &std::path::Path, must_exist: bool) {
    let root = data.join("blobs").join("sha256");
    let shards = match std::fs::read_dir(&root) {
        Ok(shards) => shards,
        Err(e) if !must_exist && e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => panic!("cannot list {}: {e}", root.display()),
    };
    for shard in shards {
        for f in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            if name.contains('#') || name.starts_with('.') {
                continue; // object_store's staging files, never served
            }
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!(
                hex::encode(Sha256::digest(&bytes)),
                name,
                "partial or corrupt blob {}",
                p.display()
            );
        }
    }
}

#[test]
fn acknowledged_data_survives_kill9_at_random_points() {
    let iterations: usize = std::env::var("BERTH_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("BERTH_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = common::Server::start_in(&data, &[]);
    let mut rng = Rng(seed);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let c = common::client();
    let mut total_acked = 0;
    for round in 0..iterations {
        let url = server.url().to_string();
        // An upload session with one acknowledged chunk, resumed after the crash.
        let chunk = rng.bytes(50_000);
        let rest = rng.bytes(30_000);
        let r = c
            .post(format!("{url}/v2/crash/resume/blobs/uploads/"))
            .send()
            .unwrap();
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let r = c
            .patch(format!("{url}{loc}"))
            .header("content-range", format!("0-{}", chunk.len() - 1))
            .body(chunk.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);

        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (url, stop, ledger) = (url.clone(), stop.clone(), ledger.clone());
                let r = Rng(rng.next() | 1);
                std::thread::spawn(move || worker(url, round * 10 + w, r, stop, ledger))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50 + rng.below(400)));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join()
                .expect("worker panicked: the server answered something wrong");
        }
        // From the second round on, the resumed blob of the first is stored.
        let stored = round > 0 || !ledger.lock().unwrap().blobs.is_empty();
        no_partial_blobs(&data, stored);
        common::assert_fsck_clean(&data, "after a crash");
        server = common::Server::start_in(&data, &[]);
        let url = server.url().to_string();

        // Deletes cut off by the kill: whatever happened is now final.
        let mut l = ledger.lock().unwrap();
        for (repo, d) in std::mem::take(&mut l.uncertain) {
            let r = c
                .get(format!("{url}/v2/{repo}/manifests/{d}"))
                .send()
                .unwrap();
            if r.status() == 404 {
                l.tags.retain(|_, v| *v != d);
                l.blobs.remove(&(repo.clone(), d.clone()));
                l.deleted.push((repo, d));
            }
        }
        // Everything acknowledged reads back.
        for ((repo, d), bytes) in &l.blobs {
            let r = c.get(format!("{url}/v2/{repo}/blobs/{d}")).send().unwrap();
            assert_eq!(
                r.status(),
                200,
                "round {round}: acknowledged {repo}@{d} lost"
            );
            assert_eq!(
                &r.bytes().unwrap()[..],
                &bytes[..],
                "round {round}: {repo}@{d} corrupt"
            );
        }
        for ((repo, tag), d) in &l.tags {
            let r = c
                .get(format!("{url}/v2/{repo}/manifests/{tag}"))
                .send()
                .unwrap();
            assert_eq!(r.status(), 200, "round {round}: tag {repo}:{tag} lost");
            assert_eq!(r.headers()["docker-content-digest"], d.as_str());
        }
        for (repo, d) in &l.deleted {
            let r = c
                .get(format!("{url}/v2/{repo}/manifests/{d}"))
                .send()
                .unwrap();
            assert_eq!(
                r.status(),
                404,
                "round {round}: deleted {repo}@{d} came back"
            );
        }
        total_acked = l.blobs.len();
        drop(l);

        // The interrupted session resumes where the server says it stands.
        let r = c.get(format!("{url}{loc}")).send().unwrap();
        assert_eq!(r.status(), 204, "round {round}: session lost");
        assert_eq!(
            r.headers()["range"],
            format!("0-{}", chunk.len() - 1).as_str()
        );
        let full: Vec<u8> = chunk.iter().chain(rest.iter()).copied().collect();
        let r = c
            .put(format!("{url}{loc}?digest={}", sha(&full)))
            .header(
                "content-range",
                format!("{}-{}", chunk.len(), full.len() - 1),
            )
            .body(rest)
            .send()
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "round {round}: resumed session: {:?}",
            r.text()
        );
        let got = c
            .get(format!("{url}/v2/crash/resume/blobs/{}", sha(&full)))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(sha(&got), sha(&full));
    }
    assert!(
        total_acked > iterations,
        "the load generator acknowledged too little to prove anything: {total_acked}"
    );
    server.stop();
    common::assert_fsck_clean(&data, "after a crash");
}
