//! One direction of the simulated network, as arithmetic: when may a chunk read at `read_at`
//! be written out? No I/O and no clock: the caller passes the time it read the chunk.
//!
//! A chunk is first serialized onto the link (only when a bandwidth cap is set: it starts once
//! the previous chunk has been sent and takes `len / rate`), then travels for the one-way delay
//! plus a jitter drawn uniformly from `[-jitter, +jitter]`. Jitter must never reorder bytes, as
//! TCP never would, so a chunk is released at `max(its own due time, the previous chunk's
//! release)`: a late chunk holds back the ones behind it, which is what a real path with a
//! varying queue does to a byte stream.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// How one direction delays and paces what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The one-way delay.
    pub delay: Duration,
    /// The most a chunk's delay differs from `delay`, either way (never below zero in total).
    pub jitter: Duration,
    /// Bytes per second the link carries, or `None` for no cap.
    pub bandwidth: Option<u64>,
}

/// The release schedule of one direction of one connection.
#[derive(Debug)]
pub struct Link {
    shape: Shape,
    rng: StdRng,
    /// When the previous chunk finished being serialized onto a capped link.
    sent: Option<Instant>,
    /// When the previous chunk was released.
    released: Option<Instant>,
}

impl Link {
    /// A link of `shape` whose jitter is drawn from `seed`.
    pub fn new(shape: Shape, seed: u64) -> Self {
        Self {
            shape,
            rng: StdRng::seed_from_u64(seed),
            sent: None,
            released: None,
        }
    }

    /// When a chunk of `len` bytes read at `read_at` may be written out. Never earlier than
    /// the previous chunk's release.
    pub fn release_at(&mut self, read_at: Instant, len: usize) -> Instant {
        let sent = match self.shape.bandwidth {
            Some(rate) => {
                let start = self.sent.map_or(read_at, |sent| sent.max(read_at));
                start + Duration::from_secs_f64(len as f64 / rate.max(1) as f64)
            }
            None => read_at,
        };
        self.sent = Some(sent);
        let due = sent + self.travel();
        let release = self.released.map_or(due, |previous| previous.max(due));
        self.released = Some(release);
        release
    }

    /// One chunk's trip: the delay, plus or minus a uniform jitter, and never negative.
    fn travel(&mut self) -> Duration {
        let jitter = self.shape.jitter.as_micros() as i64;
        if jitter == 0 {
            return self.shape.delay;
        }
        let micros = self.shape.delay.as_micros() as i64 + self.rng.random_range(-jitter..=jitter);
        Duration::from_micros(micros.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn shape(delay_ms: u64, jitter_ms: u64, bandwidth: Option<u64>) -> Shape {
        Shape {
            delay: MS * delay_ms as u32,
            jitter: MS * jitter_ms as u32,
            bandwidth,
        }
    }

    #[test]
    fn without_jitter_every_chunk_is_delayed_by_exactly_the_delay() {
        let t0 = Instant::now();
        let mut link = Link::new(shape(40, 0, None), 1);
        assert_eq!(link.release_at(t0, 100), t0 + 40 * MS);
        assert_eq!(link.release_at(t0 + 5 * MS, 100), t0 + 45 * MS);
    }

    #[test]
    fn jitter_varies_the_delay_within_its_bounds_but_never_reorders() {
        let t0 = Instant::now();
        let mut link = Link::new(shape(40, 10, None), 7);
        let mut previous = t0;
        let mut earliest_gap = Duration::MAX;
        for i in 0..10_000u32 {
            let read_at = t0 + Duration::from_micros(u64::from(i) * 100);
            let release = link.release_at(read_at, 10);
            assert!(release >= previous, "chunk {i} released before the one ahead of it");
            let delay = release - read_at;
            assert!(delay >= 30 * MS && delay <= 50 * MS, "chunk {i} delayed {delay:?}");
            earliest_gap = earliest_gap.min(delay);
            previous = release;
        }
        // Chunks that are not held back by a slower one ahead do get the short delays.
        assert!(earliest_gap < 31 * MS, "{earliest_gap:?}");
    }

    #[test]
    fn a_jitter_larger_than_the_delay_never_releases_before_the_read() {
        let t0 = Instant::now();
        let mut link = Link::new(shape(1, 5, None), 3);
        for i in 0..1000u32 {
            let read_at = t0 + MS * i;
            assert!(link.release_at(read_at, 1) >= read_at);
        }
    }

    #[test]
    fn a_bandwidth_cap_spaces_chunks_by_their_serialization_time() {
        let t0 = Instant::now();
        // 1000 bytes per second: a 100-byte chunk takes 100 ms to send.
        let mut link = Link::new(shape(10, 0, Some(1000)), 1);
        assert_eq!(link.release_at(t0, 100), t0 + 110 * MS);
        // Read at once after, it waits for the first to be sent.
        assert_eq!(link.release_at(t0, 100), t0 + 210 * MS);
        // Read after the link went idle, it starts at once.
        assert_eq!(link.release_at(t0 + 1000 * MS, 100), t0 + 1110 * MS);
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let t0 = Instant::now();
        let schedule = |seed| {
            let mut link = Link::new(shape(40, 10, None), seed);
            (0..100u32).map(|i| link.release_at(t0 + MS * i, 1)).collect::<Vec<_>>()
        };
        assert_eq!(schedule(5), schedule(5));
        assert_ne!(schedule(5), schedule(6));
    }
}
