//! The tickcast-bench binary: the measuring commands. Parsing and printing only; each runs a
//! harness of the library (see its crate docs) and prints its report.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use client_demo::cli::logging;

mod alone;
mod commands;

use alone::{ServingFloorArgs, ServingFloorEndsArgs, serving_floor, serving_floor_ends};
use commands::{
    AttackArgs, ClusterArgs, ClusterFollowersArgs, IdleArgs, LoadArgs, ResumeArgs, RoomsArgs, SoakArgs, SyscallsArgs,
    TransportsArgs, attack, cluster, cluster_followers, idle, load, resume, rooms, soak, syscalls, transports,
};

/// The tickcast measuring harness: start the release server, load it over loopback, and report
/// what it cost against this machine's floors.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the release server at growing player counts and measure what each one costs.
    Load(LoadArgs),
    /// Measure the fan-out floor with each system call a write could use (write, send,
    /// writev, sendmsg), on the same sockets, in rounds.
    Syscalls(SyscallsArgs),
    /// Start the release server, open N idle players and measure its memory per connection.
    Idle(IdleArgs),
    /// On one match, compare following it by WebSocket, SSE, long-poll and polling.
    Transports(TransportsArgs),
    /// Run bots, spectators and abusive clients for minutes and watch the server's memory.
    Soak(SoakArgs),
    /// Cut each bot's connection at random moments, each through a relay of its own, and
    /// measure the bots taking their seats back.
    Resume(ResumeArgs),
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
    /// Used by `bench/callgrind.sh`: the serving floor alone for N players, its players' ends
    /// in a child process, printed as JSON.
    #[command(hide = true)]
    ServingFloor(ServingFloorArgs),
    /// Used by `serving-floor`: its players' ends.
    #[command(hide = true)]
    ServingFloorEnds(ServingFloorEndsArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Progress and the server's trouble go to stderr; reports to stdout.
    if !matches!(
        cli.command,
        Command::Syscalls(_) | Command::ClusterFollowers(_) | Command::ServingFloor(_) | Command::ServingFloorEnds(_)
    ) {
        logging();
    }
    match cli.command {
        Command::Load(args) => load(args).await,
        Command::Idle(args) => idle(args).await,
        Command::Syscalls(args) => syscalls(args).await,
        Command::Transports(args) => transports(args).await,
        Command::Soak(args) => soak(args).await,
        Command::Resume(args) => resume(args).await,
        Command::Attack(args) => attack(args).await,
        Command::Rooms(args) => rooms(args).await,
        Command::Cluster(args) => cluster(args).await,
        Command::ClusterFollowers(args) => cluster_followers(args).await,
        Command::ServingFloor(args) => serving_floor(args).await,
        Command::ServingFloorEnds(args) => serving_floor_ends(args).await,
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
}
