//! Games as plug-ins: the [`Game`] trait a game implements, and the [`Games`] a server knows.
//!
//! A game is data plus a pure step. It says what it is made of ([`Game::schema`]: its entity
//! kinds and their fields, its input's fields), lets players join and leave, takes each
//! player's latest input, steps its world (deterministic for a seed: no I/O, no clock, its
//! randomness seeded), and lists its entities. It never sees sockets, clocks or the encoder:
//! diffing, encoding once per tick, checksums, fan-out, slow consumers, spectators and
//! metrics are the engine's, for every game alike.
//!
//! This folder owns the trait and the registry; the built-in games (arena, tanks) are in
//! [`crate::games`], and a game of your own needs nothing but this module (see
//! `examples/tag.rs` and README, "Write your own game").

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

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

/// What the engine keeps of a registered game: its name, and how to make its schema and start
/// its rooms' tick loops (a monomorphized loop per game, so a game's calls are static).
#[derive(Clone)]
pub(crate) struct Registered {
    pub(crate) schema: fn(&GameConfig) -> Schema,
    pub(crate) start: crate::room::tick::Start,
    /// The schema for each config rooms were opened with: rooms alike share one. (Configs
    /// differ only in what the server's flags and `POST /rooms` allow: a few at most.)
    schemas: Arc<Mutex<HashMap<GameConfig, Arc<Schema>>>>,
}

impl Registered {
    /// The schema of a room of this game opened with `config`.
    pub(crate) fn schema_for(&self, config: &GameConfig) -> Arc<Schema> {
        // Nothing panics while holding it (a lookup, an insert).
        let mut schemas = self.schemas.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        schemas
            .entry(*config)
            .or_insert_with(|| Arc::new((self.schema)(config)))
            .clone()
    }
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered").finish_non_exhaustive()
    }
}

/// The games a server can run, by name.
#[derive(Debug, Clone, Default)]
pub struct Games {
    by_name: BTreeMap<&'static str, Registered>,
}

/// Why a game could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Its schema breaks a rule every schema keeps.
    #[error("game {game}: bad schema: {why}")]
    Schema {
        /// The game.
        game: &'static str,
        /// What is wrong.
        why: String,
    },
    /// Its schema's `game` is not its `NAME`.
    #[error("game {0}: its schema names another game")]
    Name(&'static str),
}

impl Games {
    /// The built-in games: arena and tanks.
    pub fn builtin() -> Self {
        let mut games = Self::default();
        // The built-in schemas are checked by their own tests.
        games
            .register::<crate::games::Arena>()
            .expect("arena's schema is valid");
        games.register::<crate::games::Tanks>().expect("tanks' schema is valid");
        games
    }

    /// Adds `G` (replacing a game of the same name). Its schema is checked here, with the
    /// default config, so a broken game fails at start rather than at its first room.
    pub fn register<G: Game>(&mut self) -> Result<(), RegisterError> {
        let schema = G::schema(&GameConfig::default());
        schema.validate().map_err(|err| RegisterError::Schema {
            game: G::NAME,
            why: err.to_string(),
        })?;
        if schema.game != G::NAME {
            return Err(RegisterError::Name(G::NAME));
        }
        self.by_name.insert(
            G::NAME,
            Registered {
                schema: G::schema,
                start: crate::room::tick::start::<G>,
                schemas: Arc::default(),
            },
        );
        Ok(())
    }

    /// The game named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Registered> {
        self.by_name.get(name)
    }

    /// The names of the games, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.by_name.keys().copied().collect()
    }
}

/// The games of a server, shared by its rooms API and its rooms.
pub(crate) type SharedGames = Arc<Games>;
