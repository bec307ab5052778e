//! Games as plug-ins: the [`Game`] trait a game implements, and the games that ship with the
//! server, each a `Game` like any other: [`arena`] (the benchmark workload: move and collect
//! orbs) and [`tanks`] (move, aim, fire), with the integer [`motion`] both use.
//!
//! A game is data plus a pure step. It says what it is made of ([`Game::schema`]: its entity
//! kinds and their fields, its input's fields, the messages players may send, the events it
//! tells, the options of a join and of a room), lets players join (or refuses them) and leave,
//! takes each player's messages and latest input, steps its world (deterministic for a seed: no
//! I/O, no clock, its randomness seeded), lists its entities, and tells what happened through
//! its [`Dispatch`]: events to everyone, a player or a team, and the end of the match with its
//! results. It never sees sockets, clocks or the encoder: diffing, encoding once per tick,
//! checksums, private fields, fan-out, slow consumers, spectators and metrics are the
//! engine's, for every game alike.
//!
//! The game layer is a leaf: it knows the protocol's schema types and nothing of the engine.
//! A game of your own needs nothing but this module, and is registered with the engine's
//! [`crate::Games`] (see `examples/tag.rs` and README, "Write your own game").

pub mod arena;
mod dispatch;
pub mod motion;
pub mod tanks;

pub use arena::Arena;
pub use dispatch::{Dispatch, EventError, MAX_TOLD_PER_TICK, To, Told};
pub use tanks::Tanks;

use std::sync::Arc;

pub use crate::protocol::delta::Entities;
use crate::protocol::delta::NetWorld;
pub use crate::protocol::rooms_api::Labels;
use crate::protocol::{EntityId, Message, Options, Schema, Text};

/// What a room gives its game: the settings of `POST /rooms` and the server's flags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GameConfig {
    /// Ticks per second: one [`Game::step`] is `1 / tick_hz` seconds of game time.
    pub tick_hz: u32,
    /// Side of the square world, in world units (`--world-size`).
    pub world_size: u32,
    /// How many collectibles the world holds, for games that have them (`--orbs`).
    pub orbs: u32,
    /// The room's options (`POST /rooms`, checked against the schema's `room_options`). The
    /// schema may not depend on them: [`Game::schema`] is given a config without any.
    pub options: Options,
}

impl Default for GameConfig {
    fn default() -> Self {
        Self {
            tick_hz: 30,
            world_size: 1000,
            orbs: 100,
            options: Options::none(),
        }
    }
}

/// A player asking to join: its name and its options (checked against the schema's).
#[derive(Debug, Clone, Copy)]
pub struct Join<'a> {
    /// The name from its hello (at most 32 bytes, no control characters; may be empty).
    pub name: &'a Text,
    /// The options from its hello.
    pub options: &'a Options,
}

/// Why a game refuses a join: the player is closed with code 4000 and this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(Text);

/// The longest refusal reason: a close frame's reason is at most 123 bytes.
pub const MAX_REFUSAL: usize = 120;

impl Refusal {
    /// A refusal saying `reason` (cut to [`MAX_REFUSAL`] bytes, control characters replaced).
    pub fn new(reason: &str) -> Self {
        Self(Text::lossy(reason, MAX_REFUSAL))
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

/// A game the engine can run in a room.
///
/// The engine calls, every tick, in this order: [`Game::join`] for players whose hello was
/// accepted, [`Game::message`] for each message a player sent (in the order each player sent
/// them), [`Game::input`] with each player's latest input (if it sent one since the last
/// tick), [`Game::step`], then [`Game::entities`] to see the world it diffs and sends; after
/// the tick's frames are sent, [`Game::leave`] for players who left. What a game tells through
/// its [`Dispatch`] (events, the end of the match) goes out with the tick's frame.
///
/// Only [`Game::NAME`], [`Game::schema`], [`Game::new`], [`Game::join`], [`Game::input`],
/// [`Game::step`] and [`Game::entities`] must be written; the rest have defaults.
pub trait Game: Send + 'static {
    /// The game's name: what `POST /rooms` and `--game` take, and the schema's `game`.
    const NAME: &'static str;

    /// What the game is made of: its entity kinds and their fields, its input's fields, its
    /// messages, events and options, the world's size for drawing. The same for every room
    /// made with `config` (which holds no room options).
    fn schema(config: &GameConfig) -> Schema;

    /// A fresh world; `seed` is its only source of randomness. The same `config` and `seed`
    /// must make the same game: a room nobody has played in keeps no copy of its world for
    /// spectators, but makes the game again when one needs it.
    fn new(config: &GameConfig, seed: u64) -> Self;

    /// A player joins; returns the id of the entity that is the player, or why it may not.
    fn join(&mut self, join: &Join<'_>, out: &mut Dispatch) -> Result<EntityId, Refusal>;

    /// Player `player` left (its entity should go).
    fn leave(&mut self, player: EntityId, out: &mut Dispatch) {
        let _ = (player, out);
    }

    /// Player `player`'s connection dropped: its seat is kept for the room's reconnect grace,
    /// and its input is neutral meanwhile (each field's value nearest 0; [`Game::input`] was
    /// just called with it). [`Game::back`] follows if it comes back in time, else
    /// [`Game::leave`]. The entity may show it (a greyed-out tank).
    fn away(&mut self, player: EntityId, out: &mut Dispatch) {
        let _ = (player, out);
    }

    /// Player `player`, away, took its seat back: its inputs come again.
    fn back(&mut self, player: EntityId, out: &mut Dispatch) {
        let _ = (player, out);
    }

    /// Player `player` sent `message`, of one of the schema's message kinds, its values
    /// checked against the kind's parameters.
    fn message(&mut self, player: EntityId, message: &Message, out: &mut Dispatch) {
        let _ = (player, message, out);
    }

    /// Player `player`'s input from now on: one value per input field of the schema, each
    /// within the field's range (the engine has checked).
    fn input(&mut self, player: EntityId, input: &[i32]);

    /// Advances the world by one tick.
    fn step(&mut self, out: &mut Dispatch);

    /// Every entity now, in strictly ascending id order, pushed to `out`. Ids are never reused
    /// within a match and never 0; a field value the schema does not name must be 0.
    fn entities(&self, out: &mut Entities<'_>);

    /// The room's labels, which `GET /rooms` shows and matchmaking filters by (`mode`, `map`):
    /// asked when a match starts.
    fn labels(&self, out: &mut Labels) {
        let _ = out;
    }

    /// Who sees `entity` in a room with a view radius (POST /rooms `view_radius`): the players
    /// whose view it is in ([`Audience::Near`], the default), every player (a scoreboard, a
    /// flag carrier), or the players of one team whose view it is in (fog of war). Asked once
    /// a tick for each entity, only in rooms with a view radius.
    fn audience(&self, entity: &crate::protocol::Entity) -> Audience {
        let _ = entity;
        Audience::Near
    }

    /// The team `player` plays in, for events told to a team ([`To::Team`]).
    fn team(&self, player: EntityId) -> Option<u32> {
        let _ = player;
        None
    }
}

/// Who sees an entity in a room with a view radius ([`Game::audience`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Audience {
    /// The players whose view it is in: within the view radius of their own entity (and a
    /// little more: views are cut along a grid of cells as wide as the radius).
    #[default]
    Near,
    /// Every player, wherever it is.
    Everyone,
    /// The players of this team ([`Game::team`]) whose view it is in.
    Team(u32),
}

/// A game played without a server, with its own [`Dispatch`]: for tests, benches and tools
/// that drive a game directly (what a room's tick loop does, minus the players' sockets).
#[derive(Debug)]
pub struct Sandbox<G> {
    /// The game.
    pub game: G,
    /// What it told (events, an end), until taken.
    pub out: Dispatch,
    schema: Arc<Schema>,
}

impl<G: Game> Sandbox<G> {
    /// A fresh game of `config` and `seed`.
    pub fn new(config: &GameConfig, seed: u64) -> Self {
        let schema = Arc::new(G::schema(&GameConfig {
            options: Options::none(),
            ..config.clone()
        }));
        Self {
            game: G::new(config, seed),
            out: Dispatch::new(schema.clone()),
            schema,
        }
    }

    /// The game's schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Joins a player named `name` with no options.
    pub fn join(&mut self, name: &str) -> Result<EntityId, Refusal> {
        self.join_with(name, &Options::none())
    }

    /// Joins a player named `name` with `options`.
    pub fn join_with(&mut self, name: &str, options: &Options) -> Result<EntityId, Refusal> {
        let name = Text::lossy(name, crate::protocol::MAX_NAME_LEN);
        self.game.join(&Join { name: &name, options }, &mut self.out)
    }

    /// Player `player` leaves.
    pub fn leave(&mut self, player: EntityId) {
        self.game.leave(player, &mut self.out);
    }

    /// Player `player` sends `message`.
    pub fn message(&mut self, player: EntityId, message: &Message) {
        self.game.message(player, message, &mut self.out);
    }

    /// One tick.
    pub fn step(&mut self) {
        self.game.step(&mut self.out);
    }

    /// The world now, as the engine captures it, at `tick`.
    pub fn world(&self, tick: u64) -> NetWorld {
        let mut world = NetWorld::default();
        self.capture(&mut world, tick);
        world
    }

    /// Captures the world now into `world`, at `tick` (keeping its allocations).
    pub fn capture(&self, world: &mut NetWorld, tick: u64) {
        self.game.entities(&mut world.capture(tick, &self.schema));
    }
}
