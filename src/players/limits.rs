//! A player's message rate ([`RateLimit`]: a token bucket, plus a rule for when excess is
//! abuse), and its game messages' rates by kind ([`MessageRates`]). What anonymous callers of
//! the HTTP API may take is in [`crate::budgets`].
//!
//! Pure: the caller passes the time, so the policies are tested without a clock.
//!
//! A player may send on average [`COMMANDS_PER_TICK`] messages per tick (moves and pings
//! alike), but at least [`MIN_PER_SECOND`] a second so that slow tick rates still leave room
//! for pings, with a burst of one second's worth. Frames beyond that are dropped and counted,
//! except game messages (which must never be lost: their kinds' own rates bound them). Sending
//! at more than twice the allowance for [`STRIKES_TO_CLOSE`] whole seconds in a row is abuse,
//! and the connection is closed (1008).

use std::time::Duration;

use tokio::time::Instant;

/// The average number of messages per tick a player may send.
pub const COMMANDS_PER_TICK: u32 = 2;
/// The smallest allowance, whatever the tick rate, in messages per second.
pub const MIN_PER_SECOND: u32 = 20;
/// Consecutive one-second windows of sending more than twice the allowance before a close.
pub const STRIKES_TO_CLOSE: u32 = 3;

const WINDOW: Duration = Duration::from_secs(1);

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the allowance: handle it.
    Allow,
    /// Over the allowance: drop it (and count it).
    Drop,
    /// Over the allowance for too long: close the connection.
    Abuse,
}

/// One player's allowance.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Messages per second.
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
    window_start: Instant,
    window_drops: u32,
    /// Whether the current window already counted as a strike.
    window_abusive: bool,
    strikes: u32,
}

impl RateLimit {
    /// The allowance for a server ticking at `tick_hz`, starting full at `now`.
    pub fn for_tick_rate(tick_hz: u32, now: Instant) -> Self {
        let rate = f64::from((COMMANDS_PER_TICK * tick_hz).max(MIN_PER_SECOND));
        Self {
            rate,
            burst: rate,
            tokens: rate,
            refilled: now,
            window_start: now,
            window_drops: 0,
            window_abusive: false,
            strikes: 0,
        }
    }

    /// Judges one message arriving at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;

        let since_window = now.saturating_duration_since(self.window_start);
        if since_window >= WINDOW {
            // A calm window, or a gap of more than one, ends a run of strikes.
            if !self.window_abusive || since_window >= 2 * WINDOW {
                self.strikes = 0;
            }
            self.window_start = now;
            self.window_drops = 0;
            self.window_abusive = false;
        }

        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        self.window_drops += 1;
        // Dropping as many as it allows means the peer sent over twice its allowance in this
        // window: a strike, counted the moment it happens rather than when the window ends.
        if !self.window_abusive && f64::from(self.window_drops) >= self.rate {
            self.window_abusive = true;
            self.strikes += 1;
        }
        if self.strikes >= STRIKES_TO_CLOSE {
            Verdict::Abuse
        } else {
            Verdict::Drop
        }
    }
}

/// A player's allowance for each of its game's message kinds: at most the kind's
/// `per_second` a second, in bursts of up to a second's worth. A message past it is a flood
/// (the session closes the player): messages are never dropped, so a game can count on every
/// one it is sent, and one that cannot be taken must not pass silently.
#[derive(Debug, Clone)]
pub struct MessageRates {
    /// Per kind: messages a second, tokens left, when last refilled.
    buckets: Vec<(f64, f64, Instant)>,
}

impl MessageRates {
    /// Full allowances for `per_second` (one per kind, in order), at `now`. A game without
    /// messages allocates nothing.
    pub fn new(per_second: impl IntoIterator<Item = u32>, now: Instant) -> Self {
        Self {
            buckets: per_second
                .into_iter()
                .map(|rate| (f64::from(rate.max(1)), f64::from(rate.max(1)), now))
                .collect(),
        }
    }

    /// Takes one message of `kind` at `now`; `false` if it is over the kind's allowance.
    pub fn take(&mut self, kind: u8, now: Instant) -> bool {
        let Some((rate, tokens, at)) = self.buckets.get_mut(usize::from(kind)) else {
            return false;
        };
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        *tokens = (*tokens + elapsed * *rate).min(*rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_kinds_have_their_own_rates_and_bursts() {
        let now = Instant::now();
        let mut rates = MessageRates::new([2, 10], now);
        assert!(rates.take(0, now) && rates.take(0, now), "a second's worth at once");
        assert!(!rates.take(0, now), "the third is over");
        assert!((0..10).all(|_| rates.take(1, now)), "the other kind is not touched");
        assert!(
            rates.take(0, now + Duration::from_millis(500)),
            "one back in half a second"
        );
        assert!(!rates.take(7, now), "no such kind");
    }

    /// Sends `per_sec` messages a second for `secs` seconds and tallies the verdicts.
    fn send(limit: &mut RateLimit, start: Instant, per_sec: u32, secs: u32) -> (u32, u32, u32) {
        let (mut allowed, mut dropped, mut abuse) = (0, 0, 0);
        for i in 0..per_sec * secs {
            let at = start + Duration::from_secs_f64(f64::from(i) / f64::from(per_sec));
            match limit.check(at) {
                Verdict::Allow => allowed += 1,
                Verdict::Drop => dropped += 1,
                Verdict::Abuse => abuse += 1,
            }
        }
        (allowed, dropped, abuse)
    }

    #[test]
    fn a_player_within_the_allowance_is_never_limited() {
        let now = Instant::now();
        let mut limit = RateLimit::for_tick_rate(30, now);
        // Bots send 12 a second; the allowance at 30 Hz is 60.
        assert_eq!(send(&mut limit, now, 60, 10), (600, 0, 0));
    }

    #[test]
    fn a_burst_is_allowed_then_the_excess_is_dropped() {
        let now = Instant::now();
        let mut limit = RateLimit::for_tick_rate(30, now);
        let burst: Vec<_> = (0..100).map(|_| limit.check(now)).collect();
        assert_eq!(burst.iter().filter(|v| **v == Verdict::Allow).count(), 60);
        assert_eq!(burst.iter().filter(|v| **v == Verdict::Drop).count(), 40);
    }

    #[test]
    fn sustained_flooding_is_abuse_but_a_short_one_is_not() {
        let now = Instant::now();
        let mut limit = RateLimit::for_tick_rate(30, now);
        let (allowed, dropped, abuse) = send(&mut limit, now, 150, 2);
        assert_eq!(abuse, 0, "two seconds of flooding are dropped, not closed");
        assert!(allowed <= 60 * 2 + 60 && dropped > 0);
        let mut limit = RateLimit::for_tick_rate(30, now);
        let (_, _, abuse) = send(&mut limit, now, 150, 5);
        assert!(abuse > 0, "five seconds at 2.5x the allowance is abuse");
    }

    #[test]
    fn a_flood_from_the_first_message_is_abuse_within_three_seconds() {
        let now = Instant::now();
        let mut limit = RateLimit::for_tick_rate(30, now);
        let first_abuse = (0..5_000u32)
            .map(|i| now + Duration::from_micros(u64::from(i) * 1_000))
            .find(|at| limit.check(*at) == Verdict::Abuse)
            .expect("a flood of 1 000 messages a second is abuse");
        let after = first_abuse - now;
        assert!(
            after >= Duration::from_secs(2) && after < Duration::from_secs(3),
            "{after:?}"
        );
    }

    #[test]
    fn calming_down_clears_the_strikes() {
        let now = Instant::now();
        let mut limit = RateLimit::for_tick_rate(30, now);
        send(&mut limit, now, 150, 3);
        let later = now + Duration::from_secs(3);
        send(&mut limit, later, 30, 2);
        let (_, _, abuse) = send(&mut limit, later + Duration::from_secs(2), 150, 2);
        assert_eq!(abuse, 0);
    }

    #[test]
    fn a_slow_tick_rate_still_allows_the_floor() {
        let now = Instant::now();
        let mut limit = RateLimit::for_tick_rate(1, now);
        let allowed = (0..30).filter(|_| limit.check(now) == Verdict::Allow).count();
        assert_eq!(allowed, MIN_PER_SECOND as usize);
    }
}
