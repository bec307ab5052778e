//! A world packed into bytes while nothing reads it: a room nobody plays in keeps its
//! spectators' world this way (an entity is 40 bytes as an [`Entity`], an arena's orb 8
//! packed), and unpacks it for the next reader.

use super::NetWorld;
use crate::protocol::{Entity, MAX_FIELDS, Text};

/// A [`NetWorld`], packed: [`PackedWorld::unpack`] gives it back exactly.
#[derive(Debug, Clone)]
pub struct PackedWorld {
    tick: u64,
    /// How many entities; then each one's id as the step from the previous one's, its kind,
    /// its text mask, how many of its values follow (the rest are 0) and those values, every
    /// number a LEB128 varint.
    bytes: Box<[u8]>,
    texts: Box<[Text]>,
}

impl NetWorld {
    /// This world, packed.
    pub fn pack(&self) -> PackedWorld {
        let mut bytes = Vec::with_capacity(4 + self.entities.len() * 10);
        put(&mut bytes, self.entities.len() as u64);
        let mut last = 0;
        for e in &self.entities {
            // Ids ascend strictly: each step is at least 1, and usually exactly 1.
            put(&mut bytes, u64::from(e.id.wrapping_sub(last)));
            last = e.id;
            bytes.extend_from_slice(&[e.kind, e.texts]);
            let used = e.values.iter().rposition(|v| *v != 0).map_or(0, |i| i + 1);
            bytes.push(used as u8);
            for v in &e.values[..used] {
                put(&mut bytes, u64::from(*v));
            }
        }
        PackedWorld {
            tick: self.tick,
            bytes: bytes.into_boxed_slice(),
            texts: self.texts.clone().into_boxed_slice(),
        }
    }
}

impl PackedWorld {
    /// The tick of the world packed.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// The world packed, as it was.
    pub fn unpack(&self) -> NetWorld {
        let mut bytes = &self.bytes[..];
        let count = take(&mut bytes) as usize;
        let mut entities = Vec::with_capacity(count);
        let mut id = 0u32;
        for _ in 0..count {
            id = id.wrapping_add(take(&mut bytes) as u32);
            let [kind, texts, used, rest @ ..] = bytes else { break };
            let (kind, texts, used) = (*kind, *texts, usize::from(*used).min(MAX_FIELDS));
            bytes = rest;
            let mut values = [0; MAX_FIELDS];
            for v in &mut values[..used] {
                *v = take(&mut bytes) as u32;
            }
            entities.push(Entity {
                id,
                kind,
                texts,
                values,
            });
        }
        NetWorld {
            tick: self.tick,
            entities,
            texts: self.texts.to_vec(),
        }
    }
}

/// Appends `v` as a LEB128 varint: 7 bits a byte, low first, the top bit set on all but the
/// last.
fn put(bytes: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        bytes.push((v as u8) | 0x80);
        v >>= 7;
    }
    bytes.push(v as u8);
}

/// Takes a LEB128 varint off the front of `bytes` (only ever bytes [`put`] wrote).
fn take(bytes: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let [b, rest @ ..] = *bytes {
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift.min(63);
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::{Arena, Game, GameConfig, Sandbox, Tanks};

    fn same(a: &NetWorld, b: &NetWorld) {
        assert_eq!(a.tick(), b.tick());
        assert_eq!(a.entities(), b.entities());
        assert_eq!(a.texts(), b.texts());
    }

    /// Worlds of every shape come back exactly: no entity, the largest values, gaps in ids,
    /// texts, every field used.
    #[test]
    fn unpacks_what_was_packed() {
        let mut world = NetWorld {
            tick: u64::MAX,
            entities: Vec::new(),
            texts: vec![Text::default(), Text::new("ann").unwrap(), Text::new("bö").unwrap()],
        };
        same(&world.pack().unpack(), &world);
        world.entities = vec![
            Entity::new(1, 0, &[]),
            Entity::new(2, 1, &[u32::MAX; MAX_FIELDS]),
            Entity::new(300, 2, &[0, 0, 7]),
            Entity::new(u32::MAX, 3, &[1, 2]),
        ];
        world.entities[2].texts = 0b100;
        same(&world.pack().unpack(), &world);
    }

    /// A game's world comes back exactly, and packs small: an arena's hundred orbs to less
    /// than a quarter of what they hold as entities; a few tanks of many fields, to less.
    #[test]
    fn a_games_world_packs_small() {
        fn check<G: Game>(smaller: usize) {
            let mut game = Sandbox::<G>::new(&GameConfig::default(), 3);
            for name in ["a", "b", "c"] {
                game.join(name).unwrap();
            }
            for _ in 0..50 {
                game.step();
            }
            let world = game.world(50);
            let packed = world.pack();
            same(&packed.unpack(), &world);
            // The texts are shared, not copied: what packing saves is in the entities.
            let held = size_of_val(world.entities());
            assert!(
                packed.bytes.len() * smaller < held,
                "{} bytes packed from {held}",
                packed.bytes.len()
            );
        }
        check::<Arena>(4);
        check::<Tanks>(1);
    }
}
