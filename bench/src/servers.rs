//! The two registries under test: started with fresh data directories on
//! loopback ports, watched through /proc, stopped by PID.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Which registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Distribution,
    Berth,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Distribution => "distribution",
            Kind::Berth => "berth",
        }
    }
}

/// Paths of the two programs.
#[derive(Clone, Debug)]
pub struct Programs {
    pub berth: PathBuf,
    pub registry: PathBuf,
}

/// A running registry.
pub struct Server {
    pub kind: Kind,
    pub url: String,
    pub data_dir: PathBuf,
    child: Option<Child>,
}

/// distribution's configuration: filesystem storage, deletes enabled, the
/// in-memory blob descriptor cache of Debian's default config, loopback.
pub fn distribution_config(data_dir: &Path, port: u16) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  fields:\n    service: registry\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\n\
         http:\n  addr: 127.0.0.1:{port}\n  headers:\n    X-Content-Type-Options: [nosniff]\n",
        data_dir.display()
    )
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Server {
    /// Starts `kind` on `data_dir` (created fresh); `log` receives stderr.
    pub fn start(kind: Kind, progs: &Programs, data_dir: &Path, log: &Path) -> Result<Server> {
        std::fs::create_dir_all(data_dir)?;
        let log_file = std::fs::File::create(log)?;
        match kind {
            Kind::Berth => {
                let mut child = Command::new(&progs.berth)
                    .arg("serve")
                    .arg("--addr")
                    .arg("127.0.0.1:0")
                    .arg("--data-dir")
                    .arg(data_dir)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(log_file)
                    .spawn()
                    .with_context(|| format!("starting {}", progs.berth.display()))?;
                let stdout = child.stdout.take().expect("piped");
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let mut lines = BufReader::new(stdout).lines();
                    while let Some(Ok(l)) = lines.next() {
                        if let Some(u) = l.strip_prefix("berth listening on ") {
                            let _ = tx.send(u.trim().to_string());
                        }
                    }
                });
                let mut server = Server {
                    kind,
                    url: String::new(),
                    data_dir: data_dir.to_path_buf(),
                    child: Some(child),
                };
                match rx.recv_timeout(Duration::from_secs(60)) {
                    Ok(u) => server.url = u.trim_end_matches('/').to_string(),
                    Err(_) => bail!("berth did not print its address (log: {})", log.display()),
                }
                Ok(server)
            }
            Kind::Distribution => {
                let port = free_port()?;
                let cfg = data_dir.with_extension("yml");
                std::fs::write(&cfg, distribution_config(data_dir, port))?;
                let child = Command::new(&progs.registry)
                    .arg("serve")
                    .arg(&cfg)
                    .stdin(Stdio::null())
                    .stdout(log_file.try_clone()?)
                    .stderr(log_file)
                    .spawn()
                    .with_context(|| format!("starting {}", progs.registry.display()))?;
                let server = Server {
                    kind,
                    url: format!("http://127.0.0.1:{port}"),
                    data_dir: data_dir.to_path_buf(),
                    child: Some(child),
                };
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                        break;
                    }
                    if Instant::now() > deadline {
                        bail!("distribution did not listen (log: {})", log.display());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(server)
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGTERM to our child's PID, wait (up to 60 s), then SIGKILL.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} (pid {pid}) ignored SIGTERM", self.kind.name());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A field of /proc/<pid>/status, in KiB.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// utime + stime of a process, in seconds.
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start at
    // field 3 (state); utime and stime are fields 14 and 15.
    let rest = &s[s.rfind(')').map(|i| i + 1).unwrap_or(0)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// A process's peak RSS over a stretch of time. The kernel's own peak
/// (VmHWM) is reset at the start (`clear_refs`, value 5), so the figure is
/// exact, not sampled; where the reset is refused, VmRSS is sampled every
/// 10 ms instead.
pub struct PeakRss {
    pid: u32,
    sampler: Option<(Arc<AtomicBool>, Arc<AtomicU64>, std::thread::JoinHandle<()>)>,
}

impl PeakRss {
    pub fn start(pid: u32) -> PeakRss {
        if std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok() {
            return PeakRss { pid, sampler: None };
        }
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(status_kib(pid, "VmRSS").unwrap_or(0)));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(v) = status_kib(pid, "VmRSS") {
                    p.fetch_max(v, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        PeakRss {
            pid,
            sampler: Some((stop, peak, thread)),
        }
    }

    /// Peak RSS since `start`, KiB.
    pub fn finish(self) -> u64 {
        match self.sampler {
            None => status_kib(self.pid, "VmHWM").unwrap_or(0),
            Some((stop, peak, thread)) => {
                stop.store(true, Ordering::Relaxed);
                let _ = thread.join();
                peak.load(Ordering::Relaxed)
            }
        }
    }
}

/// Bytes a directory tree occupies on disk (allocated blocks, like `du`).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

/// Flushes dirty pages so one registry's write-back does not slow the next
/// measurement (distribution does not fsync; Berth does).
pub fn sync_disks() {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
}
