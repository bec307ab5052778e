//! What follows a tick's frame for each player: its private fields, and the events it is told.
//!
//! Built once per tick, before the fan-out, and shared by its parts. A game that has no
//! private fields and told nothing costs nothing here: [`Extras::is_empty`], and the fan-out
//! writes the frame alone. Events told to everyone are encoded once for all; a player told
//! something of its own (or its team's) gets its events encoded for it, in the order the game
//! told them. Private fields go to their owner only: what changed, all of them after a
//! keyframe, and their checksum once a second.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};

use crate::game::{Game, To, Told};
use crate::protocol::delta::NetWorld;
use crate::protocol::frames;
use crate::protocol::{EntityId, Events, GameEvent, PrivateUpdate, Schema, ServerMsg};

/// What follows the frame, by player.
#[derive(Debug, Default)]
pub struct Extras {
    /// The tick's events told to every player, framed once, for those told nothing else.
    shared_events: Option<Bytes>,
    /// The events of players told something of their own: all they are told this tick.
    events: HashMap<EntityId, Bytes>,
    /// Private fields that changed (and their checksum, once a second), by owner.
    private: HashMap<EntityId, Bytes>,
    /// Every private field of each player owed a keyframe.
    private_full: HashMap<EntityId, Bytes>,
}

/// What a tick gives [`Extras::build`].
pub(crate) struct TickOutput<'a, G> {
    pub(crate) game: &'a G,
    pub(crate) schema: &'a Schema,
    /// The events told this tick, in order.
    pub(crate) told: &'a [Told],
    /// The world players held before this tick, and the world now.
    pub(crate) before: &'a NetWorld,
    pub(crate) now: &'a NetWorld,
    /// Whether this tick carries checksums.
    pub(crate) checksum: bool,
}

impl Extras {
    /// What follows nobody's frame: one for every room, so a tick of a game without extras
    /// allocates nothing for them, and a room holds nothing for it.
    pub(crate) fn none() -> Arc<Self> {
        static NONE: OnceLock<Arc<Extras>> = OnceLock::new();
        NONE.get_or_init(Arc::default).clone()
    }

    /// What this tick sends each of `players` after its frame; `keyframed` are the players
    /// owed a keyframe (their private fields go whole).
    pub(crate) fn build<G: Game>(
        out: &TickOutput<'_, G>,
        players: impl Iterator<Item = EntityId> + Clone,
        keyframed: impl Iterator<Item = EntityId>,
    ) -> Self {
        let mut extras = Self::default();
        if !out.told.is_empty() {
            extras.events(out, players.clone());
        }
        if out.schema.has_private() {
            extras.private(out, players, keyframed);
        }
        extras
    }

    fn events<G: Game>(&mut self, out: &TickOutput<'_, G>, players: impl Iterator<Item = EntityId>) {
        let tick = out.now.tick();
        let encode = |events: Vec<GameEvent>| {
            frames::binary_frame(ServerMsg::Events(Events { tick, events }).encode(out.schema))
        };
        let to_all: Vec<GameEvent> = out
            .told
            .iter()
            .filter(|t| t.to == To::All)
            .map(|t| t.event.clone())
            .collect();
        if to_all.len() < out.told.len() {
            // Someone is told something of its own: each such player's events, in order.
            let teams = out.told.iter().any(|t| matches!(t.to, To::Team(_)));
            for player in players {
                let team = if teams { out.game.team(player) } else { None };
                let own = |to: To| match to {
                    To::All => false,
                    To::Player(p) => p == player,
                    To::Team(t) => team == Some(t),
                };
                if !out.told.iter().any(|t| own(t.to)) {
                    continue;
                }
                let mine = out
                    .told
                    .iter()
                    .filter(|t| t.to == To::All || own(t.to))
                    .map(|t| t.event.clone())
                    .collect();
                self.events.insert(player, encode(mine));
            }
        }
        if !to_all.is_empty() {
            self.shared_events = Some(encode(to_all));
        }
    }

    fn private<G: Game>(
        &mut self,
        out: &TickOutput<'_, G>,
        players: impl Iterator<Item = EntityId>,
        keyframed: impl Iterator<Item = EntityId>,
    ) {
        let mut changed: HashMap<EntityId, Vec<PrivateUpdate>> = HashMap::new();
        out.before.private_changes(out.now, out.schema, |owner, update| {
            changed.entry(owner).or_default().push(update)
        });
        let sums = if out.checksum {
            out.now.private_checksums(out.schema)
        } else {
            HashMap::new()
        };
        for player in players {
            let entries = changed.remove(&player).unwrap_or_default();
            let checksum = sums.get(&player).copied();
            if entries.is_empty() && checksum.is_none() {
                continue;
            }
            let bytes = out.now.encode_private(false, &entries, checksum, out.schema);
            self.private.insert(player, frames::binary_frame(bytes));
        }
        for player in keyframed {
            let entries = out.now.private_of(out.schema, player);
            let checksum = Some(out.now.private_checksum(out.schema, player));
            let bytes = out.now.encode_private(true, &entries, checksum, out.schema);
            self.private_full.insert(player, frames::binary_frame(bytes));
        }
    }

    /// Whether nothing follows anyone's frame this tick.
    pub fn is_empty(&self) -> bool {
        self.shared_events.is_none()
            && self.events.is_empty()
            && self.private.is_empty()
            && self.private_full.is_empty()
    }

    /// The events `player` is told this tick, framed.
    pub fn events_for(&self, player: EntityId) -> Option<&Bytes> {
        self.events.get(&player).or(self.shared_events.as_ref())
    }

    /// What follows `player`'s frame: its private fields (all of them if it gets a keyframe),
    /// the events it is owed from ticks whose frame was dropped, and this tick's.
    pub fn after(&self, player: EntityId, keyframe: bool, owed: &[Bytes]) -> Option<Bytes> {
        let private = if keyframe {
            self.private_full.get(&player)
        } else {
            self.private.get(&player)
        };
        let parts: Vec<&Bytes> = private.into_iter().chain(owed).chain(self.events_for(player)).collect();
        match parts.as_slice() {
            [] => None,
            [one] => Some((*one).clone()),
            many => {
                let mut all = BytesMut::with_capacity(many.iter().map(|b| b.len()).sum());
                many.iter().for_each(|b| all.extend_from_slice(b));
                Some(all.freeze())
            }
        }
    }
}
