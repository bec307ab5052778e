//! Round-trip-time statistics: an HDR histogram of ping RTTs and the summary we report.
//!
//! Each bot (and the player) owns its own [`RttStats`], so recording never contends with
//! anyone; the bot swarm merges them once, at the end.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest RTT tracked exactly; anything slower is recorded as this (a minute is a dead server,
/// not a latency).
const MAX_TRACKED_US: u64 = 60_000_000;

/// Three significant figures: 0.1% resolution at every magnitude, about 100 KiB per histogram.
const SIGNIFICANT_FIGURES: u8 = 3;

/// RTT samples in microseconds.
#[derive(Debug, Clone)]
pub struct RttStats {
    histogram: Histogram<u64>,
    last: Option<Duration>,
}

/// What a report shows of an [`RttStats`]: counts and percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RttSummary {
    /// Pongs received.
    pub samples: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest.
    pub max: u64,
}

impl RttStats {
    /// An empty histogram.
    pub fn new() -> Self {
        // The bounds are constants that satisfy hdrhistogram's rules (low >= 1, high >= 2 * low).
        let histogram = Histogram::new_with_bounds(1, MAX_TRACKED_US, SIGNIFICANT_FIGURES).expect("valid bounds");
        Self { histogram, last: None }
    }

    /// Records one round trip.
    pub fn record(&mut self, rtt: Duration) {
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        // Loopback RTTs can be under a microsecond; 1 µs is the histogram's floor.
        self.histogram.saturating_record(us.clamp(1, MAX_TRACKED_US));
        self.last = Some(rtt);
    }

    /// Adds every sample of `other` to this one.
    pub fn merge(&mut self, other: &RttStats) {
        // Both sides have the same bounds and `record` clamps into them, so nothing is out of range.
        self.histogram
            .add(&other.histogram)
            .expect("histograms share their bounds");
        self.last = other.last.or(self.last);
    }

    /// Forgets every sample (for per-interval figures).
    pub fn clear(&mut self) {
        self.histogram.reset();
        self.last = None;
    }

    /// The most recent sample.
    pub fn last(&self) -> Option<Duration> {
        self.last
    }

    /// How many samples were recorded.
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// Whether no sample was recorded.
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// Percentiles; all zero when empty.
    pub fn summary(&self) -> RttSummary {
        if self.is_empty() {
            return RttSummary::default();
        }
        let h = &self.histogram;
        RttSummary {
            samples: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

impl Default for RttStats {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RttSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.samples == 0 {
            return f.write_str("no samples");
        }
        write!(
            f,
            "p50 {}  p99 {}  p99.9 {}  max {}  ({} pings)",
            Millis(self.p50),
            Millis(self.p99),
            Millis(self.p999),
            Millis(self.max),
            self.samples
        )
    }
}

/// Microseconds shown as milliseconds: `0.42 ms`, `12.3 ms`, `250 ms`.
#[derive(Debug, Clone, Copy)]
pub struct Millis(pub u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 as f64 / 1000.0;
        match ms {
            _ if ms < 10.0 => write!(f, "{ms:.2} ms"),
            _ if ms < 100.0 => write!(f, "{ms:.1} ms"),
            _ => write!(f, "{ms:.0} ms"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_samples() {
        let mut stats = RttStats::new();
        for us in 1..=1000 {
            stats.record(Duration::from_micros(us));
        }
        let s = stats.summary();
        assert_eq!(s.samples, 1000);
        assert_eq!((s.p50, s.p99, s.p999, s.max), (500, 990, 999, 1000));
        assert_eq!(stats.last(), Some(Duration::from_micros(1000)));
    }

    #[test]
    fn merging_adds_samples_and_extremes_are_clamped() {
        let mut a = RttStats::new();
        a.record(Duration::ZERO);
        let mut b = RttStats::new();
        b.record(Duration::from_secs(3600));
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.samples, 2);
        // Within the histogram's 0.1% resolution of the ceiling.
        assert!(s.max.abs_diff(MAX_TRACKED_US) < MAX_TRACKED_US / 1000, "{}", s.max);
        a.clear();
        assert_eq!(a.summary(), RttSummary::default());
    }

    #[test]
    fn millis_keep_three_figures() {
        assert_eq!(Millis(420).to_string(), "0.42 ms");
        assert_eq!(Millis(12_345).to_string(), "12.3 ms");
        assert_eq!(Millis(250_000).to_string(), "250 ms");
    }
}
