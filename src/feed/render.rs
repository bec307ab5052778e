//! The spectators' JSON, for any game: entities with their public fields named as the schema
//! names them, coordinates in world units, texts as strings; the public events a game tells;
//! a match's results.
//!
//! Written directly as text rather than through serde's data model: the tick loop encodes a
//! delta of every moving entity ten times a second, and schema names are plain `[a-z0-9_]`
//! (checked when a game is registered), so only texts need escaping (by serde_json).

use std::fmt::Write as _;

use super::Heard;
use crate::protocol::delta::{Changes, NetWorld};
use crate::protocol::{Entity, FieldType, Param, ParamType, Results, Schema, Value};

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
            match field.ty {
                FieldType::Enum(n) => {
                    let _ = write!(out, r#","values":{n}"#);
                }
                FieldType::Text(n) => {
                    let _ = write!(out, r#","max_len":{n}"#);
                }
                _ => {}
            }
            if let Some(role) = field.role.name() {
                let _ = write!(out, r#","role":"{role}""#);
            }
            if field.private {
                out.push_str(r#","private":true"#);
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
    out.push_str(r#"],"messages":["#);
    for (i, message) in schema.messages.iter().enumerate() {
        comma(&mut out, i);
        let _ = write!(out, r#"{{"name":"{}","params":"#, message.name);
        params(&mut out, &message.params);
        let _ = write!(out, r#","per_second":{}}}"#, message.per_second);
    }
    out.push_str(r#"],"events":["#);
    for (i, event) in schema.events.iter().enumerate() {
        comma(&mut out, i);
        let _ = write!(out, r#"{{"name":"{}","params":"#, event.name);
        params(&mut out, &event.params);
        let _ = write!(out, r#","public":{}}}"#, event.public);
    }
    out.push_str(r#"],"options":"#);
    params(&mut out, &schema.options);
    out.push_str(r#","room_options":"#);
    params(&mut out, &schema.room_options);
    out.push('}');
    out
}

/// `[{"name":…,"type":"int","min":…,"max":…} | {"name":…,"type":"text","max_len":…}, …]`.
fn params(out: &mut String, params: &[Param]) {
    out.push('[');
    for (i, param) in params.iter().enumerate() {
        comma(out, i);
        let _ = match param.ty {
            ParamType::Int { min, max } => write!(
                out,
                r#"{{"name":"{}","type":"int","min":{min},"max":{max}}}"#,
                param.name
            ),
            ParamType::Text { max_len } => {
                write!(out, r#"{{"name":"{}","type":"text","max_len":{max_len}}}"#, param.name)
            }
        };
    }
    out.push(']');
}

/// A public event: `{"tick":…,"kind":"…",<its parameters by name>}`.
pub(crate) fn game_event(heard: &Heard, schema: &Schema) -> Vec<u8> {
    let mut out = String::with_capacity(64);
    let kind = schema.events.get(usize::from(heard.event.kind));
    let name = kind.map_or("?", |k| k.name.as_str());
    let _ = write!(out, r#"{{"tick":{},"kind":"{name}""#, heard.tick);
    for (param, value) in kind.map_or(&[][..], |k| &k.params).iter().zip(&heard.event.values) {
        let _ = write!(out, r#","{}":"#, param.name);
        value_json(&mut out, value);
    }
    out.push('}');
    out.into_bytes()
}

/// The end of a match: `{"tick":…,"summary":"…","standings":[{"player":…,"name":"…","rank":…,
/// "score":…}]}`.
pub(crate) fn ended(tick: u64, results: &Results) -> Vec<u8> {
    let mut out = String::with_capacity(64 + results.standings.len() * 48);
    let _ = write!(out, r#"{{"tick":{tick},"summary":"#);
    string(&mut out, &results.summary);
    out.push_str(r#","standings":["#);
    for (i, s) in results.standings.iter().enumerate() {
        comma(&mut out, i);
        let _ = write!(out, r#"{{"player":{},"name":"#, s.player);
        string(&mut out, &s.name);
        let _ = write!(out, r#","rank":{},"score":{}}}"#, s.rank, s.score);
    }
    out.push_str("]}");
    out.into_bytes()
}

fn value_json(out: &mut String, value: &Value) {
    match value {
        Value::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Text(t) => string(out, t),
    }
}

/// `text` as a JSON string.
fn string(out: &mut String, text: &str) {
    // Serializing a &str cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into()));
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
        entity(&mut out, e, world, schema);
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
        entity(&mut out, e, world, schema);
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
        fields(&mut out, now, world, schema, update.mask);
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

/// `{"id":…,"kind":"…",<its public fields>}`.
fn entity(out: &mut String, e: &Entity, world: &NetWorld, schema: &Schema) {
    let kind = schema.kind(e.kind).map_or("?", |k| k.name.as_str());
    let _ = write!(out, r#"{{"id":{},"kind":"{kind}""#, e.id);
    fields(out, e, world, schema, u8::MAX);
    out.push('}');
}

/// `,"name":value` for each public field of `e` whose bit is set in `mask` (its texts in
/// `world`).
fn fields(out: &mut String, e: &Entity, world: &NetWorld, schema: &Schema, mask: u8) {
    let Some(kind) = schema.kind(e.kind) else { return };
    for (i, field) in kind.fields.iter().enumerate() {
        if mask & (1 << i) == 0 || field.private {
            continue;
        }
        let v = e.values[i];
        let _ = match field.ty {
            // Steps of 1/scale are exact in an f64: spectators lose no precision.
            FieldType::Coord => write!(out, r#","{}":{}"#, field.name, f64::from(v) / f64::from(schema.scale)),
            FieldType::Uint | FieldType::Enum(_) => write!(out, r#","{}":{v}"#, field.name),
            FieldType::Int => write!(out, r#","{}":{}"#, field.name, v as i32),
            FieldType::Flag => write!(out, r#","{}":{}"#, field.name, v != 0),
            FieldType::Text(_) => {
                let _ = write!(out, r#","{}":"#, field.name);
                string(out, world.text(v));
                Ok(())
            }
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
    use crate::game::{GameConfig, Sandbox, Tanks};
    use crate::protocol::{GameEvent, Standing, Text};

    #[test]
    fn entities_are_json_with_the_schemas_names_units_and_texts_but_no_private_field() {
        let mut game = Sandbox::<Tanks>::new(&GameConfig::default(), 1);
        let schema = game.schema().clone();
        game.join("ann \"the tank\"").unwrap();
        let world = game.world(7);
        let json: serde_json::Value =
            serde_json::from_slice(&snapshot(&world, &schema, &self::schema(&schema), 0)).unwrap();
        let tank = &json["entities"][0];
        assert_eq!(tank["name"], "ann \"the tank\"", "escaped, and read back");
        assert_eq!(
            (&tank["kind"], &tank["health"], &tank["team"]),
            (&"tank".into(), &100.into(), &0.into())
        );
        assert!(
            tank.get("ammo").is_none(),
            "a private field is not for spectators: {tank}"
        );
        assert_eq!(json["schema"]["kinds"][0]["fields"][3]["role"], "label");
        assert_eq!(json["schema"]["kinds"][0]["fields"][7]["private"], true);
        assert_eq!(
            json["schema"]["input"][3],
            serde_json::json!({"name": "fire", "type": "bool", "min": 0, "max": 1})
        );
        assert_eq!(
            json["schema"]["messages"][0],
            serde_json::json!({"name": "chat", "params": [{"name": "line", "type": "text", "max_len": 100},
                {"name": "team", "type": "int", "min": 0, "max": 1}], "per_second": 2})
        );
    }

    #[test]
    fn events_and_results_are_json_by_name() {
        let schema = Sandbox::<Tanks>::new(&GameConfig::default(), 1).schema().clone();
        let text = |t: &str| Value::Text(Text::new(t).unwrap());
        let kill = Heard {
            tick: 12,
            event: GameEvent {
                kind: schema.event_named("kill").unwrap(),
                values: vec![Value::Int(5), Value::Int(3), text("bob"), text("ann")],
            },
        };
        let json: serde_json::Value = serde_json::from_slice(&game_event(&kill, &schema)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"tick": 12, "kind": "kill", "victim": 5, "by": 3, "victim_name": "bob",
                               "by_name": "ann"})
        );
        let results = Results {
            summary: Text::new("red wins").unwrap(),
            standings: vec![Standing {
                player: 3,
                name: Text::new("ann").unwrap(),
                rank: 1,
                score: 20,
            }],
        };
        let json: serde_json::Value = serde_json::from_slice(&ended(600, &results)).unwrap();
        assert_eq!(json["standings"][0]["name"], "ann");
        assert_eq!(json["summary"], "red wins");
    }
}
