//! The games a server can run, by name, and how the engine starts a room of each.
//!
//! The engine's side of games as plug-ins: a [`crate::game::Game`] knows nothing of rooms;
//! registering it here makes a monomorphized tick loop for it, and checks its schema once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::game::{Game, GameConfig};
use crate::protocol::Schema;

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
    /// The schema of a room of this game opened with `config` (which holds no room options:
    /// `Settings::schema_config`).
    pub(crate) fn schema_for(&self, config: &GameConfig) -> Arc<Schema> {
        // Nothing panics while holding it (a lookup, an insert).
        let mut schemas = self.schemas.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        schemas
            .entry(config.clone())
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
        games.register::<crate::game::Arena>().expect("arena's schema is valid");
        games.register::<crate::game::Tanks>().expect("tanks' schema is valid");
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
