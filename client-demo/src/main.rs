//! The client-demo binary: `play`, `bots` and `spectate`, and the measuring commands `load`,
//! `idle`, `transports` and `soak`. Parsing and printing only; the work is in the library (see
//! its crate docs).

use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use client_demo::behaviour::Mix;
use client_demo::connect::{self, DEFAULT_EVENTS_URL, DEFAULT_SERVER, DEFAULT_WS_URL, Target};
use client_demo::measure::attack::{self, Attack};
use client_demo::measure::cluster::{self as measure_cluster, ClusterConfig};
use client_demo::measure::idle::{self, IdleConfig};
use client_demo::measure::load::{self, LoadConfig};
use client_demo::measure::rooms::{self as measure_rooms, RoomsConfig};
use client_demo::measure::server_proc::default_server_bin;
use client_demo::measure::soak::{self, SoakConfig};
use client_demo::measure::soak_report::SAMPLE_HEADER;
use client_demo::measure::transports::{self, Network, TransportsConfig, chart};
use client_demo::play::{self, PlayError};
use client_demo::spectate::{self, Ended};
use client_demo::swarm::{self, SwarmConfig};
use tickcast::client::lobby::{self, LobbyError, NewRoom};
use tickcast::config::parse_duration;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// The most round trips one `transports` run compares (each adds a pass over every transport).
const MAX_RTTS: usize = 8;

/// The reference tickcast client: play in the terminal, load a server with bots, or watch.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Play in the terminal: arrows or WASD steer, space stops, q quits.
    Play {
        #[command(flatten)]
        to: Where,
        /// Your name (at most 32 bytes).
        #[arg(long, default_value = "player")]
        name: String,
    },
    /// Run bots against a server, show progress every second and end with a report.
    Bots(BotsArgs),
    /// Follow the spectator feed and print a summary every second.
    Spectate {
        /// The spectator feed [default: the default room's, or --room's on --server].
        url: Option<String>,
        /// The server's base URL.
        #[arg(long, default_value = DEFAULT_SERVER)]
        server: String,
        /// Follow this room on --server.
        #[arg(long, conflicts_with = "url")]
        room: Option<String>,
    },
    /// Start the release server at growing player counts and measure what each one costs.
    Load(LoadArgs),
    /// Start the release server, open N idle players and measure its memory per connection.
    Idle(IdleArgs),
    /// On one match, compare following it by WebSocket, SSE, long-poll and polling.
    Transports(TransportsArgs),
    /// Run bots, spectators and abusive clients for minutes and watch the server's memory.
    Soak(SoakArgs),
    /// Attack a fresh server per attack, as an anonymous peer would, and report the cost.
    Attack(AttackArgs),
    /// Start the release server and measure what empty rooms cost and what churning rooms
    /// leaves behind.
    Rooms(RoomsArgs),
    /// Start a redis-server and four release nodes on it (two with rooms, two spectator
    /// edges) and measure creating rooms through another node, spectator event delay through
    /// Redis, and many SSE spectators on the edges.
    Cluster(ClusterArgs),
    /// Used by `cluster`: follow one edge's share of the spectators in a process of its own
    /// and print what they received as JSON.
    #[command(hide = true)]
    ClusterFollowers(ClusterFollowersArgs),
}

#[derive(Debug, Args)]
struct ClusterFollowersArgs {
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
struct ClusterArgs {
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
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RoomsArgs {
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
struct AttackArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The attacks to run, comma-separated [default: all].
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Attack>,
}

/// Where a player joins: a URL, a room on a server, or whatever room matchmaking finds.
#[derive(Debug, Args)]
struct Where {
    /// A player URL [default: the default room, ws://127.0.0.1:8080/ws].
    url: Option<String>,
    /// The server's base URL, for --room and --matchmake.
    #[arg(long, default_value = DEFAULT_SERVER)]
    server: String,
    /// Join this room on --server.
    #[arg(long, conflicts_with_all = ["url", "matchmake"])]
    room: Option<String>,
    /// Ask --server's matchmaking for a room of this game, and join it with its token.
    #[arg(long, conflicts_with = "url")]
    matchmake: bool,
}

impl Where {
    fn target(&self) -> Target {
        match (&self.url, &self.room, self.matchmake) {
            (_, _, true) => Target::Matchmake {
                server: self.server.clone(),
                game: "arena".into(),
            },
            (_, Some(room), _) => Target::room(&self.server, room),
            (Some(url), _, _) => Target::Url(url.clone()),
            (None, None, false) => Target::Url(DEFAULT_WS_URL.into()),
        }
    }
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// The server binary to start (build it with `cargo build --release -p tickcast`)
    /// [default: target/release/tickcast].
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

impl ServerArgs {
    fn bin(&self) -> PathBuf {
        self.server_bin.clone().unwrap_or_else(default_server_bin)
    }
}

#[derive(Debug, Args)]
struct IdleArgs {
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
struct TransportsArgs {
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
struct SoakArgs {
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
struct LoadArgs {
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
    /// Pin the server to CPU 0 and the bots to CPU 1 during each step (sched_setaffinity), so
    /// the bots' scheduling does not show up as server latency; floors stay unpinned.
    #[arg(long)]
    pin: bool,
    /// Print the report as one JSON object on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct BotsArgs {
    /// Where the bots join (only loopback addresses unless --allow-remote).
    #[command(flatten)]
    to: Where,
    /// Create this many rooms on --server and spread the bots over them (--per-room each).
    #[arg(long, requires = "per_room", conflicts_with_all = ["url", "room", "matchmake"])]
    rooms: Option<u32>,
    /// Bots per room with --rooms (the bot count is then rooms × per-room).
    #[arg(long, requires = "rooms", value_parser = clap::value_parser!(u32).range(1..=5000))]
    per_room: Option<u32>,
    /// The server's admin secret, to create rooms with --rooms when it has one.
    #[arg(long, env = "TICKCAST_ADMIN_SECRET", hide_env_values = true)]
    admin_secret: Option<String>,
    /// Bots to run.
    #[arg(long, short = 'n', default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    count: u32,
    /// How long to run, ramp included (e.g. 30s, 2m; at most 1h).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Time over which the bots are started, evenly spread [default: 2s, or half the
    /// duration when that is shorter].
    #[arg(long, value_parser = parse_duration)]
    ramp: Option<Duration>,
    /// Seed of the bots' behaviours; the same seed replays the same decisions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How the bots move: wander, chase the nearest orb, or half of each.
    #[arg(long, value_enum, default_value_t = Mix::Mixed)]
    behaviour: Mix,
    /// Time between one bot's move commands.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    move_every: Duration,
    /// Time between one bot's pings.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    ping_every: Duration,
    /// Follow the stream by tick only, without decoding it into a world: far cheaper per bot,
    /// for big swarms; bots then wander blind and checksums go unchecked.
    #[arg(long)]
    blind: bool,
    /// Print the report as one JSON object on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// Allow a target outside 127.0.0.0/8 and ::1. Only load servers you run.
    #[arg(long)]
    allow_remote: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Play { to, name } => play(&to.target(), &name).await,
        Command::Bots(args) => {
            logging();
            bots(args).await
        }
        Command::Spectate { url, server, room } => {
            logging();
            let url = match (url, room) {
                (_, Some(room)) => format!("{}/rooms/{room}/events", server.trim_end_matches('/')),
                (Some(url), None) => url,
                (None, None) => DEFAULT_EVENTS_URL.into(),
            };
            spectate(&url).await
        }
        Command::Load(args) => {
            logging();
            load(args).await
        }
        Command::Idle(args) => {
            logging();
            idle(args).await
        }
        Command::Transports(args) => {
            logging();
            transports(args).await
        }
        Command::Soak(args) => {
            logging();
            soak(args).await
        }
        Command::Attack(args) => {
            logging();
            attack(args).await
        }
        Command::Rooms(args) => {
            logging();
            rooms(args).await
        }
        Command::Cluster(args) => {
            logging();
            cluster(args).await
        }
        Command::ClusterFollowers(args) => cluster_followers(args).await,
    }
}

async fn cluster(args: ClusterArgs) -> ExitCode {
    let config = ClusterConfig {
        server_bin: args.server.bin(),
        redis_bin: args.redis_bin,
        joins: args.joins as usize,
        delay_window: Duration::from_secs(args.delay_seconds),
        spectators: args.spectators as usize,
        spectator_window: Duration::from_secs(args.spectator_seconds),
    };
    match measure_cluster::run(&config, |line| eprintln!("{line}")).await {
        Ok(report) if args.json => println!("{}", serde_json::to_string(&report).unwrap_or_default()),
        Ok(report) => print!("{report}"),
        Err(err) => return fail(&err, None),
    }
    ExitCode::SUCCESS
}

async fn cluster_followers(args: ClusterFollowersArgs) -> ExitCode {
    let followed = async {
        client_demo::measure::procinfo::ensure_open_files(args.count + 256).map_err(|e| e.to_string())?;
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

async fn rooms(args: RoomsArgs) -> ExitCode {
    let config = RoomsConfig {
        server_bin: args.server.bin(),
        empty: args.empty as usize,
        churn: args.churn as usize,
        idle_window: Duration::from_secs(10),
    };
    match measure_rooms::run(&config, |line| eprintln!("{line}")).await {
        Ok(report) if args.json => println!("{}", serde_json::to_string(&report).unwrap_or_default()),
        Ok(report) => print!("{report}"),
        Err(err) => return fail(&err, None),
    }
    ExitCode::SUCCESS
}

async fn attack(args: AttackArgs) -> ExitCode {
    let attacks = if args.only.is_empty() {
        Attack::ALL.to_vec()
    } else {
        args.only
    };
    println!("| attack | what it did to the server |\n|---|---|");
    let bin = args.server.bin();
    let printed = attack::run(&bin, &attacks, stop_on_ctrl_c(), |finding| {
        println!("| {} | {} |", finding.attack, finding.result);
    });
    match printed.await {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => fail(&err, None),
    }
}

async fn soak(args: SoakArgs) -> ExitCode {
    let config = SoakConfig {
        sample_every: Duration::from_secs(args.sample_every),
        bots: args.bots as usize,
        ..SoakConfig::new(args.server.bin(), Duration::from_secs(args.minutes * 60))
    };
    eprintln!("{SAMPLE_HEADER}");
    let report = match soak::run(&config, stop_on_ctrl_c(), |line| eprintln!("{line}")).await {
        Ok(report) => report,
        Err(err) => return fail(&err, None),
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn transports(args: TransportsArgs) -> ExitCode {
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
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    ExitCode::SUCCESS
}

async fn idle(args: IdleArgs) -> ExitCode {
    let config = IdleConfig {
        per_source: args.per_source as usize,
        tick_hz: args.tick_hz,
        ..IdleConfig::new(args.server.bin(), args.count as usize)
    };
    match idle::run(&config, stop_on_ctrl_c(), |line| eprintln!("{line}")).await {
        Ok(report) if args.json => println!("{}", report.to_json()),
        Ok(report) => print!("{report}"),
        Err(err) => return fail(&err, None),
    }
    ExitCode::SUCCESS
}

async fn load(args: LoadArgs) -> ExitCode {
    let config = LoadConfig {
        steps: args.steps.iter().map(|&n| n as usize).collect(),
        rooms: args.rooms,
        tick_hz: args.tick_hz,
        window: Duration::from_secs(args.seconds),
        rtt_limit: Duration::from_millis(args.rtt_limit_ms),
        pin: args.pin,
        ..LoadConfig::new(args.server.bin())
    };
    match load::run(&config, stop_on_ctrl_c(), |line| eprintln!("{line}")).await {
        Ok(report) if args.json => println!("{}", report.to_json()),
        Ok(report) => print!("{report}"),
        Err(err) => return fail(&err, None),
    }
    ExitCode::SUCCESS
}

async fn play(target: &Target, name: &str) -> ExitCode {
    // No logging here: it would write over the game's screen.
    match play::run(target, name).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(PlayError::Client(err)) => fail(&err, connect::hint(&err).as_deref()),
        Err(err) => fail(&err, None),
    }
}

async fn bots(args: BotsArgs) -> ExitCode {
    let (count, spread) = match (args.rooms, args.per_room) {
        (Some(rooms), Some(per_room)) => {
            let spread = match create_rooms(&args.to.server, rooms, args.admin_secret.as_deref()).await {
                Ok(spread) => spread,
                Err(err) => return fail(&err, None),
            };
            eprintln!("created {rooms} rooms on {}", args.to.server);
            ((rooms * per_room) as usize, spread)
        }
        _ => (args.count as usize, vec![args.to.target()]),
    };
    let defaults = SwarmConfig::new(count, args.duration);
    let config = SwarmConfig {
        url: spread[0].url().to_owned(),
        spread,
        ramp: args.ramp.unwrap_or(defaults.ramp),
        seed: args.seed,
        mix: args.behaviour,
        move_every: args.move_every,
        ping_every: args.ping_every,
        allow_remote: args.allow_remote,
        keep_world: !args.blind,
        ..defaults
    };
    let stop = stop_on_ctrl_c();
    let report = match swarm::run(&config, stop, |progress| eprintln!("{progress}")).await {
        Ok(report) => report,
        Err(err) => return fail(&err, None),
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    // Scripts can tell a clean run from the exit status alone.
    if report.bots_failed > 0 || report.desyncs > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Creates `rooms` arena rooms on `server` and returns their player URLs.
async fn create_rooms(server: &str, rooms: u32, admin: Option<&str>) -> Result<Vec<Target>, LobbyError> {
    let mut urls = Vec::new();
    for _ in 0..rooms {
        let room = NewRoom {
            game: "arena".into(),
            ..NewRoom::default()
        };
        urls.push(Target::Url(lobby::create_room(server, &room, admin).await?.ws));
    }
    Ok(urls)
}

async fn spectate(url: &str) -> ExitCode {
    match spectate::follow(url, stop_on_ctrl_c(), |summary| println!("{summary}")).await {
        Ok(Ended::Shutdown(reason)) => {
            println!("the server is shutting down: {reason}");
            ExitCode::SUCCESS
        }
        Ok(Ended::Stopped) => ExitCode::SUCCESS,
        Err(err) => fail(&err, err.hint()),
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

/// A token cancelled by ctrl-c, so a run can end early and still report.
fn stop_on_ctrl_c() -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            token.cancel();
        }
    });
    stop
}

/// Logs to stderr, `warn` and up unless RUST_LOG says otherwise.
fn logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .init();
}

/// Prints an error and its hint, and gives the failure exit status.
fn fail(err: &dyn Display, hint: Option<&str>) -> ExitCode {
    eprintln!("error: {err}");
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bots_default_to_this_machine_for_thirty_seconds() {
        let cli = Cli::try_parse_from(["client-demo", "bots", "--count", "50"]).unwrap();
        let Command::Bots(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!((args.to.target(), args.count), (Target::Url(DEFAULT_WS_URL.into()), 50));
        assert_eq!((args.duration, args.ramp), (Duration::from_secs(30), None));
        assert!(!args.allow_remote && !args.json);
        assert!(Cli::try_parse_from(["client-demo", "bots", "--count", "0"]).is_err());
    }

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
