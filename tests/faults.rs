//! Faults: a full disk, a read-only data directory, a corrupt metadata
//! database. Pushes fail with a clear 5xx, pulls keep working, nothing is
//! corrupted, and freeing space lets pushes continue.
//!
//! The disk-full test mounts a small tmpfs, which needs root; CI runs as
//! root, and under `CI=true` not being able to mount is a failure (see
//! `common::skip`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{bytes as noise, digest as sha};

/// A tmpfs of `mib` MiB mounted at a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// The reason it cannot, when the machine will not mount one.
    fn mount(mib: u64) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            Ok(Tmpfs { dir })
        } else {
            Err("cannot mount a tmpfs (the test needs root); CI must run as root".into())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn full_disk_fails_pushes_cleanly_and_recovers() {
    let fs = match Tmpfs::mount(48) {
        Ok(fs) => fs,
        Err(why) => skip!("{why}"),
    };
    let data = fs.dir.path().join("data");
    let cfg = fs.dir.path().join("gc.toml");
    std::fs::write(&cfg, "[gc]\ngrace_period_secs = 0\n").unwrap();
    let server = common::Server::start_in(&data, &["--config", cfg.to_str().unwrap()]);
    let url = server.url().to_string();
    let c = common::client();

    // Something to pull later.
    let keep = noise(1, 100_000);
    let r = c
        .post(format!(
            "{url}/v2/disk/keep/blobs/uploads/?digest={}",
            sha(&keep)
        ))
        .body(keep.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);

    // Fill the disk with 4 MiB blobs until the registry refuses.
    let mut pushed = Vec::new();
    let mut refused = None;
    for i in 0..40u64 {
        let b = noise(100 + i, 4 << 20);
        let r = c
            .post(format!(
                "{url}/v2/disk/fill/blobs/uploads/?digest={}",
                sha(&b)
            ))
            .body(b.clone())
            .send()
            .unwrap();
        match r.status().as_u16() {
            201 => pushed.push(b),
            s => {
                let body: serde_json::Value = r.json().unwrap();
                refused = Some((s, body));
                break;
            }
        }
    }
    let (status, body) = refused.expect("a 48 MiB disk never filled up");
    assert!(
        (500..600).contains(&status),
        "full disk answered {status}: {body}"
    );
    assert_eq!(status, 507, "{body}");
    let detail = body["errors"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.contains("free space"),
        "the message does not say what to do: {detail}"
    );

    // Pulls keep working, and everything acknowledged is intact.
    let got = c
        .get(format!("{url}/v2/disk/keep/blobs/{}", sha(&keep)))
        .send()
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(sha(&got.bytes().unwrap()), sha(&keep));
    for b in &pushed {
        let got = c
            .get(format!("{url}/v2/disk/fill/blobs/{}", sha(b)))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(sha(&got), sha(b));
    }

    // Free space: delete the filler repository, collect, push again.
    let r = c
        .delete(format!("{url}/api/v1/namespaces/disk/repositories/fill"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let run: serde_json::Value = c
        .post(format!("{url}/api/v1/gc"))
        .json(&serde_json::json!({}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = run["id"].as_str().unwrap().to_string();
    let mut done = serde_json::Value::Null;
    for _ in 0..200 {
        done = c
            .get(format!("{url}/api/v1/gc/runs/{id}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if done["status"] != "running" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(
        done["report"]["bytes_freed"].as_u64().unwrap() >= (4 << 20) * pushed.len() as u64,
        "{} blobs pushed before the disk filled: {done}",
        pushed.len()
    );
    let b = noise(999, 4 << 20);
    let r = c
        .post(format!(
            "{url}/v2/disk/again/blobs/uploads/?digest={}",
            sha(&b)
        ))
        .body(b)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "push after freeing space: {:?}", r.text());
    drop(server);
}

#[test]
fn read_only_data_directory_refuses_pushes_and_serves_pulls() {
    let fs = match Tmpfs::mount(32) {
        Ok(fs) => fs,
        Err(why) => skip!("{why}"),
    };
    let data = fs.dir.path().join("data");
    let mut server = common::Server::start_in(&data, &[]);
    let url = server.url().to_string();
    let c = common::client();
    let b = noise(7, 50_000);
    let r = c
        .post(format!("{url}/v2/ro/a/blobs/uploads/?digest={}", sha(&b)))
        .body(b.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    server.stop();
    let server = common::Server::start_in(&data, &[]);
    let url = server.url().to_string();
    // Make the directories that take new bytes read-only under the running
    // server (a read-only bind mount: root ignores mode bits, and a remount
    // of the whole tmpfs is refused while the metadata files are open).
    let mut mounted = Vec::new();
    for sub in ["uploads", "blobs"] {
        let p = data.join(sub);
        std::fs::create_dir_all(&p).unwrap();
        let bind = Command::new("mount")
            .arg("--bind")
            .arg(&p)
            .arg(&p)
            .status()
            .unwrap()
            .success();
        let ro = Command::new("mount")
            .args(["-o", "remount,ro,bind"])
            .arg(&p)
            .status()
            .unwrap()
            .success();
        assert!(bind && ro, "read-only bind mount of {} failed", p.display());
        mounted.push(p);
    }
    let other = noise(8, 50_000);
    let r = c
        .post(format!(
            "{url}/v2/ro/a/blobs/uploads/?digest={}",
            sha(&other)
        ))
        .body(other)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().unwrap();
    assert_eq!(
        status, 507,
        "push to a read-only disk answered {status}: {body}"
    );
    let got = c
        .get(format!("{url}/v2/ro/a/blobs/{}", sha(&b)))
        .send()
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(sha(&got.bytes().unwrap()), sha(&b));
    for p in mounted {
        let _ = Command::new("umount").arg(&p).status();
    }
    drop(server);
}

#[test]
fn corrupt_metadata_is_reported_at_start_with_a_pointer_to_fsck() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = common::Server::start_in(&data, &[]);
    let c = common::client();
    for i in 0..20u64 {
        let b = noise(i + 1, 10_000);
        let r = c
            .post(format!(
                "{}/v2/meta/x/blobs/uploads/?digest={}",
                server.url(),
                sha(&b)
            ))
            .body(b)
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    server.stop();
    // Overwrite the metadata log with garbage.
    let db = data.join("meta").join("db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::write(&db, noise(42, len as usize)).unwrap();
    // If it started anyway, it must not hang the test: stop it after 10 s.
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started on a corrupt database: {err}"
    );
    assert!(
        err.contains("fsck") || err.contains("corrupt"),
        "unclear message: {err}"
    );
}
