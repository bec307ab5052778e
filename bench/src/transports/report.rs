//! What `transports` reports: a row per transport and network, the medians of several runs,
//! and the markdown tables BENCHMARKS.md quotes, printed ready to paste.

use std::fmt;

use client_demo::stats::{Millis, RttSummary};
use serde::Serialize;

use super::memory::MemoryRow;
use super::{Network, SPECTATOR_HZ, TransportsConfig};
use crate::clients::followers::Transport;
use crate::server::procinfo;
use crate::table::{Align, Table};

/// One transport's figures on one network.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The transport, in words.
    pub transport: String,
    /// Followers run.
    pub clients: usize,
    /// Followers that failed.
    pub errors: u64,
    /// Updates received per second per client.
    pub updates_per_sec: f64,
    /// Updates published in the window (less its last second), per client.
    pub published_per_client: u64,
    /// Of those, the share the followers received, %.
    pub seen_pct: f64,
    /// Update latency (see the module docs), microseconds.
    pub latency_us: RttSummary,
    /// Bytes read per update, headers included.
    pub bytes_down_per_update: f64,
    /// Bytes written per update (requests, acks, pongs).
    pub bytes_up_per_update: f64,
    /// Bytes written per HTTP request (its head: none has a body); `None` for WebSocket or when
    /// no request was made in the window.
    pub request_bytes: Option<f64>,
    /// Bytes of each HTTP response's head; `None` as above.
    pub response_head_bytes: Option<f64>,
    /// HTTP requests per minute per client.
    pub requests_per_min: f64,
    /// Server CPU microseconds per second per client, above the baseline.
    pub server_cpu_us_per_sec: f64,
}

/// Every transport on one network.
#[derive(Debug, Clone, Serialize)]
pub struct Pass {
    /// The relay's settings, or `None` for direct loopback.
    pub network: Option<Network>,
    /// One row per transport, in the configured order.
    pub rows: Vec<Row>,
}

/// One run's figures (or their medians).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Comparison {
    /// Server CPU seconds per second with no followers.
    pub baseline_cpu_per_sec: f64,
    /// One per network, in the configured order.
    pub passes: Vec<Pass>,
    /// The relay at 0 ms against a direct connection, when a 0 ms network was measured.
    pub relay_check: Option<RelayCheck>,
    /// Memory per connection, one row per kind; empty when not measured.
    pub memory: Vec<MemoryRow>,
}

/// Player ping round trips to the server, direct and through the relay at 0 ms, µs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RelayCheck {
    /// Directly.
    pub direct: RttSummary,
    /// Through the relay.
    pub relayed: RttSummary,
}

impl fmt::Display for RelayCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the relay at 0 ms, against a direct connection in the same run: player ping p50 {} µs direct, {} µs \
             through the relay ({:+} µs; p99 {} and {} µs)",
            self.direct.p50,
            self.relayed.p50,
            self.relayed.p50 as i64 - self.direct.p50 as i64,
            self.direct.p99,
            self.relayed.p99
        )
    }
}

/// What `transports` measured.
#[derive(Debug, Clone, Serialize)]
pub struct TransportsReport {
    /// Bots moving in the match.
    pub bots: usize,
    /// Followers per transport.
    pub clients: usize,
    /// The server's tick rate.
    pub tick_hz: u32,
    /// Seconds measured per phase.
    pub window_secs: f64,
    /// The smallest difference the CPU column can show: one clock tick over the window and
    /// the clients, µs/s per client.
    pub cpu_resolution_us_per_sec: f64,
    /// The machine's 1-minute load average before the first run.
    pub load_before: f64,
    /// Cores of the machine.
    pub cores: usize,
    /// The median of the runs, figure by figure.
    pub median: Comparison,
    /// Every run.
    pub runs: Vec<Comparison>,
}

impl TransportsReport {
    /// The report of `runs` made with `config`.
    pub fn new(config: &TransportsConfig, runs: Vec<Comparison>, load_before: f64) -> Self {
        Self {
            bots: config.bots,
            clients: config.clients,
            tick_hz: config.tick_hz,
            window_secs: config.window.as_secs_f64(),
            cpu_resolution_us_per_sec: 1e6
                / (procinfo::clock_ticks_per_sec() as f64 * config.window.as_secs_f64() * config.clients.max(1) as f64),
            load_before,
            cores: procinfo::cores(),
            median: Comparison::median(&runs),
            runs,
        }
    }
}

impl Comparison {
    /// Figure by figure, the median of `runs` (rows are matched by position).
    pub fn median(runs: &[Comparison]) -> Comparison {
        let Some(first) = runs.first() else {
            return Comparison::default();
        };
        let passes = first
            .passes
            .iter()
            .enumerate()
            .map(|(i, pass)| Pass {
                network: pass.network,
                rows: (0..pass.rows.len())
                    .map(|j| {
                        Row::median(
                            &runs
                                .iter()
                                .filter_map(|r| r.passes.get(i)?.rows.get(j))
                                .collect::<Vec<_>>(),
                        )
                    })
                    .collect(),
            })
            .collect();
        let memory = (0..first.memory.len())
            .map(|i| {
                let rows: Vec<&MemoryRow> = runs.iter().filter_map(|r| r.memory.get(i)).collect();
                MemoryRow {
                    counted: median(rows.iter().map(|r| r.counted as f64)) as u64,
                    rss_before_kib: median(rows.iter().map(|r| r.rss_before_kib as f64)) as u64,
                    rss_after_kib: median(rows.iter().map(|r| r.rss_after_kib as f64)) as u64,
                    bytes_per_connection: median(rows.iter().map(|r| r.bytes_per_connection)),
                    errors: rows.iter().map(|r| r.errors).sum(),
                    ..rows[0].clone()
                }
            })
            .collect();
        let checks: Vec<&RelayCheck> = runs.iter().filter_map(|r| r.relay_check.as_ref()).collect();
        let relay_check = (!checks.is_empty()).then(|| {
            let p = |f: fn(&RelayCheck) -> RttSummary, q: fn(&RttSummary) -> u64| {
                median(checks.iter().map(|c| q(&f(c)) as f64)) as u64
            };
            let summary = |f: fn(&RelayCheck) -> RttSummary| RttSummary {
                samples: checks.iter().map(|c| f(c).samples).sum(),
                p50: p(f, |s| s.p50),
                p99: p(f, |s| s.p99),
                p999: p(f, |s| s.p999),
                max: checks.iter().map(|c| f(c).max).max().unwrap_or(0),
            };
            RelayCheck {
                direct: summary(|c| c.direct),
                relayed: summary(|c| c.relayed),
            }
        });
        Comparison {
            baseline_cpu_per_sec: median(runs.iter().map(|r| r.baseline_cpu_per_sec)),
            passes,
            relay_check,
            memory,
        }
    }

    /// The row of `transport` on each relayed network, with its network.
    pub fn over_networks(&self, transport: Transport) -> Vec<(Network, &Row)> {
        let name = transport.to_string();
        self.passes
            .iter()
            .filter_map(|pass| Some((pass.network?, pass.rows.iter().find(|r| r.transport == name)?)))
            .collect()
    }

    fn memory_of(&self, transport: Transport) -> Option<&MemoryRow> {
        let name = transport.to_string();
        self.memory.iter().find(|m| m.kind == name)
    }
}

impl Row {
    /// Field by field, the median of `rows` (of one transport on one network).
    fn median(rows: &[&Row]) -> Row {
        let first = rows[0];
        let of = |f: fn(&Row) -> f64| median(rows.iter().map(|r| f(r)));
        let of_some = |f: fn(&Row) -> Option<f64>| {
            let values: Vec<f64> = rows.iter().filter_map(|r| f(r)).collect();
            (!values.is_empty()).then(|| median(values.into_iter()))
        };
        let latency = |f: fn(&RttSummary) -> u64| median(rows.iter().map(|r| f(&r.latency_us) as f64)) as u64;
        Row {
            transport: first.transport.clone(),
            clients: first.clients,
            errors: rows.iter().map(|r| r.errors).sum(),
            updates_per_sec: of(|r| r.updates_per_sec),
            published_per_client: of(|r| r.published_per_client as f64) as u64,
            seen_pct: of(|r| r.seen_pct),
            latency_us: RttSummary {
                samples: rows.iter().map(|r| r.latency_us.samples).sum(),
                p50: latency(|l| l.p50),
                p99: latency(|l| l.p99),
                p999: latency(|l| l.p999),
                max: rows.iter().map(|r| r.latency_us.max).max().unwrap_or(0),
            },
            bytes_down_per_update: of(|r| r.bytes_down_per_update),
            bytes_up_per_update: of(|r| r.bytes_up_per_update),
            request_bytes: of_some(|r| r.request_bytes),
            response_head_bytes: of_some(|r| r.response_head_bytes),
            requests_per_min: of(|r| r.requests_per_min),
            server_cpu_us_per_sec: of(|r| r.server_cpu_us_per_sec),
        }
    }
}

/// The median (the mean of the middle two for an even count); NaN for none.
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// A count with a space every three digits, as the docs write them: `2 116`.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    if value < -0.5 { format!("-{out}") } else { out }
}

/// Microseconds as milliseconds, for a table cell.
fn ms(us: u64) -> String {
    Millis(us).to_string()
}

fn kib(bytes: f64) -> String {
    if bytes < 10.0 * 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{:.0} KiB", bytes / 1024.0)
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl fmt::Display for TransportsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let runs = match self.runs.len() {
            1 => "one run".to_owned(),
            n => format!("medians of {n} runs"),
        };
        writeln!(
            f,
            "tickcast transports: {} bots moving at {} Hz, {} clients per transport, {:.0} s per phase, {runs}.",
            self.bots, self.tick_hz, self.clients, self.window_secs
        )?;
        writeln!(
            f,
            "Load average before the first run: {:.2} on {} cores. Baseline server CPU (bots only): {:.3} s/s.",
            self.load_before, self.cores, self.median.baseline_cpu_per_sec
        )?;
        if let Some(check) = &self.median.relay_check {
            let mut said = check.to_string();
            said[..1].make_ascii_uppercase();
            writeln!(f, "{said}.")?;
        }
        writeln!(f)?;
        for pass in &self.median.passes {
            write_pass(f, pass)?;
        }
        if !self.median.memory.is_empty() {
            write_memory(f, &self.median.memory)?;
        }
        if self.median.passes.iter().any(|p| p.network.is_some()) {
            write_claims(f, &self.median)?;
        }
        writeln!(
            f,
            "Latency is from each tick's earliest observed delivery (a reference player on loopback) to the client \
             holding that tick, per tick for the player and per spectator event ({SPECTATOR_HZ} Hz) for the others. \
             \"Seen\" is the share of the updates published in the window that each client received as such. Bytes \
             are on the wire, HTTP heads and framing included. CPU is the server's above the baseline, per client \
             (resolution {:.0} µs/s per client).",
            self.cpu_resolution_us_per_sec
        )
    }
}

fn write_pass(f: &mut fmt::Formatter<'_>, pass: &Pass) -> fmt::Result {
    match pass.network {
        Some(network) => writeln!(f, "#### {network}\n")?,
        None => writeln!(f, "#### direct loopback (no relay)\n")?,
    }
    let mut table = Table::new(&[
        ("transport", Align::Left),
        ("updates/s", Align::Right),
        ("seen", Align::Right),
        ("latency p50", Align::Right),
        ("latency p99", Align::Right),
        ("bytes down per update", Align::Right),
        ("request / response head bytes", Align::Right),
        ("requests/min", Align::Right),
        ("server CPU µs/s per client", Align::Right),
    ]);
    for r in &pass.rows {
        let heads = match (r.request_bytes, r.response_head_bytes) {
            (Some(request), Some(response)) => format!("{request:.0} / {response:.0}"),
            _ => "–".to_owned(),
        };
        let failed = if r.errors > 0 {
            format!(" ({} failed)", r.errors)
        } else {
            String::new()
        };
        table.row([
            format!("{}{failed}", r.transport),
            format!("{:.1}", r.updates_per_sec),
            format!("{:.0} %", r.seen_pct),
            ms(r.latency_us.p50),
            ms(r.latency_us.p99),
            grouped(r.bytes_down_per_update),
            heads,
            grouped(r.requests_per_min),
            grouped(r.server_cpu_us_per_sec),
        ]);
    }
    writeln!(f, "{table}")
}

fn write_memory(f: &mut fmt::Formatter<'_>, memory: &[MemoryRow]) -> fmt::Result {
    let clients = memory.first().map_or(0, |m| m.clients);
    writeln!(
        f,
        "#### Server memory per connection ({} clients of each kind, direct, one bot moving)\n",
        grouped(clients as f64)
    )?;
    let mut table = Table::new(&[
        ("connection", Align::Left),
        ("counted by the server", Align::Right),
        ("RSS before → with them", Align::Left),
        ("per connection", Align::Right),
    ]);
    for m in memory {
        table.row([
            m.kind.clone(),
            grouped(m.counted as f64),
            format!("{} → {}", mib(m.rss_before_kib), mib(m.rss_after_kib)),
            kib(m.bytes_per_connection),
        ]);
    }
    writeln!(f, "{table}")
}

/// The widely copied comparison's figures beside ours.
fn write_claims(f: &mut fmt::Formatter<'_>, figures: &Comparison) -> fmt::Result {
    writeln!(f, "#### What is often claimed vs what tickcast measured\n")?;
    let mut table = Table::new(&[
        ("often claimed", Align::Left),
        ("tickcast measured", Align::Left),
        ("why they differ", Align::Left),
    ]);
    let (long_poll, sse, ws) = (
        figures.over_networks(Transport::LongPoll),
        figures.over_networks(Transport::Sse),
        figures.over_networks(Transport::WebSocket),
    );
    let rtts = long_poll
        .iter()
        .map(|(n, _)| format!("{}", n.rtt_ms()))
        .collect::<Vec<_>>();
    let p50s = |rows: &[(Network, &Row)]| {
        rows.iter()
            .map(|(_, r)| ms(r.latency_us.p50))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    // How far a stream stays above the one-way delay, and how much a long-poll adds to it.
    let stream_excess = sse
        .iter()
        .chain(&ws)
        .map(|(n, r)| r.latency_us.p50 as f64 / 1000.0 - n.rtt_ms() / 2.0)
        .fold(0.0, f64::max);
    let slowest = long_poll.last().zip(sse.last());
    let long_poll_extra = slowest.map_or(String::new(), |((n, lp), (_, s))| {
        format!(
            "at {} ms a long-poll's p50 is {} above SSE's, under one round trip, and it saw {:.0} % of the events",
            n.rtt_ms(),
            ms(lp.latency_us.p50.saturating_sub(s.latency_us.p50)),
            lp.seen_pct
        )
    });
    table.row([
        "average latency: long-polling 150 ms, SSE 20 ms, WebSocket 5 ms".to_owned(),
        format!(
            "p50 at {} ms round trip: long-poll {}; SSE {}; WebSocket {}",
            rtts.join(" / "),
            p50s(&long_poll),
            p50s(&sse),
            p50s(&ws)
        ),
        format!(
            "the network sets the latency, not the transport: SSE and WebSocket stay within {stream_excess:.1} ms of \
             the one-way delay at every round trip; a long-poll adds a wait for its next request when events come \
             faster than the round trip, and batches them ({long_poll_extra})"
        ),
    ]);
    if let Some((_, row)) = long_poll.first() {
        let request = row.request_bytes.unwrap_or(0.0);
        let response = row.response_head_bytes.unwrap_or(0.0);
        table.row([
            "~500 bytes of HTTP headers per long-poll request".to_owned(),
            format!(
                "{:.0} B per round: request {request:.0} B (this harness's client) + response head {response:.0} B; \
                 {} B per event with the body",
                request + response,
                grouped(row.bytes_down_per_update + row.bytes_up_per_update)
            ),
            "tickcast's response head carries only what HTTP needs (no cookies, no server banner); the rest of a \
             ~500 B figure is what a client adds to its request, such as a browser's user agent, accept-* headers \
             and cookies"
                .to_owned(),
        ]);
    }
    let memory = [Transport::LongPoll, Transport::Sse, Transport::WebSocket].map(|t| figures.memory_of(t));
    if let [Some(long_poll), Some(sse), Some(ws)] = memory {
        table.row([
            "~100 / 50 / 30 KB of server memory per long-poll / SSE / WebSocket connection".to_owned(),
            format!(
                "{} / {} / {} (RSS, {} of each)",
                kib(long_poll.bytes_per_connection),
                kib(sse.bytes_per_connection),
                kib(ws.bytes_per_connection),
                grouped(ws.clients as f64)
            ),
            "such figures fit a thread per connection or buffers of tens of KB per connection; tickcast holds per \
             connection one task, the socket and its HTTP/1 or WebSocket buffers, and shares each encoded event \
             between all spectators (the kernel's socket buffers are not in RSS)"
                .to_owned(),
        ]);
    }
    writeln!(f, "{table}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(transport: &str, p50: u64, seen: f64) -> Row {
        Row {
            transport: transport.into(),
            clients: 2,
            errors: 0,
            updates_per_sec: 10.0,
            published_per_client: 100,
            seen_pct: seen,
            latency_us: RttSummary {
                samples: 10,
                p50,
                p99: p50 * 2,
                p999: p50 * 2,
                max: p50 * 3,
            },
            bytes_down_per_update: 2000.0,
            bytes_up_per_update: 100.0,
            request_bytes: Some(90.0),
            response_head_bytes: Some(150.0),
            requests_per_min: 600.0,
            server_cpu_us_per_sec: 200.0,
        }
    }

    #[test]
    fn medians_are_taken_figure_by_figure() {
        let run = |p50, seen, baseline| Comparison {
            baseline_cpu_per_sec: baseline,
            passes: vec![Pass {
                network: Some(Network::new(std::time::Duration::from_millis(80), 25, None)),
                rows: vec![row("long-poll", p50, seen)],
            }],
            relay_check: None,
            memory: Vec::new(),
        };
        let medians = Comparison::median(&[run(100, 100.0, 0.3), run(300, 90.0, 0.1), run(200, 95.0, 0.2)]);
        let row = &medians.passes[0].rows[0];
        assert_eq!(
            (row.latency_us.p50, row.latency_us.p99, row.latency_us.max),
            (200, 400, 900)
        );
        assert_eq!((row.seen_pct, row.latency_us.samples), (95.0, 30));
        assert_eq!(medians.baseline_cpu_per_sec, 0.2);
        assert_eq!(median([1.0, 4.0].into_iter()), 2.5);
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(2116.4), "2 116");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(1_234_567.0), "1 234 567");
        assert_eq!(grouped(-1500.0), "-1 500");
    }

    #[test]
    fn a_network_says_its_round_trip_and_jitter() {
        let network = Network::new(std::time::Duration::from_millis(80), 25, None);
        assert_eq!(network.to_string(), "80 ms round trip (40 ms ± 10 ms each way)");
        assert_eq!(
            Network::new(std::time::Duration::ZERO, 25, None).to_string(),
            "0 ms round trip"
        );
    }
}
