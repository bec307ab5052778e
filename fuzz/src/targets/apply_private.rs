//! What a client does with its private fields: build a world from a snapshot, then apply the
//! `Private` messages that follow, as its player. `NetWorld::apply_private` must never panic and
//! must agree with a plain map model of PROTOCOL.md's rules (every entry names an entity held,
//! as its kind, else nothing changes; `full` first unsets every private field; the entries'
//! fields, texts as strings; the player's private checksum); and the server's two ways of
//! sending what the player owns, applied to the snapshot's world, must give it back: the
//! keyframe's (`private_of`, `full`) and a tick's (`private_changes`), each through the wire.
//!
//! Input: a byte choosing the schema, the player's entity id (four bytes, little endian), two
//! bytes (little endian) giving the length of an encoded `Snapshot` message, that message, then
//! encoded `Private` messages, each after two bytes giving its length, until the input ends.

use tickcast::protocol::delta::{ApplyError, NetWorld};
use tickcast::protocol::{EntityId, FieldType, Private, Schema, ServerMsg, owner};

use super::{unframe, world_from};
use crate::model::{Cell, Model, of_world, text};
use crate::schemas::pick;

/// Checks one input.
pub fn run(data: &[u8]) {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    let schema = pick(which);
    let Some((player, data)) = data.split_first_chunk::<4>() else {
        return;
    };
    let player = u32::from_le_bytes(*player);
    let Some((snapshot, mut rest)) = unframe(data) else {
        return;
    };
    let Ok(ServerMsg::Snapshot(snapshot)) = ServerMsg::decode(snapshot, Some(schema)) else {
        return;
    };
    let Some(base) = world_from(&snapshot) else { return };
    let mut world = base.clone();
    while let Some((bytes, more)) = unframe(rest) {
        rest = more;
        let Ok(ServerMsg::Private(private)) = ServerMsg::decode(bytes, Some(schema)) else {
            return;
        };
        let before = world.clone();
        let result = world.apply_private(&private, schema, player);
        check_against_model(&before, &private, schema, player, &result, &world);
    }
    check_round_trips(&base, &world, schema, player);
}

/// The result and world `NetWorld::apply_private` gave must be the ones the model gives.
fn check_against_model(
    before: &NetWorld,
    private: &Private,
    schema: &Schema,
    player: EntityId,
    result: &Result<(), ApplyError>,
    world: &NetWorld,
) {
    assert_eq!(world.tick(), before.tick(), "private fields changed the tick");
    match (model(before, private, schema), result) {
        (Ok(entities), Ok(())) => {
            assert_eq!(of_world(world, schema), entities);
            if let Some(sum) = private.checksum {
                assert_eq!(world.private_checksum(schema, player), sum);
            }
        }
        (Ok(entities), Err(ApplyError::PrivateMismatch { tick, server, local })) => {
            // The one error that leaves the fields applied.
            assert_eq!(of_world(world, schema), entities);
            assert_eq!((*tick, Some(*server)), (private.tick, private.checksum));
            assert_eq!(*local, world.private_checksum(schema, player));
            assert_ne!(*server, *local);
        }
        (Err(want), Err(got)) => {
            assert_eq!(&want, got);
            assert_eq!(world, before, "refused private fields changed the world");
        }
        (want, got) => panic!("model says {want:?}, apply_private says {got:?}"),
    }
}

/// PROTOCOL.md's rules for private fields on an id-keyed map.
fn model(before: &NetWorld, private: &Private, schema: &Schema) -> Result<Model, ApplyError> {
    let mut map = of_world(before, schema);
    for u in &private.entities {
        match map.get(&u.id) {
            Some(e) if e.kind == u.kind => {}
            Some(_) => return Err(ApplyError::WrongKind(u.id)),
            None => return Err(ApplyError::UnknownEntity(u.id)),
        }
    }
    if private.full {
        for e in map.values_mut() {
            let mask = schema.kinds[usize::from(e.kind)].private_mask();
            e.unset(mask, schema);
        }
    }
    for u in &private.entities {
        let e = map.get_mut(&u.id).expect("checked above");
        for (i, field) in schema.kinds[usize::from(u.kind)].fields.iter().enumerate() {
            if u.mask & (1 << i) != 0 {
                e.cells[i] = match field.ty {
                    FieldType::Text(_) => Cell::Text(text(&private.texts, u.values[i])),
                    _ => Cell::Num(u.values[i]),
                };
            }
        }
    }
    Ok(map)
}

/// What `player` owns in `world`, sent by the server as after a keyframe and as after a tick
/// (from `base`), through the wire, applied to `base`, must give `world`'s private fields of
/// what the player owns. The others stay unset, as the snapshot left them (a snapshot carries no
/// private field).
fn check_round_trips(base: &NetWorld, world: &NetWorld, schema: &Schema, player: EntityId) {
    let mut want = of_world(world, schema);
    for e in world.entities() {
        let kind = &schema.kinds[usize::from(e.kind)];
        if owner(e, kind) != player {
            want.get_mut(&e.id).expect("the same world").unset(kind.private_mask(), schema);
        }
    }
    let checksum = Some(world.private_checksum(schema, player));
    let keyframe = world.private_of(schema, player);
    let sent =
        Private { tick: world.tick(), full: true, entities: keyframe.clone(), texts: world.texts().to_vec(), checksum };
    let bytes = world.encode_private(true, &keyframe, checksum, schema);
    assert_eq!(bytes, ServerMsg::Private(sent).encode(schema), "the two private encoders disagree");
    let mut changes = Vec::new();
    base.private_changes(world, schema, |to, update| {
        if to == player {
            changes.push(update);
        }
    });
    let tick = world.encode_private(false, &changes, checksum, schema);
    for (how, bytes) in [("keyframe", bytes), ("tick", tick)] {
        let Ok(ServerMsg::Private(received)) = ServerMsg::decode(&bytes, Some(schema)) else {
            panic!("a {how}'s private fields do not decode");
        };
        let mut replica = base.clone();
        assert_eq!(replica.apply_private(&received, schema, player), Ok(()), "{how}");
        assert_eq!(of_world(&replica, schema), want, "a {how}'s private fields did not rebuild the world's");
    }
}
