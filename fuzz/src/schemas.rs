//! The schemas inputs are read by, chosen by an input's first byte ([`pick`]): arena's and
//! tanks', the games that ship, and sampler's, a game of the fuzzer's own with what neither of
//! those has, so that the decoders and the world meet it too: every field type, public and
//! private (a private text among them); private fields owned through an owner field; a kind
//! with no fields; every input type over its whole range; a message and an event without
//! parameters; int parameters over the whole `i32` range.

use std::sync::OnceLock;

use tickcast::game::{Arena, Game, GameConfig, Tanks};
use tickcast::protocol::{EventKind, Field, FieldType, InputField, InputType, Kind, MessageKind, Param, Role, Schema};

/// The schema byte `which` chooses: arena's, tanks' or sampler's, by `which % 3`.
pub(crate) fn pick(which: u8) -> &'static Schema {
    static SCHEMAS: OnceLock<[Schema; 3]> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        let config = GameConfig::default();
        [Arena::schema(&config), Tanks::schema(&config), sampler()]
    });
    &schemas[usize::from(which % 3)]
}

/// Sampler's schema. Kind 0 `unit` has an owner and four private fields (int, flag, enum,
/// text); kind 1 `marker` has no owner (it is its own) and a private coordinate; kind 2 `dot`
/// has no fields.
fn sampler() -> Schema {
    let int = |name| Param::int(name, i32::MIN, i32::MAX);
    Schema::new("sampler", 16, 1000, 1000)
        .with_kind(Kind::positioned(
            "unit",
            [
                Field::new("owner", FieldType::Uint, Role::Owner),
                Field::new("name", FieldType::Text(16), Role::Name),
                Field::new("hp", FieldType::Int, Role::Label).private(),
                Field::new("ready", FieldType::Flag, Role::None).private(),
                Field::new("gear", FieldType::Enum(3), Role::None).private(),
                Field::new("note", FieldType::Text(8), Role::None).private(),
            ],
        ))
        .with_kind(Kind::new(
            "marker",
            [
                Field::new("at", FieldType::Coord, Role::None),
                Field::new("level", FieldType::Int, Role::Score),
                Field::new("lit", FieldType::Flag, Role::None),
                Field::new("hue", FieldType::Enum(255), Role::None),
                Field::new("label", FieldType::Text(255), Role::Label),
                Field::new("secret", FieldType::Coord, Role::None).private(),
            ],
        ))
        .with_kind(Kind::new("dot", []))
        .with_input(InputField::new("a", InputType::I8, -128, 127))
        .with_input(InputField::new("b", InputType::U8, 0, 255))
        .with_input(InputField::new("c", InputType::Bool, 0, 1))
        .with_input(InputField::new("d", InputType::I32, i32::MIN, i32::MAX))
        .with_input(InputField::new("e", InputType::U32, 0, i32::MAX))
        .with_message(MessageKind::new("ready", [], 1))
        .with_message(MessageKind::new("say", [Param::text("line", 255), int("to")], 1000))
        .with_event(EventKind::new("beat", [], false))
        .with_event(EventKind::new("said", [int("from"), Param::text("line", 255)], true))
        .with_option(Param::int("level", -5, 5))
        .with_option(Param::text("tag", 8))
        .with_room_option(int("seed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_is_a_schema_a_client_accepts() {
        assert_eq!(pick(2).validate(), Ok(()));
        let games: Vec<_> = (0..6).map(|which| pick(which).game.as_str()).collect();
        assert_eq!(games, ["arena", "tanks", "sampler", "arena", "tanks", "sampler"]);
    }
}
