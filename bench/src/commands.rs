//! The commands' flags and what each runs (`load`, `syscalls`, `idle`, `transports`, `soak`,
//! `resume`, `attack`, `rooms`, `cluster`): each builds its harness's config from its flags,
//! runs it (the library's modules) and prints the report.

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tickcast_bench::attack::{self, Attack, Target};
use tickcast_bench::cluster::{self as measure_cluster, ClusterConfig};
use tickcast_bench::floors::{self, WriteCall};
use tickcast_bench::idle::{self, IdleConfig};
use tickcast_bench::load::{self, LoadConfig};
use tickcast_bench::resume::{self as measure_resume, ResumeConfig};
use tickcast_bench::rooms::{self as measure_rooms, RoomsConfig};
use tickcast_bench::server::process::default_server_bin;
use tickcast_bench::server::procinfo;
use tickcast_bench::soak::report::Sample;
use tickcast_bench::soak::{self, SoakConfig};
use tickcast_bench::table::{Align, Table};
use tickcast_bench::transports::{self, Network, TransportsConfig, chart};

use client_demo::cli::{fail, stop_on_ctrl_c};
use tickcast::config::parse_duration;

/// The most round trips one `transports` or `resume` run compares (each adds a pass over every
/// transport, or a round of its own).
const MAX_RTTS: usize = 8;

#[derive(Debug, Args)]
pub(crate) struct ClusterFollowersArgs {
    /// The edge node.
    #[arg(long)]
    edge: std::net::SocketAddr,
    /// The room followed.
    #[arg(long)]
    room: String,
    /// Spectators to open.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    count: u64,
    /// Seconds measured once all are in.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
}

#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The redis-server to start (from the distribution's package: apt-get install
    /// redis-server).
    #[arg(long, default_value = "redis-server")]
    redis_bin: PathBuf,
    /// Rooms created and joined through another node (and on a lone server).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=5000))]
    joins: u64,
    /// Seconds of spectator event delays.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    delay_seconds: u64,
    /// SSE spectators over the two edges.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(2..=100_000))]
    spectators: u64,
    /// Seconds the spectators are watched once all are in.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    spectator_seconds: u64,
    /// Times Redis is killed and restarted, empty, at the end (0: none).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=100))]
    redis_restarts: u64,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RoomsArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Empty rooms to open at once.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=20_000))]
    empty: u64,
    /// Rooms to create and close, one after the other.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    churn: u64,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AttackArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The attacks to run, comma-separated [default: all].
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Attack>,
    /// The redis-server for the cluster's attack (skipped when there is none).
    #[arg(long, default_value = "redis-server")]
    redis_bin: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// The server binary to start (build it with `cargo build --release -p tickcast`)
    /// [default: target/release/tickcast].
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

impl ServerArgs {
    pub(crate) fn bin(&self) -> PathBuf {
        self.server_bin.clone().unwrap_or_else(default_server_bin)
    }
}

#[derive(Debug, Args)]
pub(crate) struct IdleArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Idle players to open.
    #[arg(long, short = 'n', default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    count: u64,
    /// Connections per source address (127.0.0.1, then 127.0.0.2, ...).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=25_000))]
    per_source: u64,
    /// The server's tick rate.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    tick_hz: u32,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TransportsArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Seconds measured per transport (after a 2 s warm-up).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Bots moving in the match.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=2000))]
    bots: u64,
    /// Clients per transport.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=900))]
    clients: u64,
    /// The server's tick rate.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(10..=240))]
    tick_hz: u32,
    /// Round trips to compare, in milliseconds (at most 8, e.g. 0,20,80,150): the clients then
    /// reach the server through a loopback relay that delays each direction by half of it.
    /// Without it they connect directly.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(0..=1000))]
    rtt: Vec<u64>,
    /// How far each one-way delay varies, either way, in percent of it.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(0..=100))]
    jitter_pct: u32,
    /// Cap each relayed connection at this many kbit/s in each direction.
    #[arg(long, requires = "rtt", value_parser = clap::value_parser!(u64).range(8..=10_000_000))]
    bandwidth_kbit: Option<u64>,
    /// Clients of each kind (WebSocket player, SSE, long-poll) for the server-memory-per-
    /// connection step, over loopback directly; 0 skips it.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    memory_clients: u64,
    /// Complete runs; every figure reported is their median.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    runs: u64,
    /// Also draw the latency against round trip as SVG into this file (needs --rtt).
    #[arg(long, requires = "rtt")]
    svg: Option<PathBuf>,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// How long to run, in minutes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=60))]
    minutes: u64,
    /// Seconds between samples of the server.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    sample_every: u64,
    /// Bots playing.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=2000))]
    bots: u64,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ResumeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Bots playing, each through a relay of its own.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=500))]
    bots: u64,
    /// Seconds the bots play in each round (no cut in the last few: the silence limit, four
    /// round trips and 2 s).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..=600))]
    seconds: u64,
    /// Mean time between two cuts of one bot's connection (e.g. "5s", "800ms"): each gap is
    /// drawn between half and one and a half times it, and waits for the bot to be back.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    cut_every: Duration,
    /// Round trips, in milliseconds, one round each against a fresh server (at most 8): each
    /// bot's relay delays each direction by half of it.
    #[arg(long, value_delimiter = ',', default_value = "0,80",
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    rtt_ms: Vec<u64>,
    /// The bots' silence limit, in milliseconds: nothing received this long is a dropped
    /// connection, and the bot resumes.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=10_000))]
    silence_ms: u64,
    /// Seed of the cut times.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Rooms mode: rooms × players per room to run instead of --steps, in order
    /// (e.g. 1x1000,10x100,100x10,200x10,500x4).
    #[arg(long, value_delimiter = ',', value_parser = parse_layout)]
    rooms: Vec<(usize, usize)>,
    /// Player counts to run, in order; the run stops at the first one that fails.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000,2000,4000",
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    steps: Vec<u64>,
    /// The server's tick rate.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    tick_hz: u32,
    /// Seconds measured at each step, after the ramp and a 3 s settle.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// RTT p99 above which a step fails, in milliseconds.
    #[arg(long, default_value_t = 50)]
    rtt_limit_ms: u64,
    /// Start the server on CPU 0 (so its runtime has one worker thread) and run the bots on CPU
    /// 1 during each step (sched_setaffinity), so the bots' scheduling does not show up as
    /// server latency; the fan-out and serving floors' own thread then runs on CPU 0 and
    /// their players' ends on CPU 1 (the echo floors and the quiet ping stay unpinned).
    #[arg(long)]
    pin: bool,
    /// The world's side in units, passed to the server (its default: 1000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(100..=100_000))]
    world_size: Option<u32>,
    /// How far each player sees, in units: the default room's --view-radius (in rooms mode,
    /// each room's view_radius). Without it, everyone sees the whole world.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    view_radius: Option<u32>,
    /// Orbs in the world, passed to the server (its default: 100).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    orbs: Option<u32>,
    /// Players that keep the world and count the entities they hold, through each window
    /// [default: 8 with --world-size or --view-radius, else 0].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=100))]
    watchers: Option<u64>,
    /// Print the report as one JSON object on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SyscallsArgs {
    /// Loopback connections written to.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=8_000))]
    sockets: u64,
    /// Bytes per write (about a delta's at 2 000 moving players).
    #[arg(long, default_value_t = 5400, value_parser = clap::value_parser!(u64).range(8..=65_536))]
    frame_bytes: u64,
    /// Seconds each call writes, per round.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=60))]
    seconds: u64,
    /// Rounds of all four calls, one after the other.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    rounds: u64,
}

/// The fan-out floor written with each system call in turn, on the same connections.
pub(crate) async fn syscalls(args: SyscallsArgs) -> ExitCode {
    let sockets = args.sockets as usize;
    if let Err(err) = procinfo::ensure_open_files(2 * args.sockets + 64) {
        return fail(&err, None);
    }
    let calls: Vec<WriteCall> = (0..args.rounds).flat_map(|_| WriteCall::ALL).collect();
    let window = Duration::from_secs(args.seconds);
    let floors = match floors::fanout_with(&calls, sockets, args.frame_bytes as usize, 30, window).await {
        Ok(floors) => floors,
        Err(err) => return fail(&err, None),
    };
    println!(
        "one thread writing {} B to {sockets} loopback sockets at 30 Hz, {} s per call and round
",
        args.frame_bytes, args.seconds
    );
    let mut table = Table::new(&[
        ("call", Align::Left),
        ("µs per write, each round", Align::Left),
        ("median", Align::Right),
    ]);
    for call in WriteCall::ALL {
        let mut each: Vec<f64> = calls
            .iter()
            .zip(&floors)
            .filter(|(c, _)| **c == call)
            .map(|(_, floor)| floor.us_per_write)
            .collect();
        let rounds = each.iter().map(|us| format!("{us:.2}")).collect::<Vec<_>>().join(", ");
        each.sort_by(f64::total_cmp);
        table.row([format!("{call:?}"), rounds, format!("{:.2}", each[each.len() / 2])]);
    }
    print!("{table}");
    ExitCode::SUCCESS
}

pub(crate) async fn cluster(args: ClusterArgs) -> ExitCode {
    let config = ClusterConfig {
        server_bin: args.server.bin(),
        redis_bin: args.redis_bin,
        joins: args.joins as usize,
        delay_window: Duration::from_secs(args.delay_seconds),
        spectators: args.spectators as usize,
        spectator_window: Duration::from_secs(args.spectator_seconds),
        redis_restarts: args.redis_restarts as usize,
    };
    match measure_cluster::run(&config, |line| eprintln!("{line}")).await {
        Ok(report) => print_report(&report, args.json),
        Err(err) => return fail(&err, None),
    }
    ExitCode::SUCCESS
}

pub(crate) async fn cluster_followers(args: ClusterFollowersArgs) -> ExitCode {
    let followed = async {
        tickcast_bench::server::procinfo::ensure_open_files(args.count + 256).map_err(|e| e.to_string())?;
        measure_cluster::follow_many(
            args.edge,
            &args.room,
            args.count as usize,
            Duration::from_secs(args.seconds),
            None,
        )
        .await
        .map_err(|e| e.to_string())
    };
    match followed.await {
        Ok(followed) => println!("{}", serde_json::to_string(&followed).unwrap_or_default()),
        Err(err) => {
            eprintln!("cluster-followers: {err}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

pub(crate) async fn rooms(args: RoomsArgs) -> ExitCode {
    let config = RoomsConfig {
        server_bin: args.server.bin(),
        empty: args.empty as usize,
        churn: args.churn as usize,
        idle_window: Duration::from_secs(10),
    };
    match measure_rooms::run(&config, |line| eprintln!("{line}")).await {
        Ok(report) => print_report(&report, args.json),
        Err(err) => return fail(&err, None),
    }
    ExitCode::SUCCESS
}

pub(crate) async fn attack(args: AttackArgs) -> ExitCode {
    let attacks = if args.only.is_empty() {
        Attack::ALL.to_vec()
    } else {
        args.only
    };
    // Each row as its attack ends (an attack takes up to two minutes), as wide as its title.
    let table = Table::new(&[("attack", Align::Left), ("what it did to the server", Align::Left)]);
    let widths = [0, 0];
    println!("{}", table.head(&widths));
    let target = Target {
        server_bin: args.server.bin(),
        redis_bin: args.redis_bin,
    };
    let printed = attack::run(&target, &attacks, stop_on_ctrl_c(), |finding| {
        println!(
            "{}",
            table.line(&[finding.attack.to_string(), finding.result.clone()], &widths)
        );
    });
    match printed.await {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => fail(&err, None),
    }
}

pub(crate) async fn soak(args: SoakArgs) -> ExitCode {
    let config = SoakConfig {
        sample_every: Duration::from_secs(args.sample_every),
        bots: args.bots as usize,
        ..SoakConfig::new(args.server.bin(), Duration::from_secs(args.minutes * 60))
    };
    eprintln!("{}", Sample::table_head());
    let report = match soak::run(&config, stop_on_ctrl_c(), |line| eprintln!("{line}")).await {
        Ok(report) => report,
        Err(err) => return fail(&err, None),
    };
    print_report(&report, args.json);
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub(crate) async fn resume(args: ResumeArgs) -> ExitCode {
    if args.rtt_ms.len() > MAX_RTTS {
        return fail(
            &format!("at most {MAX_RTTS} round trips, not {}", args.rtt_ms.len()),
            None,
        );
    }
    let config = ResumeConfig {
        bots: args.bots as usize,
        duration: Duration::from_secs(args.seconds),
        cut_every: args.cut_every,
        rtts: args.rtt_ms.iter().map(|&ms| Duration::from_millis(ms)).collect(),
        silence: Duration::from_millis(args.silence_ms),
        seed: args.seed,
        ..ResumeConfig::new(args.server.bin())
    };
    match measure_resume::run(&config, stop_on_ctrl_c(), |line| eprintln!("{line}")).await {
        Ok(report) => {
            print_report(&report, args.json);
            // Failed: a cut went unanswered, a seat came back as another entity, or a desync.
            ExitCode::from(u8::from(!report.passed()))
        }
        Err(err) => fail(&err, None),
    }
}

pub(crate) async fn transports(args: TransportsArgs) -> ExitCode {
    if args.rtt.len() > MAX_RTTS {
        return fail(&format!("at most {MAX_RTTS} round trips, not {}", args.rtt.len()), None);
    }
    let bandwidth = args.bandwidth_kbit.map(|kbit| kbit * 1000 / 8);
    let networks = if args.rtt.is_empty() {
        vec![None]
    } else {
        args.rtt
            .iter()
            .map(|&ms| Some(Network::new(Duration::from_millis(ms), args.jitter_pct, bandwidth)))
            .collect()
    };
    let config = TransportsConfig {
        bots: args.bots as usize,
        clients: args.clients as usize,
        window: Duration::from_secs(args.seconds),
        tick_hz: args.tick_hz,
        networks,
        memory_clients: args.memory_clients as usize,
        runs: args.runs as usize,
        ..TransportsConfig::new(args.server.bin())
    };
    eprintln!(
        "transports: about {:.0} minutes",
        config.estimated_duration().as_secs_f64() / 60.0
    );
    let report = match transports::run(&config, stop_on_ctrl_c(), |line| eprintln!("{line}")).await {
        Ok(report) => report,
        Err(err) => return fail(&err, None),
    };
    if let Some(path) = &args.svg {
        let subtitle = format!(
            "tickcast, {} bots at {} Hz, {} clients per transport through a loopback delay relay (each way ±{} %), {}",
            config.bots,
            config.tick_hz,
            config.clients,
            args.jitter_pct,
            match report.runs.len() {
                1 => "one run".to_owned(),
                n => format!("medians of {n} runs"),
            }
        );
        let written = chart::svg(&report.median, &subtitle)
            .map_err(|e| e.to_string())
            .and_then(|svg| std::fs::write(path, svg).map_err(|e| format!("cannot write {}: {e}", path.display())));
        if let Err(err) = written {
            return fail(&err, None);
        }
        eprintln!("chart written to {}", path.display());
    }
    print_report(&report, args.json);
    ExitCode::SUCCESS
}

pub(crate) async fn idle(args: IdleArgs) -> ExitCode {
    let config = IdleConfig {
        per_source: args.per_source as usize,
        tick_hz: args.tick_hz,
        ..IdleConfig::new(args.server.bin(), args.count as usize)
    };
    match idle::run(&config, stop_on_ctrl_c(), |line| eprintln!("{line}")).await {
        Ok(report) => print_report(&report, args.json),
        Err(err) => return fail(&err, None),
    }
    ExitCode::SUCCESS
}

pub(crate) async fn load(args: LoadArgs) -> ExitCode {
    let config = LoadConfig {
        steps: args.steps.iter().map(|&n| n as usize).collect(),
        rooms: args.rooms,
        tick_hz: args.tick_hz,
        window: Duration::from_secs(args.seconds),
        rtt_limit: Duration::from_millis(args.rtt_limit_ms),
        pin: args.pin,
        world_size: args.world_size,
        view_radius: args.view_radius,
        orbs: args.orbs,
        watchers: args.watchers.map_or_else(
            || {
                let big = args.world_size.is_some() || args.view_radius.is_some();
                if big { load::watch::WATCHERS } else { 0 }
            },
            |n| n as usize,
        ),
        ..LoadConfig::new(args.server.bin())
    };
    match load::run(&config, stop_on_ctrl_c(), |line| eprintln!("{line}")).await {
        Ok(report) => print_report(&report, args.json),
        Err(err) => return fail(&err, None),
    }
    ExitCode::SUCCESS
}

/// Prints a command's report: as one JSON object on stdout with `--json`, else as its tables.
pub(crate) fn print_report(report: &(impl Serialize + fmt::Display), json: bool) {
    if json {
        // Plain structs with string keys: this cannot fail.
        println!("{}", serde_json::to_string(report).unwrap_or_default());
    } else {
        print!("{report}");
    }
}

/// Parses `RxP` (rooms × players per room) for `load --rooms`.
fn parse_layout(text: &str) -> Result<(usize, usize), String> {
    let (rooms, per_room) = text
        .split_once(['x', '×'])
        .ok_or_else(|| format!("expected ROOMSxPLAYERS, like 100x10, got {text:?}"))?;
    let number = |n: &str| n.trim().parse::<usize>().ok().filter(|n| (1..=10_000).contains(n));
    match (number(rooms), number(per_room)) {
        (Some(r), Some(p)) if r * p <= 10_000 => Ok((r, p)),
        _ => Err(format!(
            "{text:?}: rooms and players are 1..=10000, at most 10000 players in all"
        )),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    #[test]
    fn the_measuring_commands_default_to_the_documented_runs() {
        let cli = Cli::try_parse_from(["client-demo", "load"]).unwrap();
        let Command::Load(load) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(load.steps, [100, 500, 1000, 2000, 4000]);
        assert_eq!((load.tick_hz, load.seconds, load.rtt_limit_ms), (30, 20, 50));
        let cli = Cli::try_parse_from(["client-demo", "load", "--steps", "20,50", "--server-bin", "x"]).unwrap();
        let Command::Load(load) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!((load.steps, load.server.bin()), (vec![20, 50], PathBuf::from("x")));
        let cli =
            Cli::try_parse_from(["client-demo", "load", "--world-size", "10000", "--view-radius", "250"]).unwrap();
        let Command::Load(load) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(
            (load.world_size, load.view_radius, load.orbs),
            (Some(10_000), Some(250), None)
        );
        assert!(Cli::try_parse_from(["client-demo", "load", "--world-size", "99"]).is_err());
        let cli = Cli::try_parse_from(["client-demo", "idle"]).unwrap();
        assert!(matches!(cli.command, Command::Idle(IdleArgs { count: 10_000, .. })));
        let cli = Cli::try_parse_from(["client-demo", "soak"]).unwrap();
        assert!(matches!(cli.command, Command::Soak(SoakArgs { minutes: 2, .. })));
        assert!(Cli::try_parse_from(["client-demo", "soak", "--minutes", "61"]).is_err());
        let cli = Cli::try_parse_from(["client-demo", "transports"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Transports(TransportsArgs {
                seconds: 20,
                clients: 50,
                memory_clients: 1000,
                runs: 1,
                jitter_pct: 25,
                ..
            })
        ));
        let cli = Cli::try_parse_from(["client-demo", "transports", "--rtt", "0,20,80,150", "--svg", "x.svg"]).unwrap();
        let Command::Transports(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(
            (args.rtt, args.svg),
            (vec![0, 20, 80, 150], Some(PathBuf::from("x.svg")))
        );
        assert!(Cli::try_parse_from(["client-demo", "transports", "--svg", "x.svg"]).is_err());
        assert!(Cli::try_parse_from(["client-demo", "transports", "--rtt", "2000"]).is_err());
    }
}
