//! `berth-bench`: Berth and CNCF distribution side by side (issue 8).
//!
//! `berth-bench run` starts both registries with fresh data directories on
//! loopback ports, runs every scenario against both in interleaved order,
//! repeats, and prints the medians as a Markdown table with the machine's
//! limits. `berth-bench one` runs a single scenario against a running
//! registry (for profiling). See bench/README.md.

mod client;
mod limits;
mod report;
mod rows;
mod scale;
mod scenarios;
mod servers;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand};

use client::{Blob, Client};
use report::Results;
use scenarios::{BigBlobs, Sizes};
use servers::{cpu_secs, status_kib, Kind, Programs, Server};

#[derive(Parser)]
#[command(about = "Berth's benchmark against CNCF distribution")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every scenario against both registries, interleaved; prints the table.
    Run {
        /// The berth binary (release build).
        #[arg(long)]
        berth: PathBuf,
        /// distribution's binary.
        #[arg(long, default_value = "/usr/bin/docker-registry")]
        registry: PathBuf,
        /// Scratch directory for data directories, configs and logs (on the
        /// disk to measure).
        #[arg(long)]
        work: PathBuf,
        /// Tiny sizes (also BENCH_SMOKE=1).
        #[arg(long)]
        smoke: bool,
        /// Repetitions (median taken); default 3, 1 in smoke mode.
        #[arg(long, env = "BENCH_REPS")]
        reps: Option<usize>,
        /// Skip the offline GC scenario.
        #[arg(long)]
        no_gc: bool,
        /// Also write the tables to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// One scenario against a running registry, for profiling.
    One {
        #[arg(long)]
        url: String,
        /// push1, push4, chunked, pull, get, small, lists, populate-gc.
        #[arg(long)]
        scenario: String,
        /// Images for populate-gc (default: the run's GC size).
        #[arg(long)]
        count: Option<usize>,
        #[arg(long)]
        smoke: bool,
    },
    /// Writes a registry through the store's API for the scale scenarios
    /// (the data directory must not be in use).
    Load {
        #[arg(long)]
        data_dir: PathBuf,
        /// Tags in the repository scale/tags.
        #[arg(long, default_value_t = 100_000)]
        tags: usize,
        /// Repositories of one tagged image, ten per namespace.
        #[arg(long, default_value_t = 100_000)]
        repos: usize,
    },
    /// The scale scenarios: page latency and time to first answer with
    /// `small` vs `large` tags and repositories (Berth only).
    Scale {
        /// The berth binary (release build).
        #[arg(long)]
        berth: PathBuf,
        /// Scratch directory for the data directories and logs.
        #[arg(long)]
        work: PathBuf,
        #[arg(long, default_value_t = 1_000)]
        small: usize,
        #[arg(long, default_value_t = 100_000)]
        large: usize,
        /// Rounds (median taken).
        #[arg(long, env = "BENCH_REPS", default_value_t = 3)]
        reps: usize,
        /// Also write the table to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Only the machine's limits.
    Limits {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        smoke: bool,
    },
}

/// BENCH_SMOKE=1 (or any value but 0/false/empty) selects the smoke mode.
fn smoke_env() -> bool {
    std::env::var("BENCH_SMOKE").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(real_main()) {
        eprintln!("berth-bench: error: {e:#}");
        std::process::exit(1);
    }
}

async fn real_main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Run {
            berth,
            registry,
            work,
            smoke,
            reps,
            no_gc,
            out,
        } => {
            let mut sizes = if smoke || smoke_env() {
                Sizes::smoke()
            } else {
                Sizes::full()
            };
            if let Some(r) = reps {
                sizes.reps = r.max(1);
            }
            let progs = Programs { berth, registry };
            run(&progs, &sizes, &work, !no_gc, out.as_deref()).await
        }
        Cmd::One {
            url,
            scenario,
            smoke,
            count,
        } => {
            let mut sizes = if smoke || smoke_env() {
                Sizes::smoke()
            } else {
                Sizes::full()
            };
            if let Some(n) = count {
                sizes.gc_manifests = n;
            }
            one(&url, &scenario, &sizes).await
        }
        Cmd::Load {
            data_dir,
            tags,
            repos,
        } => scale::load(&data_dir, tags, repos).await,
        Cmd::Scale {
            berth,
            work,
            small,
            large,
            reps,
            out,
        } => {
            ensure!(
                small > 0 && large > small,
                "--large must exceed --small (> 0)"
            );
            let progs = Programs {
                berth,
                registry: PathBuf::new(),
            };
            let table = scale::run(&progs, &work, small, large, reps.max(1)).await?;
            print!("{table}");
            if let Some(out) = out {
                std::fs::write(out, &table)?;
            }
            Ok(())
        }
        Cmd::Limits { dir, smoke } => {
            let l = limits::measure(
                &dir,
                if smoke || smoke_env() {
                    16 << 20
                } else {
                    1 << 30
                },
            )?;
            print!("{}", l.table());
            Ok(())
        }
    }
}

const BIG_REPO: &str = "bench/big";
const GET_REPO: &str = "bench/get";
const SMALL_REPO: &str = "bench/small";
const TAG_REPO: &str = "bench/tags";

/// Runs `f` against `server` with the disks synced first; returns its
/// result, the server's CPU seconds and its peak RSS (MiB) during it.
async fn measured<T, F: Future<Output = Result<T>>>(
    server: &Server,
    f: F,
) -> Result<(T, f64, f64)> {
    tokio::task::spawn_blocking(servers::sync_disks).await?;
    let pid = server.pid();
    let peak = servers::PeakRss::start(pid);
    let c0 = cpu_secs(pid);
    let out = f.await?;
    let cpu = cpu_secs(pid) - c0;
    Ok((out, cpu, peak.finish() as f64 / 1024.0))
}

/// The two servers of a repetition.
struct Pair {
    d: Server,
    b: Server,
}

impl Pair {
    fn get(&self, k: Kind) -> &Server {
        match k {
            Kind::Distribution => &self.d,
            Kind::Berth => &self.b,
        }
    }
}

fn order(i: usize) -> [Kind; 2] {
    if i % 2 == 0 {
        [Kind::Distribution, Kind::Berth]
    } else {
        [Kind::Berth, Kind::Distribution]
    }
}

async fn run(
    progs: &Programs,
    sizes: &Sizes,
    work: &Path,
    gc: bool,
    out: Option<&Path>,
) -> Result<()> {
    std::fs::create_dir_all(work)?;
    let t0 = Instant::now();
    eprintln!("==> machine limits");
    let lim = limits::measure(work, if sizes.smoke { 16 << 20 } else { 1 << 30 })?;
    eprint!("{}", lim.table());
    let big = Arc::new(BigBlobs::new(sizes.big_blob));
    let mut res = Results::default();
    for rep in 0..sizes.reps {
        eprintln!("==> repetition {}/{}", rep + 1, sizes.reps);
        repetition(progs, sizes, work, rep, &big, &mut res).await?;
    }
    if gc {
        gc_scenario(progs, sizes, work, &mut res).await?;
    }
    let mut text = format!(
        "{}\n{}\nMedians of {} repetition(s){}; ratio > 1 means Berth is better. Total time {:.0} s.\n",
        report::table(&res, &rows::rows(sizes)),
        lim.table(),
        sizes.reps,
        if sizes.smoke { ", SMOKE MODE (tiny sizes, figures meaningless)" } else { "" },
        t0.elapsed().as_secs_f64()
    );
    text.push_str("\nEvery repetition (distribution / Berth):\n\n");
    for r in rows::rows(sizes) {
        text.push_str(&format!(
            "- {}: {:?} / {:?}\n",
            r.key,
            res.all(r.key, Kind::Distribution)
                .iter()
                .map(|v| (v * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>(),
            res.all(r.key, Kind::Berth)
                .iter()
                .map(|v| (v * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>()
        ));
    }
    print!("{text}");
    if let Some(o) = out {
        if let Some(p) = o.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(o, &text)?;
    }
    Ok(())
}

async fn repetition(
    progs: &Programs,
    sizes: &Sizes,
    work: &Path,
    rep: usize,
    big: &BigBlobs,
    res: &mut Results,
) -> Result<()> {
    let dir = work.join(format!("rep{rep}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let start = |k: Kind| {
        Server::start(
            k,
            progs,
            &dir.join(k.name()),
            &dir.join(format!("{}.log", k.name())),
        )
    };
    let pair = if rep % 2 == 0 {
        let d = start(Kind::Distribution)?;
        Pair {
            b: start(Kind::Berth)?,
            d,
        }
    } else {
        let b = start(Kind::Berth)?;
        Pair {
            d: start(Kind::Distribution)?,
            b,
        }
    };
    tokio::time::sleep(if sizes.smoke {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(2)
    })
    .await;
    for k in order(0) {
        let kib = status_kib(pair.get(k).pid(), "VmRSS").context("VmRSS")?;
        res.add("rss.idle", k, kib as f64 / 1024.0);
    }

    // Content: the same blobs for both registries, new ones each repetition.
    let ids = |scen: u64, n: usize| -> Arc<Vec<Blob>> {
        Arc::new(
            (0..n as u64)
                .map(|i| big.blob((rep as u64) << 32 | scen << 24 | i))
                .collect(),
        )
    };
    let b1 = ids(1, sizes.push1_blobs);
    let b4 = ids(4, sizes.push4_blobs);
    let bc = ids(2, sizes.chunked_blobs);
    let get_img = scenarios::image(0x9e7 + rep as u64, 2, 2048, 2048);
    for k in order(0) {
        let mut c = Client::new(&pair.get(k).url)?;
        scenarios::push_image(&mut c, GET_REPO, &get_img, "latest", false).await?;
    }
    let mut pushed1 = [0usize; 2];
    let mut pushed4 = [0usize; 2];
    let slot = |k: Kind| (k == Kind::Berth) as usize;
    let gib = 1024.0 * 1024.0 * 1024.0;

    // Scenarios 1 to 5, interleaved: the first registry alternates.
    let mut si = rep;
    for k in order(si) {
        let s = pair.get(k);
        let ((mibs, n), cpu, rss) = measured(
            s,
            scenarios::push_big(&s.url, BIG_REPO, b1.clone(), 1, sizes.bound),
        )
        .await?;
        eprintln!(
            "  push c=1     {:12} {mibs:9.1} MiB/s  cpu {cpu:.2} s",
            k.name()
        );
        res.add("push1", k, mibs);
        res.add("cpu.push1", k, cpu);
        res.add("rss.push1", k, rss);
        res.add(
            "push.cpu_gib",
            k,
            cpu / (n as f64 * sizes.big_blob as f64 / gib),
        );
        pushed1[slot(k)] = n;
    }
    si += 1;
    for k in order(si) {
        let s = pair.get(k);
        let ((mibs, n), cpu, rss) = measured(
            s,
            scenarios::push_big(&s.url, BIG_REPO, b4.clone(), 4, sizes.bound),
        )
        .await?;
        eprintln!(
            "  push c=4     {:12} {mibs:9.1} MiB/s  cpu {cpu:.2} s",
            k.name()
        );
        res.add("push4", k, mibs);
        res.add("cpu.push4", k, cpu);
        res.add("rss.push4", k, rss);
        pushed4[slot(k)] = n;
    }
    si += 1;
    for k in order(si) {
        let s = pair.get(k);
        let ((mibs, _), cpu, rss) = measured(
            s,
            scenarios::push_chunked(&s.url, BIG_REPO, &bc, sizes.chunk, sizes.bound),
        )
        .await?;
        eprintln!(
            "  chunked      {:12} {mibs:9.1} MiB/s  cpu {cpu:.2} s",
            k.name()
        );
        res.add("chunked", k, mibs);
        res.add("cpu.chunked", k, cpu);
        res.add("rss.chunked", k, rss);
    }
    si += 1;
    let mut pull_cpu = [0.0f64; 2];
    let mut pull_bytes = [0u64; 2];
    for k in order(si) {
        let s = pair.get(k);
        let blobs = Arc::new(b1[..pushed1[slot(k)]].to_vec());
        let ((mibs, bytes), cpu, rss) =
            measured(s, scenarios::pull(&s.url, BIG_REPO, blobs, 1, sizes.bound)).await?;
        eprintln!(
            "  pull c=1     {:12} {mibs:9.1} MiB/s  cpu {cpu:.2} s",
            k.name()
        );
        res.add("pull1", k, mibs);
        res.add("cpu.pull1", k, cpu);
        res.add("rss.pull1", k, rss);
        pull_cpu[slot(k)] += cpu;
        pull_bytes[slot(k)] += bytes;
    }
    si += 1;
    for k in order(si) {
        let s = pair.get(k);
        let blobs = Arc::new(b4[..pushed4[slot(k)]].to_vec());
        let ((mibs, bytes), cpu, rss) =
            measured(s, scenarios::pull(&s.url, BIG_REPO, blobs, 4, sizes.bound)).await?;
        eprintln!(
            "  pull c=4     {:12} {mibs:9.1} MiB/s  cpu {cpu:.2} s",
            k.name()
        );
        res.add("pull4", k, mibs);
        res.add("cpu.pull4", k, cpu);
        res.add("rss.pull4", k, rss);
        pull_cpu[slot(k)] += cpu;
        pull_bytes[slot(k)] += bytes;
        res.add(
            "pull.cpu_gib",
            k,
            pull_cpu[slot(k)] / (pull_bytes[slot(k)] as f64 / gib),
        );
    }
    si += 1;
    for k in order(si) {
        let s = pair.get(k);
        let (g, cpu, rss) = measured(
            s,
            scenarios::manifest_get(
                &s.url,
                GET_REPO,
                "latest",
                &get_img.digest,
                sizes.get_conns,
                sizes.get_time,
            ),
        )
        .await?;
        eprintln!(
            "  manifest GET {:12} {:9.0} req/s  p50 {:.2} ms  p99 {:.2} ms  cpu {cpu:.2} s",
            k.name(),
            g.rps,
            g.p50_ms,
            g.p99_ms
        );
        res.add("get.rps", k, g.rps);
        res.add("get.p50", k, g.p50_ms);
        res.add("get.p99", k, g.p99_ms);
        res.add("cpu.get", k, cpu);
        res.add("rss.get", k, rss);
        res.add("get.cpu_k", k, cpu / g.requests as f64 * 1000.0);
    }
    si += 1;
    for k in order(si) {
        let s = pair.get(k);
        let seed = 0x5000_0000 + ((rep as u64) << 20);
        let ((ips, _), cpu, rss) = measured(
            s,
            scenarios::small_pushes(
                &s.url,
                SMALL_REPO,
                seed,
                sizes.small_images,
                sizes.small_conc,
                sizes.bound,
            ),
        )
        .await?;
        eprintln!(
            "  small push   {:12} {ips:9.1} images/s  cpu {cpu:.2} s",
            k.name()
        );
        res.add("small", k, ips);
        res.add("cpu.small", k, cpu);
        res.add("rss.small", k, rss);
    }
    tokio::task::spawn_blocking(servers::sync_disks).await?;
    for k in order(0) {
        let s = pair.get(k);
        // VmHWM is reset per scenario, so the peak over scenarios 1-5 is
        // the largest of theirs.
        let peak = [
            "rss.push1",
            "rss.push4",
            "rss.chunked",
            "rss.pull1",
            "rss.pull4",
            "rss.get",
            "rss.small",
        ]
        .iter()
        .filter_map(|key| res.all(key, k).last().copied())
        .fold(0.0f64, f64::max);
        res.add("rss.peak", k, peak);
        let du = servers::disk_usage(&s.data_dir);
        res.add("disk", k, du as f64 / 1024.0 / 1024.0);
        eprintln!(
            "  {:12} peak RSS {:.1} MiB, data dir {:.1} MiB",
            k.name(),
            peak,
            du as f64 / 1048576.0
        );
    }

    // Scenario 6: lists, after an unmeasured setup.
    for k in order(0) {
        let t = Instant::now();
        scenarios::setup_lists(&pair.get(k).url, sizes, TAG_REPO).await?;
        eprintln!(
            "  list setup   {:12} {:.1} s",
            k.name(),
            t.elapsed().as_secs_f64()
        );
    }
    si += 1;
    for k in order(si) {
        let s = pair.get(k);
        let (ms, cpu, rss) = measured(s, scenarios::tag_list(&s.url, TAG_REPO, sizes)).await?;
        eprintln!(
            "  tag list     {:12} {ms:9.2} ms  cpu {cpu:.2} s  rss {rss:.1} MiB",
            k.name(),
        );
        res.add("tags", k, ms);
        res.add("cpu.tags", k, cpu);
        res.add("rss.tags", k, rss);
    }
    si += 1;
    for k in order(si) {
        let s = pair.get(k);
        let (ms, cpu, rss) = measured(s, scenarios::catalog(&s.url, sizes)).await?;
        eprintln!(
            "  catalog      {:12} {ms:9.2} ms  cpu {cpu:.2} s  rss {rss:.1} MiB",
            k.name()
        );
        res.add("catalog", k, ms);
        res.add("cpu.catalog", k, cpu);
        res.add("rss.catalog", k, rss);
    }
    pair.d.stop()?;
    pair.b.stop()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Scenario 8: offline GC. Each registry is populated once through the API
/// and stopped; every repetition copies that data directory and times the
/// registry's own offline collector on the copy.
async fn gc_scenario(
    progs: &Programs,
    sizes: &Sizes,
    work: &Path,
    res: &mut Results,
) -> Result<()> {
    let n = sizes.gc_manifests;
    let garbage = n / 2;
    eprintln!(
        "==> offline GC: {n} manifests, {} blobs, half garbage",
        n * 5
    );
    let kinds = [Kind::Distribution, Kind::Berth];
    for k in kinds {
        let seed = work.join(format!("gc-seed-{}", k.name()));
        let _ = std::fs::remove_dir_all(&seed);
        let s = Server::start(
            k,
            progs,
            &seed,
            &work.join(format!("gc-seed-{}.log", k.name())),
        )?;
        eprintln!("  populating {}", k.name());
        scenarios::populate_gc(&s.url, n, sizes.setup_conc).await?;
        s.stop()?;
    }
    for rep in 0..sizes.reps {
        for k in order(rep) {
            let seed = work.join(format!("gc-seed-{}", k.name()));
            let copy = work.join(format!("gc-run-{}", k.name()));
            let _ = std::fs::remove_dir_all(&copy);
            let st = Command::new("cp")
                .arg("-a")
                .arg(&seed)
                .arg(&copy)
                .status()?;
            ensure!(st.success(), "cp -a {} failed", seed.display());
            servers::sync_disks();
            let log = work.join(format!("gc-run-{}.out", k.name()));
            let mut cmd = match k {
                Kind::Berth => {
                    let mut c = Command::new(&progs.berth);
                    c.arg("gc")
                        .arg("--data-dir")
                        .arg(&copy)
                        .arg("--delete-untagged")
                        .arg("--json");
                    c
                }
                Kind::Distribution => {
                    let cfg = work.join("gc-run-distribution.yml");
                    std::fs::write(&cfg, servers::distribution_config(&copy, 0))?;
                    let mut c = Command::new(&progs.registry);
                    c.arg("garbage-collect").arg("--delete-untagged").arg(&cfg);
                    c
                }
            };
            cmd.stdout(std::fs::File::create(&log)?)
                .stderr(std::process::Stdio::piped());
            let t = Instant::now();
            let out = cmd.output()?;
            let secs = t.elapsed().as_secs_f64();
            ensure!(
                out.status.success(),
                "{} gc failed: {}",
                k.name(),
                String::from_utf8_lossy(&out.stderr)
            );
            let text = std::fs::read_to_string(&log)?;
            check_gc_output(k, &text, garbage)?;
            eprintln!("  gc           {:12} {secs:9.2} s", k.name());
            res.add("gc", k, secs);
            std::fs::remove_dir_all(&copy)?;
        }
    }
    for k in kinds {
        std::fs::remove_dir_all(work.join(format!("gc-seed-{}", k.name())))?;
    }
    Ok(())
}

/// Checks that the collector removed exactly the untagged manifests and at
/// least their five blobs each.
fn check_gc_output(k: Kind, text: &str, garbage: usize) -> Result<()> {
    match k {
        Kind::Berth => {
            let v: serde_json::Value =
                serde_json::from_str(text).context("berth gc --json output")?;
            let m = v["manifests_deleted"]
                .as_array()
                .map(|a| a.len())
                .unwrap_or(0);
            let b = v["blobs_deleted"].as_u64().unwrap_or(0) as usize;
            ensure!(
                m == garbage,
                "berth gc deleted {m} manifests, expected {garbage}"
            );
            ensure!(
                b >= garbage * 5,
                "berth gc deleted {b} blobs, expected at least {}",
                garbage * 5
            );
        }
        Kind::Distribution => {
            // "N blobs marked, M blobs and K manifests eligible for deletion"
            let line = text
                .lines()
                .rev()
                .find(|l| l.contains("blobs marked,") && l.contains("eligible for deletion"))
                .context("garbage-collect printed no summary")?;
            let nums: Vec<usize> = line
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            ensure!(nums.len() == 3, "unexpected summary {line:?}");
            ensure!(
                nums[2] == garbage,
                "distribution deleted {} manifests, expected {garbage}",
                nums[2]
            );
            ensure!(
                nums[1] >= garbage * 5,
                "distribution deleted {} blobs, expected at least {}",
                nums[1],
                garbage * 5
            );
        }
    }
    Ok(())
}

/// One scenario against a running registry (no comparison), e.g. under a
/// profiler. Prepares what the scenario reads first.
async fn one(url: &str, scenario: &str, sizes: &Sizes) -> Result<()> {
    let run = Instant::now().elapsed().as_nanos() as u64 ^ std::process::id() as u64;
    let big = || BigBlobs::new(sizes.big_blob);
    match scenario {
        "push1" | "push4" | "pull" => {
            let b = big();
            let blobs: Arc<Vec<Blob>> = Arc::new(
                (0..sizes.push4_blobs as u64)
                    .map(|i| b.blob(run << 16 | i))
                    .collect(),
            );
            let conc = if scenario == "push1" { 1 } else { 4 };
            let (mibs, _) =
                scenarios::push_big(url, BIG_REPO, blobs.clone(), conc, sizes.bound).await?;
            println!("push c={conc}: {mibs:.1} MiB/s");
            if scenario == "pull" {
                let (mibs, _) = scenarios::pull(url, BIG_REPO, blobs, 4, sizes.bound).await?;
                println!("pull c=4: {mibs:.1} MiB/s");
            }
        }
        "chunked" => {
            let b = big();
            let blobs: Vec<Blob> = (0..sizes.chunked_blobs as u64)
                .map(|i| b.blob(run << 16 | i))
                .collect();
            let (mibs, _) =
                scenarios::push_chunked(url, BIG_REPO, &blobs, sizes.chunk, sizes.bound).await?;
            println!("chunked: {mibs:.1} MiB/s");
        }
        "get" => {
            let img = scenarios::image(run, 2, 2048, 2048);
            let mut c = Client::new(url)?;
            scenarios::push_image(&mut c, GET_REPO, &img, "latest", false).await?;
            let g = scenarios::manifest_get(
                url,
                GET_REPO,
                "latest",
                &img.digest,
                sizes.get_conns,
                sizes.get_time,
            )
            .await?;
            println!(
                "manifest GET: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} requests",
                g.rps, g.p50_ms, g.p99_ms, g.requests
            );
        }
        "small" => {
            let (ips, _) = scenarios::small_pushes(
                url,
                SMALL_REPO,
                run,
                sizes.small_images,
                sizes.small_conc,
                sizes.bound,
            )
            .await?;
            println!("small-image push: {ips:.1} images/s");
        }
        "lists" => {
            let repo = format!("bench/tags{}", run % 100_000);
            scenarios::setup_lists(url, sizes, &repo).await?;
            println!(
                "tag list: {:.2} ms",
                scenarios::tag_list(url, &repo, sizes).await?
            );
            println!(
                "catalog: {:.2} ms (pass a fresh registry: counts cat/ repositories)",
                scenarios::catalog(url, sizes).await?
            );
        }
        "populate-gc" => {
            scenarios::populate_gc(url, sizes.gc_manifests, sizes.setup_conc).await?;
        }
        other => bail!("unknown scenario {other}"),
    }
    Ok(())
}
