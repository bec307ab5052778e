//! Server settings, parsed from the command line (and built in code by tests and benches).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::access::origin::Origin;
use crate::room::{Settings, Tuning};

/// tickcast: an authoritative fixed-tick multiplayer game-state server.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Address to serve players, spectators and metrics on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// The game of the default room: arena, tanks, or a game the program running the server
    /// registered (`Server::with_games`).
    #[arg(long, default_value = "arena")]
    pub game: String,

    /// Simulation ticks per second of the default room (and of created rooms that name none).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub tick_hz: u32,

    /// Seed for orb and spawn positions; random when not given.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Width and height of the square world, in units.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(100..=100_000))]
    pub world_size: u32,

    /// Orbs in the world at all times.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub orbs: u32,

    /// Most players in one room (the default room's places, and the most a created room may
    /// ask for); more are refused with close 1013.
    #[arg(long, default_value_t = 5000)]
    pub max_players: usize,

    /// Most rooms at once, the default room included; creating one more answers 503.
    #[arg(long, default_value_t = 1000)]
    pub max_rooms: usize,

    /// How long a room (other than the default one) may stay without players before it
    /// closes itself (one sweep looks every tenth of it, and at least once a second).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub room_idle: Duration,

    /// Do not open the default room (behind /ws, /events, /poll, /state) at start.
    #[arg(long)]
    pub no_default_room: bool,

    /// The admin secret (also TICKCAST_ADMIN_SECRET): `Authorization: Bearer <secret>` may
    /// create, close and matchmake beyond the anonymous budgets. With it, callers without a
    /// credential cannot create rooms (unless --anonymous-rooms); without it, they may, within
    /// their budgets.
    #[arg(long, env = "TICKCAST_ADMIN_SECRET", hide_env_values = true)]
    pub admin_secret: Option<String>,

    /// With --admin-secret, still let callers without a credential create rooms (POST /rooms
    /// and matchmaking), within the same budgets as without an admin secret.
    #[arg(long)]
    pub anonymous_rooms: bool,

    /// Most rooms opened without a credential at once; the rest of --max-rooms is kept for
    /// the admin's rooms. Defaults to three quarters of --max-rooms.
    #[arg(long)]
    pub max_anonymous_rooms: Option<usize>,

    /// The base URL clients reach this server at (e.g. https://game.example), used in the
    /// URLs the rooms API answers. Defaults to http:// and the bound address.
    #[arg(long)]
    pub public_url: Option<String>,

    /// Spectator events per second; the ticks in between are merged into each event.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub spectator_hz: u32,

    /// How long spectators can be away and still resume with exactly the events they missed.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub spectator_history: Duration,

    /// Most spectators (SSE streams plus waiting long-polls) at once; more get 503.
    #[arg(long, default_value_t = 1000)]
    pub max_spectators: usize,

    /// Most spectators (SSE streams plus waiting long-polls) from one client address (an
    /// IPv6 /64) at once; more get 503.
    #[arg(long, default_value_t = 50)]
    pub max_spectators_per_address: u32,

    /// Most spectators of one room on this server at once; more get 503. Defaults to half of
    /// --max-spectators, so no room can take every place.
    #[arg(long)]
    pub max_spectators_per_room: Option<usize>,

    /// In a cluster, most rooms of other nodes this node follows at once for its SSE and
    /// long-poll spectators (one Redis reader each); a spectator of one more gets 503.
    #[arg(long, default_value_t = 256)]
    pub max_followed_rooms: usize,

    /// Most TCP connections at once (players, spectators, polls); more are answered 503.
    /// Defaults to room for every player and spectator, plus 256.
    #[arg(long)]
    pub max_connections: Option<usize>,

    /// How long a connection may take to send a complete HTTP request head.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub head_timeout: Duration,

    /// Outbound messages queued per player before deltas are dropped for a later keyframe.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(2..=4096))]
    pub player_queue: u32,

    /// Close a player whose outbound queue stays full this long (e.g. "5s", "500ms").
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub slow_timeout: Duration,

    /// How long a player whose connection dropped (no goodbye) keeps its entity and its place,
    /// for its client to resume with the token of its welcome (rooms created through the
    /// API may choose their own, `reconnect_grace`). 0 leaves at once.
    #[arg(long, default_value = "15s", value_parser = parse_grace)]
    pub reconnect_grace: Duration,

    /// How far a player of the default room sees, in world units: each is sent only the
    /// entities within it (rooms created through the API choose their own, `view_radius`).
    /// Without it, everyone sees the whole world.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub view_radius: Option<u32>,

    /// Close a player from whom nothing (not even a pong to our pings) arrives this long.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// This server's own web origins (scheme://host[:port]), comma-separated: the pages it
    /// serves are loaded from these. Defaults to the bind address and its localhost forms.
    #[arg(long, value_delimiter = ',', value_parser = crate::access::origin::parse_origin)]
    pub public_origin: Vec<Origin>,

    /// Other web origins allowed to open player WebSockets, comma-separated, or "*" for any.
    /// Clients that send no Origin (native games, bots) are always allowed.
    #[arg(long, value_delimiter = ',', value_parser = crate::access::origin::parse_allowed)]
    pub allowed_origins: Vec<String>,

    /// Proxies in front of this server (addresses or blocks like 10.0.0.0/8, comma-separated):
    /// for requests from them, the client's address is read from X-Forwarded-For, so that the
    /// budgets per address count clients, not the proxy.
    #[arg(long, value_delimiter = ',')]
    pub trusted_proxies: Vec<crate::access::budgets::Cidr>,

    /// Require players to present a join token signed with this secret (see README, Security).
    #[arg(long, env = "TICKCAST_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,

    /// How long a new connection has to send its hello.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub hello_timeout: Duration,

    /// Give up on a socket write after this long and drop the connection.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// How long shutdown waits for connections to close before it stops anyway.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Join a cluster on this Redis (redis://host:port/db): rooms are placed on the
    /// least-loaded node, listed and spectated from any node (README, "Run a cluster"). Every
    /// node of a cluster must share --auth-secret (if any) and --admin-secret. Without it the
    /// server runs alone and needs nothing else.
    #[arg(long, env = "TICKCAST_REDIS", hide_env_values = true)]
    pub redis: Option<String>,

    /// This node's name in the cluster (letters, digits, `_`, `-`); generated when not given.
    #[arg(long)]
    pub node_id: Option<String>,

    /// A spectator edge: run no rooms here (no default room, and new rooms are placed on other
    /// nodes), only serve the cluster's spectators and rooms API. Needs --redis.
    #[arg(long)]
    pub no_rooms: bool,
}

impl Config {
    /// The defaults, as if no flags were given.
    pub fn defaults() -> Self {
        Self::parse_from(["tickcast"])
    }

    /// A room as these flags describe one (the default room's, and what a created room does
    /// not choose), with a random seed unless `--seed`.
    pub fn room_settings(&self) -> Settings {
        Settings {
            game: self.game.clone(),
            tick_hz: self.tick_hz,
            max_players: self.max_players,
            seed: self.seed.unwrap_or_else(rand::random),
            world_size: self.world_size,
            orbs: self.orbs,
            private: false,
            options: crate::protocol::Options::none(),
            after_match: crate::room::AfterMatch::default(),
            reconnect_grace_ms: self.reconnect_grace.as_millis() as u32,
            view_radius: self.view_radius,
        }
    }

    /// How every room of this server runs: what of these flags a room needs.
    pub fn tuning(&self) -> Tuning {
        Tuning {
            spectator_hz: self.spectator_hz,
            spectator_history: self.spectator_history,
            slow_timeout: self.slow_timeout,
            room_idle: self.room_idle,
        }
    }

    /// How many rooms opened without a credential may be open at once.
    pub fn max_anonymous_rooms(&self) -> usize {
        self.max_anonymous_rooms
            .unwrap_or(self.max_rooms * 3 / 4)
            .min(self.max_rooms)
    }

    /// How many spectators one room may have on this server.
    pub fn max_spectators_per_room(&self) -> usize {
        self.max_spectators_per_room
            .unwrap_or(self.max_spectators.div_ceil(2))
            .min(self.max_spectators)
    }

    /// Whether callers without a credential may create rooms.
    pub fn anonymous_may_create(&self) -> bool {
        self.admin_secret.is_none() || self.anonymous_rooms
    }

    /// The TCP connection cap in force.
    pub fn max_connections(&self) -> usize {
        self.max_connections
            .unwrap_or(self.max_players + self.max_spectators + 256)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::defaults()
    }
}

/// The longest reconnect grace, for the flag and for a room's own.
pub const MAX_RECONNECT_GRACE: Duration = Duration::from_secs(300);

/// Parses a reconnect grace: a duration of at most [`MAX_RECONNECT_GRACE`].
fn parse_grace(s: &str) -> Result<Duration, String> {
    let grace = parse_duration(s)?;
    if grace > MAX_RECONNECT_GRACE {
        return Err(format!("{s}: the reconnect grace is at most {MAX_RECONNECT_GRACE:?}"));
    }
    Ok(grace)
}

/// Parses "250ms", "5s" or "2m".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a number followed by ms, s or m, got {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("unknown unit {unit:?} in {s:?}: use ms, s or m")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn tick_rate_outside_1_to_240_is_refused() {
        assert!(Config::try_parse_from(["tickcast", "--tick-hz", "0"]).is_err());
        assert!(Config::try_parse_from(["tickcast", "--tick-hz", "241"]).is_err());
        assert_eq!(
            Config::try_parse_from(["tickcast", "--tick-hz", "240"])
                .unwrap()
                .tick_hz,
            240
        );
    }
}
