//! The bot swarm's report: what every bot saw, summed up, as text for people and JSON for
//! scripts.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::bot::BotOutcome;
use crate::stats::{RttStats, RttSummary};

/// The result of a swarm run. `--json` prints exactly these fields as one object.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The server's player URL.
    pub url: String,
    /// Wall time from the first bot's start to the stop.
    pub duration_secs: f64,
    /// Bots asked for.
    pub bots_requested: usize,
    /// Bots whose first connection got a welcome.
    pub bots_connected: usize,
    /// Bots whose first connection failed (see `connect_errors`).
    pub bots_failed: usize,
    /// Ping round trips of all bots, in microseconds.
    pub rtt_us: RttSummary,
    /// Deltas applied per second of connection, averaged over all bots' connected time
    /// (the server's tick rate when nothing is dropped).
    pub deltas_per_sec_per_bot: f64,
    /// Payload bytes received per second of connection, averaged the same way.
    pub bytes_per_sec_per_bot: f64,
    /// World checksums the bots compared with their own worlds and found equal.
    pub checksums_verified: u64,
    /// Times a bot's world disagreed with the server's (each bot then reconnected).
    pub desyncs: u64,
    /// Snapshots beyond each connection's first: the server resynchronised a bot that fell behind.
    pub snapshots_resent: u64,
    /// Game events the bots received (a kill feed line, a chat line).
    pub events_received: u64,
    /// Messages the bots sent (chat, in games that have it).
    pub messages_sent: u64,
    /// Match ends the bots were told of (each bot counts each end it saw).
    pub matches_ended: u64,
    /// How connections ended when the bots did not end them, as `code reason` -> bots.
    pub close_reasons: BTreeMap<String, u64>,
    /// Why first connections failed -> bots.
    pub connect_errors: BTreeMap<String, u64>,
}

/// Sums [`BotOutcome`]s as bots finish.
#[derive(Debug)]
pub struct Tally {
    url: String,
    requested: usize,
    connected: usize,
    failed: usize,
    rtt: RttStats,
    deltas: u64,
    bytes: u64,
    connected_for: Duration,
    checksums_verified: u64,
    desyncs: u64,
    snapshots: u64,
    connections: u64,
    events: u64,
    messages: u64,
    matches_ended: u64,
    close_reasons: BTreeMap<String, u64>,
    connect_errors: BTreeMap<String, u64>,
}

impl Tally {
    /// An empty tally for a run of `requested` bots against `url`.
    pub fn new(url: &str, requested: usize) -> Self {
        Self {
            url: url.into(),
            requested,
            connected: 0,
            failed: 0,
            rtt: RttStats::new(),
            deltas: 0,
            bytes: 0,
            connected_for: Duration::ZERO,
            checksums_verified: 0,
            desyncs: 0,
            snapshots: 0,
            connections: 0,
            events: 0,
            messages: 0,
            matches_ended: 0,
            close_reasons: BTreeMap::new(),
            connect_errors: BTreeMap::new(),
        }
    }

    /// Adds one bot's outcome.
    pub fn add(&mut self, bot: BotOutcome) {
        self.connected += usize::from(bot.connected);
        if let Some(err) = bot.connect_error {
            self.failed += 1;
            *self.connect_errors.entry(err).or_default() += 1;
        }
        if let Some(reason) = bot.closed {
            *self.close_reasons.entry(reason).or_default() += 1;
        }
        self.rtt.merge(&bot.rtt);
        self.deltas += bot.deltas;
        self.bytes += bot.bytes;
        self.connected_for += bot.connected_for;
        self.checksums_verified += bot.checksums_verified;
        self.desyncs += bot.desyncs;
        self.snapshots += bot.snapshots;
        self.connections += bot.connections;
        self.events += bot.events;
        self.messages += bot.messages;
        self.matches_ended += bot.matches_ended;
    }

    /// Adds a finished bot task: its outcome, or the reason it has none.
    pub fn joined(&mut self, joined: Result<BotOutcome, tokio::task::JoinError>) {
        match joined {
            Ok(outcome) => self.add(outcome),
            Err(err) => self.lost_task(&err.to_string()),
        }
    }

    /// Counts a bot whose task ended without an outcome (it panicked or would not stop).
    pub fn lost_task(&mut self, why: &str) {
        *self.close_reasons.entry(format!("bot task lost: {why}")).or_default() += 1;
    }

    /// The report for a run that lasted `elapsed`.
    pub fn finish(self, elapsed: Duration) -> Report {
        let bot_secs = self.connected_for.as_secs_f64();
        let per_bot_sec = |n: u64| if bot_secs > 0.0 { n as f64 / bot_secs } else { 0.0 };
        Report {
            url: self.url,
            duration_secs: elapsed.as_secs_f64(),
            bots_requested: self.requested,
            bots_connected: self.connected,
            bots_failed: self.failed,
            rtt_us: self.rtt.summary(),
            deltas_per_sec_per_bot: per_bot_sec(self.deltas),
            bytes_per_sec_per_bot: per_bot_sec(self.bytes),
            checksums_verified: self.checksums_verified,
            desyncs: self.desyncs,
            snapshots_resent: self.snapshots.saturating_sub(self.connections),
            events_received: self.events,
            messages_sent: self.messages,
            matches_ended: self.matches_ended,
            close_reasons: self.close_reasons,
            connect_errors: self.connect_errors,
        }
    }
}

impl Report {
    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        // Plain structs and string keys (serde_json writes a non-finite float as null): this
        // cannot fail.
        serde_json::to_string(self).expect("a report serializes")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "tickcast bots against {}, {:.1} s", self.url, self.duration_secs)?;
        let bots = format!(
            "{} requested, {} connected, {} failed",
            self.bots_requested, self.bots_connected, self.bots_failed
        );
        row(f, "bots", &bots)?;
        row(f, "rtt", &self.rtt_us)?;
        let per_bot = format!(
            "{:.1} deltas/s, {:.2} KiB/s received",
            self.deltas_per_sec_per_bot,
            self.bytes_per_sec_per_bot / 1024.0
        );
        row(f, "per bot", &per_bot)?;
        let consistency = format!(
            "{} checksums verified, {} desyncs, {} snapshots resent",
            self.checksums_verified, self.desyncs, self.snapshots_resent
        );
        row(f, "consistency", &consistency)?;
        let game = format!(
            "{} events received, {} messages sent, {} match ends seen",
            self.events_received, self.messages_sent, self.matches_ended
        );
        row(f, "game", &game)?;
        counts(f, "closed", &self.close_reasons)?;
        counts(f, "connect errors", &self.connect_errors)
    }
}

/// One labelled line of the text report.
fn row(f: &mut fmt::Formatter<'_>, label: &str, value: &dyn fmt::Display) -> fmt::Result {
    writeln!(f, "  {label:<15} {value}")
}

/// `label` then one `count × what` line per entry, or `none`.
fn counts(f: &mut fmt::Formatter<'_>, label: &str, entries: &BTreeMap<String, u64>) -> fmt::Result {
    if entries.is_empty() {
        return row(f, label, &"none");
    }
    for (i, (what, n)) in entries.iter().enumerate() {
        row(f, if i == 0 { label } else { "" }, &format_args!("{n} × {what}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected_bot(deltas: u64, secs: u64) -> BotOutcome {
        let mut rtt = RttStats::new();
        rtt.record(Duration::from_micros(250));
        BotOutcome {
            connected: true,
            rtt,
            deltas,
            snapshots: 2,
            connections: 1,
            checksums_verified: secs,
            bytes: deltas * 10,
            connected_for: Duration::from_secs(secs),
            closed: Some("1001 server shutting down".into()),
            ..BotOutcome::default()
        }
    }

    #[test]
    fn a_tally_sums_bots_and_rates_are_per_connected_second() {
        let mut tally = Tally::new("ws://127.0.0.1:1/ws", 3);
        tally.add(connected_bot(300, 10));
        tally.add(connected_bot(100, 10));
        tally.add(BotOutcome {
            connect_error: Some("cannot connect".into()),
            ..BotOutcome::default()
        });
        let r = tally.finish(Duration::from_secs(10));
        assert_eq!((r.bots_requested, r.bots_connected, r.bots_failed), (3, 2, 1));
        assert_eq!(r.deltas_per_sec_per_bot, 20.0);
        assert_eq!(r.bytes_per_sec_per_bot, 200.0);
        assert_eq!(r.rtt_us.samples, 2);
        assert_eq!(r.snapshots_resent, 2);
        assert_eq!(r.close_reasons["1001 server shutting down"], 2);
        assert_eq!(r.connect_errors["cannot connect"], 1);
    }

    #[test]
    fn the_json_report_is_one_object_with_every_field() {
        let mut tally = Tally::new("ws://127.0.0.1:1/ws", 1);
        tally.add(connected_bot(30, 1));
        let json = tally.finish(Duration::from_secs(1)).to_json();
        assert!(!json.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        for key in [
            "url",
            "duration_secs",
            "bots_requested",
            "bots_connected",
            "bots_failed",
            "rtt_us",
            "deltas_per_sec_per_bot",
            "bytes_per_sec_per_bot",
            "checksums_verified",
            "desyncs",
            "snapshots_resent",
            "events_received",
            "messages_sent",
            "matches_ended",
            "close_reasons",
            "connect_errors",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from {json}");
        }
        assert_eq!(v["rtt_us"]["p99"], 250);
        assert_eq!(v["close_reasons"]["1001 server shutting down"], 1);
    }

    #[test]
    fn the_text_report_lists_reasons_or_none() {
        let mut tally = Tally::new("ws://127.0.0.1:1/ws", 1);
        tally.add(connected_bot(30, 1));
        let text = tally.finish(Duration::from_secs(1)).to_string();
        assert!(text.contains("1 requested, 1 connected, 0 failed"), "{text}");
        assert!(text.contains("closed          1 × 1001 server shutting down"), "{text}");
        assert!(text.contains("connect errors  none"), "{text}");
    }
}
