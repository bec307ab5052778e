//! Seats kept for players whose connection dropped, and the resume tokens that take them back.
//!
//! Every welcome carries a resume token: the room's id and a secret of 128 random bits, valid
//! until the player's next welcome. A player whose connection ends without a goodbye (the
//! network dropped it, it went silent, or it fell too far behind) keeps its entity and its
//! place for the room's grace, counted in ticks; its input is neutral meanwhile. A hello with
//! the secret takes the seat back (a new secret comes with the new welcome, so a token works
//! once); after the grace the player leaves the game as if it had said goodbye.
//!
//! The tick loop owns one [`Seats`]; nothing here reads a clock.

use std::collections::{BTreeMap, HashMap};

use foldhash::fast::RandomState;

use crate::protocol::EntityId;
use crate::room::places::Place;
use crate::room::roster::Joined;

/// Keyed by ids the server gives and secrets it draws, which a peer cannot choose to collide:
/// foldhash, whose state is 8 bytes to SipHash's 16 in every room.
type Map<K, V> = HashMap<K, V, RandomState>;

/// A resume token's secret: 128 random bits.
pub type Secret = u128;

/// The text of a resume token: `<room id>.<secret as 32 hex digits>`.
pub fn token(room: &str, secret: Secret) -> String {
    format!("{room}.{secret:032x}")
}

/// Reads a resume token: its room's id and its secret; `None` if it is not one (a room id by
/// the rooms API's rules, a dot, 32 lowercase hex digits).
pub fn parse_token(token: &str) -> Option<(&str, Secret)> {
    let (room, secret) = token.rsplit_once('.')?;
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if secret.len() != 32 || !secret.bytes().all(hex) || crate::protocol::rooms_api::RoomId::parse(room).is_none() {
        return None;
    }
    Some((room, Secret::from_str_radix(secret, 16).ok()?))
}

/// A player away: what it comes back to.
#[derive(Debug)]
pub struct Away {
    /// Who it joined as (a new match's welcome would need it).
    pub joined: Joined,
    /// Its place among the room's players, kept.
    pub place: Option<Place>,
    /// The `seq` of its last move applied.
    pub ack: u32,
    /// The first tick at which its seat is given up.
    until: u64,
}

/// The seats of one room's players: the secret of each, and those kept for players away.
#[derive(Debug, Default)]
pub struct Seats {
    /// Ticks a seat is kept after its player's connection dropped (0: not kept).
    grace_ticks: u64,
    /// Only while anyone is seated: a room nobody plays in holds none of it.
    held: Option<Box<Held>>,
}

#[derive(Debug, Default)]
struct Held {
    /// The secret each seated player (connected or away) resumes with.
    secrets: Map<EntityId, Secret>,
    /// And whose seat each secret takes.
    holders: Map<Secret, EntityId>,
    away: BTreeMap<EntityId, Away>,
}

impl Seats {
    /// Seats kept for `grace_ticks` ticks after a drop.
    pub fn new(grace_ticks: u64) -> Self {
        Self {
            grace_ticks,
            held: None,
        }
    }

    /// Whether seats are kept at all.
    pub fn keeps(&self) -> bool {
        self.grace_ticks > 0
    }

    /// A new secret for `id`'s seat, from the operating system's generator; its last one no
    /// longer works.
    pub fn issue(&mut self, id: EntityId) -> Secret {
        let held = self.held.get_or_insert_with(Box::default);
        let secret = loop {
            let secret = rand::random::<Secret>();
            if !held.holders.contains_key(&secret) {
                break secret;
            }
        };
        if let Some(old) = held.secrets.insert(id, secret) {
            held.holders.remove(&old);
        }
        held.holders.insert(secret, id);
        secret
    }

    /// Whose seat `secret` takes, if it is a live one.
    pub fn holder(&self, secret: Secret) -> Option<EntityId> {
        self.held.as_ref()?.holders.get(&secret).copied()
    }

    /// `id`'s player left for good: its secret no longer works.
    pub fn forget(&mut self, id: EntityId) {
        let Some(held) = &mut self.held else { return };
        if let Some(secret) = held.secrets.remove(&id) {
            held.holders.remove(&secret);
        }
        held.away.remove(&id);
        if held.secrets.is_empty() && held.away.is_empty() {
            self.held = None;
        }
    }

    /// Keeps `id`'s seat, from `tick` on, for the grace.
    pub fn hold(&mut self, id: EntityId, joined: Joined, place: Option<Place>, ack: u32, tick: u64) {
        let until = tick + self.grace_ticks;
        self.held.get_or_insert_with(Box::default).away.insert(
            id,
            Away {
                joined,
                place,
                ack,
                until,
            },
        );
    }

    /// Takes `id`'s kept seat, if it is away (its secret stays: it is seated again).
    pub fn take_away(&mut self, id: EntityId) -> Option<Away> {
        self.held.as_mut()?.away.remove(&id)
    }

    /// Gives up the seats whose grace is over at `tick`, and returns their players.
    pub fn expired(&mut self, tick: u64) -> Vec<EntityId> {
        let Some(held) = &self.held else { return Vec::new() };
        if held.away.values().all(|away| away.until > tick) {
            return Vec::new();
        }
        let gone: Vec<EntityId> = held
            .away
            .iter()
            .filter(|(_, away)| away.until <= tick)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.forget(*id);
        }
        gone
    }

    /// Players away now.
    pub fn away(&self) -> usize {
        self.held.as_ref().map_or(0, |held| held.away.len())
    }

    /// Whether nobody is away.
    pub fn none_away(&self) -> bool {
        self.away() == 0
    }

    /// Every seat goes (a new match: its players are welcomed again, with new secrets; those
    /// away are not in it). Returns how many were away.
    pub fn clear(&mut self) -> usize {
        let away = self.away();
        self.held = None;
        away
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Options, Text};

    fn joined() -> Joined {
        Joined {
            name: Text::empty(),
            options: Options::none(),
        }
    }

    #[test]
    fn tokens_name_their_room_and_a_secret_of_32_hex_digits() {
        let t = token("lobby-1", 0xab);
        assert_eq!(t, "lobby-1.000000000000000000000000000000ab");
        assert_eq!(parse_token(&t), Some(("lobby-1", 0xab)));
        for bad in [
            "",
            "lobby",
            "lobby.ab",
            "lobby.+0000000000000000000000000000ab",
            "x.zz000000000000000000000000000000",
            &format!("lobby.{}", "AB".repeat(16)),
            &format!(".{}", "0".repeat(32)),
            &format!("a.b.{}", "0".repeat(32)),
            &format!(" lobby.{}", "0".repeat(32)),
        ] {
            assert_eq!(parse_token(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_secret_works_until_the_next_is_issued_and_a_seat_expires_after_its_grace() {
        let mut seats = Seats::new(30);
        let first = seats.issue(7);
        assert_eq!(seats.holder(first), Some(7));
        let second = seats.issue(7);
        assert_eq!(seats.holder(first), None, "a token works once");
        assert_eq!(seats.holder(second), Some(7));
        seats.hold(7, joined(), None, 12, 100);
        assert!(seats.expired(129).is_empty());
        assert_eq!(seats.take_away(7).map(|a| a.ack), Some(12));
        seats.hold(7, joined(), None, 12, 100);
        assert_eq!(seats.expired(130), vec![7]);
        assert_eq!(seats.holder(second), None, "an expired seat's token is dead");
        assert!(seats.none_away());
        assert!(seats.held.is_none(), "nobody seated: nothing held");
    }
}
