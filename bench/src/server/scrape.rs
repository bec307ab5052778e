//! Reading the server's `GET /metrics`: counters, gauges and histograms from the Prometheus
//! text format, and quantiles from the difference of two scrapes.
//!
//! Quantiles come from bucket counts, so they are only as fine as the buckets (tickcast's tick
//! histogram doubles from 50 µs): the rank is found in its bucket and placed linearly between
//! the bucket's bounds, as Prometheus's `histogram_quantile` does. A rank in the `+Inf` bucket
//! reports the highest finite bound, a lower bound on the true value.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::clients::http1::Conn;

/// How long a scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// One scrape: each sample line as `name{labels}` -> value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    samples: BTreeMap<String, f64>,
}

/// A histogram's cumulative bucket counts, by upper bound (`f64::INFINITY` last).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// `(upper bound, observations at or below it)`, in increasing bound.
    pub cumulative: Vec<(f64, f64)>,
}

/// GETs `/metrics` from the server at `addr` and parses it.
pub async fn fetch(addr: SocketAddr) -> io::Result<Scrape> {
    let response = tokio::time::timeout(SCRAPE_TIMEOUT, async {
        let mut conn = Conn::connect(addr).await?;
        conn.get("/metrics", &[("connection", "close")]).await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no /metrics answer within 5 s"))??;
    if response.head.status != 200 {
        return Err(io::Error::other(format!("/metrics answered {}", response.head.status)));
    }
    Ok(Scrape::parse(&String::from_utf8_lossy(&response.body)))
}

impl Scrape {
    /// Parses the Prometheus (or OpenMetrics) text format; comment and malformed lines are
    /// skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|line| {
                // The value follows the last space outside the labels' quotes; label values in
                // tickcast never hold spaces, and an optional timestamp is not used.
                let (key, value) = line.rsplit_once(' ')?;
                Some((key.trim().to_owned(), parse_value(value)?))
            })
            .collect();
        Self { samples }
    }

    /// The sample `key` exactly as exported, e.g. `tickcast_ticks_total` or
    /// `tickcast_closes_total{reason="Full"}`; 0 when absent (a labelled counter appears only
    /// once it has been counted).
    pub fn value(&self, key: &str) -> f64 {
        self.samples.get(key).copied().unwrap_or(0.0)
    }

    /// Every sample of metric `name` with labels, as `labels` -> value.
    pub fn labelled(&self, name: &str) -> BTreeMap<String, f64> {
        let prefix = format!("{name}{{");
        self.samples
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.trim_end_matches('}').to_owned(), *v)))
            .collect()
    }

    /// The buckets of histogram `name` (without the `_bucket` suffix).
    pub fn buckets(&self, name: &str) -> Buckets {
        let mut cumulative: Vec<(f64, f64)> = self
            .labelled(&format!("{name}_bucket"))
            .into_iter()
            .filter_map(|(labels, count)| {
                let le = labels.strip_prefix("le=\"")?.strip_suffix('"')?;
                Some((parse_value(le)?, count))
            })
            .collect();
        cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
        Buckets { cumulative }
    }
}

impl Buckets {
    /// The observations made between `earlier` and this scrape of the same histogram.
    pub fn since(&self, earlier: &Buckets) -> Buckets {
        let before = |bound: f64| {
            earlier
                .cumulative
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |(_, c)| *c)
        };
        Buckets {
            cumulative: self
                .cumulative
                .iter()
                .map(|&(bound, count)| (bound, (count - before(bound)).max(0.0)))
                .collect(),
        }
    }

    /// Observations counted.
    pub fn count(&self) -> f64 {
        self.cumulative.last().map_or(0.0, |(_, c)| *c)
    }

    /// The `q` quantile (0..=1), interpolated within its bucket; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for &(bound, cumulative) in &self.cumulative {
            if cumulative >= rank && cumulative > below {
                if bound.is_infinite() {
                    return Some(lower);
                }
                return Some(lower + (bound - lower) * (rank - below) / (cumulative - below));
            }
            (lower, below) = (bound, cumulative);
        }
        Some(lower)
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text.trim() {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        v => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP tickcast_ticks Ticks run.\n# TYPE tickcast_ticks counter\ntickcast_ticks_total 90\n\
        tickcast_closes_total{reason=\"Full\"} 2\ntickcast_closes_total{reason=\"TooBig\"} 1\n\
        tickcast_tick_work_seconds_bucket{le=\"0.00005\"} 10\ntickcast_tick_work_seconds_bucket{le=\"0.0001\"} 60\n\
        tickcast_tick_work_seconds_bucket{le=\"0.0002\"} 90\ntickcast_tick_work_seconds_bucket{le=\"+Inf\"} 90\n# EOF\n";

    #[test]
    fn counters_labels_and_buckets_are_read() {
        let scrape = Scrape::parse(TEXT);
        assert_eq!(scrape.value("tickcast_ticks_total"), 90.0);
        assert_eq!(scrape.value("tickcast_absent_total"), 0.0);
        let closes = scrape.labelled("tickcast_closes_total");
        assert_eq!(closes["reason=\"Full\""], 2.0);
        assert_eq!(closes.len(), 2);
        let buckets = scrape.buckets("tickcast_tick_work_seconds");
        assert_eq!(buckets.cumulative.len(), 4);
        assert_eq!(buckets.count(), 90.0);
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_of_their_rank() {
        let buckets = Scrape::parse(TEXT).buckets("tickcast_tick_work_seconds");
        // Rank 45 of 90 lies 35/50 of the way through (50 µs, 100 µs].
        let p50 = buckets.quantile(0.5).unwrap();
        assert!((p50 - 85e-6).abs() < 1e-9, "{p50}");
        // Rank 9 lies in the first bucket, (0, 50 µs].
        assert!((buckets.quantile(0.1).unwrap() - 45e-6).abs() < 1e-9);
        assert_eq!(buckets.quantile(1.0), Some(200e-6));
        assert_eq!(Buckets::default().quantile(0.5), None);
    }

    #[test]
    fn the_difference_of_two_scrapes_holds_only_the_new_observations() {
        let before = Scrape::parse(TEXT).buckets("tickcast_tick_work_seconds");
        let later = TEXT.replace("{le=\"+Inf\"} 90", "{le=\"+Inf\"} 100");
        let after = Scrape::parse(&later).buckets("tickcast_tick_work_seconds");
        let window = after.since(&before);
        assert_eq!(window.count(), 10.0);
        // All ten new observations are above the highest finite bound.
        assert_eq!(window.quantile(0.5), Some(200e-6));
    }
}
