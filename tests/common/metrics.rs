//! Helpers of the observability suite: `/metrics` fetched and parsed by an
//! independent Prometheus text-format parser, and values looked up by name
//! and labels.

use prometheus_parse::{Scrape, Value};

/// A parsed scrape.
pub struct Metrics(pub Scrape);

/// Fetches `url` (a `/metrics` URL) with `req` and parses it; the answer
/// must be 200 in the OpenMetrics text format.
#[track_caller]
pub fn scrape(req: reqwest::blocking::RequestBuilder) -> Metrics {
    let r = req.send().expect("scrape");
    assert_eq!(r.status().as_u16(), 200, "scrape status");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        ct.starts_with("application/openmetrics-text"),
        "content type {ct:?}"
    );
    let text = r.text().unwrap();
    assert!(
        text.ends_with("# EOF\n"),
        "an OpenMetrics exposition ends with # EOF"
    );
    let lines = text.lines().map(|l| Ok(l.to_string()));
    Metrics(Scrape::parse(lines).unwrap_or_else(|e| panic!("unparsable metrics: {e}\n{text}")))
}

impl Metrics {
    /// The value of the one sample `name` whose labels include `labels`
    /// (counters, gauges and untyped samples); 0 when there is none, which
    /// is what a counter not yet incremented means.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self
            .0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .filter_map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                _ => None,
            })
            .collect();
        assert!(
            found.len() <= 1,
            "{name} {labels:?} names {} samples",
            found.len()
        );
        found.first().copied().unwrap_or(0.0)
    }

    /// The sum of every sample `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .filter_map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                _ => None,
            })
            .sum()
    }

    /// Whether a sample `name` exists at all.
    pub fn has(&self, name: &str) -> bool {
        self.0.samples.iter().any(|s| s.metric == name)
    }

    /// The observation count of histogram `name` for `labels`: its `+Inf`
    /// bucket, which must equal its `_count` sample when both are there.
    pub fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut inf = None;
        for s in self.0.samples.iter().filter(|s| s.metric == name) {
            if !labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)) {
                continue;
            }
            if let Value::Histogram(buckets) = &s.value {
                let top = buckets
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .expect("a +Inf bucket");
                assert!(inf.is_none(), "{name} {labels:?} names several histograms");
                inf = Some(top.count);
            }
        }
        let count = self.get(&format!("{name}_count"), labels);
        let inf = inf.unwrap_or(0.0);
        assert_eq!(
            inf, count,
            "{name} {labels:?}: +Inf bucket and _count differ"
        );
        inf
    }
}
