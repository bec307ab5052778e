//! Games as plug-ins: the [`Game`] trait a game implements, and the games that ship with the
//! server, each a `Game` like any other: [`arena`] (the benchmark workload: move and collect
//! orbs) and [`tanks`] (move, aim, fire), with the integer [`motion`] both use.
//!
//! A game is data plus a pure step. It says what it is made of ([`Game::schema`]: its entity
//! kinds and their fields, its input's fields), lets players join and leave, takes each
//! player's latest input, steps its world (deterministic for a seed: no I/O, no clock, its
//! randomness seeded), and lists its entities. It never sees sockets, clocks or the encoder:
//! diffing, encoding once per tick, checksums, fan-out, slow consumers, spectators and
//! metrics are the engine's, for every game alike.
//!
//! The game layer is a leaf: it knows the protocol's schema types and nothing of the engine.
//! A game of your own needs nothing but this module, and is registered with the engine's
//! [`crate::Games`] (see `examples/tag.rs` and README, "Write your own game").

pub mod arena;
pub mod motion;
pub mod tanks;

pub use arena::Arena;
pub use tanks::Tanks;

use crate::protocol::{Entity, EntityId, Schema};

/// What a room gives its game: the settings of `POST /rooms` and the server's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GameConfig {
    /// Ticks per second: one [`Game::step`] is `1 / tick_hz` seconds of game time.
    pub tick_hz: u32,
    /// Side of the square world, in world units (`--world-size`).
    pub world_size: u32,
    /// How many collectibles the world holds, for games that have them (`--orbs`).
    pub orbs: u32,
}

impl Default for GameConfig {
    fn default() -> Self {
        Self {
            tick_hz: 30,
            world_size: 1000,
            orbs: 100,
        }
    }
}

/// A game the engine can run in a room.
///
/// The engine calls, every tick, in this order: [`Game::join`] for players whose hello was
/// accepted, [`Game::leave`] for players who left, [`Game::input`] with each player's latest
/// input (if it sent one since the last tick), [`Game::step`], then [`Game::entities`] to see
/// the world it diffs and sends.
pub trait Game: Send + 'static {
    /// The game's name: what `POST /rooms` and `--game` take, and the schema's `game`.
    const NAME: &'static str;

    /// What the game is made of: its entity kinds and their fields, its input's fields, the
    /// world's size for drawing. The same for every room made with `config`.
    fn schema(config: &GameConfig) -> Schema;

    /// A fresh world; `seed` is its only source of randomness.
    fn new(config: &GameConfig, seed: u64) -> Self;

    /// A player joins under `name`; returns the id of the entity that is the player.
    fn join(&mut self, name: &str) -> EntityId;

    /// Player `player` left (its entity should go).
    fn leave(&mut self, player: EntityId);

    /// Player `player`'s input from now on: one value per input field of the schema, each
    /// within the field's range (the engine has checked).
    fn input(&mut self, player: EntityId, input: &[i32]);

    /// Advances the world by one tick.
    fn step(&mut self);

    /// Every entity now, in strictly ascending id order, appended to `out` (which the engine
    /// has cleared). Ids are never reused and never 0; a field value the schema does not name
    /// must be 0.
    fn entities(&self, out: &mut Vec<Entity>);
}
