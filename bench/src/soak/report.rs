//! The soak's samples and report: the time series, the plateau check, crashes, overruns, the
//! server's close reasons and what each misbehaving client got.

use std::collections::BTreeMap;
use std::fmt;

use client_demo::report::Report;
use serde::Serialize;
use tokio::time::Instant;

use crate::server::process::ServerProcess;
use crate::server::procinfo;
use crate::soak::abuse::Abuse;
use crate::table::{Align, Table};

/// Resident memory may grow by at most this fraction over the second half.
pub const PLATEAU_TOLERANCE: f64 = 0.05;

/// The server at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the soak started.
    pub secs: f64,
    /// Resident memory (VmRSS), KiB; 0 if unreadable.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: usize,
    /// Kernel memory in TCP socket buffers, machine-wide (both ends of every loopback
    /// connection), KiB.
    pub tcp_buffers_kib: u64,
    /// `tickcast_ticks_total`.
    pub ticks: u64,
    /// `tickcast_tick_overruns_total`.
    pub overruns: u64,
    /// `tickcast_players`.
    pub players: u64,
    /// SSE spectators plus waiting long-polls.
    pub spectators: u64,
    /// Whether `/metrics` answered.
    pub answered: bool,
}

impl Sample {
    /// Reads `server` now.
    pub async fn take(server: &ServerProcess, started: Instant) -> Self {
        let pid = server.pid();
        let metrics = server.metrics().await;
        let answered = metrics.is_ok();
        let m = metrics.unwrap_or_default();
        let spectators = m.labelled("tickcast_spectators").values().sum::<f64>();
        Self {
            secs: started.elapsed().as_secs_f64(),
            rss_kib: procinfo::memory(pid).map_or(0, |m| m.rss_kib),
            fds: procinfo::open_fds(pid).unwrap_or(0),
            tcp_buffers_kib: procinfo::tcp_buffer_kib().unwrap_or(0),
            ticks: m.value("tickcast_ticks_total") as u64,
            overruns: m.value("tickcast_tick_overruns_total") as u64,
            players: m.value("tickcast_players") as u64,
            spectators: spectators as u64,
            answered,
        }
    }
}

impl Sample {
    /// The samples' table, empty: its columns.
    fn table() -> Table {
        Table::new(&[
            ("s", Align::Right),
            ("RSS MiB", Align::Right),
            ("fds", Align::Right),
            ("TCP buf MiB", Align::Right),
            ("ticks", Align::Right),
            ("overruns", Align::Right),
            ("players", Align::Right),
            ("spectators", Align::Right),
            ("answered", Align::Left),
        ])
    }

    /// The samples' table head, for samples printed as they come ([`Sample`]'s `Display`).
    pub fn table_head() -> String {
        Self::table().head(&SAMPLE_WIDTHS)
    }

    fn cells(&self) -> Vec<String> {
        vec![
            format!("{:.0}", self.secs),
            format!("{:.1}", self.rss_kib as f64 / 1024.0),
            self.fds.to_string(),
            format!("{:.1}", self.tcp_buffers_kib as f64 / 1024.0),
            self.ticks.to_string(),
            self.overruns.to_string(),
            self.players.to_string(),
            self.spectators.to_string(),
            if self.answered { "yes" } else { "NO" }.to_owned(),
        ]
    }
}

/// Widths for samples printed one at a time, before the widest is known.
const SAMPLE_WIDTHS: [usize; 9] = [5, 7, 5, 11, 8, 8, 7, 10, 8];

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Self::table().line(&self.cells(), &SAMPLE_WIDTHS))
    }
}

/// What the soak found.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// Minutes it ran.
    pub minutes: f64,
    /// Whether ctrl-c ended it early.
    pub interrupted: bool,
    /// The server's process id.
    pub pid: u32,
    /// The time series, while everything ran.
    pub samples: Vec<Sample>,
    /// One more, once every client had stopped (descriptors should be back to a handful).
    pub after: Option<Sample>,
    /// How the server died, if it did before the end.
    pub crashed: Option<String>,
    /// How it exited when stopped.
    pub exit: String,
    /// Tick overruns over the run.
    pub overruns: u64,
    /// Ticks over the run.
    pub ticks: u64,
    /// `tickcast_closes_total` by reason, at the end.
    pub close_reasons: BTreeMap<String, f64>,
    /// Messages dropped by the rate limit.
    pub rate_limited: u64,
    /// Spectators the server resynchronised with a snapshot.
    pub spectator_resyncs: u64,
    /// SSE reconnections that asked to resume with Last-Event-ID.
    pub resumed_streams: u64,
    /// Requests made by long-pollers and pollers.
    pub follower_requests: u64,
    /// Long-pollers' and pollers' failures.
    pub follower_errors: u64,
    /// `(kind, what the server did)` -> attempts.
    #[serde(serialize_with = "abuse_as_strings")]
    pub abuse: BTreeMap<(Abuse, String), u64>,
    /// The bots' report, if they ran to the end.
    pub bots: Option<Report>,
}

impl SoakReport {
    /// Resident memory growth over the second half, as a fraction of its start:
    /// `(last - first) / first` over the samples taken at or after half-time.
    pub fn second_half_growth(&self) -> Option<f64> {
        let half = self.samples.last()?.secs / 2.0;
        let second: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.secs >= half && s.rss_kib > 0)
            .collect();
        if second.len() < 2 {
            return None;
        }
        let (first, last) = (second.first()?, second.last()?);
        Some((last.rss_kib as f64 - first.rss_kib as f64) / first.rss_kib as f64)
    }

    /// Whether memory plateaued, the server lived, and the bots stayed in sync.
    pub fn passed(&self) -> bool {
        self.crashed.is_none()
            && self.second_half_growth().is_some_and(|g| g < PLATEAU_TOLERANCE)
            && self.bots.as_ref().is_some_and(|b| b.desyncs == 0 && b.bots_failed == 0)
    }
}

fn abuse_as_strings<S: serde::Serializer>(map: &BTreeMap<(Abuse, String), u64>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(map.iter().map(|((kind, outcome), n)| (format!("{kind}: {outcome}"), n)))
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tickcast soak: {:.1} min{}\n",
            self.minutes,
            if self.interrupted { " (interrupted)" } else { "" }
        )?;
        let mut table = Sample::table();
        for sample in &self.samples {
            table.row(sample.cells());
        }
        if let Some(after) = &self.after {
            let mut cells = after.cells();
            cells[8].push_str(" (every client stopped)");
            table.row(cells);
        }
        write!(f, "{table}")?;
        writeln!(f)?;
        let plateau = match self.second_half_growth() {
            Some(g) if g < PLATEAU_TOLERANCE => format!("PASS: RSS grew {:+.1} % over the second half", g * 100.0),
            Some(g) => format!(
                "FAIL: RSS grew {:+.1} % over the second half (limit {:.0} %)",
                g * 100.0,
                PLATEAU_TOLERANCE * 100.0
            ),
            None => "unknown: too few samples in the second half".into(),
        };
        writeln!(f, "  plateau         {plateau}")?;
        match &self.crashed {
            Some(how) => writeln!(f, "  crashes         the server died: {how}")?,
            None => writeln!(f, "  crashes         none; stopped with {}", self.exit)?,
        }
        writeln!(f, "  overruns        {} in {} ticks", self.overruns, self.ticks)?;
        if let Some(bots) = &self.bots {
            writeln!(
                f,
                "  bots            {} connected, {} failed, {} desyncs, RTT {}",
                bots.bots_connected, bots.bots_failed, bots.desyncs, bots.rtt_us
            )?;
        }
        writeln!(
            f,
            "  spectators      {} SSE resumes asked, {} resyncs by the server; {} poll requests, {} poll failures",
            self.resumed_streams, self.spectator_resyncs, self.follower_requests, self.follower_errors
        )?;
        writeln!(f, "  rate limited    {} messages dropped", self.rate_limited)?;
        let reasons: Vec<String> = self.close_reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
        writeln!(f, "  server closes   {}", reasons.join(", "))?;
        writeln!(f, "  abusive clients (attempts: what the server did)")?;
        let mut kinds: BTreeMap<Abuse, Vec<String>> = BTreeMap::new();
        for ((kind, outcome), n) in &self.abuse {
            kinds.entry(*kind).or_default().push(format!("{n} × {outcome}"));
        }
        for (kind, outcomes) in kinds {
            writeln!(f, "    {:<15} {}", kind.to_string(), outcomes.join("; "))?;
        }
        writeln!(f, "\n  verdict         {}", if self.passed() { "PASS" } else { "FAIL" })
    }
}
