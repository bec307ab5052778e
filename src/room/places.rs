//! A room's player places: taken by a valid hello, held for a while by matchmaking.
//!
//! Matchmaking hands a player a room and, when tokens are on, a token for that room; between
//! that answer and the player's hello, another matchmaker must not give the same place away.
//! So matchmaking *holds* a place for a name, for [`HOLD_FOR`]; the hello under that name
//! takes the held place, and a place not claimed in time is free again. Holds count against
//! the room's `max_players` like players do, but never take more than half of the places no
//! player has ([`HOLD_SHARE`]), so a player who connects to the room directly always finds
//! one. A hold is never renewed (asking again for the same name answers the same hold, with
//! its first deadline), and a name that is playing in the room cannot be held there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::access::budgets::HoldClaim;

/// How long a place held by matchmaking waits for its player's hello.
pub const HOLD_FOR: Duration = Duration::from_secs(30);

/// Holds may take at most this share (numerator, denominator) of the places no player has,
/// rounded up: the rest is always free for players who join the room directly.
pub const HOLD_SHARE: (usize, usize) = (1, 2);

/// The places of one room.
#[derive(Debug)]
pub struct PlayerPlaces {
    max: usize,
    // A std Mutex: every critical section is a few comparisons, never held across an await.
    inner: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    taken: usize,
    /// The names playing, with how many players use each (names are not unique).
    playing: HashMap<Box<str>, u32>,
    /// Places held for names, oldest first.
    held: Vec<Hold>,
}

#[derive(Debug)]
struct Hold {
    name: Box<str>,
    until: Instant,
    /// Keeps the hold counted against the address that asked for it, until it goes.
    _claim: Option<HoldClaim>,
}

impl Counts {
    fn prune(&mut self, now: Instant) {
        self.held.retain(|hold| hold.until > now);
    }

    fn hold_of(&self, name: &str) -> Option<usize> {
        self.held.iter().position(|hold| &*hold.name == name)
    }
}

/// Why a place could not be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    /// No place is free, or holds already take their share of the free places.
    #[error("no place to hold")]
    Full,
    /// A player of that name is in the room.
    #[error("a player of that name is in the room")]
    Playing,
}

/// A taken place, given back when dropped.
#[derive(Debug)]
pub struct Place {
    places: Arc<Mutex<Counts>>,
    name: Box<str>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut places = lock(&self.places);
        places.taken -= 1;
        if let Some(count) = places.playing.get_mut(&self.name) {
            *count -= 1;
            if *count == 0 {
                places.playing.remove(&self.name);
            }
        }
    }
}

impl PlayerPlaces {
    /// `max` places.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            inner: Arc::default(),
        }
    }

    /// How many places there are.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Players in the room now.
    pub fn taken(&self) -> usize {
        lock(&self.inner).taken
    }

    /// Places neither taken nor held at `now`.
    pub fn free(&self, now: Instant) -> usize {
        let mut places = lock(&self.inner);
        places.prune(now);
        self.max.saturating_sub(places.taken + places.held.len())
    }

    /// Takes a place for `name`: the one held for it, if any, else a free one.
    pub fn take(&self, name: &str, now: Instant) -> Option<Place> {
        let mut places = lock(&self.inner);
        places.prune(now);
        if let Some(i) = places.hold_of(name) {
            places.held.remove(i);
        } else if places.taken + places.held.len() >= self.max {
            return None;
        }
        places.taken += 1;
        *places.playing.entry(name.into()).or_default() += 1;
        Some(Place {
            places: self.inner.clone(),
            name: name.into(),
        })
    }

    /// When the place held for `name` expires, if one is held at `now`.
    pub fn held_until(&self, name: &str, now: Instant) -> Option<Instant> {
        let mut places = lock(&self.inner);
        places.prune(now);
        places.hold_of(name).map(|i| places.held[i].until)
    }

    /// Holds a place for `name` until `now + HOLD_FOR`, counted against whoever `claim` is for,
    /// and returns the deadline. A name that has a hold here keeps it, with its first deadline
    /// (the new claim is not needed). Refused when holds already take their share of the free
    /// places, or a player of that name is in the room.
    pub fn hold(&self, name: &str, now: Instant, claim: Option<HoldClaim>) -> Result<Instant, HoldError> {
        let mut places = lock(&self.inner);
        places.prune(now);
        if let Some(i) = places.hold_of(name) {
            return Ok(places.held[i].until);
        }
        if places.playing.contains_key(name) {
            return Err(HoldError::Playing);
        }
        let unplayed = self.max.saturating_sub(places.taken);
        let (num, den) = HOLD_SHARE;
        let share = (unplayed * num).div_ceil(den);
        if places.held.len() >= share {
            return Err(HoldError::Full);
        }
        let until = now + HOLD_FOR;
        places.held.push(Hold {
            name: name.into(),
            until,
            _claim: claim,
        });
        Ok(until)
    }
}

fn lock(places: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    // Nothing panics while holding the lock (counts and a short list), so a poisoned lock
    // still holds consistent places.
    places.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_taken_up_to_the_max_and_given_back_when_dropped() {
        let places = PlayerPlaces::new(2);
        let now = Instant::now();
        let a = places.take("a", now).unwrap();
        let _b = places.take("b", now).unwrap();
        assert!(places.take("c", now).is_none());
        drop(a);
        assert_eq!(places.free(now), 1);
        assert!(places.take("c", now).is_some());
    }

    #[test]
    fn a_held_place_waits_for_its_name_until_the_hold_expires() {
        let places = PlayerPlaces::new(3);
        let now = Instant::now();
        assert!(places.hold("ann", now, None).is_ok());
        let _bob = places.take("bob", now).unwrap();
        let _cal = places.take("cal", now).unwrap();
        assert!(places.take("dan", now).is_none(), "the held place is not anyone's");
        let _ann = places.take("ann", now).expect("ann takes the place held for her");
        assert_eq!(places.taken(), 3);

        let places = PlayerPlaces::new(1);
        assert!(places.hold("ann", now, None).is_ok());
        let later = now + HOLD_FOR;
        assert!(places.take("bob", later).is_some(), "an expired hold frees its place");
    }

    #[test]
    fn holds_take_at_most_half_the_unplayed_places_so_a_direct_join_finds_one() {
        let places = PlayerPlaces::new(16);
        let now = Instant::now();
        let held = (0..16)
            .filter(|i| places.hold(&format!("h{i}"), now, None).is_ok())
            .count();
        assert_eq!(held, 8);
        let players: Vec<_> = (0..8).map(|i| places.take(&format!("p{i}"), now).unwrap()).collect();
        assert!(places.take("late", now).is_none(), "8 held and 8 playing: full");
        drop(players);
        let places = PlayerPlaces::new(1);
        assert!(
            places.hold("ann", now, None).is_ok(),
            "a room of one can still be matchmade"
        );
    }

    #[test]
    fn a_hold_is_not_renewed_and_a_playing_name_is_not_held() {
        let places = PlayerPlaces::new(4);
        let now = Instant::now();
        let until = places.hold("ann", now, None).unwrap();
        let later = now + Duration::from_secs(20);
        assert_eq!(
            places.hold("ann", later, None),
            Ok(until),
            "the same hold, the first deadline"
        );
        let bob = places.take("bob", now + HOLD_FOR).unwrap();
        assert_eq!(places.held_until("ann", now + HOLD_FOR), None, "expired, not renewed");
        assert_eq!(places.hold("bob", now + HOLD_FOR, None), Err(HoldError::Playing));
        drop(bob);
        assert!(places.hold("bob", now + HOLD_FOR, None).is_ok(), "gone: held again");
    }
}
