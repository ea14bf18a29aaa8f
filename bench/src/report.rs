//! Medians and the Markdown table.

use std::collections::HashMap;

use crate::servers::Kind;

/// Median (upper middle for an even count; NaN when empty).
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Which direction is better for a row.
#[derive(Clone, Copy)]
pub enum Better {
    Higher,
    Lower,
}

/// One row of the table.
pub struct Row {
    pub key: &'static str,
    pub label: String,
    pub better: Better,
}

/// Every figure of the run, all repetitions.
#[derive(Default)]
pub struct Results {
    vals: HashMap<(&'static str, &'static str), Vec<f64>>,
}

impl Results {
    pub fn add(&mut self, key: &'static str, kind: Kind, v: f64) {
        self.vals.entry((key, kind.name())).or_default().push(v);
    }

    pub fn median(&self, key: &'static str, kind: Kind) -> f64 {
        let mut v = self
            .vals
            .get(&(key, kind.name()))
            .cloned()
            .unwrap_or_default();
        median(&mut v)
    }

    pub fn all(&self, key: &'static str, kind: Kind) -> Vec<f64> {
        self.vals
            .get(&(key, kind.name()))
            .cloned()
            .unwrap_or_default()
    }
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// scenario | distribution | Berth | ratio, ratio > 1 meaning Berth is
/// better; medians of the repetitions.
pub fn table(res: &Results, rows: &[Row]) -> String {
    let mut s = String::from(
        "| scenario | distribution | Berth | ratio (>1: Berth better) |\n|---|---:|---:|---:|\n",
    );
    for r in rows {
        let d = res.median(r.key, Kind::Distribution);
        let b = res.median(r.key, Kind::Berth);
        let ratio = match r.better {
            Better::Higher => b / d,
            Better::Lower => d / b,
        };
        let ratio = if ratio.is_finite() {
            format!("{ratio:.2}×")
        } else {
            "–".into()
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.label,
            fmt(d),
            fmt(b),
            ratio
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn ratios_point_to_berth() {
        let mut r = Results::default();
        r.add("x", Kind::Distribution, 10.0);
        r.add("x", Kind::Berth, 20.0);
        let rows = [
            Row {
                key: "x",
                label: "hi".into(),
                better: Better::Higher,
            },
            Row {
                key: "x",
                label: "lo".into(),
                better: Better::Lower,
            },
        ];
        let t = table(&r, &rows);
        assert!(t.contains("| hi | 10.0 | 20.0 | 2.00× |"), "{t}");
        assert!(t.contains("| lo | 10.0 | 20.0 | 0.50× |"), "{t}");
    }
}
