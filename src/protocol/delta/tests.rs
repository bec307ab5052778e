//! The world's diffs: a replica that applies every delta (and its player's private fields)
//! through the wire bytes holds exactly the server's world; what a delta may not do.

use super::*;
use crate::game::{Arena, Sandbox, Tanks};
use crate::game::{Game, GameConfig};
use crate::protocol::ServerMsg;

fn delta_of(base: &NetWorld, next: &NetWorld, schema: &Schema) -> Delta {
    let bytes = base.diff(next, schema).encode(
        next,
        (next.tick - base.tick) as u32,
        Some(next.checksum(schema)),
        schema,
    );
    match ServerMsg::decode(&bytes, Some(schema)) {
        Ok(ServerMsg::Delta(delta)) => delta,
        other => panic!("a delta that does not decode: {other:?}"),
    }
}

/// Plays `game` for 2 000 ticks with players coming and going, applying every diff through
/// the wire bytes to a replica, and the first player's private fields to it too: the replica
/// must hold exactly the game's world after each (every public field, and the private ones
/// the first player owns; all of it for a game without private fields).
fn replays_exactly<G: Game>(inputs: impl Fn(u32, usize) -> Vec<i32>) {
    let mut game = Sandbox::<G>::new(&GameConfig::default(), 9);
    let schema = game.schema().clone();
    let observer = game.join("a").unwrap();
    let mut ids = vec![observer, game.join("b").unwrap()];
    let mut base = game.world(0);
    let mut replica = base.clone();
    let private = |world: &NetWorld, full: bool, entries: &[PrivateUpdate]| {
        let bytes = world.encode_private(full, entries, Some(world.private_checksum(&schema, observer)), &schema);
        match ServerMsg::decode(&bytes, Some(&schema)) {
            Ok(ServerMsg::Private(private)) => private,
            other => panic!("private fields that do not decode: {other:?}"),
        }
    };
    replica
        .apply_private(
            &private(&base, true, &base.private_of(&schema, observer)),
            &schema,
            observer,
        )
        .unwrap();
    for t in 0..2_000u32 {
        for (i, id) in ids.iter().enumerate() {
            game.game.input(*id, &inputs(t, i));
        }
        if t % 200 == 0 {
            ids.push(game.join("c").unwrap());
        }
        if t % 300 == 150 && ids[1] != observer {
            game.leave(ids.remove(1));
        }
        game.step();
        let next = game.world(u64::from(t) + 1);
        replica.apply(&delta_of(&base, &next, &schema), &schema).unwrap();
        let mut mine = Vec::new();
        base.private_changes(&next, &schema, |owner, update| {
            if owner == observer {
                mine.push(update);
            }
        });
        replica
            .apply_private(&private(&next, false, &mine), &schema, observer)
            .unwrap();
        if !schema.has_private() {
            assert_eq!(replica, next, "diverged at tick {}", next.tick);
        }
        assert_eq!(replica.checksum(&schema), next.checksum(&schema));
        base = next;
    }
}

#[test]
fn applying_every_diff_rebuilds_an_arena_exactly() {
    replays_exactly::<Arena>(|t, i| {
        vec![
            ((t * 31 + i as u32 * 7) % 255) as i32 - 127,
            ((t * 17) % 255) as i32 - 127,
        ]
    });
}

#[test]
fn applying_every_diff_rebuilds_a_tank_battle_exactly() {
    replays_exactly::<Tanks>(|t, i| {
        let k = ((t * 13 + i as u32 * 29) % 255) as i32;
        vec![k - 127, 127 - k, k, i32::from(t % 4 == 0)]
    });
}

#[test]
fn a_delta_for_another_base_is_refused_and_changes_nothing() {
    let mut game = Sandbox::<Arena>::new(&GameConfig::default(), 1);
    let schema = game.schema().clone();
    let a = game.world(0);
    game.step();
    let b = game.world(1);
    game.step();
    let c = game.world(2);
    let mut held = a.clone();
    let err = held.apply(&delta_of(&b, &c, &schema), &schema).unwrap_err();
    assert_eq!(
        err,
        ApplyError::WrongBase {
            tick: 2,
            base_gap: 1,
            held: 0
        }
    );
    assert_eq!(held, a);
}

#[test]
fn updates_to_unknown_entities_or_as_another_kind_are_refused() {
    let game = Sandbox::<Arena>::new(&GameConfig::default(), 1);
    let schema = game.schema().clone();
    let mut held = game.world(0);
    let orb = held.entities()[0];
    let one = |kind, id| Delta {
        tick: 1,
        base_gap: 1,
        spawned: vec![],
        updated: Updates(vec![KindUpdates {
            kind,
            updates: vec![Update {
                id,
                mask: 1,
                values: [1, 0, 0, 0, 0, 0, 0, 0],
            }],
        }]),
        removed: vec![],
        checksum: None,
        texts: Vec::new(),
    };
    assert_eq!(
        held.apply(&one(1, 9_999), &schema),
        Err(ApplyError::UnknownEntity(9_999))
    );
    assert_eq!(held.apply(&one(0, orb.id), &schema), Err(ApplyError::WrongKind(orb.id)));
}

#[test]
fn a_checksum_that_disagrees_is_reported() {
    let mut game = Sandbox::<Arena>::new(&GameConfig::default(), 3);
    let schema = game.schema().clone();
    let a = game.world(0);
    game.step();
    let b = game.world(1);
    let mut drifted = a.clone();
    drifted.entities[0].values[0] += 1; // a value drift no structural check would notice
    let err = drifted.apply(&delta_of(&a, &b, &schema), &schema).unwrap_err();
    assert!(matches!(err, ApplyError::ChecksumMismatch { tick: 1, .. }), "{err}");
}

#[test]
fn a_renamed_entity_sends_its_new_name_and_an_unchanged_one_sends_nothing() {
    let mut game = Sandbox::<Arena>::new(&GameConfig::default(), 4);
    let schema = game.schema().clone();
    let id = game.join("ann").unwrap();
    let a = game.world(0);
    game.step();
    let b = game.world(1);
    let names = |d: &Delta| d.updated.iter().filter(|(_, u)| u.mask & (1 << 3) != 0).count();
    assert_eq!(names(&delta_of(&a, &b, &schema)), 0, "the same name is no update");
    game.game.rename(id, Text::new("anne").unwrap());
    let c = game.world(2);
    let delta = delta_of(&b, &c, &schema);
    assert_eq!(names(&delta), 1);
    let mut held = b.clone();
    held.apply(&delta, &schema).unwrap();
    assert_eq!(held.text(held.get(id).unwrap().values[3]), "anne");
    assert_eq!(held, c);
}

#[test]
fn a_text_longer_than_its_field_is_cut_to_it_so_every_client_decodes_it() {
    use crate::protocol::{Field, Kind, Role};
    let schema = Schema::new("short", 16, 100, 100).with_kind(Kind::positioned(
        "tag",
        [Field::new("name", FieldType::Text(8), Role::Name)],
    ));
    let mut world = NetWorld::default();
    world
        .capture(1, &schema)
        .push(Entity::new(1, 0, &[0, 0, 0]))
        .text(2, &Text::new("héllo, world").unwrap());
    assert_eq!(world.text(world.get(1).unwrap().values[2]), "héllo, ");
    let bytes = world.encode_snapshot(&schema);
    let Ok(ServerMsg::Snapshot(snapshot)) = ServerMsg::decode(&bytes, Some(&schema)) else {
        panic!("the snapshot decodes")
    };
    assert_eq!(NetWorld::from_snapshot(&snapshot).unwrap(), world);
}

#[test]
fn private_fields_go_to_their_owner_only_and_their_checksum_is_the_owners() {
    let mut game = Sandbox::<Tanks>::new(&GameConfig::default(), 5);
    let schema = game.schema().clone();
    let (a, b) = (game.join("a").unwrap(), game.join("b").unwrap());
    let before = game.world(0);
    game.game.input(a, &[0, 0, 0, 1]);
    game.step();
    let after = game.world(1);
    let mut told = Vec::new();
    before.private_changes(&after, &schema, |owner, update| {
        told.push((owner, update.id, update.mask))
    });
    assert_eq!(told, [(a, a, 1 << 7)], "a's ammo went down, and only a is told");
    let encoded = before.diff(&after, &schema).encode(&after, 1, None, &schema);
    assert!(
        !ServerMsg::decode(&encoded, Some(&schema)).is_ok_and(|m| matches!(&m, ServerMsg::Delta(d)
            if d.updated.iter().any(|(_, u)| u.mask & (1 << 7) != 0))),
        "no private field in the shared delta"
    );
    assert_ne!(after.private_checksum(&schema, a), after.private_checksum(&schema, b));
}
