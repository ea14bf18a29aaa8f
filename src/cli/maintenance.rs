//! `berth gc` and `berth fsck`: offline maintenance on a data directory.

use std::path::PathBuf;

use anyhow::Context;
use berth_store::{GcOptions, Registry};

use crate::config::Config;

/// Options of `berth gc`.
#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// Data directory (overrides [storage] data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also delete manifests that no tag reaches (through index children
    /// and referrer subjects).
    #[arg(long)]
    delete_untagged: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Options of `berth fsck`.
#[derive(clap::Args, Debug)]
pub struct FsckArgs {
    /// Data directory (overrides [storage] data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Remove dangling metadata and recompute counters (never removes blob
    /// data that something references).
    #[arg(long)]
    repair: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

async fn open(cfg: &Config, data_dir: Option<PathBuf>) -> anyhow::Result<Registry> {
    let mut store = cfg.store();
    if let Some(d) = data_dir {
        store.data_dir = d;
    }
    if matches!(store.metadata, berth_store::MetadataBackend::Sled) {
        anyhow::ensure!(
            store.data_dir.join("meta").exists(),
            "{} holds no Berth data (no meta/ directory); pass --data-dir",
            store.data_dir.display()
        );
    }
    // Offline: no scheduler, nothing running in the background, and no
    // server beside it on a shared database.
    store.gc_scheduler = false;
    store.offline = true;
    let dir = store.data_dir.display().to_string();
    Registry::open(store)
        .await
        .with_context(|| format!("opening {dir}"))
}

/// Shows how far a long run is: a bar with counts and bytes on a terminal,
/// a plain line every few seconds otherwise (logs, CI). Stops when dropped.
struct ProgressDisplay {
    task: tokio::task::JoinHandle<()>,
}

impl ProgressDisplay {
    fn start(reg: &Registry, what: &'static str, unit: &'static str) -> ProgressDisplay {
        use std::sync::atomic::Ordering::Relaxed;
        let p = reg.progress();
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let task = tokio::spawn(async move {
            let bar = tty.then(|| {
                let b = indicatif::ProgressBar::new(0);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b.set_prefix(what);
                b
            });
            let mut tick = tokio::time::interval(if tty {
                std::time::Duration::from_millis(200)
            } else {
                std::time::Duration::from_secs(5)
            });
            tick.tick().await;
            loop {
                tick.tick().await;
                let (done, total, bytes) = (
                    p.done.load(Relaxed),
                    p.total.load(Relaxed),
                    p.bytes.load(Relaxed),
                );
                match &bar {
                    Some(b) => {
                        b.set_length(total);
                        b.set_position(done);
                        b.set_message(format!("{unit}, {}", indicatif::HumanBytes(bytes)));
                    }
                    None => eprintln!(
                        "{what}: {done}/{total} {unit}, {}",
                        indicatif::HumanBytes(bytes)
                    ),
                }
            }
        });
        ProgressDisplay { task }
    }
}

impl Drop for ProgressDisplay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// `berth migrate-schema`.
pub fn migrate_schema(cfg: &Config) -> anyhow::Result<()> {
    super::init_logging(cfg.log.format, "warn");
    let store = cfg.store();
    runtime()?.block_on(berth_store::migrate_schema(&store.metadata))?;
    println!(
        "the {} metadata schema is up to date",
        store.metadata.name()
    );
    Ok(())
}

pub fn gc(cfg: Config, args: GcArgs) -> anyhow::Result<()> {
    super::init_logging(cfg.log.format, "warn");
    runtime()?.block_on(async {
        let reg = open(&cfg, args.data_dir).await?;
        let opts = GcOptions {
            dry_run: args.dry_run,
            delete_untagged: args.delete_untagged,
            apply_retention: false,
        };
        let ttl = std::time::Duration::from_secs(cfg.gc.upload_ttl_secs);
        let display = ProgressDisplay::start(&reg, "gc", "blobs");
        let report = reg.gc_offline(&opts, ttl).await;
        drop(display);
        let report = report?;
        reg.flush().await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            let verb = if report.dry_run { "would delete" } else { "deleted" };
            for m in &report.manifests {
                let tags = if m.tags.is_empty() {
                    "no tags".to_string()
                } else {
                    format!("tags {}", m.tags.join(","))
                };
                println!(
                    "manifest {verb}: {}@{} ({tags}): {}",
                    m.repository, m.digest, m.reason
                );
            }
            for b in &report.blobs {
                println!("blob {verb}: {} ({} bytes)", b.digest, b.size);
            }
            println!(
                "{verb}: {} manifests, {} blobs ({} bytes), {} expired uploads, {} orphan objects; {} ms",
                report.manifests_deleted.len(),
                report.blobs_deleted,
                report.bytes_freed,
                report.uploads_expired,
                report.orphans_removed,
                report.duration_ms
            );
        }
        Ok(())
    })
}

pub fn fsck(cfg: Config, args: FsckArgs) -> anyhow::Result<()> {
    super::init_logging(cfg.log.format, "warn");
    let clean = runtime()?.block_on(async {
        let reg = open(&cfg, args.data_dir).await?;
        let display = ProgressDisplay::start(&reg, "fsck", "blobs checked");
        let report = reg.fsck(args.repair).await;
        drop(display);
        let report = report?;
        reg.flush().await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            for p in &report.problems {
                println!("problem: {p}");
            }
            for r in &report.repairs {
                println!("repaired: {r}");
            }
            println!(
                "checked {} blobs and {} manifests in {} ms: {}",
                report.blobs_checked,
                report.manifests_checked,
                report.duration_ms,
                if report.is_clean() {
                    "clean"
                } else {
                    "PROBLEMS FOUND"
                }
            );
        }
        anyhow::Ok(report.is_clean())
    })?;
    if !clean {
        // Exit 2 (not 1, which means fsck itself failed), so scripts can
        // tell damage found from a failure to check.
        std::process::exit(2);
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// Configuration of the registry to copy (its [storage] and
    /// [metadata]); environment variables do not apply to it.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// Configuration of the backends to copy it to, empty or holding an
    /// earlier copy; environment variables do not apply to it.
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Opens the registry of `file` for an offline pass.
async fn open_file(file: &std::path::Path) -> anyhow::Result<Registry> {
    let cfg = Config::load_file(file)?;
    let mut store = cfg.store();
    store.gc_scheduler = false;
    store.offline = true;
    let opening = super::opening(&store);
    Registry::open(store)
        .await
        .with_context(|| format!("{opening} (from {})", file.display()))
}

/// `berth migrate`: both registries opened offline (no server may run on
/// either), blobs copied and verified, then every row.
pub fn migrate(log: crate::config::LogFormat, args: MigrateArgs) -> anyhow::Result<()> {
    super::init_logging(log, "warn");
    runtime()?.block_on(async {
        let from = open_file(&args.from).await?;
        let to = open_file(&args.to).await?;
        let display = ProgressDisplay::start(&from, "migrate", "items");
        let report = from.copy_to(&to).await;
        drop(display);
        let report = report?;
        to.flush().await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "copied {} blobs ({} bytes; {} already there) and {} metadata rows from {} to {}",
                report.blobs_copied,
                report.bytes_copied,
                report.blobs_present,
                report.rows,
                args.from.display(),
                args.to.display()
            );
        }
        Ok(())
    })
}
