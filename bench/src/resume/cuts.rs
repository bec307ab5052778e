//! Cutting one bot's connection at random moments, and pairing each cut with the resume that
//! followed it.
//!
//! A bot is cut only while it is back: a connection made after its last cut has carried a
//! delta to it. So one cut starts one resume and each resume answers one cut; a cut made during
//! a resume would fold two drops into one resume's attempts, and its delay would be neither's.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use client_demo::bot::Live;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tickcast_relay::Relay;
use tokio::time::{self, Instant};
use tokio_util::sync::CancellationToken;

/// How often a cutter looks whether its bot is back.
const BACK_POLL: Duration = Duration::from_millis(10);

/// When one bot's connection is cut.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    /// Mean time between two cuts: each gap is drawn uniformly between half and one and a half
    /// times it, from the previous cut (or the start), and waits for the bot to be back.
    pub(super) every: Duration,
    /// No cut after this.
    pub(super) until: Instant,
    /// Seed of the gaps.
    pub(super) seed: u64,
}

/// Cuts `relay`'s connections by `plan` until its end or `stop`; returns when each cut was made.
/// `live` is the bot's own counters: its deltas say when it is back.
pub(super) async fn cut_at_random(relay: &Relay, live: &Live, plan: Plan, stop: &CancellationToken) -> Vec<Instant> {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut gap = || plan.every.mul_f64(rng.random_range(0.5..1.5));
    let mut cuts = Vec::new();
    let mut due = Instant::now() + gap();
    // Connections the relay had accepted at the last cut: the first one is the bot's join.
    let mut accepted = 0;
    loop {
        let ready = async {
            time::sleep_until(due).await;
            back(relay, live, accepted).await;
        };
        tokio::select! {
            () = stop.cancelled() => break,
            () = time::sleep_until(plan.until) => break,
            () = ready => {}
        }
        accepted = relay.relayed().connections;
        relay.cut();
        let now = Instant::now();
        cuts.push(now);
        due = now + gap();
    }
    cuts
}

/// Returns once a connection the relay accepted after its first `accepted` has carried a delta
/// to the bot (the bot only applies deltas after the snapshot its resume brings).
async fn back(relay: &Relay, live: &Live, accepted: u64) {
    let mut poll = time::interval(BACK_POLL);
    while relay.relayed().connections <= accepted {
        poll.tick().await;
    }
    let deltas = live.deltas.load(Relaxed);
    while live.deltas.load(Relaxed) <= deltas {
        poll.tick().await;
    }
}

/// What one bot's cuts led to.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Paired {
    /// For each cut answered: from the cut to the first delta after the resume, and from the
    /// drop being noticed to that delta.
    pub(super) delays: Vec<(Duration, Duration)>,
    /// Cuts no resume answered before the bot stopped.
    pub(super) unanswered: u64,
    /// Resumes no cut explains (the connection dropped by itself, or the server closed it).
    pub(super) unprompted: u64,
    /// Resumes after which no delta came before the bot stopped.
    pub(super) no_delta: u64,
}

/// Pairs each cut with the first resume noticed after it and before the next cut. `resumed`
/// is the bot's `(noticed, first delta after)` per resume, in order.
pub(super) fn pair(cuts: &[Instant], resumed: &[(Instant, Option<Instant>)]) -> Paired {
    let mut paired = Paired::default();
    let mut resumes = resumed.iter().peekable();
    // Resumes before the first cut.
    while resumes
        .next_if(|(noticed, _)| cuts.first().is_none_or(|c| noticed < c))
        .is_some()
    {
        paired.unprompted += 1;
    }
    for (k, &cut) in cuts.iter().enumerate() {
        let next = cuts.get(k + 1);
        let mut answered = false;
        while let Some(&(noticed, delta)) = resumes.next_if(|(noticed, _)| next.is_none_or(|n| noticed < n)) {
            match (answered, delta) {
                (true, _) => paired.unprompted += 1,
                (false, Some(delta)) => paired.delays.push((delta - cut, delta - noticed)),
                (false, None) => paired.no_delta += 1,
            }
            answered = true;
        }
        paired.unanswered += u64::from(!answered);
    }
    paired
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cut_is_paired_with_the_first_resume_before_the_next_cut() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let cuts = [at(1000), at(5000), at(9000)];
        let resumed = [
            (at(500), Some(at(600))),   // before any cut: unprompted
            (at(2000), Some(at(2100))), // answers the first cut
            (at(3000), Some(at(3050))), // a second drop in the same gap: unprompted
            (at(6000), None),           // answers the second cut, but no delta came
        ];
        let paired = pair(&cuts, &resumed);
        let ms = Duration::from_millis;
        assert_eq!(paired.delays, [(ms(1100), ms(100))]);
        assert_eq!((paired.unprompted, paired.no_delta, paired.unanswered), (2, 1, 1));
        assert_eq!(pair(&[], &[]), Paired::default());
    }
}
