//! tickcast: an authoritative fixed-tick multiplayer game-state server.
//!
//! Each room's tick loop owns its world and advances it at a fixed rate. Players connect over
//! WebSocket, send binary inputs and receive a state delta every tick, encoded once for all;
//! they probe latency with ping/pong, answered by their own connection without waiting for a
//! tick. Spectators follow a room's feed over Server-Sent Events, long-polling or polling.
//!
//! # Module map
//! Top down, each layer importing only the layers below (ARCHITECTURE.md draws them):
//! - [`server`]: routes, startup and shutdown; [`http`]: the accept loop and its limits.
//! - The endpoints: `api` (the rooms API: list, create, close, matchmake), [`players`] (a
//!   player's socket and session), `spectators` (SSE, long-poll, polling), `web` (the pages
//!   and the JavaScript client). `state`: what they all share.
//! - [`cluster`] (with `--redis`): nodes on Redis, the directory of rooms, placement,
//!   requests between nodes, and each room's spectator stream, followed from any node.
//! - [`rooms`]: the rooms of this process, and the registry of the games they play.
//! - [`room`]: one match: its tick loop, roster, player queues and places.
//! - `feed`: a room's spectator feed: events encoded once, the resume ring, the snapshot.
//! - [`game`]: the [`game::Game`] trait a game implements, and arena and tanks.
//! - [`protocol`]: every wire message, the schema, the quantized world and its diffs, the
//!   WebSocket frames, how a room ends (PROTOCOL.md).
//! - [`access`] (web origins, the budgets of callers without a credential), [`auth`] (join
//!   and identity tokens), [`metrics`], [`config`]; [`client`]: a player client for Rust
//!   programs (tests, client-demo, benches).
//!
//! # The tick, step by step (in each room)
//! 1. Admit players whose hello was accepted since the last tick: the game lets each join
//!    (it is sent a welcome) or refuses it (closed 4000 with the game's reason).
//! 2. Give the game each player's messages, in the order sent, then its latest input (older
//!    inputs in the same tick are superseded: a player's input slot keeps only the latest).
//! 3. Step the game by `1 / tick_hz` seconds.
//! 4. Capture the world, diff its public fields against the last tick's and encode the delta
//!    once; take the events the game told.
//! 5. Write each player its delta with its own input ack, or a keyframe if it is new or fell
//!    behind, then its own private fields and the events told to it, straight to its socket,
//!    a chunk of players at a time; what a socket does not take at once waits in the player's
//!    bounded queue, and a player whose queue stays full is closed as too slow.
//! 6. Remove the players found too slow or gone (found by their write): they leave the world
//!    in the next tick's delta.
//! 7. Publish the tick's public events to spectators, and every `tick_hz / spectator_hz`
//!    ticks, and when the last player leaves, one spectator event: the diff since the
//!    previous event, encoded once for every spectator.
//! 8. If the game ended its match: every player gets `MatchEnded` and spectators `ended`,
//!    with the results; the room closes, or starts the next match, as its settings say.
//!
//! A room with no players does not tick at all: it waits for a join, holding no timer (one
//! sweep finds the rooms idle too long) and its spectators' world packed, or none at all if
//! nobody has played in it yet (its game makes it again).
#![warn(missing_docs)]

pub mod access;
mod api;
pub mod auth;
pub mod client;
pub mod cluster;
pub mod config;
pub(crate) mod feed;
pub mod game;
pub mod http;
pub mod metrics;
pub mod players;
pub mod protocol;
pub mod room;
pub mod rooms;
mod runtime;
pub mod server;
mod spectators;
mod state;
mod web;

pub use config::Config;
pub use rooms::registry::{Games, RegisterError};
pub use server::Server;
