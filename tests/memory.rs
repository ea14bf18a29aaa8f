//! Memory stays bounded whatever the blob size: a 1 GiB chunked push and
//! its pull keep the server's peak RSS under 100 MiB.

mod common;

use std::io::Read;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

const SIZE: u64 = 1 << 30;
const BLOCK: usize = 1 << 20;

/// Deterministic pseudo-random bytes, hashed as they are produced.
struct Gen {
    left: u64,
    block: Vec<u8>,
    pos: usize,
    n: u64,
    hasher: Arc<Mutex<Sha256>>,
}

impl Gen {
    fn new(hasher: Arc<Mutex<Sha256>>) -> Gen {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let block = (0..BLOCK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Gen {
            left: SIZE,
            block,
            pos: BLOCK,
            n: 0,
            hasher,
        }
    }
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        if self.pos == BLOCK {
            // Every block differs, so nothing compresses or repeats.
            self.block[..8].copy_from_slice(&self.n.to_le_bytes());
            self.n += 1;
            self.pos = 0;
        }
        let k = buf.len().min(BLOCK - self.pos).min(self.left as usize);
        buf[..k].copy_from_slice(&self.block[self.pos..self.pos + k]);
        self.hasher.lock().unwrap().update(&buf[..k]);
        self.pos += k;
        self.left -= k as u64;
        Ok(k)
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM")
}

#[test]
fn one_gib_push_and_pull_stay_under_100_mib() {
    let (server, _dir) = common::Server::start();
    let url = server.url();
    let c = common::client();
    let r = c
        .post(format!("{url}/v2/mem/big/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();

    // Streamed PATCH without Content-Length (chunked transfer encoding).
    let hasher = Arc::new(Mutex::new(Sha256::new()));
    let body = reqwest::blocking::Body::new(Gen::new(hasher.clone()));
    let r = c.patch(format!("{url}{loc}")).body(body).send().unwrap();
    assert_eq!(r.status(), 202, "{:?}", r.text());
    assert_eq!(r.headers()["range"], format!("0-{}", SIZE - 1).as_str());
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let digest = format!(
        "sha256:{}",
        hex::encode(hasher.lock().unwrap().clone().finalize())
    );
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c
        .put(format!("{url}{loc}{sep}digest={digest}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text());

    let mut r = c
        .get(format!("{url}/v2/mem/big/blobs/{digest}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; BLOCK];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    assert_eq!(total, SIZE);
    assert_eq!(format!("sha256:{}", hex::encode(h.finalize())), digest);

    let peak = peak_rss_kib(server.pid());
    eprintln!(
        "server peak RSS after 1 GiB push + pull: {} MiB",
        peak / 1024
    );
    assert!(
        peak < 100 * 1024,
        "peak RSS {} MiB is over 100 MiB",
        peak / 1024
    );
}
