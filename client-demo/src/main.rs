//! The client-demo binary: `play`, `bots` and `spectate`. Parsing and printing only; the work
//! is in the library (see its crate docs). The measuring commands are `tickcast-bench`'s.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use client_demo::behaviour::Mix;
use client_demo::cli::{fail, logging, stop_on_ctrl_c};
use client_demo::connect::{self, DEFAULT_EVENTS_URL, DEFAULT_SERVER, DEFAULT_WS_URL, Target};
use client_demo::play::{self, PlayError};
use client_demo::spectate::{self, Ended};
use client_demo::swarm::{self, SwarmConfig};
use tickcast::client::rooms_api::{self, ApiError, NewRoom};
use tickcast::config::parse_duration;

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
    }
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
        // Plain structs with string keys: this cannot fail.
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
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
async fn create_rooms(server: &str, rooms: u32, admin: Option<&str>) -> Result<Vec<Target>, ApiError> {
    let mut urls = Vec::new();
    for _ in 0..rooms {
        let room = NewRoom {
            game: "arena".into(),
            ..NewRoom::default()
        };
        urls.push(Target::Url(rooms_api::create_room(server, &room, admin).await?.room.ws));
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
}
