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
    anyhow::ensure!(
        store.data_dir.join("meta").exists(),
        "{} holds no Berth data (no meta/ directory); pass --data-dir",
        store.data_dir.display()
    );
    // Offline: no scheduler, nothing running in the background.
    store.gc_scheduler = false;
    let dir = store.data_dir.display().to_string();
    Registry::open(store)
        .await
        .with_context(|| format!("opening {dir}"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
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
        let report = reg.gc_offline(&opts, ttl).await?;
        reg.flush().await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            let verb = if report.dry_run { "would delete" } else { "deleted" };
            for m in &report.manifests_deleted {
                println!("untagged manifest {verb}: {m}");
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
        let report = reg.fsck(args.repair).await?;
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
