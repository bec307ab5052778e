//! The spectators' JSON, for any game: entities with their fields named as the schema names
//! them, coordinates in world units.
//!
//! Written directly as text rather than through serde's data model: the tick loop encodes a
//! delta of every moving entity ten times a second, and schema names are plain `[a-z0-9_]`
//! (checked when a game is registered), so nothing needs escaping.

use std::fmt::Write as _;

use crate::protocol::delta::{Changes, NetWorld};
use crate::protocol::{Entity, FieldType, Schema};

/// The schema as JSON, for snapshots (spectators learn the game from it, as players do from
/// the welcome).
pub(crate) fn schema(schema: &Schema) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"{{"game":"{}","scale":{},"width":{},"height":{},"kinds":["#,
        schema.game, schema.scale, schema.width, schema.height
    );
    for (k, kind) in schema.kinds.iter().enumerate() {
        comma(&mut out, k);
        let _ = write!(out, r#"{{"name":"{}","fields":["#, kind.name);
        for (f, field) in kind.fields.iter().enumerate() {
            comma(&mut out, f);
            let _ = write!(out, r#"{{"name":"{}","type":"{}""#, field.name, field.ty.name());
            if let FieldType::Enum(n) = field.ty {
                let _ = write!(out, r#","values":{n}"#);
            }
            if let Some(role) = field.role.name() {
                let _ = write!(out, r#","role":"{role}""#);
            }
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push_str(r#"],"input":["#);
    for (i, field) in schema.input.iter().enumerate() {
        comma(&mut out, i);
        let ty = format!("{:?}", field.ty).to_ascii_lowercase();
        let _ = write!(
            out,
            r#"{{"name":"{}","type":"{ty}","min":{},"max":{}}}"#,
            field.name, field.min, field.max
        );
    }
    out.push_str("]}");
    out
}

/// A snapshot event: the whole world, with the schema.
pub(crate) fn snapshot(world: &NetWorld, schema: &Schema, schema_json: &str, spectators: usize) -> Vec<u8> {
    let mut out = String::with_capacity(64 + world.entities().len() * 48 + schema_json.len());
    let _ = write!(
        out,
        r#"{{"tick":{},"width":{},"height":{},"spectators":{spectators},"schema":{schema_json},"entities":["#,
        world.tick(),
        schema.width,
        schema.height
    );
    for (i, e) in world.entities().iter().enumerate() {
        comma(&mut out, i);
        entity(&mut out, e, schema, u8::MAX);
    }
    out.push_str("]}");
    out.into_bytes()
}

/// A delta event from the world at `base` to `world`: spawned entities in full, updated ones
/// with their changed fields' new values (absolute), removed ids.
pub(crate) fn delta(base: u64, changes: &Changes, world: &NetWorld, schema: &Schema, spectators: usize) -> Vec<u8> {
    let mut out = String::with_capacity(96 + changes.spawned.len() * 48 + changes.removed.len() * 8);
    let _ = write!(
        out,
        r#"{{"tick":{},"base":{base},"spectators":{spectators},"spawned":["#,
        world.tick()
    );
    for (i, e) in changes.spawned.iter().enumerate() {
        comma(&mut out, i);
        entity(&mut out, e, schema, u8::MAX);
    }
    out.push_str(r#"],"updated":["#);
    let mut first = true;
    for (_, update) in changes.updated.iter() {
        // Every updated id exists in the world the changes lead to.
        let Some(now) = world.get(update.id) else { continue };
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, r#"{{"id":{}"#, now.id);
        fields(&mut out, now, schema, update.mask);
        out.push('}');
    }
    out.push_str(r#"],"removed":["#);
    for (i, id) in changes.removed.iter().enumerate() {
        comma(&mut out, i);
        let _ = write!(out, "{id}");
    }
    out.push_str("]}");
    out.into_bytes()
}

/// `{"id":…,"kind":"…",<fields in mask>}`.
fn entity(out: &mut String, e: &Entity, schema: &Schema, mask: u8) {
    let kind = schema.kind(e.kind).map_or("?", |k| k.name.as_str());
    let _ = write!(out, r#"{{"id":{},"kind":"{kind}""#, e.id);
    fields(out, e, schema, mask);
    out.push('}');
}

/// `,"name":value` for each field of `e` whose bit is set in `mask`.
fn fields(out: &mut String, e: &Entity, schema: &Schema, mask: u8) {
    let Some(kind) = schema.kind(e.kind) else { return };
    for (i, field) in kind.fields.iter().enumerate() {
        if mask & (1 << i) == 0 {
            continue;
        }
        let v = e.values[i];
        let _ = match field.ty {
            // Steps of 1/scale are exact in an f64: spectators lose no precision.
            FieldType::Coord => write!(out, r#","{}":{}"#, field.name, f64::from(v) / f64::from(schema.scale)),
            FieldType::Uint | FieldType::Enum(_) => write!(out, r#","{}":{v}"#, field.name),
            FieldType::Int => write!(out, r#","{}":{}"#, field.name, v as i32),
            FieldType::Flag => write!(out, r#","{}":{}"#, field.name, v != 0),
        };
    }
}

fn comma(out: &mut String, i: usize) {
    if i > 0 {
        out.push(',');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Tanks;
    use crate::game::{Game, GameConfig};
    use crate::protocol::Entity;

    #[test]
    fn entities_are_json_with_the_schemas_names_and_units() {
        let schema = Tanks::schema(&GameConfig::default());
        let world = NetWorld::new(
            7,
            vec![
                Entity::new(1, 0, &[160, 8, 64, 75, 3, 1, 2]),
                Entity::new(2, 1, &[16, 16, (-320i32) as u32, 0, 1]),
            ],
        );
        let json: serde_json::Value =
            serde_json::from_slice(&snapshot(&world, &schema, &self::schema(&schema), 0)).unwrap();
        assert_eq!(
            json["entities"][0],
            serde_json::json!({"id": 1, "kind": "tank", "x": 10, "y": 0.5, "aim": 64, "health": 75,
                               "score": 3, "reloading": true, "state": 2})
        );
        assert_eq!(json["entities"][1]["vx"], -320);
        assert_eq!(json["schema"]["kinds"][0]["fields"][3]["role"], "label");
        assert_eq!(
            json["schema"]["input"][3],
            serde_json::json!({"name": "fire", "type": "bool", "min": 0, "max": 1})
        );
    }
}
