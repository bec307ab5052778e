//! client-demo: the reference tickcast client, and the tool we load the server with.
//!
//! Read this crate to learn how a client talks to tickcast. The protocol itself (hello and
//! welcome, snapshot and deltas, moves with sequence numbers, ping and pong, close reasons) is
//! handled by [`tickcast::client::Client`]; everything here is what a real client builds
//! around it.
//!
//! # Module map
//! - [`connect`]: default addresses, connecting with a deadline, the loopback-only rule for
//!   load, and a hint for every way connecting fails.
//! - [`stats`]: RTT statistics (an HDR histogram) and their summary.
//! - [`arena`]: reading the world: sizes, nearest orb, leaderboard.
//! - [`behaviour`]: what a bot decides, as pure functions of the world and a seed.
//! - [`bot`]: one bot, one task: the `select!` loop every client should look like.
//! - [`swarm`]: many bots, ramped and bounded in time, with live progress.
//! - [`report`]: the swarm's report, as text or JSON.
//! - [`keys`], [`draw`], [`play`]: the terminal player: keys to commands, the screen drawn into
//!   a buffer, and the loop that ties them to the connection.
//! - [`sse`], [`feed`], [`spectate`]: the spectator: a server-sent events parser, the feed's
//!   JSON events and world, and the HTTP follower.
//! - [`cli`]: what our command-line tools do around their work (ctrl-c, logging, failing with
//!   a hint), shared with `tickcast-bench`.
//! - [`told`]: what a game told (kills, chat), as lines for people; [`chat`]: chat messages
//!   built from the schema, and the line `play` types.
//!
//! The measuring commands (`load`, `idle`, `transports`, `soak`, `attack`, `cluster`) are the
//! `tickcast-bench` crate's: it drives this crate's bots against the release server.
//!
//! # A client's loop, step by step
//! This is [`bot`]'s loop, and [`play`]'s with keys added:
//! 1. Connect: the WebSocket, then the hello, then the welcome (player id, tick rate, world
//!    size). A refused connection, a wrong protocol version and a full server each fail here
//!    with their own error.
//! 2. Wait in one `select!` for whichever comes first: a server message, the move timer, the
//!    ping timer, or the stop signal. `Client::recv` is cancel-safe, so losing the race to a
//!    timer loses no message.
//! 3. A snapshot replaces the local world; a delta advances it. Once a second a delta carries
//!    the server's world checksum, checked by `recv`: a mismatch is a desync, and the remedy is
//!    a new connection, which starts with a fresh snapshot.
//! 4. A pong gives a round-trip time for the [`stats`] histogram.
//! 5. On a timer, send a move (each gets the next sequence number; the server acks the last one
//!    it applied) or a ping.
//! 6. Events the game tells (a kill, a chat line) and the end of a match arrive after their
//!    tick's frame; a new match starts with a new welcome and snapshot on the same connection.
//! 7. A close from the server ends the loop with its code and reason.

pub mod arena;
pub mod behaviour;
pub mod bot;
pub mod chat;
pub mod cli;
pub mod connect;
pub mod draw;
pub mod feed;
pub mod keys;
pub mod play;
pub mod report;
pub mod spectate;
pub mod sse;
pub mod stats;
pub mod swarm;
pub mod told;
