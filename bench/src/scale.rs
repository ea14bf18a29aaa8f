//! The scale scenarios: how a page's cost and the start-up time grow with
//! what the registry holds. Berth only (distribution's listings walk its
//! directory tree, which the main scenarios already measure).
//!
//! `berth-bench load` writes a registry through the store's own API (not
//! HTTP, so that 100,000 items take minutes, not hours): one repository
//! with `tags` tags, each of an image of its own (one config and layer
//! shared by all), and `repos` repositories of one tagged
//! image each, ten per namespace. `berth-bench scale` loads a small and a
//! large registry that way (each in a process of its own, which releases
//! the database when it exits), then per round starts `berth serve` on
//! each, times its first answer, and takes the median of a page of tags,
//! of `_catalog` and of `/api/v1/namespaces` from the middle of each
//! listing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use berth_oci::{Digest, Reference, RepoName};
use bytes::Bytes;
use futures::StreamExt;
use hyper::StatusCode;

use crate::client::{sha256_digest, Client};
use crate::report::median;
use crate::servers::{Kind, Programs, Server};

/// The repository holding the tags.
const TAG_REPO: &str = "scale/tags";

/// Repositories per namespace.
const REPOS_PER_NS: usize = 10;

/// Store operations in flight while loading.
const LOAD_CONCURRENCY: usize = 32;

/// Requests per page measurement (the median is kept).
const SAMPLES: usize = 50;

/// Items per page requested.
const PAGE: usize = 100;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

fn tag_name(i: usize) -> String {
    format!("t{i:07}")
}

fn repo_name(i: usize) -> String {
    format!("scale{:06}/r{i:07}", i / REPOS_PER_NS)
}

/// Writes `tags` tags and `repos` repositories into a new registry at `dir`.
pub async fn load(dir: &Path, tags: usize, repos: usize) -> Result<()> {
    let mut cfg = berth_store::StoreConfig::new(dir);
    cfg.gc_scheduler = false;
    let reg = berth_store::Registry::open(cfg)
        .await
        .context("opening the registry to load")?;
    let t = Instant::now();
    let origin: RepoName = TAG_REPO.parse()?;
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let layer = Bytes::from_static(b"the one layer of the scale scenarios");
    for b in [&config, &layer] {
        let d: Digest = sha256_digest(b).parse()?;
        let body = futures::stream::iter([Ok(b.clone())]).boxed();
        reg.blob_put(&origin, &d, body, Some(b.len() as u64))
            .await?;
    }
    let manifest = Bytes::from(
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256_digest(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha256_digest(&layer), "size": layer.len()}],
        })
        .to_string(),
    );
    let blobs: Vec<Digest> = [&config, &layer]
        .iter()
        .map(|b| sha256_digest(b).parse())
        .collect::<std::result::Result<_, _>>()?;
    let put = |repo: RepoName, tag: String, manifest: Bytes| {
        let reg = reg.clone();
        async move {
            let reference = Reference::Tag(tag.parse()?);
            reg.manifest_put(&repo, &reference, Some(MANIFEST_TYPE), manifest)
                .await?;
            anyhow::Ok(())
        }
    };
    // Each tag names a manifest of its own (an annotation tells them
    // apart), as in a repository of many releases.
    let mut done = futures::stream::iter(0..tags)
        .map(|i| {
            let mut m: serde_json::Value = serde_json::from_slice(&manifest).expect("built above");
            m["annotations"] = serde_json::json!({ "scale.tag": tag_name(i) });
            put(origin.clone(), tag_name(i), Bytes::from(m.to_string()))
        })
        .buffer_unordered(LOAD_CONCURRENCY);
    while let Some(r) = done.next().await {
        r?;
    }
    eprintln!("    {tags} tags in {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut done = futures::stream::iter(0..repos)
        .map(|i| {
            let (reg, origin, blobs) = (reg.clone(), origin.clone(), blobs.clone());
            let manifest = manifest.clone();
            async move {
                let repo: RepoName = repo_name(i).parse()?;
                for d in &blobs {
                    ensure!(
                        reg.blob_mount(&repo, d, Some(&origin)).await?,
                        "mount of {d} into {repo} refused"
                    );
                }
                put(repo, "v1".to_string(), manifest).await
            }
        })
        .buffer_unordered(LOAD_CONCURRENCY);
    while let Some(r) = done.next().await {
        r?;
    }
    eprintln!(
        "    {repos} repositories in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Median milliseconds of `SAMPLES` GETs of `target`, each answered 200
/// with a body `check` accepts.
async fn page_ms(c: &mut Client, target: &str, check: impl Fn(&[u8]) -> bool) -> Result<f64> {
    let mut times = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        let r = c.get(target).await?.expect(StatusCode::OK, target)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        ensure!(check(&r.body), "unexpected page from {target}");
    }
    Ok(median(&mut times))
}

/// One registry's figures in one round.
struct Figures {
    start_ms: f64,
    tags_ms: f64,
    catalog_ms: f64,
    namespaces_ms: f64,
}

async fn measure(progs: &Programs, dir: &Path, log: &Path, n: usize) -> Result<Figures> {
    let t = Instant::now();
    let server = Server::start(Kind::Berth, progs, dir, log)?;
    let mut c = Client::new(&server.url)?;
    c.get("/v2/").await?.expect(StatusCode::OK, "/v2/")?;
    let start_ms = t.elapsed().as_secs_f64() * 1000.0;
    let middle = n / 2;
    let tags = format!(
        "/v2/{TAG_REPO}/tags/list?n={PAGE}&last={}",
        tag_name(middle)
    );
    let want_tag = tag_name(middle + 1);
    let tags_ms = page_ms(&mut c, &tags, |b| contains(b, &want_tag)).await?;
    let catalog = format!("/v2/_catalog?n={PAGE}&last={}", repo_name(middle));
    let want_repo = repo_name(middle + 1);
    let catalog_ms = page_ms(&mut c, &catalog, |b| contains(b, &want_repo)).await?;
    // Namespaces are paged by number, 100 per page: the middle page.
    let ns_page = (n / REPOS_PER_NS / PAGE / 2).max(1);
    let namespaces =
        format!("/api/v1/namespaces?page={ns_page}&page_size={PAGE}&order_by=name_asc");
    let want_ns = format!("scale{:06}", (ns_page - 1) * PAGE);
    let namespaces_ms = page_ms(&mut c, &namespaces, |b| contains(b, &want_ns)).await?;
    server.stop()?;
    Ok(Figures {
        start_ms,
        tags_ms,
        catalog_ms,
        namespaces_ms,
    })
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Loads a registry of `small` and one of `large` items (tags and
/// repositories each), then compares their figures over `reps` rounds.
pub async fn run(
    progs: &Programs,
    work: &Path,
    small: usize,
    large: usize,
    reps: usize,
) -> Result<String> {
    let dirs: Vec<(usize, PathBuf)> = [small, large]
        .iter()
        .map(|&n| (n, work.join(format!("scale-{n}"))))
        .collect();
    for (n, dir) in &dirs {
        let _ = std::fs::remove_dir_all(dir);
        eprintln!("==> loading {n} tags and {n} repositories");
        let st = Command::new(std::env::current_exe()?)
            .arg("load")
            .arg("--data-dir")
            .arg(dir)
            .arg("--tags")
            .arg(n.to_string())
            .arg("--repos")
            .arg(n.to_string())
            .status()?;
        ensure!(st.success(), "loading {} failed", dir.display());
    }
    let mut rows: Vec<[Vec<f64>; 4]> = vec![Default::default(), Default::default()];
    for rep in 0..reps {
        for (i, (n, dir)) in dirs.iter().enumerate() {
            let log = work.join(format!("scale-{n}.log"));
            let f = measure(progs, dir, &log, *n).await?;
            eprintln!(
                "  round {} {n:>7}: start {:.0} ms, tags {:.2} ms, catalog {:.2} ms, namespaces {:.2} ms",
                rep + 1,
                f.start_ms,
                f.tags_ms,
                f.catalog_ms,
                f.namespaces_ms
            );
            for (v, x) in
                rows[i]
                    .iter_mut()
                    .zip([f.start_ms, f.tags_ms, f.catalog_ms, f.namespaces_ms])
            {
                v.push(x);
            }
        }
    }
    let names = [
        "time to first answer after start (ms)",
        "tag list page, n=100 from the middle (ms)",
        "_catalog page, n=100 from the middle (ms)",
        "/api/v1/namespaces page of 100, middle (ms)",
    ];
    let mut out = format!(
        "| scenario | {small} items | {large} items | large / small |\n|---|---:|---:|---:|\n"
    );
    for (k, name) in names.iter().enumerate() {
        let a = median(&mut rows[0][k].clone());
        let b = median(&mut rows[1][k].clone());
        out.push_str(&format!("| {name} | {a:.2} | {b:.2} | {:.2}× |\n", b / a));
    }
    for (_, dir) in &dirs {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(out)
}
