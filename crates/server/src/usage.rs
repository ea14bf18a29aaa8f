//! Storage use over time, for the console's storage chart: once a day (UTC)
//! the server records each namespace's size, and
//! `GET /api/v1/usage/history` returns the samples, restricted to the
//! namespaces the caller may see.
//!
//! Samples are JSON lines appended to `<data_dir>/usage-daily.jsonl`, one
//! per day: `{"date":"2026-12-01","namespaces":{"team":1234}}`. A line is
//! written whole with one `write` call; a torn last line after a crash is
//! skipped when reading, and that day is sampled again. The file is
//! history, not registry state: losing it loses the chart, nothing else.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::auth::{self, Caller};
use crate::{full, AppState, Body};

/// The endpoint's path.
pub const PATH: &str = crate::endpoint::api::USAGE_PATH;
const FILE: &str = "usage-daily.jsonl";
/// Most days returned (and read): a bit over a year.
const MAX_DAYS: usize = 400;

/// One day's sizes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sample {
    /// UTC date, `YYYY-MM-DD`.
    pub date: String,
    /// Namespace name -> bytes stored.
    pub namespaces: BTreeMap<String, u64>,
}

fn file(state: &AppState) -> PathBuf {
    state.registry.config().data_dir.join(FILE)
}

fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

/// Parses the file's text: the last [`MAX_DAYS`] well-formed samples, one
/// per date (the later line wins), oldest first.
pub fn parse_samples(text: &str) -> Vec<Sample> {
    let mut by_date: BTreeMap<String, Sample> = BTreeMap::new();
    for line in text.lines() {
        if let Ok(s) = serde_json::from_str::<Sample>(line) {
            by_date.insert(s.date.clone(), s);
        }
    }
    let all: Vec<Sample> = by_date.into_values().collect();
    let skip = all.len().saturating_sub(MAX_DAYS);
    all.into_iter().skip(skip).collect()
}

fn read_samples(path: &PathBuf) -> Vec<Sample> {
    match std::fs::read_to_string(path) {
        Ok(t) => parse_samples(&t),
        Err(_) => Vec::new(),
    }
}

/// Whether the file has a sample of `date` already.
fn has_sample(state: &AppState, date: &str) -> bool {
    read_samples(&file(state)).iter().any(|s| s.date == date)
}

/// Appends a sample to the file.
fn append_sample(state: &AppState, sample: &Sample) -> Result<(), String> {
    let path = file(state);
    let mut line = serde_json::to_string(sample).map_err(|e| e.to_string())?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(line.as_bytes())
        .and_then(|_| f.sync_data())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Records today's sample unless the file has one already. The file is
/// read and written on the blocking pool; the figures come through the
/// store's metadata gate.
async fn sample_now(state: &AppState) -> Result<bool, String> {
    let date = today();
    let (s, d) = (state.clone(), date.clone());
    if tokio::task::spawn_blocking(move || has_sample(&s, &d))
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(false);
    }
    let namespaces = state
        .registry
        .namespaces()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|n| (n.name, n.size))
        .collect();
    let sample = Sample { date, namespaces };
    let s = state.clone();
    tokio::task::spawn_blocking(move || append_sample(&s, &sample))
        .await
        .map_err(|e| e.to_string())??;
    Ok(true)
}

/// Samples at start and then every hour (a new day is noticed within an
/// hour).
pub fn spawn_sampler(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match sample_now(&state).await {
                Ok(true) => tracing::debug!("recorded today's storage-use sample"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "recording the storage-use sample failed"),
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    })
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let body = v.to_string();
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len())
        .body(full(body))
        .expect("valid response")
}

/// `GET /api/v1/usage/history`: `{"samples":[{"date", "namespaces"}]}`,
/// for a caller who is signed in.
pub(crate) async fn handle(state: &AppState, caller: &Caller) -> Response<Body> {
    let s = state.clone();
    let samples = match tokio::task::spawn_blocking(move || read_samples(&file(&s))).await {
        Ok(all) => {
            // One cache for the listing: each namespace costs one metadata
            // hop, however many samples name it.
            let mut cache = auth::AccessCache::new();
            let mut out = Vec::with_capacity(all.len());
            for mut sample in all {
                let mut kept = std::mem::take(&mut sample.namespaces);
                let names: Vec<String> = kept.keys().cloned().collect();
                for ns in names {
                    let seen = auth::may_namespace_cached(
                        &state.registry,
                        &caller.principal,
                        &ns,
                        berth_store::Action::Pull,
                        &mut cache,
                    )
                    .await
                    .unwrap_or(false);
                    if !seen {
                        kept.remove(&ns);
                    }
                }
                sample.namespaces = kept;
                out.push(sample);
            }
            Ok(out)
        }
        Err(e) => Err(e),
    };
    match samples {
        Ok(samples) => json(StatusCode::OK, &serde_json::json!({ "samples": samples })),
        Err(e) => {
            tracing::error!(error = %e, "reading storage-use samples failed");
            crate::error::MgmtError::internal("reading storage-use samples failed").response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_and_duplicate_lines_are_handled() {
        let text = concat!(
            "{\"date\":\"2026-11-30\",\"namespaces\":{\"a\":1}}\n",
            "{\"date\":\"2026-12-01\",\"namespaces\":{\"a\":2}}\n",
            "{\"date\":\"2026-12-01\",\"namespaces\":{\"a\":3}}\n",
            "{\"date\":\"2026-12-02\",\"names"
        );
        let s = parse_samples(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].date, "2026-11-30");
        assert_eq!(s[1].namespaces["a"], 3);
    }

    #[test]
    fn keeps_the_last_days_only() {
        let text: String = (0..MAX_DAYS + 10)
            .map(|i| format!("{{\"date\":\"d{i:05}\",\"namespaces\":{{}}}}\n"))
            .collect();
        let s = parse_samples(&text);
        assert_eq!(s.len(), MAX_DAYS);
        assert_eq!(s[0].date, "d00010");
    }

    #[test]
    fn today_is_a_date() {
        let t = today();
        assert_eq!(t.len(), 10);
        assert_eq!(&t[4..5], "-");
    }
}
