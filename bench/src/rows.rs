//! The rows of the result table: what each figure is and which way is
//! better.

use crate::report::{Better, Row};
use crate::scenarios::Sizes;

/// The table's rows, in order.
pub fn rows(s: &Sizes) -> Vec<Row> {
    let mib = s.big_blob >> 20;
    let big = if mib > 0 {
        format!("{mib} MiB")
    } else {
        format!("{} KiB", s.big_blob >> 10)
    };
    let chunk = format!("{} MiB", s.chunk >> 20);
    let hi = Better::Higher;
    let lo = Better::Lower;
    let r = |key, label: String, better| Row { key, label, better };
    vec![
        r(
            "push1",
            format!("blob push, monolithic {big}, c=1 (MiB/s)"),
            hi,
        ),
        r(
            "push4",
            format!("blob push, monolithic {big}, c=4 (MiB/s)"),
            hi,
        ),
        r(
            "chunked",
            format!("blob push, chunked {chunk} PATCHes (MiB/s)"),
            hi,
        ),
        r(
            "pull1",
            format!("blob pull {big}, c=1, digest checked (MiB/s)"),
            hi,
        ),
        r(
            "pull4",
            format!("blob pull {big}, c=4, digest checked (MiB/s)"),
            hi,
        ),
        r("pull.cpu_gib", "server CPU per GiB pulled (s)".into(), lo),
        r(
            "push.cpu_gib",
            "server CPU per GiB pushed, monolithic (s)".into(),
            lo,
        ),
        r(
            "get.rps",
            format!("manifest GET by tag, {} conns (req/s)", s.get_conns),
            hi,
        ),
        r("get.p50", "manifest GET p50 latency (ms)".into(), lo),
        r("get.p99", "manifest GET p99 latency (ms)".into(), lo),
        r(
            "get.cpu_k",
            "server CPU per 1,000 manifest GETs (s)".into(),
            lo,
        ),
        r(
            "small",
            format!(
                "small-image push, {} images, c={} (images/s)",
                s.small_images, s.small_conc
            ),
            hi,
        ),
        r(
            "tags",
            format!("tag list, {} tags, following Link (ms)", s.tags),
            lo,
        ),
        r(
            "catalog",
            format!("_catalog, {} repositories, following Link (ms)", s.repos),
            lo,
        ),
        r("rss.idle", "idle RSS after start (MiB)".into(), lo),
        r(
            "rss.peak",
            "peak RSS, scenarios 1–5 (VmHWM, MiB)".into(),
            lo,
        ),
        r(
            "disk",
            "data directory after scenarios 1–5 (MiB)".into(),
            lo,
        ),
        r(
            "gc",
            format!(
                "offline GC, {} manifests / {} blobs, half garbage (s)",
                s.gc_manifests,
                s.gc_manifests * 5
            ),
            lo,
        ),
        r("cpu.push1", "server CPU: push c=1 (s)".into(), lo),
        r("cpu.push4", "server CPU: push c=4 (s)".into(), lo),
        r("cpu.chunked", "server CPU: chunked push (s)".into(), lo),
        r("cpu.pull1", "server CPU: pull c=1 (s)".into(), lo),
        r("cpu.pull4", "server CPU: pull c=4 (s)".into(), lo),
        r("cpu.get", "server CPU: manifest GET (s)".into(), lo),
        r("cpu.small", "server CPU: small-image push (s)".into(), lo),
        r("cpu.tags", "server CPU: tag list walks (s)".into(), lo),
        r("cpu.catalog", "server CPU: catalog walks (s)".into(), lo),
        r("rss.push1", "peak RSS: push c=1 (MiB)".into(), lo),
        r("rss.push4", "peak RSS: push c=4 (MiB)".into(), lo),
        r("rss.chunked", "peak RSS: chunked push (MiB)".into(), lo),
        r("rss.pull1", "peak RSS: pull c=1 (MiB)".into(), lo),
        r("rss.pull4", "peak RSS: pull c=4 (MiB)".into(), lo),
        r("rss.get", "peak RSS: manifest GET (MiB)".into(), lo),
        r("rss.small", "peak RSS: small-image push (MiB)".into(), lo),
        r("rss.tags", "peak RSS: tag list walks (MiB)".into(), lo),
        r("rss.catalog", "peak RSS: catalog walks (MiB)".into(), lo),
    ]
}
