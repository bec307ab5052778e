//! The seed corpus, `corpus/<target>/*.bin`, made by the encoder: PROTOCOL.md's vectors, worlds
//! built and diffed as the server builds and diffs them, and messages that break one rule each;
//! every seed with what its target must make of it ([`Outcome`]).
//!
//! `cargo test --lib` (in `fuzz/`) checks that the files on disk are exactly these, that each
//! decodes, is refused or applies as its outcome says, and that each passes its target's
//! checks; `TICKCAST_WRITE_SEEDS=1 cargo test --lib` rewrites them. Every input starts with the
//! byte choosing the schema it is read by, as the targets read it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use tickcast::protocol::delta::{ApplyError, NetWorld};
use tickcast::protocol::{
    ClientMsg, DecodeError, Delta, Entity, EventKind, Events, Field, FieldType, GameEvent, Hello, Input, InputValues,
    Kind, KindUpdates, MatchEnded, Message, MessageKind, Param, Private, PrivateUpdate, Results, Role, Schema,
    ServerMsg, Snapshot, Standing, Text, Update, Updates, Value, Welcome,
};

use crate::schemas::pick;
use crate::targets::server_msg::FROM_WELCOME;
use crate::targets::{self, unframe};

mod hostile;

use hostile::hostile_schemas;

const ARENA: u8 = 0;
const TANKS: u8 = 1;
const SAMPLER: u8 = 2;

/// A target's checks of one input.
type Run = fn(&[u8]);

/// The targets by name: where their seeds go, and what checks them.
const TARGETS: [(&str, Run); 4] = [
    ("client_msg", targets::client_msg::run),
    ("server_msg", targets::server_msg::run),
    ("apply_delta", targets::apply_delta::run),
    ("apply_private", targets::apply_private::run),
];

/// What a seed's target makes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// It decodes (for `server_msg` with a welcome first: the message after the welcome).
    Decodes,
    /// Its decoder refuses it with this error (the same).
    Refused(DecodeError),
    /// Its messages decode, and the world applies them.
    Applies,
    /// Its messages decode, and building the world or applying them fails with this error
    /// (the first).
    Fails(ApplyError),
}

use Outcome::{Applies, Decodes, Fails, Refused};

/// One seed: its bytes (the schema byte first), and what its target makes of them.
struct Seed {
    bytes: Vec<u8>,
    outcome: Outcome,
}

/// Seeds by target and file name.
#[derive(Default)]
struct Corpus(BTreeMap<(&'static str, String), Seed>);

impl Corpus {
    fn put(&mut self, target: &'static str, name: &str, schema: u8, bytes: Vec<u8>, outcome: Outcome) {
        let seed = Seed { bytes: [vec![schema], bytes].concat(), outcome };
        let old = self.0.insert((target, format!("{name}.bin")), seed);
        assert!(old.is_none(), "two {target} seeds named {name}");
    }
}

/// The seeds, by target and file name.
fn seeds() -> BTreeMap<(&'static str, String), Seed> {
    let mut corpus = Corpus::default();
    client_msg(&mut corpus);
    server_msg(&mut corpus);
    apply_delta(&mut corpus);
    apply_private(&mut corpus);
    corpus.0
}

/// Players' messages, as the server reads them.
fn client_msg(corpus: &mut Corpus) {
    let mut put = |name, schema, bytes, outcome| corpus.put("client_msg", name, schema, bytes, outcome);
    let (tanks, sampler) = (pick(TANKS), pick(SAMPLER));
    let hello = |name: &str, options: Vec<(String, Value)>| {
        ClientMsg::Hello(Hello { options, ..Hello::new(name) }).encode(None)
    };
    let input =
        |values: &[i32]| ClientMsg::Input(Input { seq: 1, values: InputValues::new(values) }).encode(Some(sampler));
    let message = |schema, kind, values| ClientMsg::Message(Message { kind, values }).encode(Some(schema));
    let team = || ("team".to_owned(), Value::Int(1));

    put("vector-hello", ARENA, vector("hello"), Decodes);
    put("vector-hello-resuming", ARENA, vector("hello resuming"), Decodes);
    put("vector-hello-with-options", TANKS, vector("hello with options"), Decodes);
    put("vector-arena-input", ARENA, vector("arena input"), Decodes);
    put("vector-tanks-input", TANKS, vector("tanks input"), Decodes);
    put("vector-ping", ARENA, vector("ping"), Decodes);
    put("vector-tanks-message", TANKS, vector("tanks message"), Decodes);
    // Decoded, then refused by the server's checks: v3's hello for its version (1002), the
    // others by the hello's own checks and the options' (1008).
    put("hello-v3", ARENA, hex("00 03 03 61 6e 6e 00"), Decodes);
    put("name-over-limit", ARENA, hello(&"a".repeat(33), vec![]), Decodes);
    put("hello-unknown-option", TANKS, hello("ann", vec![("mode".into(), text("ffa").into())]), Decodes);
    // Sampler's: every input type at its extremes, a message without parameters, a text at 255.
    let extremes = [-128, 255, 1, i32::MIN, i32::MAX];
    put("sampler-input", SAMPLER, input(&extremes), Decodes);
    put("sampler-message-without-parameters", SAMPLER, message(sampler, 0, vec![]), Decodes);
    let at_limits = vec![text(&"x".repeat(255)).into(), Value::Int(i32::MIN)];
    put("sampler-message-at-limits", SAMPLER, message(sampler, 1, at_limits), Decodes);

    put("finding-long-varint-seq", ARENA, hex("01 fb 05 00 7f 81"), Refused(DecodeError::NonCanonical));
    put("varint-marker-u128", ARENA, hex("01 fe 00"), Refused(DecodeError::NonCanonical));
    put("huge-name-length", ARENA, hex("00 05 fc ff ff ff 7f"), Refused(too_long()));
    put("bad-utf8-name", ARENA, hex("00 05 02 c3 28 00 00 00"), Refused(DecodeError::Utf8));
    put("trailing-byte", ARENA, [vector("ping"), vec![0]].concat(), Refused(DecodeError::Trailing(1)));
    put("truncated-ping", ARENA, hex("02 2a fc 40"), Refused(DecodeError::Truncated));
    let unknown_tag = DecodeError::Unknown("client message tag");
    put("unknown-variant", ARENA, hex("07"), Refused(unknown_tag));
    put("tanks-input-bool-2", TANKS, hex("01 06 00 7f 40 02"), Refused(bad_bool()));
    put("arena-input-read-as-tanks", TANKS, vector("arena input"), Refused(DecodeError::Truncated));
    // A u32 input past `i32::MAX`, which no input value can hold.
    let u32_input = DecodeError::OutOfRange("u32 input");
    put("sampler-input-u32-over-i32", SAMPLER, input(&[0, 0, 0, 0, -1]), Refused(u32_input));
    let nine = hello("ann", (0..9).map(|_| team()).collect());
    put("hello-nine-options", TANKS, nine, Refused(DecodeError::OutOfRange("number of options")));
    let bad_tag = hex("00 05 03 61 6e 6e 00 00 01 04 74 65 61 6d 02 02");
    put("hello-option-bad-tag", TANKS, bad_tag, Refused(DecodeError::Unknown("value tag")));
    // Option `mode` = "\n".
    let control = hex("00 05 00 00 00 01 04 6d 6f 64 65 01 01 0a");
    put("hello-option-control-char", TANKS, control, Refused(control_char()));
    let long_name = hello("ann", vec![("a".repeat(33), Value::Int(1))]);
    put("hello-option-name-over-limit", TANKS, long_name, Refused(too_long()));
    let unknown_message = || Refused(DecodeError::Unknown("message kind"));
    put("message-in-arena", ARENA, vector("tanks message"), unknown_message());
    put("message-unknown-kind", TANKS, hex("03 01"), unknown_message());
    let long_line = message(tanks, 0, vec![text(&"x".repeat(101)).into(), Value::Int(0)]);
    put("message-line-over-limit", TANKS, long_line, Refused(too_long()));
    // Chat "g\n".
    put("message-control-char", TANKS, hex("03 00 02 67 0a 02"), Refused(control_char()));
    put("message-truncated", TANKS, vector("tanks message")[..4].to_vec(), Refused(DecodeError::Truncated));
}

/// The server's messages, as clients read them.
fn server_msg(corpus: &mut Corpus) {
    let mut put = |name: &str, schema, bytes, outcome| corpus.put("server_msg", name, schema, bytes, outcome);
    let (arena, tanks, sampler) = (pick(ARENA), pick(TANKS), pick(SAMPLER));
    for (name, schema) in [
        ("arena welcome", ARENA),
        ("tanks welcome", TANKS),
        ("arena snapshot", ARENA),
        ("tanks snapshot", TANKS),
        ("arena delta", ARENA),
        ("tanks delta", TANKS),
        ("idle delta", ARENA),
        ("ack", ARENA),
        ("pong", ARENA),
        ("tanks events", TANKS),
        ("tanks private", TANKS),
        ("match ended", TANKS),
    ] {
        put(&format!("vector-{}", name.replace(' ', "-")), schema, vector(name), Decodes);
    }
    // Sampler's world, as the server sends it to player 2.
    let (base, next) = sampler_worlds();
    let events = Events {
        tick: 11,
        events: vec![
            GameEvent { kind: 0, values: vec![] },
            GameEvent { kind: 1, values: vec![Value::Int(i32::MIN), text("hi").into()] },
        ],
    };
    let private = next.encode_private(false, &changes_of(&base, &next, sampler, 2), None, sampler);
    put("sampler-welcome", SAMPLER, welcome(sampler), Decodes);
    put("sampler-snapshot", SAMPLER, base.encode_snapshot(sampler), Decodes);
    put("sampler-delta", SAMPLER, diff(&base, &next, sampler), Decodes);
    put("sampler-private", SAMPLER, private.clone(), Decodes);
    put("sampler-events", SAMPLER, ServerMsg::Events(events).encode(sampler), Decodes);
    // A welcome's schema, then a message read by it.
    let then = |schema, bytes: Vec<u8>| framed(&welcome(schema), &bytes);
    put("welcome-then-tanks-delta", FROM_WELCOME, then(tanks, vector("tanks delta")), Decodes);
    put("welcome-then-sampler-private", FROM_WELCOME, then(sampler, private), Decodes);
    let huge = then(sampler, hex("05 01 fc ff ff ff 7f"));
    put("welcome-then-huge-events", FROM_WELCOME, huge, Refused(DecodeError::Truncated));
    for (name, schema, error) in hostile_schemas() {
        put(&format!("welcome-{name}"), ARENA, welcome(&schema), Refused(error));
    }

    put("unknown-variant", ARENA, hex("08"), Refused(DecodeError::Unknown("server message tag")));
    put("finding-long-varint-ack", ARENA, hex("04 fc 2c 01 00 00"), Refused(DecodeError::NonCanonical));
    // Counts far over what the input holds.
    let truncated = || Refused(DecodeError::Truncated);
    put("huge-entity-count", ARENA, hex("01 03 fc ff ff ff 7f"), truncated());
    put("huge-spawned-count", ARENA, hex("02 05 01 fc ff ff ff 7f"), truncated());
    put("huge-update-groups", ARENA, hex("02 05 01 00 fc ff ff ff 7f"), truncated());
    put("huge-removed-count", ARENA, hex("02 05 01 00 00 fc ff ff ff 7f"), truncated());
    put("truncated-delta", ARENA, vector("arena delta")[..12].to_vec(), truncated());
    put("bad-option-tag", ARENA, hex("02 05 01 00 00 00 02"), Refused(DecodeError::Unknown("option tag")));
    // Entities: (count, id, kind, fields).
    let entity_id_0 = DecodeError::Invalid("entity id 0");
    put("entity-id-0", ARENA, hex("01 03 01 00 01 a0 a0"), Refused(entity_id_0));
    put("unknown-entity-kind", ARENA, hex("01 03 01 05 07 a0 a0"), Refused(unknown_entity_kind()));
    let team_2 = world(3, tanks, &[(Entity::new(3, 0, &[0, 0, 0, 0, 0, 2]), "")]).encode_snapshot(tanks);
    put("tanks-enum-out-of-range", TANKS, team_2, Refused(DecodeError::OutOfRange("enum value")));
    // A marker whose flag `lit` is 2.
    put("sampler-flag-2", SAMPLER, hex("01 1e 01 05 01 00 00 02 00 00"), Refused(bad_bool()));
    // A name over its field's 32 bytes (the server cuts it; a hostile one need not).
    let mut player = Entity::new(7, 0, &[0, 0, 0, 1]);
    player.texts = 1 << 3;
    let long_name = Snapshot { tick: 3, entities: vec![player], texts: vec![Text::empty(), text(&"a".repeat(33))] };
    put("snapshot-name-over-limit", ARENA, ServerMsg::Snapshot(long_name).encode(arena), Refused(too_long()));
    // Updates: (groups, kind, count, id gap, mask, fields).
    let mask = || Refused(DecodeError::Invalid("bad update field mask"));
    put("update-mask-0", ARENA, hex("02 05 01 00 01 00 01 07 00 00 00"), mask());
    put("update-mask-past-fields", ARENA, hex("02 05 01 00 01 00 01 07 10 02 00 00"), mask());
    put("update-private-field", TANKS, hex("02 1f 01 00 01 00 01 03 80 04 00 00"), mask());
    let gap_0 = DecodeError::Invalid("update ids must strictly ascend from 1");
    put("update-id-gap-0", ARENA, hex("02 05 01 00 01 00 02 07 04 02 00 04 02 00 00"), Refused(gap_0));
    let empty = DecodeError::Invalid("an empty update group");
    put("update-group-empty", ARENA, hex("02 05 01 00 01 00 00 00 00"), Refused(empty));
    let descending = hex("02 05 01 00 02 01 01 03 01 02 00 01 03 04 02 00 00");
    let order = DecodeError::Invalid("update groups must have strictly ascending kinds");
    put("update-groups-descending", ARENA, descending, Refused(order));
    let overflow = hex("02 05 01 00 01 00 02 fc ff ff ff ff 04 02 01 04 02 00 00");
    put("update-id-overflow", ARENA, overflow, Refused(DecodeError::OutOfRange("update id")));
    // Tank 3 renamed "a\x01".
    let renamed = hex("02 1f 01 00 01 00 01 03 40 02 61 01 00 00");
    put("update-text-control-char", TANKS, renamed, Refused(control_char()));

    // Events: (tick, count, then each: kind, parameters).
    let no_event = DecodeError::Invalid("an events message with no event");
    put("events-empty", TANKS, hex("05 1f 00"), Refused(no_event));
    let unknown_event = || Refused(DecodeError::Unknown("event kind"));
    put("events-unknown-kind", TANKS, hex("05 1f 01 03"), unknown_event());
    put("events-in-arena", ARENA, vector("tanks events"), unknown_event());
    put("events-huge-count", TANKS, hex("05 1f fc ff ff ff 7f"), truncated());
    let chat = |line: &str| GameEvent {
        kind: 2,
        values: vec![Value::Int(3), text("ann").into(), text(line).into(), Value::Int(0)],
    };
    let long_line = Events { tick: 31, events: vec![chat(&"x".repeat(101))] };
    put("events-line-over-limit", TANKS, ServerMsg::Events(long_line).encode(tanks), Refused(too_long()));
    // Chat from 3 "ann": "g\n".
    let control = hex("05 1f 01 02 06 03 61 6e 6e 02 67 0a 00");
    put("events-control-char", TANKS, control, Refused(control_char()));

    // Private fields: (tick, full, count, then each: id, kind, mask, fields).
    let ammo = |id, mask| PrivateUpdate { id, kind: 0, mask, values: [8000, 0, 0, 0, 0, 0, 0, 4] };
    let tanks_private = |entities| {
        let private = Private { tick: 31, full: false, entities, texts: vec![], checksum: None };
        ServerMsg::Private(private).encode(tanks)
    };
    let private_mask = || Refused(DecodeError::Invalid("bad private field mask"));
    put("private-in-arena", ARENA, vector("tanks private"), private_mask());
    put("private-public-field", TANKS, tanks_private(vec![ammo(3, 0x81)]), private_mask());
    put("private-mask-0", TANKS, tanks_private(vec![ammo(3, 0)]), private_mask());
    let ids = || Refused(DecodeError::Invalid("private entries must have strictly ascending ids from 1"));
    put("private-ids-descending", TANKS, tanks_private(vec![ammo(5, 0x80), ammo(3, 0x80)]), ids());
    put("private-id-0", TANKS, tanks_private(vec![ammo(0, 0x80)]), ids());
    put("private-unknown-kind", TANKS, hex("06 1f 00 01 03 02 80 04 00"), Refused(unknown_entity_kind()));
    put("private-huge-count", TANKS, hex("06 1f 00 fc ff ff ff 7f"), truncated());
    put("private-full-2", TANKS, hex("06 1f 02 00 00"), Refused(bad_bool()));

    // The end of a match: (tick, summary, count, then each: player, name, rank, score).
    put("match-ended-huge-standings", TANKS, hex("07 01 00 fc ff ff ff 7f"), truncated());
    put("match-ended-summary-over-255", TANKS, hex("07 01 fb 00 01"), Refused(too_long()));
    put("match-ended-control-char", TANKS, hex("07 01 01 0a 00"), Refused(control_char()));
    let bad_name = hex("07 01 00 01 03 02 c3 28 01 00");
    put("match-ended-bad-utf8-name", TANKS, bad_name, Refused(DecodeError::Utf8));
    let ended = MatchEnded {
        tick: 9,
        results: Results {
            summary: text("a draw"),
            standings: vec![Standing { player: 1, name: text(""), rank: 1, score: i32::MIN }],
        },
    };
    put("match-ended-unnamed", TANKS, ServerMsg::MatchEnded(ended).encode(tanks), Decodes);
}

/// A client's world: a snapshot, then a delta applied to it.
fn apply_delta(corpus: &mut Corpus) {
    let mut put = |name, schema, snapshot: &[u8], delta: &[u8], outcome| {
        corpus.put("apply_delta", name, schema, framed(snapshot, delta), outcome);
    };
    let arena = pick(ARENA);
    let base = world(3, arena, &[(Entity::new(1, 1, &[160, 16000]), ""), (Entity::new(7, 0, &[8000, 8000, 3]), "ann")]);
    // Player 7 moved, scored and was renamed; orb 1 was eaten and orb 9 spawned.
    let moved = world(4, arena, &[(Entity::new(7, 0, &[8080, 7997, 4]), "anne"), (Entity::new(9, 1, &[1600, 80]), "")]);
    let snapshot = base.encode_snapshot(arena);
    let right = moved.checksum(arena);
    let delta = |base_gap, checksum| base.diff(&moved, arena).encode(&moved, base_gap, checksum, arena);
    let update = |id, mask, values: &[u32]| Update {
        id,
        mask,
        values: std::array::from_fn(|i| values.get(i).copied().unwrap_or(0)),
    };
    let score = update(7, 0b100, &[0, 0, 5]);
    let only = |tick, base_gap, updates, removed, spawned| {
        let delta = Delta {
            tick,
            base_gap,
            spawned,
            updated: Updates(vec![KindUpdates { kind: 0, updates }]),
            removed,
            checksum: None,
            texts: vec![],
        };
        ServerMsg::Delta(delta).encode(arena)
    };

    put("applies", ARENA, &snapshot, &delta(1, None), Applies);
    put("applies-with-checksum", ARENA, &snapshot, &delta(1, Some(right)), Applies);
    let mismatch = ApplyError::ChecksumMismatch { tick: 4, server: right ^ 1, local: right };
    put("checksum-mismatch", ARENA, &snapshot, &delta(1, Some(right ^ 1)), Fails(mismatch));
    let wrong_base = |tick, base_gap, held| Fails(ApplyError::WrongBase { tick, base_gap, held });
    put("wrong-base", ARENA, &snapshot, &delta(2, None), wrong_base(4, 2, 3));
    put("base-gap-0", ARENA, &snapshot, &only(3, 0, vec![score], vec![], vec![]), wrong_base(3, 0, 3));
    // A delta to tick 0 with a base gap of 1 has no base, not even the world at tick 0.
    let at_0 = NetWorld::new(0, vec![]).encode_snapshot(arena);
    put("finding-base-before-tick-0", ARENA, &at_0, &only(0, 1, vec![], vec![], vec![]), wrong_base(0, 1, 0));
    let unknown = || Fails(ApplyError::UnknownEntity(8));
    let nobody = only(4, 1, vec![update(8, 0b100, &[0, 0, 5])], vec![], vec![]);
    put("unknown-update", ARENA, &snapshot, &nobody, unknown());
    put("unknown-removal", ARENA, &snapshot, &only(4, 1, vec![score], vec![8], vec![]), unknown());
    let orb_as_player = only(4, 1, vec![update(1, 0b100, &[0, 0, 5])], vec![], vec![]);
    put("wrong-kind", ARENA, &snapshot, &orb_as_player, Fails(ApplyError::WrongKind(1)));
    let again = only(4, 1, vec![score], vec![], vec![Entity::new(1, 1, &[0, 0])]);
    put("duplicate-spawn", ARENA, &snapshot, &again, Fails(ApplyError::DuplicateEntity(1)));
    let below_0 = only(4, 1, vec![update(7, 0b001, &[(-9000i32) as u32])], vec![], vec![]);
    put("out-of-range", ARENA, &snapshot, &below_0, Fails(ApplyError::OutOfRange(7)));
    let far = only(4, 1, vec![score], vec![1], vec![Entity::new(1, 1, &[u32::MAX, 0])]);
    put("respawn-removed-far", ARENA, &snapshot, &far, Applies);
    let unordered =
        Snapshot { tick: 3, entities: base.entities().iter().rev().copied().collect(), texts: base.texts().to_vec() };
    let unordered = ServerMsg::Snapshot(unordered).encode(arena);
    put("unordered-snapshot", ARENA, &unordered, &delta(1, None), Fails(ApplyError::Unordered));

    // Tank 3 (whose ammo is private, not in the snapshot) is hit and fires a shell.
    let tanks = pick(TANKS);
    let tank = world(30, tanks, &[(Entity::new(3, 0, &[8000, 8000, 0, 100, 2, 1, 0, 5]), "ann")]);
    let hit = world(
        31,
        tanks,
        &[
            (Entity::new(3, 0, &[8000, 8000, 64, 75, 2, 1, 0, 4]), "ann"),
            (Entity::new(40, 1, &[8000, 8320, 0, 320, 3]), ""),
        ],
    );
    put("tanks-applies-with-checksum", TANKS, &tank.encode_snapshot(tanks), &diff(&tank, &hit, tanks), Applies);
    let sampler = pick(SAMPLER);
    let (base, next) = sampler_worlds();
    let (snapshot, delta) = (base.encode_snapshot(sampler), diff(&base, &next, sampler));
    put("sampler-applies-with-checksum", SAMPLER, &snapshot, &delta, Applies);
}

/// A client's world: a snapshot, then private fields applied to it as a player.
fn apply_private(corpus: &mut Corpus) {
    let mut put = |name, schema, player: u32, snapshot: &[u8], private: &[Vec<u8>], outcome| {
        let private: Vec<u8> = private.iter().flat_map(|p| framed(p, &[])).collect();
        let bytes = [&player.to_le_bytes()[..], &framed(snapshot, &private)].concat();
        corpus.put("apply_private", name, schema, bytes, outcome);
    };
    let tanks = pick(TANKS);
    // Tank 3 (ann) and tank 5 (bob), and bob's shell; then ann fires, her ammo 5 down to 4.
    let tank = |ammo| Entity::new(3, 0, &[8000, 8000, 0, 100, 2, 1, 0, ammo]);
    let others = [
        (Entity::new(5, 0, &[4000, 4000, 0, 100, 0, 0, 0, 2]), "bob"),
        (Entity::new(38, 1, &[4000, 4320, 0, 320, 5]), ""),
    ];
    let before = world(30, tanks, &[&[(tank(5), "ann")][..], &others].concat());
    let after = world(31, tanks, &[&[(tank(4), "ann")][..], &others].concat());
    let snapshot = before.encode_snapshot(tanks);
    let sum = before.private_checksum(tanks, 3);
    let keyframe = |checksum| before.encode_private(true, &before.private_of(tanks, 3), checksum, tanks);
    let tick = after.encode_private(
        false,
        &changes_of(&before, &after, tanks, 3),
        Some(after.private_checksum(tanks, 3)),
        tanks,
    );
    let entry = |id: Option<u32>, full| {
        let entities = id
            .map(|id| PrivateUpdate { id, kind: 0, mask: 1 << 7, values: [0, 0, 0, 0, 0, 0, 0, 9] })
            .into_iter()
            .collect();
        let private = Private { tick: 30, full, entities, texts: vec![], checksum: None };
        ServerMsg::Private(private).encode(tanks)
    };

    put("tanks-keyframe-then-tick", TANKS, 3, &snapshot, &[keyframe(Some(sum)), tick], Applies);
    let mismatch = ApplyError::PrivateMismatch { tick: 30, server: sum ^ 1, local: sum };
    put("tanks-checksum-mismatch", TANKS, 3, &snapshot, &[keyframe(Some(sum ^ 1))], Fails(mismatch));
    let unknown = Fails(ApplyError::UnknownEntity(4));
    put("tanks-unknown-entity", TANKS, 3, &snapshot, &[entry(Some(4), false)], unknown);
    let shell = Fails(ApplyError::WrongKind(38));
    put("tanks-shell-as-a-tank", TANKS, 3, &snapshot, &[entry(Some(38), false)], shell);
    // The protocol says a player is sent only what it owns; a client applies what it is sent.
    put("tanks-another-players-tank", TANKS, 3, &snapshot, &[entry(Some(5), false)], Applies);
    // A `full` message with no entry unsets the ammo the keyframe set.
    let unset = [keyframe(None), entry(None, true)];
    put("tanks-full-unsets", TANKS, 3, &snapshot, &unset, Applies);

    // Sampler's: player 2 owns units 2 and 7 (through their owner field); marker 4 owns itself.
    let sampler = pick(SAMPLER);
    let (base, next) = sampler_worlds();
    let keyframe = |player| {
        let checksum = Some(base.private_checksum(sampler, player));
        base.encode_private(true, &base.private_of(sampler, player), checksum, sampler)
    };
    let tick = next.encode_private(
        false,
        &changes_of(&base, &next, sampler, 2),
        Some(next.private_checksum(sampler, 2)),
        sampler,
    );
    let snapshot = base.encode_snapshot(sampler);
    put("sampler-keyframe-then-tick", SAMPLER, 2, &snapshot, &[keyframe(2), tick], Applies);
    put("sampler-marker-owns-itself", SAMPLER, 4, &snapshot, &[keyframe(4)], Applies);
}

/// Sampler's world at ticks 10 and 11. Units 2 and 7 are player 2's, unit 3 player 3's; marker
/// 4 is its own. In the tick, unit 2 moves, loses a point of `hp` and changes `ready` and
/// `note`; unit 3 is renamed and changes gear; marker 4 changes every field; unit 7 only its
/// `note`; dot 6 goes, marker 8 and dot 9 come.
fn sampler_worlds() -> (NetWorld, NetWorld) {
    let unit = |id, x, owner, hp: i32, ready, gear| Entity::new(id, 0, &[x, 200, owner, 0, hp as u32, ready, gear]);
    let marker = |id, at, level: i32, lit, hue, secret| Entity::new(id, 1, &[at, level as u32, lit, hue, 0, secret]);
    let base = sampler_world(
        10,
        &[
            (unit(2, 100, 2, -5, 1, 2), &[(3, "two"), (7, "ok")]),
            (unit(3, 300, 3, 7, 0, 0), &[(3, "three")]),
            (marker(4, 5, -3, 1, 254, 99), &[(4, "here")]),
            (Entity::new(6, 2, &[]), &[]),
            (unit(7, 700, 2, 1, 0, 1), &[(7, "n7")]),
        ],
    );
    let next = sampler_world(
        11,
        &[
            (unit(2, 1100, 2, -6, 0, 2), &[(3, "two"), (7, "go")]),
            (unit(3, 300, 3, 7, 0, 1), &[(3, "3")]),
            (marker(4, 7, 4, 0, 0, 100), &[]),
            (unit(7, 700, 2, 1, 0, 1), &[(7, "n8")]),
            (marker(8, 0, 0, 1, 0, 0), &[(4, "new")]),
            (Entity::new(9, 2, &[]), &[]),
        ],
    );
    (base, next)
}

/// A world of sampler's at `tick`, each entity with its texts by field.
fn sampler_world(tick: u64, entities: &[(Entity, &[(usize, &str)])]) -> NetWorld {
    let mut world = NetWorld::default();
    let mut out = world.capture(tick, pick(SAMPLER));
    for (entity, texts) in entities {
        out.push(*entity);
        for (field, t) in *texts {
            out.text(*field, &text(t));
        }
    }
    world
}

/// A world at `tick` as the server captures it from a game, each entity with its name (the
/// arena's and tanks' one text field; "" for none).
fn world(tick: u64, schema: &Schema, entities: &[(Entity, &str)]) -> NetWorld {
    let name = |e: &Entity| schema.kind(e.kind).and_then(|k| k.fields.iter().position(|f| f.role == Role::Name));
    let mut world = NetWorld::default();
    let mut out = world.capture(tick, schema);
    for (entity, t) in entities {
        out.push(*entity);
        if let Some(field) = name(entity) {
            out.text(field, &text(t));
        }
    }
    world
}

/// The delta from `base` to `next` (one tick later), with its checksum, as the server sends it.
fn diff(base: &NetWorld, next: &NetWorld, schema: &Schema) -> Vec<u8> {
    let checksum = Some(next.checksum(schema));
    base.diff(next, schema).encode(next, 1, checksum, schema)
}

/// The private fields of `player`'s that changed from `base` to `next`.
fn changes_of(base: &NetWorld, next: &NetWorld, schema: &Schema, player: u32) -> Vec<PrivateUpdate> {
    let mut changes = Vec::new();
    base.private_changes(next, schema, |to, update| {
        if to == player {
            changes.push(update);
        }
    });
    changes
}

fn welcome(schema: &Schema) -> Vec<u8> {
    let welcome = Welcome {
        version: tickcast::protocol::PROTOCOL_VERSION,
        player_id: 1,
        tick_hz: 30,
        resume: "default.00112233445566778899aabbccddeeff".into(),
        grace_ms: 15_000,
        schema: schema.clone(),
    };
    ServerMsg::Welcome(welcome).encode(schema)
}

/// `first` after two bytes (little endian) giving its length, then `rest`: what
/// [`unframe`] splits.
fn framed(first: &[u8], rest: &[u8]) -> Vec<u8> {
    let len = u16::try_from(first.len()).expect("a seed's message fits a frame");
    [&len.to_le_bytes()[..], first, rest].concat()
}

fn text(t: &str) -> Text {
    Text::new(t).expect("a text")
}

fn too_long() -> DecodeError {
    DecodeError::OutOfRange("string length")
}

fn control_char() -> DecodeError {
    DecodeError::Invalid("a text with control characters")
}

fn bad_bool() -> DecodeError {
    DecodeError::Unknown("bool value")
}

fn unknown_entity_kind() -> DecodeError {
    DecodeError::Unknown("entity kind")
}

/// PROTOCOL.md's test vector `name`.
fn vector(name: &str) -> Vec<u8> {
    static VECTORS: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    let vectors = VECTORS.get_or_init(|| {
        let doc = include_str!("../../PROTOCOL.md");
        let block = doc
            .split("## Test vectors")
            .nth(1)
            .and_then(|rest| rest.split("```").nth(1))
            .expect("PROTOCOL.md has a test vector block");
        block
            .lines()
            .filter_map(|line| line.split_once(": "))
            .map(|(name, bytes)| (name.to_owned(), hex(bytes)))
            .collect()
    });
    vectors.get(name).unwrap_or_else(|| panic!("PROTOCOL.md has no vector {name:?}")).clone()
}

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace().map(|b| u8::from_str_radix(b, 16).expect("hex")).collect()
}

/// Where the corpus lives.
fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// What the target makes of a seed's bytes, found the way the target finds it.
fn outcome(target: &str, bytes: &[u8]) -> Outcome {
    let (&which, data) = bytes.split_first().expect("a schema byte");
    let applied = |result: Result<(), ApplyError>| result.map_or_else(Fails, |()| Applies);
    match target {
        "client_msg" => decoded(ClientMsg::decode(data, Some(pick(which)))),
        "server_msg" if which % 4 == FROM_WELCOME => {
            let (welcome, then) = unframe(data).expect("a framed welcome");
            let Ok(ServerMsg::Welcome(welcome)) = ServerMsg::decode(welcome, None) else {
                panic!("no welcome first");
            };
            decoded(ServerMsg::decode(then, Some(&welcome.schema)))
        }
        "server_msg" => decoded(ServerMsg::decode(data, Some(pick(which % 4)))),
        "apply_delta" => applied(apply_delta_of(pick(which), data)),
        "apply_private" => applied(apply_private_of(pick(which), data)),
        other => panic!("no target {other}"),
    }
}

fn decoded<T>(result: Result<T, DecodeError>) -> Outcome {
    result.map_or_else(Refused, |_| Decodes)
}

fn decode(bytes: &[u8], schema: &Schema) -> ServerMsg {
    ServerMsg::decode(bytes, Some(schema)).expect("an apply seed's messages decode")
}

fn apply_delta_of(schema: &Schema, data: &[u8]) -> Result<(), ApplyError> {
    let (snapshot, delta) = unframe(data).expect("a framed snapshot");
    let (ServerMsg::Snapshot(snapshot), ServerMsg::Delta(delta)) = (decode(snapshot, schema), decode(delta, schema))
    else {
        panic!("not a snapshot and a delta");
    };
    NetWorld::from_snapshot(&snapshot)?.apply(&delta, schema)
}

fn apply_private_of(schema: &Schema, data: &[u8]) -> Result<(), ApplyError> {
    let (player, data) = data.split_first_chunk::<4>().expect("a player");
    let (snapshot, mut rest) = unframe(data).expect("a framed snapshot");
    let ServerMsg::Snapshot(snapshot) = decode(snapshot, schema) else {
        panic!("not a snapshot");
    };
    let mut world = NetWorld::from_snapshot(&snapshot)?;
    while let Some((bytes, more)) = unframe(rest) {
        rest = more;
        let ServerMsg::Private(private) = decode(bytes, schema) else {
            panic!("not private fields");
        };
        world.apply_private(&private, schema, u32::from_le_bytes(*player))?;
    }
    Ok(())
}

#[test]
fn the_checked_in_seeds_are_the_current_protocols() {
    let seeds = seeds();
    let dir = corpus_dir();
    if std::env::var_os("TICKCAST_WRITE_SEEDS").is_some() {
        for (target, _) in TARGETS {
            let folder = dir.join(target);
            std::fs::create_dir_all(&folder).unwrap();
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "bin") {
                    std::fs::remove_file(path).unwrap();
                }
            }
        }
        for ((target, name), seed) in &seeds {
            std::fs::write(dir.join(target).join(name), &seed.bytes).unwrap();
        }
    }
    let mut on_disk = BTreeMap::new();
    for (target, _) in TARGETS {
        for entry in std::fs::read_dir(dir.join(target)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "bin") {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                on_disk.insert((target, name), std::fs::read(&path).unwrap());
            }
        }
    }
    assert_eq!(
        on_disk.keys().collect::<Vec<_>>(),
        seeds.keys().collect::<Vec<_>>(),
        "rewrite the seeds: TICKCAST_WRITE_SEEDS=1 cargo test --lib"
    );
    for (key, seed) in &seeds {
        assert_eq!(on_disk[key], seed.bytes, "{key:?} is stale: TICKCAST_WRITE_SEEDS=1 cargo test --lib");
    }
}

#[test]
fn each_seed_reaches_what_it_says() {
    for ((target, name), seed) in seeds() {
        assert_eq!(outcome(target, &seed.bytes), seed.outcome, "{target}/{name}");
    }
}

#[test]
fn each_seed_passes_its_targets_checks() {
    for ((target, name), seed) in seeds() {
        let (_, run) = TARGETS.iter().find(|(t, _)| *t == target).expect("a target");
        let passed = std::panic::catch_unwind(|| run(&seed.bytes)).is_ok();
        assert!(passed, "{target}/{name} fails its target's checks");
    }
}
