//! `serving-floor` and `serving-floor-ends` (hidden): the serving floor alone, its players' ends
//! in a child process, for `bench/callgrind.sh`, which counts the floor's instructions under
//! valgrind without its players' (see `tickcast_bench::floors::serving_with_ends_elsewhere`).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use client_demo::cli::fail;
use tickcast_bench::floors;
use tickcast_bench::server::procinfo;

#[derive(Debug, Args)]
pub(crate) struct ServingFloorArgs {
    /// Players (sockets) served.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=8_000))]
    players: u64,
    /// Bytes of each tick's write to each player (a `load` step's bytes per player-tick).
    #[arg(long, default_value_t = 800, value_parser = clap::value_parser!(u64).range(8..=65_536))]
    frame_bytes: u64,
    /// Ticks per second.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
    tick_hz: u32,
    /// Seconds served.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Register each socket for writing too, as tokio does (the floor registers for reading
    /// only): what the ACKs' readiness events cost.
    #[arg(long)]
    register_writable: bool,
    /// Set each socket's `SO_SNDBUF` to this many bytes, as the server sets 128 KiB (the floor
    /// leaves the kernel's default, autotuned).
    #[arg(long)]
    send_buffer: Option<usize>,
}

/// The serving floor alone, its players' ends in a child process (`serving-floor-ends`), for
/// `bench/callgrind.sh`: run under valgrind, only this process is counted. Prints the floor's
/// figures as JSON.
pub(crate) async fn serving_floor(args: ServingFloorArgs) -> ExitCode {
    if let Err(err) = procinfo::ensure_open_files(2 * args.players + 64) {
        return fail(&err, None);
    }
    let players = args.players;
    let start_ends = move |addr: std::net::SocketAddr| {
        std::process::Command::new(std::env::current_exe()?)
            .args([
                "serving-floor-ends",
                "--addr",
                &addr.to_string(),
                "--players",
                &players.to_string(),
            ])
            .spawn()
    };
    let (frame, hz, window) = (
        args.frame_bytes as usize,
        args.tick_hz,
        Duration::from_secs(args.seconds),
    );
    let send_buffer = args.send_buffer;
    let interest = if args.register_writable {
        mio::Interest::READABLE | mio::Interest::WRITABLE
    } else {
        mio::Interest::READABLE
    };
    let served = tokio::task::spawn_blocking(move || {
        floors::serving_with_ends_elsewhere(players as usize, frame, hz, window, interest, send_buffer, start_ends)
    })
    .await;
    match served {
        Ok(Ok(floor)) => println!("{}", serde_json::to_string(&floor).unwrap_or_default()),
        Ok(Err(err)) => return fail(&err, None),
        Err(err) => return fail(&err, None),
    }
    ExitCode::SUCCESS
}

#[derive(Debug, Args)]
pub(crate) struct ServingFloorEndsArgs {
    /// The floor's address.
    #[arg(long)]
    addr: std::net::SocketAddr,
    /// Connections to open.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=8_000))]
    players: u64,
}

/// Used by `serving-floor`: its players' ends, sending what the load's bots send.
pub(crate) async fn serving_floor_ends(args: ServingFloorEndsArgs) -> ExitCode {
    if let Err(err) = procinfo::ensure_open_files(args.players + 64) {
        return fail(&err, None);
    }
    let bots = client_demo::swarm::SwarmConfig::new(1, Duration::ZERO);
    let traffic = floors::Traffic {
        move_every: bots.move_every,
        ping_every: bots.ping_every,
    };
    match floors::ends_of(args.addr, args.players as usize, traffic).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err, None),
    }
}
