//! The `load` command's report: one row per player count, the machine's floors, and the ratios
//! of the one to the other, as a table for people or JSON for scripts.

use std::fmt;

use client_demo::stats::{Millis, RttSummary};
use serde::Serialize;

use crate::floors::{FanoutFloor, Placement, ServingFloor};
use crate::load::watch::Held;
use crate::table::{Align, Table};

/// Everything `load` measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The server binary measured.
    pub server_bin: String,
    /// The server's tick rate.
    pub tick_hz: u32,
    /// Length of each step's measurement window.
    pub window_secs: f64,
    /// The unit of `/proc/<pid>/stat` CPU times (ticks per second).
    pub clock_ticks_per_sec: u64,
    /// The RTT p99 above which a step fails, in microseconds.
    pub rtt_limit_us: u64,
    /// Whether the server ran on CPU 0 and the bots on CPU 1 during each step.
    pub pinned: bool,
    /// The world's side in units, when the run set it (else the server's default, 1 000).
    pub world_size: Option<u32>,
    /// Each player's view radius in units, when the run gave the players views.
    pub view_radius: Option<u32>,
    /// Orbs in the world, when the run set them (else the server's default, 100).
    pub orbs: Option<u32>,
    /// Players that kept the world and counted its entities, in each step's first room.
    pub watchers: usize,
    /// Where the fan-out and serving floors ran (apart when pinned; the echo floors and the
    /// quiet ping run unpinned either way).
    pub floor_placement: Placement,
    /// Loopback round trips without tickcast.
    pub floors: Floors,
    /// The tickcast client's ping RTT against a fresh server with no bots, microseconds.
    pub quiet_ping_us: RttSummary,
    /// Its p50 over the raw TCP echo p50.
    pub quiet_ping_vs_tcp: f64,
    /// One entry per player count run, in order.
    pub steps: Vec<Step>,
    /// Why the run stopped before its last step, if it did.
    pub stopped: Option<String>,
}

/// Loopback round-trip floors of this machine.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Floors {
    /// 32 bytes over plain TCP and back, in microseconds.
    pub tcp_rtt_us: RttSummary,
    /// One 32-byte binary message over tokio-tungstenite and back, in microseconds.
    pub websocket_rtt_us: RttSummary,
}

/// One step's measurements (a player count, or rooms × players), over the window after its
/// ramp.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Bots asked for, in all rooms.
    pub players: usize,
    /// Rooms they were spread over.
    pub rooms: usize,
    /// Bots connected at the end of the window.
    pub connected: usize,
    /// The window's wall time.
    pub window_secs: f64,
    /// Ticks run per second in the window by each room (`tickcast_ticks_total` / rooms).
    pub ticks_per_sec: f64,
    /// Whether the ticks reached 95 % of the tick rate.
    pub tick_rate_held: bool,
    /// Tick overruns in the window (`tickcast_tick_overruns_total`).
    pub overruns: u64,
    /// Median tick work in microseconds, at the histogram's bucket resolution.
    pub tick_work_p50_us: Option<f64>,
    /// 99th percentile tick work in microseconds, likewise.
    pub tick_work_p99_us: Option<f64>,
    /// Median wall time of a tick's fan-out (its writes to the players, with what else ran
    /// while it yielded) in microseconds, at bucket resolution (`tickcast_fan_out_seconds`).
    pub fan_out_p50_us: Option<f64>,
    /// 99th percentile of the same.
    pub fan_out_p99_us: Option<f64>,
    /// Server CPU seconds per second of wall time (2.0 is both cores).
    pub server_cpu_per_sec: f64,
    /// Server CPU microseconds per player per tick (the bots and the probes are the players).
    pub us_per_player_tick: f64,
    /// Server resident memory before any bot, KiB.
    pub idle_rss_kib: u64,
    /// Server resident memory at the end of the window, KiB.
    pub rss_kib: u64,
    /// The server's peak resident memory (VmHWM), KiB.
    pub peak_rss_kib: u64,
    /// (resident at the end of the window - idle) / players, KiB.
    pub kib_per_player: f64,
    /// (resident at the end of the window - idle) / rooms, KiB.
    pub kib_per_room: f64,
    /// The bots' ping RTTs in the window, microseconds.
    pub rtt_us: RttSummary,
    /// The ping RTTs of one player pinging every 25 ms from a thread of its own (pinned: on
    /// the server's CPU), microseconds.
    pub probe_rtt_us: RttSummary,
    /// The first probe's round trips in two, by the pong's own timestamp (one clock, this
    /// machine's): from its ping's sending to the pong's making, and from there to its arrival.
    pub probe_split_us: Option<(RttSummary, RttSummary)>,
    /// Pinned: the same from a second such player on the bots' CPU.
    pub probe_bots_cpu_rtt_us: Option<RttSummary>,
    /// The probes' pings not answered within a second (counted, not in the RTTs).
    pub probe_lost: u64,
    /// Payload bytes each bot received per second.
    pub bytes_per_player_per_sec: f64,
    /// Deltas each bot applied per second.
    pub deltas_per_player_per_sec: f64,
    /// Mean WebSocket message the server sent, bytes as framed (its tick frames, and the
    /// few-byte acks and pongs between them).
    pub mean_frame_bytes: f64,
    /// WebSocket bytes the server sent per player-tick, as framed: what one player-tick's
    /// write carries (the tick's frame and any ack with it), with a share of the pongs (their
    /// own writes); the fan-out floor's write.
    pub bytes_per_player_tick: f64,
    /// CPU seconds per second of this process: the bots' own load on the same cores.
    pub bots_cpu_per_sec: f64,
    /// With views: the distinct views of a tick, per room (`tickcast_views`, read once a second
    /// through the window, averaged).
    pub views_per_tick: Option<f64>,
    /// With views: frames encoded for the views per room-tick (shared deltas, crossing
    /// players' own deltas, keyframes; `tickcast_view_frames_encoded_total` over the ticks).
    pub view_frames_per_tick: Option<f64>,
    /// With watchers: the mean entities a player held (with views, its view; without, the
    /// whole world), [`Held::mean`].
    pub entities_per_view: Option<f64>,
    /// With watchers: what they held, in full.
    pub held: Option<Held>,
    /// Desyncs the bots saw in the whole step.
    pub desyncs: u64,
    /// Ping RTT p50 over the raw TCP echo p50.
    pub rtt_p50_vs_tcp: f64,
    /// The fan-out floor at this player count, writing [`Step::bytes_per_player_tick`].
    pub fanout_floor: Option<FanoutFloor>,
    /// Server µs per player-tick over the fan-out floor's µs per write.
    pub cpu_vs_fanout: Option<f64>,
    /// The serving floor at this player count: the fan-out floor's writes, and the reads and
    /// pongs of what the players send at the bots' rates.
    pub serving_floor: Option<ServingFloor>,
    /// Server µs per player-tick over the serving floor's.
    pub cpu_vs_serving: Option<f64>,
    /// Why this step failed, if it did.
    pub failed: Option<String>,
}

impl Step {
    /// A step with nothing measured, failed for `why` (empty: not failed).
    pub fn unmeasured(players: usize, why: String) -> Self {
        Self {
            players,
            rooms: 1,
            connected: 0,
            window_secs: 0.0,
            ticks_per_sec: 0.0,
            tick_rate_held: false,
            overruns: 0,
            tick_work_p50_us: None,
            tick_work_p99_us: None,
            fan_out_p50_us: None,
            fan_out_p99_us: None,
            server_cpu_per_sec: 0.0,
            us_per_player_tick: 0.0,
            idle_rss_kib: 0,
            rss_kib: 0,
            peak_rss_kib: 0,
            kib_per_player: 0.0,
            kib_per_room: 0.0,
            rtt_us: RttSummary::default(),
            probe_rtt_us: RttSummary::default(),
            probe_split_us: None,
            probe_bots_cpu_rtt_us: None,
            probe_lost: 0,
            bytes_per_player_per_sec: 0.0,
            deltas_per_player_per_sec: 0.0,
            mean_frame_bytes: 0.0,
            bytes_per_player_tick: 0.0,
            bots_cpu_per_sec: 0.0,
            views_per_tick: None,
            view_frames_per_tick: None,
            entities_per_view: None,
            held: None,
            desyncs: 0,
            rtt_p50_vs_tcp: 0.0,
            fanout_floor: None,
            cpu_vs_fanout: None,
            serving_floor: None,
            cpu_vs_serving: None,
            failed: (!why.is_empty()).then_some(why),
        }
    }
}

impl LoadReport {
    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        // Plain structs with string keys: this cannot fail.
        serde_json::to_string(self).expect("a report serializes")
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tickcast load: {} at {} Hz, {:.0} s measured after each ramp, {}",
            self.server_bin,
            self.tick_hz,
            self.window_secs,
            if self.pinned {
                "server started on CPU 0 (so one runtime worker) and bots on CPU 1; the fan-out and serving floors' own thread on CPU 0 and their players' ends on CPU 1"
            } else {
                "server and bots sharing both CPUs (unpinned)"
            }
        )?;
        let (tcp, ws) = (&self.floors.tcp_rtt_us, &self.floors.websocket_rtt_us);
        writeln!(
            f,
            "floors (loopback, echo on its own thread): raw TCP echo RTT p50 {} µs p99 {} µs; tokio-tungstenite echo RTT p50 {} µs p99 {} µs",
            tcp.p50, tcp.p99, ws.p50, ws.p99
        )?;
        writeln!(
            f,
            "quiet ping (tickcast client, fresh server, no bots): RTT p50 {} µs p99 {} µs, {:.2}× the TCP echo p50\n",
            self.quiet_ping_us.p50, self.quiet_ping_us.p99, self.quiet_ping_vs_tcp
        )?;
        let mut steps = Table::new(&[
            ("R × P", Align::Right),
            ("ticks/s", Align::Right),
            ("overruns", Align::Right),
            ("tick p50", Align::Right),
            ("tick p99", Align::Right),
            ("fan-out p50", Align::Right),
            ("fan-out p99", Align::Right),
            ("CPU s/s", Align::Right),
            ("µs/pl-tick", Align::Right),
            ("peak RSS", Align::Right),
            ("KiB/pl", Align::Right),
            ("KiB/room", Align::Right),
            ("RTT p50", Align::Right),
            ("RTT p99", Align::Right),
            ("probe p50", Align::Right),
            ("probe p99", Align::Right),
            ("KiB/s/pl", Align::Right),
            ("bots CPU", Align::Right),
            ("result", Align::Left),
        ]);
        for s in &self.steps {
            steps.row([
                format!("{} × {}", s.rooms, s.players / s.rooms.max(1)),
                format!("{:.1}", s.ticks_per_sec),
                s.overruns.to_string(),
                micros(s.tick_work_p50_us),
                micros(s.tick_work_p99_us),
                micros(s.fan_out_p50_us),
                micros(s.fan_out_p99_us),
                format!("{:.2}", s.server_cpu_per_sec),
                format!("{:.2}", s.us_per_player_tick),
                format!("{:.1} MiB", s.peak_rss_kib as f64 / 1024.0),
                format!("{:.1}", s.kib_per_player),
                format!("{:.1}", s.kib_per_room),
                Millis(s.rtt_us.p50).to_string(),
                Millis(s.rtt_us.p99).to_string(),
                Millis(s.probe_rtt_us.p50).to_string(),
                Millis(s.probe_rtt_us.p99).to_string(),
                format!("{:.2}", s.bytes_per_player_per_sec / 1024.0),
                format!("{:.2}", s.bots_cpu_per_sec),
                s.failed.as_deref().unwrap_or("held").to_owned(),
            ]);
        }
        writeln!(f, "{steps}")?;
        for s in &self.steps {
            let layout = format!("{} × {}", s.rooms, s.players / s.rooms.max(1));
            if let Some((there, back)) = &s.probe_split_us {
                writeln!(
                    f,
                    "{layout:>10} the probe's round trips in two: to the pong's making p50 {} p99 {}, back p50 {} p99 {}",
                    Millis(there.p50),
                    Millis(there.p99),
                    Millis(back.p50),
                    Millis(back.p99)
                )?;
            }
            if let Some(probe) = &s.probe_bots_cpu_rtt_us {
                writeln!(
                    f,
                    "{layout:>10} the probe on the bots' CPU: RTT p50 {} p99 {}",
                    Millis(probe.p50),
                    Millis(probe.p99)
                )?;
            }
            if s.probe_lost > 0 {
                writeln!(
                    f,
                    "{layout:>10} the probes had {} pings unanswered within 1 s",
                    s.probe_lost
                )?;
            }
        }
        if self.world_size.is_some() || self.view_radius.is_some() {
            self.fmt_views(f)?;
        }
        writeln!(f, "\nratios to the floors")?;
        let mut ratios = Table::new(&[
            ("R × P", Align::Right),
            ("ping p50 / TCP p50", Align::Right),
            ("µs/pl-tick / fan-out", Align::Right),
            ("µs/pl-tick / serving", Align::Right),
            ("the floors", Align::Left),
        ]);
        for s in &self.steps {
            let times = |ratio: Option<f64>| ratio.map_or_else(|| "not measured".into(), |r| format!("{r:.2}×"));
            let mut floors = Vec::new();
            if let Some(fl) = &s.fanout_floor {
                floors.push(format!(
                    "fan-out: {:.2} µs per write of {} B to {} sockets ({} would-block)",
                    fl.us_per_write, fl.frame_bytes, fl.sockets, fl.would_block
                ));
            }
            if let Some(fl) = &s.serving_floor {
                let per_tick = |n: u64| n as f64 / fl.writes.max(1) as f64;
                floors.push(format!(
                    "serving: {:.2} µs per player-tick, with {:.2} messages read ({:.3} pings, {} not answered) and {:.3} epoll waits per player-tick ({} would-block)",
                    fl.us_per_player_tick,
                    per_tick(fl.messages),
                    per_tick(fl.pings),
                    fl.pings - fl.pongs,
                    per_tick(fl.polls),
                    fl.would_block
                ));
            }
            ratios.row([
                format!("{} × {}", s.rooms, s.players / s.rooms.max(1)),
                format!("{:.1}×", s.rtt_p50_vs_tcp),
                times(s.cpu_vs_fanout),
                times(s.cpu_vs_serving),
                floors.join("; "),
            ]);
        }
        write!(f, "{ratios}")?;
        match &self.stopped {
            Some(why) => writeln!(f, "\nstopped: {why}")?,
            None => writeln!(
                f,
                "\nevery step held {} Hz with RTT p99 within {}",
                self.tick_hz,
                Millis(self.rtt_limit_us)
            )?,
        }
        writeln!(
            f,
            "notes: tick work (the tick loop's own work) and fan-out (the wall time of its writes to the players) \
             quantiles are bucket-resolution (buckets double from 50 µs); server CPU is \
             utime+stime from /proc/<pid>/stat at {} ticks/s; ticks/s are each room's; µs/pl-tick is server CPU over \
             the player-ticks of all rooms (the bots' and the probes'); the fan-out floor writes the WebSocket bytes \
             the server sent per player-tick, and the serving floor writes the same and reads and answers what the players \
             send at the bots' rates ({}-byte moves and pings) from one thread on epoll; KiB/pl and KiB/room = (VmRSS at window end - idle VmRSS) / players or rooms; \
             KiB/s/pl is WebSocket payload the bots received; probe: one more player pinging every 25 ms from a thread of \
             its own (the bots' RTTs include their own queueing; pinned, it runs on the server's CPU, leaving the bots' \
             scheduling out); {} (bots CPU, s/s).",
            self.clock_ticks_per_sec,
            crate::floors::MESSAGE_BYTES,
            if self.pinned {
                "the server was started on CPU 0, so its runtime has one worker thread, and the bots ran on CPU 1"
            } else {
                "the bots run on the same 2 cores as the server"
            }
        )
    }
}

impl LoadReport {
    /// The big world's table: what each player is sent and holds, and what the views cost the
    /// tick.
    fn fmt_views(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = self
            .world_size
            .map_or_else(|| "1000 (default)".into(), |s| s.to_string());
        let views = self.view_radius.map_or_else(
            || "none: everyone sees the whole world".into(),
            |r| format!("radius {r}"),
        );
        let orbs = self.orbs.map_or_else(|| "100 (default)".into(), |o| o.to_string());
        writeln!(f, "\nthe world: {side} × {side} units, {orbs} orbs; views: {views}")?;
        let mut table = Table::new(&[
            ("R × P", Align::Right),
            ("B/s/pl", Align::Right),
            ("entities held", Align::Right),
            ("views/tick", Align::Right),
            ("frames/tick", Align::Right),
            ("tick p50", Align::Right),
            ("tick p99", Align::Right),
            ("fan-out p50", Align::Right),
            ("fan-out p99", Align::Right),
            ("µs/pl-tick", Align::Right),
        ]);
        let number = |v: Option<f64>, digits: usize| v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"));
        for s in &self.steps {
            let held = match &s.held {
                Some(h) if h.frames > 0 => format!("{:.1} ({}-{})", h.mean, h.least, h.most),
                _ => "-".into(),
            };
            table.row([
                format!("{} × {}", s.rooms, s.players / s.rooms.max(1)),
                format!("{:.0}", s.bytes_per_player_per_sec),
                held,
                number(s.views_per_tick, 1),
                number(s.view_frames_per_tick, 1),
                micros(s.tick_work_p50_us),
                micros(s.tick_work_p99_us),
                micros(s.fan_out_p50_us),
                micros(s.fan_out_p99_us),
                format!("{:.2}", s.us_per_player_tick),
            ]);
        }
        write!(f, "{table}")?;
        writeln!(
            f,
            "B/s/pl: WebSocket payload each bot received per second; entities held: the mean (least-most) \
             {} watchers held after each frame (players that keep the world, standing where they spawned); views/tick: \
             tickcast_views read each second, per room; frames/tick: view frames encoded per room-tick; tick: the tick's \
             own work (step, diff, the views' worlds and their encoding); fan-out: its writes' wall time.",
            self.watchers
        )
    }
}

/// Microseconds as `0.12 ms`-style text, or `-` when there were no samples.
fn micros(us: Option<f64>) -> String {
    us.map_or_else(|| "-".into(), |us| Millis(us.round() as u64).to_string())
}
