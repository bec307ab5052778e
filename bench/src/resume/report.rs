//! The `resume` command's report: one row per round trip of what the bots' cuts led to, the
//! server's own counters beside it, as tables for people or JSON for scripts.

use std::fmt;
use std::time::Duration;

use client_demo::bot::BotOutcome;
use client_demo::report::Report;
use client_demo::stats::{Millis, RttStats, RttSummary};
use serde::Serialize;
use tokio::time::Instant;

use super::cuts;
use crate::server::scrape::Scrape;
use crate::table::{Align, Table};
use crate::transports::Network;

/// How a bot ends when its resume welcomed it as another entity (`Client`'s refusal to adopt
/// the connection, `src/client/mod.rs`).
const ENTITY_CHANGED: &str = "resumed as entity";

/// Everything `resume` measured.
#[derive(Debug, Clone, Serialize)]
pub struct ResumeReport {
    /// Bots per round.
    pub bots: usize,
    /// How long the bots played in each round.
    pub seconds: f64,
    /// Mean time between two cuts of one bot's connection, ms.
    pub cut_every_ms: u64,
    /// The bots' silence limit, ms.
    pub silence_ms: u64,
    /// One per round trip, in order.
    pub rounds: Vec<Round>,
}

/// One round trip's round: one server, every bot through a relay of its own.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// The relays' network.
    pub network: Network,
    /// Cuts made (of the bots that reported).
    pub cuts: u64,
    /// Connections tried by the resumes that succeeded (a failed resume reports none).
    pub attempts: u64,
    /// Seats taken back.
    pub resumed: u64,
    /// Seats taken back as the same entity: every resume, unless a client was welcomed as
    /// another (it then stops: `entity_changed`).
    pub same_entity: u64,
    /// Resumes welcomed as another entity.
    pub entity_changed: u64,
    /// Cuts no resume answered before the bots stopped.
    pub unanswered: u64,
    /// Resumes no cut explains.
    pub unprompted: u64,
    /// Resumes after which no delta came before the bots stopped.
    pub no_delta: u64,
    /// From the cut to the first delta applied after the resume, µs.
    pub cut_to_delta_us: RttSummary,
    /// From the drop being noticed to that delta, µs.
    pub noticed_to_delta_us: RttSummary,
    /// The bots' own report: connections, checksums verified, desyncs, how connections ended.
    pub bots: Report,
    /// The server's counters at the end.
    pub server: ServerCounters,
}

/// The server's seat counters, read from its `/metrics` once the bots have left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ServerCounters {
    /// `tickcast_resumes_total`.
    pub resumes: u64,
    /// `tickcast_resumes_refused_total`.
    pub resumes_refused: u64,
    /// `tickcast_seats_expired_total`.
    pub seats_expired: u64,
    /// `tickcast_players_away`.
    pub players_away: u64,
}

impl ServerCounters {
    /// The counters of a scrape.
    pub fn read(scrape: &Scrape) -> Self {
        let value = |name| scrape.value(name) as u64;
        Self {
            resumes: value("tickcast_resumes_total"),
            resumes_refused: value("tickcast_resumes_refused_total"),
            seats_expired: value("tickcast_seats_expired_total"),
            players_away: value("tickcast_players_away"),
        }
    }
}

/// Sums the bots' cuts and resumes as each bot's outcome is gathered.
#[derive(Debug, Default)]
pub(super) struct ResumeTally {
    cuts: u64,
    attempts: u64,
    resumed: u64,
    entity_changed: u64,
    unanswered: u64,
    unprompted: u64,
    no_delta: u64,
    cut_to_delta: RttStats,
    noticed_to_delta: RttStats,
}

impl ResumeTally {
    /// Adds one bot: what it saw, and when its connection was cut.
    pub(super) fn add(&mut self, bot: &BotOutcome, cuts: &[Instant]) {
        let paired = cuts::pair(cuts, &bot.resumed);
        for &(from_cut, from_notice) in &paired.delays {
            self.cut_to_delta.record(from_cut);
            self.noticed_to_delta.record(from_notice);
        }
        self.cuts += cuts.len() as u64;
        self.attempts += bot.resume_attempts;
        self.resumed += bot.resumes;
        self.entity_changed += u64::from(bot.closed.as_ref().is_some_and(|r| r.contains(ENTITY_CHANGED)));
        self.unanswered += paired.unanswered;
        self.unprompted += paired.unprompted;
        self.no_delta += paired.no_delta;
    }

    /// The round, with the bots' report and the server's counters.
    pub(super) fn finish(self, network: Network, bots: Report, server: ServerCounters) -> Round {
        Round {
            network,
            cuts: self.cuts,
            attempts: self.attempts,
            resumed: self.resumed,
            // A client welcomed as another entity reports no resume (`Client::adopt` refuses).
            same_entity: self.resumed,
            entity_changed: self.entity_changed,
            unanswered: self.unanswered,
            unprompted: self.unprompted,
            no_delta: self.no_delta,
            cut_to_delta_us: self.cut_to_delta.summary(),
            noticed_to_delta_us: self.noticed_to_delta.summary(),
            bots,
            server,
        }
    }
}

impl Round {
    /// Every bot connected, every cut answered by a resume of the same entity, and no world
    /// out of step.
    pub fn passed(&self) -> bool {
        self.cuts > 0
            && self.bots.bots_failed == 0
            && self.unanswered == 0
            && self.entity_changed == 0
            && self.bots.desyncs == 0
    }
}

impl ResumeReport {
    /// The report of `rounds` run with these settings.
    pub(super) fn new(config: &super::ResumeConfig, rounds: Vec<Round>) -> Self {
        let ms = |d: Duration| d.as_millis() as u64;
        Self {
            bots: config.bots,
            seconds: config.duration.as_secs_f64(),
            cut_every_ms: ms(config.cut_every),
            silence_ms: ms(config.silence),
            rounds,
        }
    }

    /// Whether every round passed.
    pub fn passed(&self) -> bool {
        !self.rounds.is_empty() && self.rounds.iter().all(Round::passed)
    }
}

impl fmt::Display for ResumeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tickcast resume: {} bots for {} s, each through a relay of its own cut every {} ms on average; \
             the bots' silence limit {} ms\n",
            self.bots, self.seconds, self.cut_every_ms, self.silence_ms
        )?;
        let mut bots = Table::new(&[
            ("RTT", Align::Right),
            ("cuts", Align::Right),
            ("attempts", Align::Right),
            ("resumed", Align::Right),
            ("same entity", Align::Right),
            ("checksum mismatches", Align::Right),
            ("cut → delta p50", Align::Right),
            ("p99", Align::Right),
            ("noticed → delta p50", Align::Right),
            ("p99", Align::Right),
        ]);
        let mut server = Table::new(&[
            ("RTT", Align::Right),
            ("resumes", Align::Right),
            ("resumes refused", Align::Right),
            ("seats expired", Align::Right),
            ("players away at the end", Align::Right),
        ]);
        for r in &self.rounds {
            let rtt = format!("{} ms", r.network.rtt_ms());
            bots.row([
                rtt.clone(),
                r.cuts.to_string(),
                r.attempts.to_string(),
                r.resumed.to_string(),
                r.same_entity.to_string(),
                r.bots.desyncs.to_string(),
                Millis(r.cut_to_delta_us.p50).to_string(),
                Millis(r.cut_to_delta_us.p99).to_string(),
                Millis(r.noticed_to_delta_us.p50).to_string(),
                Millis(r.noticed_to_delta_us.p99).to_string(),
            ]);
            let s = r.server;
            server.row([
                rtt,
                s.resumes.to_string(),
                s.resumes_refused.to_string(),
                s.seats_expired.to_string(),
                s.players_away.to_string(),
            ]);
        }
        writeln!(f, "what the bots saw\n\n{bots}")?;
        writeln!(f, "the server's counters at the end\n\n{server}")?;
        for r in &self.rounds {
            let closed: Vec<String> = r
                .bots
                .close_reasons
                .iter()
                .map(|(why, n)| format!("{n} × {why}"))
                .collect();
            writeln!(
                f,
                "  {:<8} {} of {} bots connected, {} checksums verified; {} cuts unanswered, {} resumes \
                 without a cut, {} without a delta after; {} entity changes; closed: {}",
                format!("{} ms", r.network.rtt_ms()),
                r.bots.bots_connected,
                self.bots,
                r.bots.checksums_verified,
                r.unanswered,
                r.unprompted,
                r.no_delta,
                r.entity_changed,
                if closed.is_empty() {
                    "none".into()
                } else {
                    closed.join(", ")
                }
            )?;
        }
        writeln!(f, "\n  verdict  {}", if self.passed() { "PASS" } else { "FAIL" })
    }
}
