//! Summary statistics of the samples and runs.

use crate::recovery::Timed;

/// p50/p95/p99/max (nearest rank) of `values`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Dist {
    pub n: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Dist {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Dist> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let idx = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            v[idx]
        };
        Some(Dist {
            n: v.len(),
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: v[v.len() - 1],
        })
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median of each named part across runs, in the order of the first run.
pub fn median_parts(runs: &[Timed], detail: bool) -> Vec<(String, f64)> {
    let pick = |r: &Timed| {
        if detail {
            r.detail.clone()
        } else {
            r.parts.clone()
        }
    };
    let Some(first) = runs.iter().map(pick).find(|p| !p.is_empty()) else {
        return Vec::new();
    };
    first
        .iter()
        .map(|(name, _)| {
            let values = runs
                .iter()
                .filter_map(|r| pick(r).iter().find(|(n, _)| n == name).map(|(_, d)| *d))
                .collect();
            (name.clone(), median(values))
        })
        .collect()
}
