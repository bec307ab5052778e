//! tickcast: an authoritative fixed-tick multiplayer game-state server.
//!
//! One task owns the world and advances it at a fixed rate. Players connect over WebSocket,
//! send binary inputs and receive a state delta every tick; they probe latency with
//! ping/pong, answered by their own connection task without waiting for a tick.
//!
//! # Module map
//! Top down: the server, what it serves, the rooms, one room, the wire and the game.
//! - [`server`]: routes, startup and shutdown. [`http`]: the accept loop and its limits
//!   (connections, request heads, slow peers). `state`: what every handler and session shares.
//! - `api`: the rooms API (list, create, close, matchmake). `session`: one player's connection,
//!   from upgrade to close. `spectators`: SSE, long-poll, polling and the pages.
//! - [`rooms`]: the rooms of this process. [`cluster`] (with `--redis`): nodes on Redis, the
//!   directory of rooms (where a room lives is one lookup), placement, requests between
//!   nodes, and each room's spectator stream, served from any node.
//! - [`room`]: one match: its tick loop, roster, player queues, places and spectator feed.
//! - `socket`: the player WebSocket. `frames`: WebSocket frames, read (every one counted)
//!   and formatted once.
//! - [`protocol`]: every wire message, its one encoding and the game's schema (PROTOCOL.md).
//! - [`delta`]: the quantized world as the wire sees it; diffs and their application.
//! - [`game`]: the [`game::Game`] trait a game implements (a schema, join and leave, inputs,
//!   a pure `step`) and the registry of games. [`games`]: the built-in ones, arena and tanks.
//! - [`metrics`], [`config`], [`auth`] (join and identity tokens), [`limits`] (a player's
//!   message rate), [`budgets`] (what callers without a credential may take), [`origin`]
//!   (which web origins may open player sockets).
//! - [`client`]: a player client for Rust programs (tests, client-demo, benches).
//!
//! # The tick, step by step (in each room)
//! 1. Admit players whose hello was accepted (each is sent a welcome).
//! 2. Take each player's latest input (older ones in the same tick are superseded).
//! 3. Step the game by `1 / tick_hz` seconds.
//! 4. Quantize, diff against the previous tick and encode the shared delta body once.
//! 5. Write each player its delta with its own input ack, or a keyframe if it is new or fell
//!    behind, straight to its socket (yielding to the runtime every 16 writes in a room of
//!    more than 16, split over the workers in a room of 256 or more); what a
//!    socket does not take waits in the player's bounded queue, and a player whose queue stays
//!    full is closed as too slow.
//! 6. Remove the players found too slow, and those whose connection ended (found by their
//!    write): they leave the world in the next tick's delta.
//! 7. Every `tick_hz / spectator_hz` ticks, publish one spectator event: the diff since the
//!    previous event, encoded once for every spectator.
//!
//! A room with no players does not tick at all: it waits for a join.
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
