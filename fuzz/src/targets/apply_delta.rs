//! What a client does with the frames the server sends: build a world from a snapshot and apply
//! a delta to it, by a game's schema. `NetWorld::apply` must never panic and must agree with a
//! plain map model of PROTOCOL.md's rules (the base tick; updates by field type, texts as
//! strings; then removals; then spawns; the checksum; a refused delta changes nothing); the
//! world it leaves is in strictly ascending id order; the server's `diff` of the two worlds,
//! through the wire, applies back to the same world (when the delta reuses no id, as the
//! server never does); and that world, sent as a keyframe, is the same world again.
//!
//! Input: a byte choosing the schema, two bytes (little endian) giving the length of an encoded
//! `Snapshot` message, that message, then an encoded `Delta` message filling the rest.

use tickcast::protocol::delta::{ApplyError, NetWorld};
use tickcast::protocol::{Delta, FieldType, Schema, ServerMsg};

use super::{unframe, world_from};
use crate::model::{Cell, Model, Plain, of_world, text};
use crate::schemas::pick;

/// Checks one input.
pub fn run(data: &[u8]) {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    let schema = pick(which);
    let Some((snapshot, delta)) = unframe(data) else { return };
    let Ok(ServerMsg::Snapshot(snapshot)) = ServerMsg::decode(snapshot, Some(schema)) else {
        return;
    };
    let Ok(ServerMsg::Delta(delta)) = ServerMsg::decode(delta, Some(schema)) else {
        return;
    };
    let Some(base) = world_from(&snapshot) else { return };
    let mut world = base.clone();
    let result = world.apply(&delta, schema);
    check_against_model(&base, &delta, schema, &result, &world);
    if matches!(result, Ok(()) | Err(ApplyError::ChecksumMismatch { .. })) {
        assert!(
            world.entities().windows(2).all(|w| w[0].id < w[1].id),
            "applied world is not in strictly ascending id order"
        );
        check_diff_round_trip(&base, &world, &delta, schema);
        check_keyframe_round_trip(&world, schema);
    }
}

/// The result and world `NetWorld::apply` gave must be the ones the model gives.
fn check_against_model(
    base: &NetWorld,
    delta: &Delta,
    schema: &Schema,
    result: &Result<(), ApplyError>,
    world: &NetWorld,
) {
    // PROTOCOL.md: apply a delta only to the world at exactly `tick - base_gap`.
    // `tick < base_gap` names no tick at all, so no world is its base.
    let base_ok = delta.tick.checked_sub(u64::from(delta.base_gap)) == Some(base.tick()) && delta.base_gap > 0;
    let expected = if base_ok {
        model(base, delta, schema)
    } else {
        Err(ApplyError::WrongBase { tick: delta.tick, base_gap: delta.base_gap, held: base.tick() })
    };
    match (expected, result) {
        (Ok(entities), Ok(())) => {
            assert_eq!(of_world(world, schema), entities);
            assert_eq!(world.tick(), delta.tick);
            if let Some(sum) = delta.checksum {
                assert_eq!(world.checksum(schema), sum);
            }
        }
        (Ok(entities), Err(ApplyError::ChecksumMismatch { tick, server, local })) => {
            // The one error that leaves the delta applied.
            assert_eq!(of_world(world, schema), entities);
            assert_eq!((*tick, Some(*server)), (delta.tick, delta.checksum));
            assert_eq!(*local, world.checksum(schema));
            assert_ne!(*server, *local);
        }
        (Err(want), Err(got)) => {
            assert_eq!(&want, got);
            assert_eq!(world, base, "a refused delta changed the world");
        }
        (want, got) => panic!("model says {want:?}, apply says {got:?}"),
    }
}

/// PROTOCOL.md's delta rules on an id-keyed map, base tick already checked.
fn model(base: &NetWorld, delta: &Delta, schema: &Schema) -> Result<Model, ApplyError> {
    let mut map = of_world(base, schema);
    for group in &delta.updated.0 {
        let fields = &schema.kinds[usize::from(group.kind)].fields;
        for u in &group.updates {
            let e = map.get_mut(&u.id).ok_or(ApplyError::UnknownEntity(u.id))?;
            if e.kind != group.kind {
                return Err(ApplyError::WrongKind(u.id));
            }
            for (i, field) in fields.iter().enumerate() {
                if u.mask & (1 << i) == 0 {
                    continue;
                }
                e.cells[i] = match field.ty {
                    FieldType::Coord => Cell::Num(
                        e.cells[i].num().checked_add_signed(u.values[i] as i32).ok_or(ApplyError::OutOfRange(u.id))?,
                    ),
                    FieldType::Flag => Cell::Num(e.cells[i].num() ^ 1),
                    FieldType::Text(_) => Cell::Text(text(&delta.texts, u.values[i])),
                    FieldType::Uint | FieldType::Int | FieldType::Enum(_) => Cell::Num(u.values[i]),
                };
            }
        }
    }
    for id in &delta.removed {
        map.remove(id).ok_or(ApplyError::UnknownEntity(*id))?;
    }
    for s in &delta.spawned {
        if map.insert(s.id, Plain::of(s, &delta.texts, schema)).is_some() {
            return Err(ApplyError::DuplicateEntity(s.id));
        }
    }
    Ok(map)
}

/// The server's `diff` from `base` to `world`, encoded as it sends it and applied to `base`,
/// must give back `world`.
fn check_diff_round_trip(base: &NetWorld, world: &NetWorld, delta: &Delta, schema: &Schema) {
    // The server never reuses an id, and `diff` relies on that: an id removed and spawned again
    // in one delta may change its kind, which an update cannot say, or move further than the
    // i32 an update carries. Without reuse, every entity in both worlds changed only through
    // updates, which `diff` can always express.
    if delta.spawned.iter().any(|s| delta.removed.contains(&s.id)) {
        return;
    }
    let checksum = Some(world.checksum(schema));
    let changes = base.diff(world, schema);
    let bytes = changes.encode(world, delta.base_gap, checksum, schema);
    let sent = Delta {
        tick: world.tick(),
        base_gap: delta.base_gap,
        spawned: changes.spawned,
        updated: changes.updated,
        removed: changes.removed,
        checksum,
        texts: world.texts().to_vec(),
    };
    assert_eq!(bytes, ServerMsg::Delta(sent).encode(schema), "the two delta encoders disagree");
    let Ok(ServerMsg::Delta(received)) = ServerMsg::decode(&bytes, Some(schema)) else {
        panic!("a diff's delta does not decode");
    };
    let mut replica = base.clone();
    assert_eq!(replica.apply(&received, schema), Ok(()));
    assert_eq!(&replica, world, "applying the diff did not rebuild the world");
}

/// `world` sent as a keyframe must decode to the same world.
fn check_keyframe_round_trip(world: &NetWorld, schema: &Schema) {
    let bytes = world.encode_snapshot(schema);
    assert_eq!(bytes, ServerMsg::Snapshot(world.snapshot()).encode(schema), "the two snapshot encoders disagree");
    let Ok(ServerMsg::Snapshot(snapshot)) = ServerMsg::decode(&bytes, Some(schema)) else {
        panic!("a world's snapshot does not decode");
    };
    assert_eq!(NetWorld::from_snapshot(&snapshot).as_ref(), Ok(world), "the keyframe is another world");
}
