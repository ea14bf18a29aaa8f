//! The scenarios of issue 8, each bounded in time and checking every status
//! and digest. Each function drives one registry and returns its figures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::client::{Blob, Client};

const MIB: f64 = 1024.0 * 1024.0;

/// Sizes and bounds of one run: the issue's, or tiny ones for the smoke mode.
#[derive(Clone, Debug)]
pub struct Sizes {
    pub smoke: bool,
    pub reps: usize,
    pub big_blob: u64,
    pub push1_blobs: usize,
    pub push4_blobs: usize,
    pub chunked_blobs: usize,
    pub chunk: u64,
    pub get_conns: usize,
    pub get_time: Duration,
    pub small_images: usize,
    pub small_conc: usize,
    pub tags: usize,
    /// `n` for tag lists; None sends none (as skopeo and crane do).
    pub tag_page: Option<usize>,
    pub repos: usize,
    pub catalog_page: usize,
    pub list_walks: usize,
    pub gc_manifests: usize,
    pub setup_conc: usize,
    /// Upper bound on any one scenario's measured part.
    pub bound: Duration,
}

impl Sizes {
    pub fn full() -> Sizes {
        Sizes {
            smoke: false,
            reps: 3,
            big_blob: 256 << 20,
            push1_blobs: 4,
            push4_blobs: 8,
            chunked_blobs: 2,
            chunk: 8 << 20,
            get_conns: 32,
            get_time: Duration::from_secs(10),
            small_images: 500,
            small_conc: 8,
            tags: 10_000,
            tag_page: None,
            repos: 2_000,
            catalog_page: 1000,
            list_walks: 10,
            gc_manifests: 10_000,
            setup_conc: 16,
            bound: Duration::from_secs(120),
        }
    }

    pub fn smoke() -> Sizes {
        Sizes {
            smoke: true,
            reps: 1,
            big_blob: 3 << 20,
            push1_blobs: 2,
            push4_blobs: 4,
            chunked_blobs: 1,
            chunk: 1 << 20,
            get_conns: 32,
            get_time: Duration::from_millis(500),
            small_images: 16,
            small_conc: 8,
            tags: 120,
            tag_page: Some(50),
            repos: 25,
            catalog_page: 10,
            list_walks: 2,
            gc_manifests: 40,
            setup_conc: 8,
            bound: Duration::from_secs(20),
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift64*); nothing repeats or
/// compresses.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// Big blobs share one random body and differ in a 64-byte tail, so each
/// has its own digest, costs no memory of its own, and its digest is one
/// hash of 64 bytes on top of the body's precomputed state.
pub struct BigBlobs {
    frames: Vec<Bytes>,
    body_len: u64,
    state: Sha256,
}

const TAIL: usize = 64;
const FRAME: usize = 4 << 20;

impl BigBlobs {
    pub fn new(size: u64) -> BigBlobs {
        let body_len = size as usize - TAIL;
        let body = Bytes::from(Rng::new(7).bytes(body_len));
        let state = Sha256::new_with_prefix(&body);
        let frames = (0..body_len)
            .step_by(FRAME)
            .map(|s| body.slice(s..(s + FRAME).min(body_len)))
            .collect();
        BigBlobs {
            frames,
            body_len: body_len as u64,
            state,
        }
    }

    /// The blob numbered `id`.
    pub fn blob(&self, id: u64) -> Blob {
        let mut tail = Rng::new(id ^ 0x5eed).bytes(TAIL);
        tail[..8].copy_from_slice(&id.to_le_bytes());
        let digest = format!(
            "sha256:{}",
            hex::encode(self.state.clone().chain_update(&tail).finalize())
        );
        let mut parts = self.frames.clone();
        parts.push(Bytes::from(tail));
        Blob {
            parts,
            len: self.body_len + TAIL as u64,
            digest,
        }
    }
}

/// A small image: config, layers and the manifest referencing them.
pub struct Image {
    pub blobs: Vec<Blob>,
    pub manifest: Bytes,
    pub digest: String,
}

/// An OCI image whose bytes derive from `seed`: a config and `layers`
/// layers of `min..max` bytes.
pub fn image(seed: u64, layers: usize, min: usize, max: usize) -> Image {
    let mut rng = Rng::new(seed);
    let layer_blobs: Vec<Blob> = (0..layers)
        .map(|_| {
            let n = min + (rng.next() as usize) % (max - min + 1);
            Blob::small(Bytes::from(rng.bytes(n)))
        })
        .collect();
    let diff_ids: Vec<String> = layer_blobs.iter().map(|b| b.digest.clone()).collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2025-01-01T00:00:00Z",
        "config": {"Env": [format!("BENCH_SEED={seed}")]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = Blob::small(Bytes::from(config.to_string()));
    let desc = |mt: &str, b: &Blob| serde_json::json!({"mediaType": mt, "digest": b.digest, "size": b.len});
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::client::OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": layer_blobs.iter().map(|b| desc("application/vnd.oci.image.layer.v1.tar+gzip", b)).collect::<Vec<_>>(),
    });
    let manifest = Bytes::from(serde_json::to_vec(&manifest).expect("json"));
    let digest = crate::client::sha256_digest(&manifest);
    let mut blobs = vec![config];
    blobs.extend(layer_blobs);
    Image {
        blobs,
        manifest,
        digest,
    }
}

/// Pushes an image the way docker does: HEAD each blob, upload the missing
/// ones (POST + PUT), then PUT the manifest by `reference`.
pub async fn push_image(
    c: &mut Client,
    repo: &str,
    img: &Image,
    reference: &str,
    head: bool,
) -> Result<()> {
    for b in &img.blobs {
        if head && c.blob_exists(repo, &b.digest).await? {
            continue;
        }
        c.push_blob(repo, b).await?;
    }
    c.put_manifest(repo, reference, &img.manifest).await
}

/// Runs `n` jobs on `conc` workers, each with its own connection; a worker
/// takes no new job after `deadline`. Returns the jobs completed and the
/// time from start to the last completion.
async fn parallel<F, Fut>(
    url: &str,
    conc: usize,
    n: usize,
    deadline: Instant,
    job: F,
) -> Result<(usize, Duration)>
where
    F: Fn(Client, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Client>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..conc.min(n.max(1)) {
        let (next, done, job) = (next.clone(), done.clone(), job.clone());
        let mut c = Client::new(url)?;
        handles.push(tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                if Instant::now() > deadline {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                c = job(c, i).await?;
                done.fetch_add(1, Ordering::Relaxed);
                last = Instant::now();
            }
            Ok::<Instant, anyhow::Error>(last)
        }));
    }
    let mut end = start;
    for h in handles {
        end = end.max(h.await??);
    }
    Ok((done.load(Ordering::Relaxed), end - start))
}

/// Scenario 1: monolithic pushes of big blobs on `conc` connections;
/// returns MiB/s and how many were pushed.
pub async fn push_big(
    url: &str,
    repo: &str,
    blobs: Arc<Vec<Blob>>,
    conc: usize,
    bound: Duration,
) -> Result<(f64, usize)> {
    let n = blobs.len();
    let len = blobs[0].len as f64;
    let repo = repo.to_string();
    let (done, took) = parallel(url, conc, n, Instant::now() + bound, move |mut c, i| {
        let (blobs, repo) = (blobs.clone(), repo.clone());
        async move {
            c.push_blob(&repo, &blobs[i]).await?;
            Ok(c)
        }
    })
    .await?;
    ensure!(done > 0, "no blob pushed within {bound:?}");
    Ok((done as f64 * len / MIB / took.as_secs_f64(), done))
}

/// Scenario 2: chunked pushes (PATCH `chunk` bytes at a time), one
/// connection; returns MiB/s and how many were pushed.
pub async fn push_chunked(
    url: &str,
    repo: &str,
    blobs: &[Blob],
    chunk: u64,
    bound: Duration,
) -> Result<(f64, usize)> {
    let mut c = Client::new(url)?;
    let start = Instant::now();
    let mut bytes = 0u64;
    let mut done = 0;
    for b in blobs {
        if start.elapsed() > bound {
            break;
        }
        c.push_blob_chunked(repo, b, chunk).await?;
        bytes += b.len;
        done += 1;
    }
    ensure!(done > 0, "no chunked push within {bound:?}");
    Ok((bytes as f64 / MIB / start.elapsed().as_secs_f64(), done))
}

/// Scenario 3: pulls of the given blobs on `conc` connections, each body
/// hashed and compared; MiB/s and bytes pulled.
pub async fn pull(
    url: &str,
    repo: &str,
    blobs: Arc<Vec<Blob>>,
    conc: usize,
    bound: Duration,
) -> Result<(f64, u64)> {
    let n = blobs.len();
    let len = blobs[0].len;
    let repo = repo.to_string();
    let (done, took) = parallel(url, conc, n, Instant::now() + bound, move |mut c, i| {
        let (blobs, repo) = (blobs.clone(), repo.clone());
        async move {
            c.pull_blob(&repo, &blobs[i]).await?;
            Ok(c)
        }
    })
    .await?;
    ensure!(done > 0, "no blob pulled within {bound:?}");
    let bytes = done as u64 * len;
    Ok((bytes as f64 / MIB / took.as_secs_f64(), bytes))
}

/// Figures of the manifest GET scenario.
pub struct GetFigures {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Scenario 4: GET one manifest by tag on `conns` connections for `time`,
/// every body hashed against `digest`.
pub async fn manifest_get(
    url: &str,
    repo: &str,
    tag: &str,
    digest: &str,
    conns: usize,
    time: Duration,
) -> Result<GetFigures> {
    // Open every connection first so the measured window holds requests only.
    let mut clients = Vec::new();
    for _ in 0..conns {
        let mut c = Client::new(url)?;
        c.get_manifest(repo, tag, digest).await?;
        clients.push(c);
    }
    let start = Instant::now();
    let deadline = start + time;
    let mut handles = Vec::new();
    for mut c in clients {
        let (repo, tag, digest) = (repo.to_string(), tag.to_string(), digest.to_string());
        handles.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(1 << 16);
            loop {
                let t = Instant::now();
                if t >= deadline {
                    break;
                }
                c.get_manifest(&repo, &tag, &digest).await?;
                lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await??);
    }
    let took = start.elapsed().as_secs_f64();
    ensure!(!all.is_empty(), "no manifest GET completed");
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1000.0;
    Ok(GetFigures {
        requests: all.len() as u64,
        rps: all.len() as f64 / took,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

/// Scenario 5: `n` small images (config + two 1-4 KiB layers + manifest)
/// pushed docker-style on `conc` connections into one repository, each
/// tagged; images/s.
pub async fn small_pushes(
    url: &str,
    repo: &str,
    seed: u64,
    n: usize,
    conc: usize,
    bound: Duration,
) -> Result<(f64, usize)> {
    // Built before the clock starts: the client's own work stays out.
    let images: Arc<Vec<Image>> = Arc::new(
        (0..n)
            .map(|i| image(seed + i as u64, 2, 1024, 4096))
            .collect(),
    );
    let repo = repo.to_string();
    let (done, took) = parallel(url, conc, n, Instant::now() + bound, move |mut c, i| {
        let (images, repo) = (images.clone(), repo.clone());
        async move {
            push_image(&mut c, &repo, &images[i], &format!("img-{i}"), true).await?;
            Ok(c)
        }
    })
    .await?;
    ensure!(done > 0, "no image pushed within {bound:?}");
    Ok((done as f64 / took.as_secs_f64(), done))
}

/// Setup for scenario 6: `tags` tags on one manifest in `tag_repo`, and
/// `repos` repositories `cat/rNNNNN` holding that image (blobs mounted).
pub async fn setup_lists(url: &str, sizes: &Sizes, tag_repo: &str) -> Result<()> {
    let img = Arc::new(image(0x7a65, 1, 512, 512));
    let mut c = Client::new(url)?;
    push_image(&mut c, tag_repo, &img, "t00000", false).await?;
    let deadline = Instant::now() + Duration::from_secs(1800);
    let (tr, i2) = (tag_repo.to_string(), img.clone());
    let (done, _) = parallel(
        url,
        sizes.setup_conc,
        sizes.tags,
        deadline,
        move |mut c, i| {
            let (tr, img) = (tr.clone(), i2.clone());
            async move {
                c.put_manifest(&tr, &format!("t{i:05}"), &img.manifest)
                    .await?;
                Ok(c)
            }
        },
    )
    .await?;
    ensure!(done == sizes.tags, "tag setup incomplete");
    let tr = tag_repo.to_string();
    let (done, _) = parallel(
        url,
        sizes.setup_conc,
        sizes.repos,
        deadline,
        move |mut c, i| {
            let (tr, img) = (tr.clone(), img.clone());
            async move {
                let repo = format!("cat/r{i:05}");
                for b in &img.blobs {
                    if !c.mount(&repo, &b.digest, &tr).await? {
                        c.push_blob(&repo, b).await?;
                    }
                }
                c.put_manifest(&repo, "latest", &img.manifest).await?;
                Ok(c)
            }
        },
    )
    .await?;
    ensure!(done == sizes.repos, "repository setup incomplete");
    Ok(())
}

/// Scenario 6a: walks the tag list of `repo` (following `Link`) up to
/// `walks` times; median ms per walk.
pub async fn tag_list(url: &str, repo: &str, sizes: &Sizes) -> Result<f64> {
    let first = match sizes.tag_page {
        Some(n) => format!("/v2/{repo}/tags/list?n={n}"),
        None => format!("/v2/{repo}/tags/list"),
    };
    walk(url, &first, "tags", sizes, |items| {
        let want = sizes.tags;
        ensure!(
            items.len() == want,
            "tag list has {} tags, expected {want}",
            items.len()
        );
        Ok(())
    })
    .await
}

/// Scenario 6b: walks `_catalog` (following `Link`); median ms per walk.
pub async fn catalog(url: &str, sizes: &Sizes) -> Result<f64> {
    let first = format!("/v2/_catalog?n={}", sizes.catalog_page);
    walk(url, &first, "repositories", sizes, |items| {
        let n = items.iter().filter(|r| r.starts_with("cat/")).count();
        ensure!(
            n == sizes.repos,
            "catalog lists {n} cat/ repositories, expected {}",
            sizes.repos
        );
        Ok(())
    })
    .await
}

async fn walk(
    url: &str,
    first: &str,
    field: &str,
    sizes: &Sizes,
    check: impl Fn(&[String]) -> Result<()>,
) -> Result<f64> {
    let mut c = Client::new(url)?;
    // One unmeasured walk opens the connection and checks the content.
    let (items, _) = c.walk_list(first, field).await?;
    check(&items)?;
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < sizes.list_walks && start.elapsed() < sizes.bound {
        let t = Instant::now();
        let (items, _) = c.walk_list(first, field).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        check(&items).context("listing changed between walks")?;
    }
    Ok(crate::report::median(&mut times))
}

/// Scenario 8 setup: `n` images of a config and four layers (five blobs
/// each) over 50 repositories; even ones tagged, odd ones pushed by digest
/// only, so `--delete-untagged` makes half the manifests and blobs garbage.
pub async fn populate_gc(url: &str, n: usize, conc: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    let (done, took) = parallel(url, conc, n, deadline, move |mut c, i| async move {
        let img = image(0x6c00_0000 + i as u64, 4, 64, 256);
        // Each repository gets tagged and untagged images alike:
        // distribution 2.8's collector fails on a repository with no tag.
        let repo = format!("gc/r{:02}", (i / 2) % 50);
        let reference = if i % 2 == 0 {
            format!("t{i}")
        } else {
            img.digest.clone()
        };
        push_image(&mut c, &repo, &img, &reference, false).await?;
        Ok(c)
    })
    .await?;
    ensure!(done == n, "GC population incomplete");
    eprintln!("    populated {n} images in {:.1} s", took.as_secs_f64());
    Ok(())
}
