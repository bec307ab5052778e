//! When each tick happened, estimated from a reference player's deltas over loopback.
//!
//! The server does not put times on the wire. For tick E the clock takes the earliest of
//! `arrival(E') - (E' - E) / hz` over the reference's deltas E' within a second of E: the
//! earliest delivery seen around E. Latencies measured against it exclude the fastest delivery
//! path itself (one tick's work and one loopback write, well under a millisecond) and measure
//! everything above it.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::clients::followers::Arrival;

/// When each tick happened.
#[derive(Debug, Clone)]
pub struct TickClock {
    arrivals: BTreeMap<u64, Instant>,
    period: Duration,
    span: u64,
}

impl TickClock {
    /// A clock from one follower's arrivals at `tick_hz`.
    pub fn new(arrivals: &[Arrival], tick_hz: u32) -> Self {
        Self {
            arrivals: arrivals.iter().map(|a| (a.tick, a.at)).collect(),
            period: Duration::from_secs(1) / tick_hz.max(1),
            span: u64::from(tick_hz),
        }
    }

    /// The earliest `arrival(E') - (E' - tick) * period` over arrivals within a second.
    pub fn time_of(&self, tick: u64) -> Option<Instant> {
        let range = tick.saturating_sub(self.span)..=tick + self.span;
        self.arrivals
            .range(range)
            .filter_map(|(&t, &at)| {
                if t >= tick {
                    at.checked_sub(self.period * (t - tick) as u32)
                } else {
                    Some(at + self.period * (tick - t) as u32)
                }
            })
            .min()
    }

    /// The ticks divisible by `every` that happened in `from..=to`, in order.
    pub fn ticks_between(&self, from: Instant, to: Instant, every: u64) -> Vec<u64> {
        let (Some(&first), Some(&last)) = (self.arrivals.keys().next(), self.arrivals.keys().next_back()) else {
            return Vec::new();
        };
        (first..=last)
            .filter(|t| t % every.max(1) == 0)
            .filter(|&t| self.time_of(t).is_some_and(|at| from <= at && at <= to))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_clock_takes_the_earliest_delivery_around_a_tick() {
        let t0 = Instant::now();
        // Ticks every 10 ms (100 Hz); tick 3 arrived 4 ms late, tick 5 on time.
        let arrivals: Vec<Arrival> = [(1, 10), (2, 20), (3, 34), (5, 50)]
            .into_iter()
            .map(|(tick, at)| Arrival { tick, at: t0 + MS * at })
            .collect();
        let clock = TickClock::new(&arrivals, 100);
        assert_eq!(clock.time_of(3), Some(t0 + MS * 30));
        assert_eq!(clock.time_of(4), Some(t0 + MS * 40));
        assert_eq!(clock.time_of(1000), None);
        assert_eq!(clock.ticks_between(t0 + MS * 15, t0 + MS * 45, 1), [2, 3, 4]);
        assert_eq!(clock.ticks_between(t0, t0 + MS * 60, 2), [2, 4]);
    }
}
