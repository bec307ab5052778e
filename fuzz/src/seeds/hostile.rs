//! Schemas a hostile server might send: each breaks one of PROTOCOL.md's rules, and a client
//! must refuse it with the error named beside it.

use super::*;

/// Schemas a client must refuse, each breaking one of PROTOCOL.md's rules, with the error.
pub(super) fn hostile_schemas() -> Vec<(&'static str, Schema, DecodeError)> {
    let (arena, tanks) = (pick(ARENA), pick(TANKS));
    let with = |base: &Schema, change: &dyn Fn(&mut Schema)| {
        let mut schema = base.clone();
        change(&mut schema);
        schema
    };
    let field = |name: &str| Field::new(name, FieldType::Uint, Role::None);
    let roles = || DecodeError::Invalid("x and y need coordinate fields, name a text, owner a uint");
    let names = || DecodeError::Invalid("two kinds, fields of a kind, input fields, messages or events share a name");
    let range = || DecodeError::Invalid("an input field's range does not fit its type");
    let rate = || DecodeError::OutOfRange("a message kind's rate");
    let params = || DecodeError::OutOfRange("number of parameters");
    let kinds = || DecodeError::OutOfRange("number of entity kinds");
    // Arena's player: x (coord, x), y (coord, y), score (uint, score), name (text, name).
    vec![
        ("17-kinds", with(arena, &|s| s.kinds = (0..17).map(|i| Kind::new(&format!("k{i}"), [])).collect()), kinds()),
        ("no-kinds", with(arena, &|s| s.kinds.clear()), kinds()),
        (
            "9-fields",
            with(arena, &|s| s.kinds[1] = Kind::new("orb", (0..9).map(|i| field(&format!("f{i}"))))),
            DecodeError::OutOfRange("number of fields of a kind"),
        ),
        (
            "x-on-a-uint",
            with(arena, &|s| (s.kinds[0].fields[0].role, s.kinds[0].fields[2].role) = (Role::None, Role::X)),
            roles(),
        ),
        (
            "name-on-a-uint",
            with(arena, &|s| (s.kinds[0].fields[3].role, s.kinds[0].fields[2].role) = (Role::None, Role::Name)),
            roles(),
        ),
        ("owner-on-a-text", with(arena, &|s| s.kinds[0].fields[3].role = Role::Owner), roles()),
        (
            "private-x",
            with(arena, &|s| s.kinds[1].fields[0].private = true),
            DecodeError::Invalid("a private field may not be x, y, name or owner"),
        ),
        (
            "enum-of-1",
            with(arena, &|s| s.kinds[0].fields[2].ty = FieldType::Enum(1)),
            DecodeError::Invalid("an enumeration needs at least 2 values"),
        ),
        (
            "text-of-0",
            with(arena, &|s| s.kinds[0].fields[3].ty = FieldType::Text(0)),
            DecodeError::Invalid("a text field needs at least 1 byte"),
        ),
        (
            "upper-case-name",
            with(arena, &|s| s.kinds[0].name = "Player".into()),
            DecodeError::Invalid("kind and field names must be 1 to 32 of a-z, 0-9, _"),
        ),
        ("two-kinds-one-name", with(arena, &|s| s.kinds[1].name = "player".into()), names()),
        ("two-events-one-name", with(tanks, &|s| s.events[2].name = "kill".into()), names()),
        ("scale-0", with(arena, &|s| s.scale = 0), DecodeError::Invalid("the coordinate scale must be at least 1")),
        ("input-min-over-max", with(arena, &|s| (s.input[0].min, s.input[0].max) = (5, -5)), range()),
        ("input-out-of-its-type", with(arena, &|s| s.input[0].max = 1000), range()),
        (
            "33-messages",
            with(tanks, &|s| {
                s.messages = (0..33).map(|i| MessageKind::new(&format!("m{i}"), [], 1)).collect();
            }),
            DecodeError::OutOfRange("number of message kinds"),
        ),
        (
            "65-events",
            with(tanks, &|s| {
                s.events = (0..65).map(|i| EventKind::new(&format!("e{i}"), [], true)).collect();
            }),
            DecodeError::OutOfRange("number of event kinds"),
        ),
        (
            "9-parameters",
            with(tanks, &|s| {
                s.messages[0].params = (0..9).map(|i| Param::int(&format!("p{i}"), 0, 1)).collect();
            }),
            params(),
        ),
        ("9-options", with(tanks, &|s| s.options = vec![Param::int("team", 0, 1); 9]), params()),
        ("rate-0", with(tanks, &|s| s.messages[0].per_second = 0), rate()),
        ("rate-1001", with(tanks, &|s| s.messages[0].per_second = 1001), rate()),
        (
            "two-parameters-one-name",
            with(tanks, &|s| s.messages[0].params[1].name = "line".into()),
            DecodeError::Invalid("a message kind's name or parameters are not valid"),
        ),
        (
            "parameter-min-over-max",
            with(tanks, &|s| s.events[0].params[0] = Param::int("target", 1, 0)),
            DecodeError::Invalid("an event kind's name or parameters are not valid"),
        ),
        (
            "parameter-text-of-0",
            with(tanks, &|s| s.options[0] = Param::text("team", 0)),
            DecodeError::Invalid("options must be at most 8 valid parameters"),
        ),
    ]
}
