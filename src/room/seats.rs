//! A room's player places: taken by a valid hello, held for a while by matchmaking.
//!
//! Matchmaking hands a player a room and, when tokens are on, a token for that room; between
//! that answer and the player's hello, another matchmaker must not give the same place away.
//! So matchmaking *holds* a place for a name, for [`HOLD_FOR`]; the hello under that name
//! takes the held place, and a place not claimed in time is free again. Holds count against
//! the room's `max_players` like players do, so they are bounded by it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// How long a place held by matchmaking waits for its player's hello.
pub const HOLD_FOR: Duration = Duration::from_secs(30);

/// The places of one room.
#[derive(Debug)]
pub struct Seats {
    max: usize,
    // A std Mutex: every critical section is a few comparisons, never held across an await.
    inner: Arc<Mutex<Places>>,
}

#[derive(Debug, Default)]
struct Places {
    taken: usize,
    /// Names with a place held for them, and until when.
    held: Vec<(String, Instant)>,
}

impl Places {
    fn prune(&mut self, now: Instant) {
        self.held.retain(|(_, until)| *until > now);
    }
}

/// A taken place, given back when dropped.
#[derive(Debug)]
pub struct Place(Arc<Mutex<Places>>);

impl Drop for Place {
    fn drop(&mut self) {
        lock(&self.0).taken -= 1;
    }
}

impl Seats {
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

    /// Players seated now.
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
        if let Some(i) = places.held.iter().position(|(held, _)| held == name) {
            places.held.swap_remove(i);
        } else if places.taken + places.held.len() >= self.max {
            return None;
        }
        places.taken += 1;
        Some(Place(self.inner.clone()))
    }

    /// Holds a free place for `name` until `now + HOLD_FOR`; false if none is free. A name
    /// that already has one keeps it, with a new deadline.
    pub fn hold(&self, name: &str, now: Instant) -> bool {
        let mut places = lock(&self.inner);
        places.prune(now);
        if let Some(held) = places.held.iter_mut().find(|(held, _)| held == name) {
            held.1 = now + HOLD_FOR;
            return true;
        }
        if places.taken + places.held.len() >= self.max {
            return false;
        }
        places.held.push((name.to_owned(), now + HOLD_FOR));
        true
    }
}

fn lock(places: &Mutex<Places>) -> MutexGuard<'_, Places> {
    // Nothing panics while holding the lock (counts and a short list), so a poisoned lock
    // still holds consistent places.
    places.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_taken_up_to_the_max_and_given_back_when_dropped() {
        let seats = Seats::new(2);
        let now = Instant::now();
        let a = seats.take("a", now).unwrap();
        let _b = seats.take("b", now).unwrap();
        assert!(seats.take("c", now).is_none());
        drop(a);
        assert_eq!(seats.free(now), 1);
        assert!(seats.take("c", now).is_some());
    }

    #[test]
    fn a_held_place_waits_for_its_name_until_the_hold_expires() {
        let seats = Seats::new(2);
        let now = Instant::now();
        assert!(seats.hold("ann", now));
        let _bob = seats.take("bob", now).unwrap();
        assert!(seats.take("cal", now).is_none(), "the held place is not anyone's");
        assert!(!seats.hold("dan", now), "no place left to hold");
        let _ann = seats.take("ann", now).expect("ann takes the place held for her");
        assert_eq!(seats.taken(), 2);

        let seats = Seats::new(1);
        assert!(seats.hold("ann", now));
        let later = now + HOLD_FOR;
        assert!(seats.take("bob", later).is_some(), "an expired hold frees its place");
    }
}
