//! The machine's own limits, measured in the same run: single-core SHA-256,
//! loopback TCP, sequential write+fsync and read of the data directory's
//! disk.

use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use sha2::{Digest as _, Sha256};

use crate::scenarios::Rng;

const MIB: f64 = 1024.0 * 1024.0;

pub struct Limits {
    pub sha256_mib_s: f64,
    pub loopback_mib_s: f64,
    pub disk_write_fsync_mib_s: f64,
    pub disk_read_mib_s: f64,
}

/// Measures everything with `bytes` per test; the disk tests write in `dir`.
pub fn measure(dir: &Path, bytes: usize) -> Result<Limits> {
    let buf = Rng::new(42).bytes(8 << 20);
    let rounds = (bytes / buf.len()).max(1);
    let total = (rounds * buf.len()) as f64;

    // SHA-256 on this thread only.
    let t = Instant::now();
    let mut h = Sha256::new();
    for _ in 0..rounds {
        h.update(&buf);
    }
    std::hint::black_box(h.finalize());
    let sha256_mib_s = total / MIB / t.elapsed().as_secs_f64();

    // Loopback TCP: one sender thread, one receiver thread, 1 MiB writes.
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    let recv = std::thread::spawn(move || -> Result<u64> {
        let (mut s, _) = l.accept()?;
        let mut b = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = s.read(&mut b)?;
            if k == 0 {
                return Ok(n);
            }
            n += k as u64;
        }
    });
    let mut s = std::net::TcpStream::connect(addr)?;
    let t = Instant::now();
    for _ in 0..rounds {
        for c in buf.chunks(1 << 20) {
            s.write_all(c)?;
        }
    }
    drop(s);
    let got = recv.join().expect("receiver")?;
    let loopback_mib_s = got as f64 / MIB / t.elapsed().as_secs_f64();

    // Disk: write + fsync, then drop the file's cached pages and read it.
    let path = dir.join("bench-disk-probe");
    let t = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    for _ in 0..rounds {
        f.write_all(&buf)?;
    }
    f.sync_all()?;
    let disk_write_fsync_mib_s = total / MIB / t.elapsed().as_secs_f64();
    drop(f);
    let mut f = std::fs::File::open(&path)?;
    // SAFETY: posix_fadvise on a file descriptor we own; the pages are
    // clean after fsync, so DONTNEED drops them and the read hits the disk.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let mut b = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut n = 0u64;
    loop {
        let k = f.read(&mut b)?;
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    let disk_read_mib_s = n as f64 / MIB / t.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(Limits {
        sha256_mib_s,
        loopback_mib_s,
        disk_write_fsync_mib_s,
        disk_read_mib_s,
    })
}

impl Limits {
    pub fn table(&self) -> String {
        format!(
            "| machine limit | MiB/s |\n|---|---:|\n\
             | SHA-256, one core | {:.0} |\n\
             | loopback TCP, one stream | {:.0} |\n\
             | data disk, sequential write + fsync | {:.0} |\n\
             | data disk, sequential read (cache dropped) | {:.0} |\n",
            self.sha256_mib_s,
            self.loopback_mib_s,
            self.disk_write_fsync_mib_s,
            self.disk_read_mib_s
        )
    }
}
