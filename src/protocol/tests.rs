//! The wire format's tests: the PROTOCOL.md vectors byte for byte (both built-in games), the
//! decoding rules, hostile schemas and limits.

use super::*;
use crate::game::{Arena, Tanks};
use crate::game::{Game, GameConfig};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

fn arena() -> Schema {
    Arena::schema(&GameConfig::default())
}

fn tanks() -> Schema {
    Tanks::schema(&GameConfig::default())
}

/// An entity whose text fields (`texts`, a mask) index a message's texts.
fn with_texts(mut e: Entity, texts: u8) -> Entity {
    e.texts = texts;
    e
}

/// The texts of the documented messages: index 0 is always "".
fn texts(of: &[&str]) -> Vec<Text> {
    std::iter::once(Text::empty())
        .chain(of.iter().map(|t| Text::new(t).unwrap()))
        .collect()
}

/// The two entities of the arena `snapshot` vector (and of the checksum example): an orb, and
/// a player named by text 1.
fn documented_entities() -> Vec<Entity> {
    vec![
        Entity::new(1, 1, &[160, 16000]),
        with_texts(Entity::new(7, 0, &[8000, 8000, 3, 1]), 1 << 3),
    ]
}

fn group(kind: u8, updates: Vec<Update>) -> KindUpdates {
    KindUpdates { kind, updates }
}

fn update(id: u32, fields: &[(usize, u32)]) -> Update {
    let mut u = Update {
        id,
        mask: 0,
        values: [0; MAX_FIELDS],
    };
    for &(i, v) in fields {
        u.mask |= 1 << i;
        u.values[i] = v;
    }
    u
}

fn arena_delta() -> Delta {
    Delta {
        tick: 1000,
        base_gap: 1,
        spawned: vec![Entity::new(260, 1, &[1600, 80])],
        updated: Updates(vec![group(
            0,
            vec![update(7, &[(0, 80), (1, (-3i32) as u32)]), update(9, &[(2, 2)])],
        )]),
        removed: vec![12],
        checksum: Some(0xdead_beef),
        texts: texts(&[]),
    }
}

fn tanks_delta() -> Delta {
    Delta {
        tick: 31,
        base_gap: 1,
        spawned: vec![Entity::new(40, 1, &[8000, 8320, 0, 320, 3])],
        updated: Updates(vec![group(
            0,
            vec![update(3, &[(2, 64)]), update(5, &[(3, 75), (6, 1)])],
        )]),
        removed: vec![38],
        checksum: None,
        texts: texts(&["bob"]),
    }
}

fn tanks_events(tanks: &Schema) -> Events {
    let text = |t: &str| Value::Text(Text::new(t).unwrap());
    Events {
        tick: 31,
        events: vec![
            GameEvent {
                kind: tanks.event_named("kill").unwrap(),
                values: vec![Value::Int(5), Value::Int(3), text("bob"), text("ann")],
            },
            GameEvent {
                kind: tanks.event_named("chat").unwrap(),
                values: vec![Value::Int(3), text("ann"), text("gg"), Value::Int(0)],
            },
        ],
    }
}

fn tanks_private() -> Private {
    let mut ammo = [0; MAX_FIELDS];
    ammo[7] = 4;
    Private {
        tick: 31,
        full: false,
        entities: vec![PrivateUpdate {
            id: 3,
            kind: 0,
            mask: 1 << 7,
            values: ammo,
        }],
        texts: texts(&[]),
        checksum: Some(0x0102_0304),
    }
}

fn match_ended() -> MatchEnded {
    let text = |t: &str| Text::new(t).unwrap();
    let standing = |player, name, rank, score| Standing {
        player,
        name: text(name),
        rank,
        score,
    };
    MatchEnded {
        tick: 600,
        results: Results {
            summary: text("red wins 20 to 13"),
            standings: vec![standing(3, "ann", 1, 20), standing(5, "bob", 2, 13)],
        },
    }
}

/// The resume token of the `arena welcome` and `hello resuming` vectors.
const RESUME: &str = "default.00112233445566778899aabbccddeeff";

/// The vectors printed in PROTOCOL.md: (name, schema the bytes are read with, bytes).
fn vectors() -> Vec<(&'static str, Schema, Vec<u8>)> {
    let (arena, tanks) = (arena(), tanks());
    let input = |values: &[i32], seq| {
        ClientMsg::Input(Input {
            seq,
            values: InputValues::new(values),
        })
    };
    let hello = |options: Vec<(String, Value)>| {
        ClientMsg::Hello(Hello {
            options,
            ..Hello::new("ann")
        })
        .encode(None)
    };
    let welcome = |player_id, resume: &str, grace_ms, schema: &Schema| {
        ServerMsg::Welcome(Welcome {
            version: 5,
            player_id,
            tick_hz: 30,
            resume: resume.into(),
            grace_ms,
            schema: schema.clone(),
        })
        .encode(schema)
    };
    let chat = Message {
        kind: tanks.message_named("chat").unwrap(),
        values: vec![Value::Text(Text::new("gg").unwrap()), Value::Int(1)],
    };
    vec![
        ("hello", arena.clone(), hello(Vec::new())),
        (
            "hello resuming",
            arena.clone(),
            ClientMsg::Hello(Hello::resuming(RESUME)).encode(None),
        ),
        (
            "hello with options",
            tanks.clone(),
            hello(vec![("team".into(), Value::Int(1))]),
        ),
        (
            "arena input",
            arena.clone(),
            input(&[127, -127], 5).encode(Some(&arena)),
        ),
        (
            "tanks input",
            tanks.clone(),
            input(&[0, 127, 64, 1], 6).encode(Some(&tanks)),
        ),
        (
            "ping",
            arena.clone(),
            ClientMsg::Ping(Ping {
                nonce: 42,
                client_time_us: 1_000_000,
            })
            .encode(None),
        ),
        (
            "tanks message",
            tanks.clone(),
            ClientMsg::Message(chat).encode(Some(&tanks)),
        ),
        ("arena welcome", arena.clone(), welcome(7, RESUME, 15_000, &arena)),
        ("tanks welcome", tanks.clone(), welcome(3, "", 0, &tanks)),
        (
            "arena snapshot",
            arena.clone(),
            ServerMsg::Snapshot(Snapshot {
                tick: 3,
                entities: documented_entities(),
                texts: texts(&["ann"]),
            })
            .encode(&arena),
        ),
        (
            "tanks snapshot",
            tanks.clone(),
            ServerMsg::Snapshot(Snapshot {
                tick: 30,
                entities: vec![
                    with_texts(Entity::new(3, 0, &[8000, 8000, 0, 100, 2, 1, 1, 5]), 1 << 6),
                    Entity::new(38, 1, &[4000, 4000, (-320i32) as u32, 0, 5]),
                ],
                texts: texts(&["ann"]),
            })
            .encode(&tanks),
        ),
        (
            "arena delta",
            arena.clone(),
            ServerMsg::Delta(arena_delta()).encode(&arena),
        ),
        (
            "tanks delta",
            tanks.clone(),
            ServerMsg::Delta(tanks_delta()).encode(&tanks),
        ),
        (
            "idle delta",
            arena.clone(),
            ServerMsg::Delta(Delta {
                tick: 70_000,
                base_gap: 1,
                spawned: vec![],
                updated: Updates::default(),
                removed: vec![],
                checksum: None,
                texts: Vec::new(),
            })
            .encode(&arena),
        ),
        ("ack", arena.clone(), ServerMsg::Ack(Ack { seq: 300 }).encode(&arena)),
        (
            "pong",
            arena.clone(),
            ServerMsg::Pong(Pong {
                nonce: 42,
                client_time_us: 1_000_000,
                server_tick: 250,
                server_time_us: 1_700_000_000_000_000,
            })
            .encode(&arena),
        ),
        (
            "tanks events",
            tanks.clone(),
            ServerMsg::Events(tanks_events(&tanks)).encode(&tanks),
        ),
        (
            "tanks private",
            tanks.clone(),
            ServerMsg::Private(tanks_private()).encode(&tanks),
        ),
        (
            "match ended",
            tanks.clone(),
            ServerMsg::MatchEnded(match_ended()).encode(&tanks),
        ),
    ]
}

fn is_client(name: &str) -> bool {
    matches!(
        name,
        "hello" | "hello resuming" | "hello with options" | "ping" | "tanks message"
    ) || name.ends_with("input")
}

#[test]
fn protocol_md_vectors_match_the_encoder() {
    let doc = include_str!("../../PROTOCOL.md");
    for (name, _, bytes) in vectors() {
        let line = format!("{name}: {}", hex(&bytes));
        assert!(doc.contains(&line), "PROTOCOL.md lacks the vector line `{line}`");
    }
}

#[test]
fn every_vector_decodes_back_to_its_message() {
    for (name, schema, bytes) in vectors() {
        let round = if is_client(name) {
            ClientMsg::decode(&bytes, Some(&schema)).map(|m| m.encode(Some(&schema)))
        } else {
            ServerMsg::decode(&bytes, Some(&schema)).map(|m| m.encode(&schema))
        };
        assert_eq!(round.unwrap(), bytes, "{name} does not round-trip");
    }
}

#[test]
fn fixed_messages_are_bincode_standard_bytes() {
    // The messages every game shares are what bincode 2's standard configuration writes for
    // the same structs: PROTOCOL.md's claim, checked against bincode itself.
    #[derive(bincode::Encode)]
    enum Client {
        Hello {
            version: u32,
            name: String,
            token: String,
            resume: String,
            options: Vec<(String, u32)>,
        },
        #[allow(dead_code)]
        Input,
        Ping {
            nonce: u32,
            client_time_us: u64,
        },
    }
    let config = bincode::config::standard();
    let hello = Client::Hello {
        version: 5,
        name: "ann".into(),
        token: "tok".into(),
        resume: "default.00".into(),
        options: Vec::new(),
    };
    let ours = ClientMsg::Hello(Hello {
        token: "tok".into(),
        resume: "default.00".into(),
        ..Hello::new("ann")
    });
    assert_eq!(bincode::encode_to_vec(hello, config).unwrap(), ours.encode(None));
    let ping = Client::Ping {
        nonce: 70_000,
        client_time_us: u64::MAX,
    };
    let ours = ClientMsg::Ping(Ping {
        nonce: 70_000,
        client_time_us: u64::MAX,
    });
    assert_eq!(bincode::encode_to_vec(ping, config).unwrap(), ours.encode(None));
}

#[test]
fn non_minimal_varints_and_wide_prefixes_are_rejected() {
    let arena = arena();
    // Input { seq: 5, .. } with seq written as fb 05 00 instead of 05 (the fuzzer's find in v2).
    let long = [0x01, 0xfb, 0x05, 0x00, 0x7f, 0x81];
    assert_eq!(ClientMsg::decode(&long, Some(&arena)), Err(DecodeError::NonCanonical));
    assert!(ClientMsg::decode(&[0x01, 0x05, 0x7f, 0x81], Some(&arena)).is_ok());
    assert_eq!(
        ServerMsg::decode(&[0x04, 0xfc, 0x2c, 0x01, 0x00, 0x00], None),
        Err(DecodeError::NonCanonical)
    );
    assert_eq!(ServerMsg::decode(&[0x04, 0xfe], None), Err(DecodeError::NonCanonical));
}

#[test]
fn a_delta_reaching_back_before_tick_zero_has_no_base() {
    let delta = Delta {
        tick: 0,
        base_gap: 1,
        spawned: vec![],
        updated: Updates::default(),
        removed: vec![],
        checksum: None,
        texts: Vec::new(),
    };
    assert_eq!(delta.base_tick(), None);
}

#[test]
fn trailing_bytes_and_snapshots_before_a_schema_are_rejected() {
    let arena = arena();
    let mut bytes = ClientMsg::Input(Input {
        seq: 1,
        values: InputValues::new(&[0, 0]),
    })
    .encode(Some(&arena));
    bytes.push(0);
    assert_eq!(ClientMsg::decode(&bytes, Some(&arena)), Err(DecodeError::Trailing(1)));
    let snapshot = ServerMsg::Snapshot(Snapshot {
        tick: 1,
        entities: documented_entities(),
        texts: texts(&["ann"]),
    })
    .encode(&arena);
    assert!(ServerMsg::decode(&snapshot, None).is_err());
}

#[test]
fn huge_length_prefixes_fail_without_allocating() {
    // Hello { version 5, name: length 2^40 }: refused before anything is allocated.
    let bytes = [0x00, 0x05, 0xfd, 0, 0, 0, 0, 0, 0x01, 0, 0];
    assert!(ClientMsg::decode(&bytes, None).is_err());
    // A snapshot claiming billions of entities is refused the same way.
    let bytes = [0x01, 0x00, 0xfc, 0xff, 0xff, 0xff, 0x7f];
    assert_eq!(ServerMsg::decode(&bytes, Some(&arena())), Err(DecodeError::Truncated));
}

#[test]
fn malformed_entities_and_updates_are_rejected() {
    let (arena, tanks) = (arena(), tanks());
    let delta = |updated: &[u8]| {
        let mut bytes = vec![0x02, 0x01, 0x01, 0x00]; // Delta, tick 1, gap 1, 0 spawned
        bytes.extend_from_slice(updated);
        bytes.extend_from_slice(&[0x00, 0x00]); // 0 removed, no checksum
        bytes
    };
    let cases: [(&str, &Schema, Vec<u8>); 9] = [
        ("two updates of one id", &arena, delta(&[1, 0, 2, 5, 4, 2, 0, 4, 3])),
        ("a first id gap of 0", &arena, delta(&[1, 0, 1, 0, 4, 2])),
        ("an empty mask", &arena, delta(&[1, 0, 1, 5, 0])),
        ("a mask bit past the kind's fields", &arena, delta(&[1, 1, 1, 5, 4, 2])),
        (
            "groups out of kind order",
            &arena,
            delta(&[2, 1, 1, 5, 1, 2, 0, 1, 5, 4, 2]),
        ),
        ("an empty group", &arena, delta(&[1, 0, 0])),
        ("an unknown kind", &arena, delta(&[1, 2, 1, 5, 1, 2])),
        ("an enum value past its count", &tanks, delta(&[1, 0, 1, 5, 0x40, 3])),
        ("entity id 0", &arena, vec![0x01, 0x01, 0x01, 0x00, 0x01, 0x02, 0x03]),
    ];
    for (what, schema, bytes) in cases {
        assert!(
            ServerMsg::decode(&bytes, Some(schema)).is_err(),
            "{what} was accepted: {}",
            hex(&bytes)
        );
    }
}

#[test]
fn hostile_schemas_are_refused() {
    let welcome = |schema: &Schema| {
        ServerMsg::Welcome(Welcome {
            version: 5,
            player_id: 1,
            tick_hz: 30,
            resume: String::new(),
            grace_ms: 0,
            schema: schema.clone(),
        })
        .encode(schema)
    };
    let mut too_many_kinds = arena();
    too_many_kinds.kinds = vec![too_many_kinds.kinds[1].clone(); 17];
    let mut too_many_fields = arena();
    too_many_fields.kinds[1].fields = vec![too_many_fields.kinds[1].fields[0].clone(); 9];
    for (i, f) in too_many_fields.kinds[1].fields.iter_mut().enumerate() {
        f.name = format!("f{i}");
        f.role = Role::None;
    }
    let mut x_on_uint = arena();
    x_on_uint.kinds[0].fields[2].role = Role::X;
    let mut bad_name = arena();
    bad_name.kinds[0].name = "Player!".into();
    let mut bad_range = arena();
    bad_range.input[0].max = 1000;
    let mut no_kinds = arena();
    no_kinds.kinds.clear();
    for schema in [
        too_many_kinds,
        too_many_fields,
        x_on_uint,
        bad_name,
        bad_range,
        no_kinds,
    ] {
        assert!(ServerMsg::decode(&welcome(&schema), None).is_err(), "accepted {schema}");
    }
    assert!(ServerMsg::decode(&welcome(&tanks()), None).is_ok());
}

#[test]
fn an_arena_moving_entity_costs_four_bytes() {
    let arena = arena();
    let moving = |ids: &[u32]| {
        let updates = ids
            .iter()
            .map(|&id| update(id, &[(0, (-80i32) as u32), (1, 80)]))
            .collect();
        let delta = Delta {
            updated: Updates(vec![group(0, updates)]),
            ..arena_delta()
        };
        ServerMsg::Delta(delta).encode(&arena).len()
    };
    assert_eq!(moving(&[100, 101]) - moving(&[100]), 4);
}

#[test]
fn checksum_matches_the_documented_example() {
    let doc = include_str!("../../PROTOCOL.md");
    let sum = world_checksum(&documented_entities(), &texts(&["ann"]), &arena());
    let line = format!("checksum of the arena snapshot vector: 0x{sum:08x}");
    assert!(doc.contains(&line), "PROTOCOL.md lacks `{line}`");
    assert_eq!(world_checksum(&[], &[], &arena()), 0x811c_9dc5);
}

#[test]
fn peek_tick_reads_the_tick_of_every_snapshot_and_delta_vector_and_nothing_else() {
    for (name, schema, bytes) in vectors().into_iter().filter(|(name, ..)| !is_client(name)) {
        let peeked = ServerMsg::peek_tick(&bytes);
        match ServerMsg::decode(&bytes, Some(&schema)) {
            Ok(ServerMsg::Snapshot(s)) => assert_eq!(peeked, Some(Peeked::Snapshot(s.tick)), "{name}"),
            Ok(ServerMsg::Delta(d)) => assert_eq!(peeked, Some(Peeked::Delta(d.tick)), "{name}"),
            _ => assert_eq!(peeked, None, "{name}"),
        }
    }
    let late = ServerMsg::Delta(Delta {
        tick: u64::MAX - 1,
        ..arena_delta()
    });
    assert_eq!(
        ServerMsg::peek_tick(&late.encode(&arena())),
        Some(Peeked::Delta(u64::MAX - 1))
    );
    assert_eq!(ServerMsg::peek_tick(&[2]), None, "cut short");
    assert_eq!(ServerMsg::peek_tick(&[]), None);
}
