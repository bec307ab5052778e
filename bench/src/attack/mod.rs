//! `attack`: the outside attack run, repeatable. Each [`Attack`] starts a fresh release server
//! (two nodes and a Redis for the cluster's), does one thing an anonymous peer can do to a
//! public server, and reports in a line what it cost the server (memory, CPU, time until it
//! closed the attacker) or what the attacker got (rooms closed, places held, who got in).
//!
//! Running them against an older binary (`--server-bin`) gives the "before" column, so every
//! attack works against a server that knows none of the newer flags and answers: it reports
//! what happened (statuses, counts), not whether it was refused. Every attack is bounded in
//! time (two minutes at most) and talks only to the loopback servers it started.
//!
//! - [`sockets`]: player sockets, spectator streams and shutdown (the hardening issue's).
//! - [`rooms`]: who may do what through the rooms API: closing others' rooms, holding every
//!   place, filling the room cap, cross-site writes, locking spectators out, taking a name.
//! - [`costs`]: what rooms cost: the room list, fast rooms, empty rooms.
//! - [`cluster`]: HTTP requests turned into Redis load.
//! - [`api`]: the raw rooms-API client they share.

mod api;
mod cluster;
mod costs;
mod rooms;
mod sockets;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tickcast::client::{Client, ClientError};
use tickcast::protocol::{Hello, PROTOCOL_VERSION};
use tokio::time;
use tokio_util::sync::CancellationToken;

use crate::clients::rawws::opcode;
use crate::server::process::StartError;

/// One attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Attack {
    /// 400 MB of 125-byte pings before any hello.
    PingFlood,
    /// Pongs as fast as the socket takes them, before any hello.
    PongFlood,
    /// A fragmented message that never ends: empty continuation frames, before any hello.
    ContinuationFlood,
    /// Five sockets that never say hello but ping every 3 s, on a 5-player server with tokens.
    HelloSquat,
    /// 500 SSE and 500 long-poll spectators resuming ~300 events back, then never reading.
    StalledResumers,
    /// A name with a newline and an escape sequence.
    ControlName,
    /// Joins and leaves at ~360 a second for 10 s, counting the server's log lines.
    LogStorm,
    /// Foreign, rebinding, duplicated and non-ASCII origins.
    Origin,
    /// 60 player upgrades held open against `--max-connections 20`.
    ConnectionCap,
    /// A player that stops reading.
    StalledPlayer,
    /// Invalid UTF-8 in a text frame and in a close reason; empty and non-base64 keys.
    ProtocolFaults,
    /// SIGTERM with sockets waiting for their hello and half-sent requests.
    Shutdown,
    /// DELETE without a credential for each of 100 rooms other clients created.
    CloseRooms,
    /// 200 matchmakings from one address, then a player joins (default flags, then 16 places).
    HoldPlaces,
    /// POST /rooms from 100 addresses until refused; anonymous rooms with an admin secret.
    FillRooms,
    /// text/plain POSTs from a foreign origin, as any web page can make its visitors send.
    CrossSite,
    /// 1000 SSE streams on a private room from one address; can others still watch?
    SpectatorLockout,
    /// Matchmaking under another's name on a server with join tokens.
    NameTheft,
    /// A cluster's edge polled, matchmade and asked for unknown rooms: Redis load per request.
    FollowerAmplification,
    /// GET /rooms as fast as 4 clients can, with 10 000 rooms open.
    RoomList,
    /// 999 rooms asking 240 Hz without a credential, one idle player each.
    FastRooms,
    /// 10 000 empty rooms: memory per room and CPU while they wait.
    EmptyRooms,
}

impl Attack {
    /// Every attack: the hardening issue's, then the rooms layer's and the cluster's.
    pub const ALL: [Attack; 22] = [
        Attack::PingFlood,
        Attack::PongFlood,
        Attack::ContinuationFlood,
        Attack::HelloSquat,
        Attack::StalledResumers,
        Attack::ControlName,
        Attack::LogStorm,
        Attack::Origin,
        Attack::ConnectionCap,
        Attack::StalledPlayer,
        Attack::ProtocolFaults,
        Attack::Shutdown,
        Attack::CloseRooms,
        Attack::HoldPlaces,
        Attack::FillRooms,
        Attack::CrossSite,
        Attack::SpectatorLockout,
        Attack::NameTheft,
        Attack::FollowerAmplification,
        Attack::RoomList,
        Attack::FastRooms,
        Attack::EmptyRooms,
    ];
}

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = clap::ValueEnum::to_possible_value(self).map(|v| v.get_name().to_owned());
        f.write_str(&name.unwrap_or_default())
    }
}

/// What the attacks start.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server binary, started afresh for each attack.
    pub server_bin: PathBuf,
    /// The redis-server binary, for the cluster's attack (skipped when there is none).
    pub redis_bin: PathBuf,
}

/// What one attack found.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The attack.
    pub attack: Attack,
    /// What it cost the server or who got in, in a line.
    pub result: String,
}

/// Why an attack could not be run.
#[derive(Debug, thiserror::Error)]
pub enum AttackError {
    /// The server did not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The attack's own connections failed in a way that says nothing about the server.
    #[error("{0}: {1}")]
    Io(Attack, String),
}

/// Runs `attacks` in order against fresh servers started as `target` says; `on_finding` gets
/// each result as it comes.
pub async fn run(
    target: &Target,
    attacks: &[Attack],
    stop: CancellationToken,
    mut on_finding: impl FnMut(&Finding),
) -> Result<Vec<Finding>, AttackError> {
    let mut findings = Vec::new();
    for &attack in attacks {
        if stop.is_cancelled() {
            break;
        }
        let result = one(target, attack).await?;
        let finding = Finding { attack, result };
        on_finding(&finding);
        findings.push(finding);
    }
    Ok(findings)
}

async fn one(target: &Target, attack: Attack) -> Outcome {
    let bin = target.server_bin.as_path();
    match attack {
        Attack::PingFlood => sockets::flood(bin, opcode::PING, 400 << 20).await,
        Attack::PongFlood => sockets::flood(bin, opcode::PONG, 400 << 20).await,
        Attack::ContinuationFlood => sockets::flood(bin, opcode::CONTINUATION, 400 << 20).await,
        Attack::HelloSquat => sockets::hello_squat(bin).await,
        Attack::StalledResumers => sockets::stalled_resumers(bin).await,
        Attack::ControlName => sockets::control_name(bin).await,
        Attack::LogStorm => sockets::log_storm(bin).await,
        Attack::Origin => sockets::origin(bin).await,
        Attack::ConnectionCap => sockets::connection_cap(bin).await,
        Attack::StalledPlayer => sockets::stalled_player(bin).await,
        Attack::ProtocolFaults => sockets::protocol_faults(bin).await,
        Attack::Shutdown => sockets::shutdown(bin).await,
        Attack::CloseRooms => rooms::close_rooms(bin).await,
        Attack::HoldPlaces => rooms::hold_places(bin).await,
        Attack::FillRooms => rooms::fill_rooms(bin).await,
        Attack::CrossSite => rooms::cross_site(bin).await,
        Attack::SpectatorLockout => rooms::spectator_lockout(bin).await,
        Attack::NameTheft => rooms::name_theft(bin).await,
        Attack::FollowerAmplification => cluster::follower_amplification(bin, &target.redis_bin).await,
        Attack::RoomList => costs::room_list(bin).await,
        Attack::FastRooms => costs::fast_rooms(bin).await,
        Attack::EmptyRooms => costs::empty_rooms(bin).await,
    }
}

type Outcome = Result<String, AttackError>;

/// The admin secret of the servers the attacks start with one (they listen on loopback only).
const ADMIN: &str = "attack-harness";

fn io(attack: Attack) -> impl Fn(std::io::Error) -> AttackError {
    move |e| AttackError::Io(attack, e.to_string())
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// A player joining the room at `url` with `hello`: the client once welcomed, or how it was
/// refused, in words.
async fn join(url: &str, hello: Hello) -> Result<Client, String> {
    match time::timeout(Duration::from_secs(5), Client::connect_with(url, hello)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(ClientError::Closed { code, reason })) => Err(format!("refused {code} \"{reason}\"")),
        Ok(Err(err)) => Err(format!("failed: {err}")),
        Err(_) => Err("no welcome within 5 s".to_owned()),
    }
}

/// [`join`] as `name` without a token, in words: `welcomed`, or how it was refused.
async fn joins(url: &str, name: &str) -> String {
    match join(url, hello(name, "")).await {
        Ok(_) => "welcomed".to_owned(),
        Err(why) => why,
    }
}

/// A hello of this protocol as `name`, with `token`.
fn hello(name: &str, token: &str) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        name: name.into(),
        token: token.into(),
        resume: String::new(),
        options: Vec::new(),
    }
}

/// Mebibytes from kibibytes, for reports.
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
