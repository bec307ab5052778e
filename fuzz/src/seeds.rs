//! The seed corpus, `corpus/<target>/*.bin`, made from the encoder and PROTOCOL.md's vectors.
//!
//! `cargo test --lib` (in `fuzz/`) checks that the files on disk are exactly these, so the
//! seeds follow the protocol; `TICKCAST_WRITE_SEEDS=1 cargo test --lib` rewrites them.
//!
//! Every input starts with the byte that chooses the game its bytes are read by (0 arena,
//! 1 tanks), as the targets read it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tickcast::protocol::delta::NetWorld;
use tickcast::game::{Game, GameConfig};
use tickcast::game::{Arena, Tanks};
use tickcast::protocol::{
    Delta, Entity, Field, FieldType, Kind, KindUpdates, Role, Schema, ServerMsg, Snapshot, Update, Updates,
    Welcome, world_checksum,
};

const ARENA: u8 = 0;
const TANKS: u8 = 1;

/// The seeds, by target and file name.
pub fn seeds() -> BTreeMap<(&'static str, String), Vec<u8>> {
    let mut out = BTreeMap::new();
    let vectors = protocol_md_vectors();
    let vector = |name: &str| vectors[name].clone();
    let mut put = |target: &'static str, name: &str, game: u8, bytes: Vec<u8>| {
        out.insert((target, format!("{name}.bin")), [vec![game], bytes].concat());
    };

    // Players' messages, as the server reads them.
    put("client_msg", "vector-hello", ARENA, vector("hello"));
    put("client_msg", "vector-arena-input", ARENA, vector("arena input"));
    put("client_msg", "vector-tanks-input", TANKS, vector("tanks input"));
    put("client_msg", "vector-ping", ARENA, vector("ping"));
    put("client_msg", "finding-long-varint-seq", ARENA, hex("01 fb 05 00 7f 81"));
    put("client_msg", "huge-name-length", ARENA, hex("00 03 fc ff ff ff 7f"));
    put("client_msg", "name-over-limit", ARENA, [hex("00 03 21"), vec![b'a'; 33], hex("00")].concat());
    put("client_msg", "bad-utf8-name", ARENA, hex("00 03 02 c3 28 00"));
    put("client_msg", "trailing-byte", ARENA, [vector("ping"), vec![0]].concat());
    put("client_msg", "truncated-ping", ARENA, hex("02 2a fc 40"));
    put("client_msg", "unknown-variant", ARENA, hex("07"));
    put("client_msg", "varint-marker-u128", ARENA, hex("01 fe 00"));
    put("client_msg", "tanks-input-bool-2", TANKS, hex("01 06 00 7f 40 02"));
    put("client_msg", "arena-input-read-as-tanks", TANKS, vector("arena input"));

    // The server's messages, as clients read them.
    for (name, game) in [
        ("arena welcome", ARENA),
        ("tanks welcome", TANKS),
        ("arena snapshot", ARENA),
        ("tanks snapshot", TANKS),
        ("arena delta", ARENA),
        ("tanks delta", TANKS),
        ("idle delta", ARENA),
        ("ack", ARENA),
        ("pong", ARENA),
    ] {
        put("server_msg", &format!("vector-{}", name.replace(' ', "-")), game, vector(name));
    }
    // A welcome's schema then a message read by it (the `0xff 0xff` separator).
    put(
        "server_msg",
        "welcome-then-delta",
        ARENA,
        [vector("tanks welcome"), hex("ff ff"), vector("tanks delta")].concat(),
    );
    for (name, schema) in hostile_schemas() {
        put("server_msg", &format!("welcome-{name}"), ARENA, welcome(&schema));
    }
    put("server_msg", "finding-long-varint-ack", ARENA, hex("04 fc 2c 01 00 00"));
    put("server_msg", "huge-entity-count", ARENA, hex("01 03 fc ff ff ff 7f"));
    put("server_msg", "huge-spawned-count", ARENA, hex("02 05 01 fc ff ff ff 7f"));
    put("server_msg", "huge-update-groups", ARENA, hex("02 05 01 00 fc ff ff ff 7f"));
    put("server_msg", "huge-removed-count", ARENA, hex("02 05 01 00 00 fc ff ff ff 7f"));
    put("server_msg", "entity-id-0", ARENA, hex("01 03 01 00 01 a0 a0"));
    put("server_msg", "unknown-entity-kind", ARENA, hex("01 03 01 05 07 a0 a0"));
    put("server_msg", "tanks-enum-out-of-range", TANKS, hex("01 1e 01 03 00 a0 a0 00 64 02 00 03"));
    put("server_msg", "tanks-bool-2", TANKS, hex("01 1e 01 03 00 a0 a0 00 64 02 02 00"));
    // Updates: (groups, kind, count, id gap, mask, fields).
    put("server_msg", "update-mask-0", ARENA, hex("02 05 01 00 01 00 01 07 00 00 00"));
    put("server_msg", "update-mask-past-fields", ARENA, hex("02 05 01 00 01 00 01 07 08 02 00 00"));
    put("server_msg", "update-id-gap-0", ARENA, hex("02 05 01 00 01 00 02 07 04 02 00 04 02 00 00"));
    put("server_msg", "update-group-empty", ARENA, hex("02 05 01 00 01 00 00 00 00"));
    put("server_msg", "update-groups-descending", ARENA, hex("02 05 01 00 02 01 01 03 01 02 00 01 03 04 02 00 00"));
    put("server_msg", "update-id-overflow", ARENA, hex("02 05 01 00 01 00 02 fc ff ff ff ff 04 02 01 04 02 00 00"));
    put("server_msg", "bad-option-tag", ARENA, hex("02 05 01 00 00 00 02"));
    put("server_msg", "truncated-delta", ARENA, vector("arena delta")[..12].to_vec());

    // A client's world: a snapshot, then a delta applied to it.
    for (name, game, snapshot, delta) in apply_cases() {
        let schema = schema(game);
        let snapshot = ServerMsg::Snapshot(snapshot).encode(&schema);
        let delta = ServerMsg::Delta(delta).encode(&schema);
        let len = u16::try_from(snapshot.len()).expect("a small snapshot");
        put("apply_delta", name, game, [&len.to_le_bytes()[..], &snapshot, &delta].concat());
    }
    out
}

fn schema(game: u8) -> Schema {
    if game == TANKS {
        Tanks::schema(&GameConfig::default())
    } else {
        Arena::schema(&GameConfig::default())
    }
}

fn welcome(schema: &Schema) -> Vec<u8> {
    let welcome = Welcome {
        version: 3,
        player_id: 1,
        tick_hz: 30,
        schema: schema.clone(),
    };
    ServerMsg::Welcome(welcome).encode(schema)
}

/// Schemas a client must refuse, each breaking one rule of PROTOCOL.md's.
fn hostile_schemas() -> Vec<(&'static str, Schema)> {
    let arena = schema(ARENA);
    let with = |change: &dyn Fn(&mut Schema)| {
        let mut schema = arena.clone();
        change(&mut schema);
        schema
    };
    vec![
        ("17-kinds", with(&|s| s.kinds = (0..17).map(|i| Kind::new(&format!("k{i}"), [])).collect())),
        (
            "9-fields",
            with(&|s| {
                let fields = (0..9).map(|i| Field::new(&format!("f{i}"), FieldType::Uint, Role::None));
                s.kinds[0] = Kind::new("player", fields);
            }),
        ),
        ("x-on-a-uint", with(&|s| s.kinds[0].fields[2].role = Role::X)),
        ("enum-of-1", with(&|s| s.kinds[0].fields[2].ty = FieldType::Enum(1))),
        ("upper-case-name", with(&|s| s.kinds[0].name = "Player".into())),
        ("two-kinds-one-name", with(&|s| s.kinds[1].name = "player".into())),
        ("no-kinds", with(&|s| s.kinds.clear())),
        ("scale-0", with(&|s| s.scale = 0)),
        ("input-min-over-max", with(&|s| (s.input[0].min, s.input[0].max) = (5, -5))),
    ]
}

/// Snapshots and deltas for `apply_delta`: ones that apply, and each way one can be refused.
fn apply_cases() -> Vec<(&'static str, u8, Snapshot, Delta)> {
    let arena = schema(ARENA);
    let base = vec![Entity::new(1, 1, &[160, 16000]), Entity::new(7, 0, &[8000, 8000, 3])];
    let moved = vec![
        Entity::new(7, 0, &[8080, 7997, 4]),
        Entity::new(9, 1, &[1600, 80]),
    ];
    let snapshot = |entities: &[Entity]| Snapshot {
        tick: 3,
        entities: entities.to_vec(),
    };
    // The delta from `base` to `moved`, as the server makes it.
    let diff = |checksum: Option<u32>| {
        let (from, to) = (world(3, &base), world(4, &moved));
        let c = from.diff(&to, &arena);
        Delta {
            tick: 4,
            base_gap: 1,
            spawned: c.spawned,
            updated: c.updated,
            removed: c.removed,
            checksum,
        }
    };
    let right = world_checksum(&moved, &arena);
    let update = |id, mask, values: &[u32]| Update {
        id,
        mask,
        values: std::array::from_fn(|i| values.get(i).copied().unwrap_or(0)),
    };
    let only = |updates: Vec<Update>, removed: Vec<u32>, spawned: Vec<Entity>| Delta {
        tick: 4,
        base_gap: 1,
        spawned,
        updated: Updates(vec![KindUpdates { kind: 0, updates }]),
        removed,
        checksum: None,
    };
    let tanks = schema(TANKS);
    let tank = Entity::new(3, 0, &[8000, 8000, 0, 100, 2, 0, 0]);
    let tank_hit = Entity::new(3, 0, &[8000, 8000, 64, 75, 2, 1, 1]);
    let shell = Entity::new(40, 1, &[8000, 8320, 0, 320, 3]);
    let tanks_delta = {
        let (from, to) = (world(30, &[tank]), world(31, &[tank_hit, shell]));
        let c = from.diff(&to, &tanks);
        Delta {
            tick: 31,
            base_gap: 1,
            spawned: c.spawned,
            updated: c.updated,
            removed: c.removed,
            checksum: Some(world_checksum(&[tank_hit, shell], &tanks)),
        }
    };
    vec![
        ("applies", ARENA, snapshot(&base), diff(None)),
        ("applies-with-checksum", ARENA, snapshot(&base), diff(Some(right))),
        ("checksum-mismatch", ARENA, snapshot(&base), diff(Some(right ^ 1))),
        ("wrong-base", ARENA, snapshot(&base), Delta { base_gap: 2, ..diff(None) }),
        ("unknown-update", ARENA, snapshot(&base), only(vec![update(8, 0b100, &[0, 0, 1])], vec![], vec![])),
        ("unknown-removal", ARENA, snapshot(&base), only(vec![update(7, 0b100, &[0, 0, 1])], vec![8], vec![])),
        (
            "duplicate-spawn",
            ARENA,
            snapshot(&base),
            only(vec![update(7, 0b100, &[0, 0, 1])], vec![], vec![base[0]]),
        ),
        (
            "out-of-range",
            ARENA,
            snapshot(&base),
            only(vec![update(7, 0b001, &[(-9000i32) as u32])], vec![], vec![]),
        ),
        (
            "respawn-removed-far",
            ARENA,
            snapshot(&base),
            only(vec![update(7, 0b100, &[0, 0, 1])], vec![1], vec![Entity::new(1, 1, &[u32::MAX, 0])]),
        ),
        ("unordered-snapshot", ARENA, snapshot(&[base[1], base[0]]), diff(None)),
        ("tanks-applies-with-checksum", TANKS, Snapshot { tick: 30, entities: vec![tank] }, tanks_delta),
    ]
}

fn world(tick: u64, entities: &[Entity]) -> NetWorld {
    NetWorld::from_snapshot(&Snapshot {
        tick,
        entities: entities.to_vec(),
    })
    .expect("ascending ids")
}

/// PROTOCOL.md's test vectors, by name.
fn protocol_md_vectors() -> BTreeMap<String, Vec<u8>> {
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
}

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect()
}

/// Where the corpus lives.
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_seeds_are_the_current_protocols() {
        let seeds = seeds();
        let dir = corpus_dir();
        if std::env::var_os("TICKCAST_WRITE_SEEDS").is_some() {
            for target in ["client_msg", "server_msg", "apply_delta"] {
                let folder = dir.join(target);
                std::fs::create_dir_all(&folder).unwrap();
                for entry in std::fs::read_dir(&folder).unwrap() {
                    let path = entry.unwrap().path();
                    if path.extension().is_some_and(|e| e == "bin") {
                        std::fs::remove_file(path).unwrap();
                    }
                }
            }
            for ((target, name), bytes) in &seeds {
                std::fs::write(dir.join(target).join(name), bytes).unwrap();
            }
        }
        let mut on_disk = BTreeMap::new();
        for target in ["client_msg", "server_msg", "apply_delta"] {
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
        for (key, bytes) in &seeds {
            assert_eq!(&on_disk[key], bytes, "{key:?} is stale: TICKCAST_WRITE_SEEDS=1 cargo test --lib");
        }
    }

    #[test]
    fn each_seed_reaches_what_its_name_says() {
        let seeds = seeds();
        let decode = |game: u8, bytes: &[u8]| ServerMsg::decode(bytes, Some(&schema(game)));
        for ((target, name), bytes) in &seeds {
            let (game, bytes) = (bytes[0], &bytes[1..]);
            match *target {
                "client_msg" => {
                    let ok = tickcast::protocol::ClientMsg::decode(bytes, &schema(game).input).is_ok();
                    // A name over 32 bytes decodes; the hello's own checks refuse it (1008).
                    let expected = name.starts_with("vector-") || name == "name-over-limit.bin";
                    assert_eq!(ok, expected, "{name}");
                }
                "server_msg" => {
                    // `welcome-then-delta` decodes in two parts, split where the target splits it.
                    let first = name.strip_prefix("welcome-then").map_or(bytes, |_| {
                        let at = bytes.windows(2).position(|w| w == [0xff, 0xff]).unwrap();
                        &bytes[..at]
                    });
                    let ok = decode(game, first).is_ok();
                    let expected = name.starts_with("vector-") || name.starts_with("welcome-then");
                    assert_eq!(ok, expected, "{name}");
                }
                _ => {
                    let len = usize::from(u16::from_le_bytes([bytes[0], bytes[1]]));
                    let (snapshot, delta) = bytes[2..].split_at(len);
                    let Ok(ServerMsg::Snapshot(snapshot)) = decode(game, snapshot) else { panic!("{name}") };
                    let Ok(ServerMsg::Delta(delta)) = decode(game, delta) else { panic!("{name}") };
                    let applied = NetWorld::from_snapshot(&snapshot)
                        .map_err(|e| e.to_string())
                        .and_then(|mut world| world.apply(&delta, &schema(game)).map_err(|e| e.to_string()));
                    let expected = name.contains("applies") || name == "respawn-removed-far.bin";
                    assert_eq!(applied.is_ok(), expected, "{name}: {applied:?}");
                }
            }
        }
    }
}
