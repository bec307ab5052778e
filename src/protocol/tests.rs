//! The wire format's tests: the PROTOCOL.md vectors byte for byte, limits and malformed input.

use super::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// The two entities of the `snapshot` vector (and of the checksum example) in PROTOCOL.md.
fn documented_entities() -> [EntityState; 2] {
    [
        EntityState {
            id: 1,
            kind: EntityKind::Orb,
            x: 160,
            y: 16000,
            score: 0,
        },
        EntityState {
            id: 7,
            kind: EntityKind::Player,
            x: 8000,
            y: 8000,
            score: 3,
        },
    ]
}

fn welcome() -> ServerMsg {
    ServerMsg::Welcome(Welcome {
        version: 2,
        player_id: 7,
        tick_hz: 30,
        world_width: 1000,
        world_height: 1000,
        position_scale: 16,
    })
}

fn delta() -> Delta {
    Delta {
        tick: 1000,
        base_gap: 1,
        spawned: vec![EntityState {
            id: 260,
            kind: EntityKind::Orb,
            x: 1600,
            y: 80,
            score: 0,
        }],
        updated: Updates(vec![
            EntityUpdate {
                id: 7,
                dx: Some(80),
                dy: Some(-3),
                score: None,
            },
            EntityUpdate {
                id: 9,
                dx: None,
                dy: None,
                score: Some(2),
            },
        ]),
        removed: vec![12],
        checksum: Some(0xdead_beef),
    }
}

/// The vectors printed in PROTOCOL.md, message by message.
fn vectors() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "hello",
            ClientMsg::Hello(Hello {
                version: 2,
                name: "ann".into(),
                token: String::new(),
            })
            .encode(),
        ),
        (
            "move",
            ClientMsg::Move(Move {
                seq: 5,
                dx: 127,
                dy: -127,
            })
            .encode(),
        ),
        (
            "ping",
            ClientMsg::Ping(Ping {
                nonce: 42,
                client_time_us: 1_000_000,
            })
            .encode(),
        ),
        ("welcome", welcome().encode()),
        (
            "snapshot",
            ServerMsg::Snapshot(Snapshot {
                tick: 3,
                entities: documented_entities().to_vec(),
            })
            .encode(),
        ),
        ("delta", ServerMsg::Delta(delta()).encode()),
        (
            "idle delta",
            ServerMsg::Delta(Delta {
                tick: 70_000,
                base_gap: 1,
                spawned: vec![],
                updated: Updates::default(),
                removed: vec![],
                checksum: None,
            })
            .encode(),
        ),
        ("ack", ServerMsg::Ack(Ack { seq: 300 }).encode()),
        (
            "pong",
            ServerMsg::Pong(Pong {
                nonce: 42,
                client_time_us: 1_000_000,
                server_tick: 250,
                server_time_us: 1_700_000_000_000_000,
            })
            .encode(),
        ),
    ]
}

#[test]
fn protocol_md_vectors_match_the_encoder() {
    let doc = include_str!("../../PROTOCOL.md");
    for (name, bytes) in vectors() {
        let line = format!("{name}: {}", hex(&bytes));
        assert!(doc.contains(&line), "PROTOCOL.md lacks the vector line `{line}`");
    }
}

#[test]
fn every_vector_decodes_back_to_its_message() {
    for (name, bytes) in vectors() {
        let round = match name {
            "hello" | "move" | "ping" => ClientMsg::decode(&bytes).map(|m| m.encode()),
            _ => ServerMsg::decode(&bytes).map(|m| m.encode()),
        };
        assert_eq!(round.unwrap(), bytes, "{name} does not round-trip");
    }
}

#[test]
fn non_minimal_varints_are_rejected() {
    // Move { seq: 5, .. } with seq written as fb 05 00 instead of 05 (the fuzzer's find).
    let long = [0x01, 0xfb, 0x05, 0x00, 0x7f, 0x81];
    assert!(matches!(ClientMsg::decode(&long), Err(DecodeFailure::NonCanonical)));
    assert!(ClientMsg::decode(&[0x01, 0x05, 0x7f, 0x81]).is_ok());
    // Ack { seq: 300 } with a 4-byte varint.
    assert!(matches!(
        ServerMsg::decode(&[0x04, 0xfc, 0x2c, 0x01, 0x00, 0x00]),
        Err(DecodeFailure::NonCanonical)
    ));
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
    };
    assert_eq!(delta.base_tick(), None);
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = ClientMsg::Move(Move { seq: 1, dx: 0, dy: 0 }).encode();
    bytes.push(0);
    assert!(matches!(
        ClientMsg::decode(&bytes),
        Err(DecodeFailure::TrailingBytes(1))
    ));
}

#[test]
fn huge_length_prefixes_fail_without_allocating() {
    // Hello { version 1, name: length 2^40 } — the decode limit refuses it up front.
    let bytes = [0x00, 0x01, 0xfd, 0, 0, 0, 0, 0, 0x01, 0, 0];
    let err = ClientMsg::decode(&bytes).unwrap_err();
    assert!(
        matches!(err, DecodeFailure::Malformed(DecodeError::LimitExceeded)),
        "{err}"
    );
    // An update count claiming billions of entries is refused the same way.
    let bytes = [0x02, 0x00, 0x01, 0x01, 0x00, 0xfc, 0xff, 0xff, 0xff, 0x7f];
    assert!(ServerMsg::decode(&bytes).is_err());
}

#[test]
fn malformed_updates_are_rejected() {
    // tag 2, ack 0, tick 1, gap 1, 0 spawned, 2 updates with the same id.
    let dup = [0x02, 0x00, 0x01, 0x01, 0x00, 0x02, 0x05, 0x01, 0x02, 0x00, 0x01, 0x02];
    assert!(ServerMsg::decode(&dup).is_err());
    // An update with an unknown field bit.
    let bad_mask = [0x02, 0x00, 0x01, 0x01, 0x00, 0x01, 0x05, 0x08, 0x00];
    assert!(ServerMsg::decode(&bad_mask).is_err());
}

#[test]
fn a_moving_entity_costs_four_bytes() {
    let one = Updates(vec![EntityUpdate {
        id: 100,
        dx: Some(-80),
        dy: Some(80),
        ..Default::default()
    }]);
    let two = Updates(vec![
        EntityUpdate {
            id: 100,
            dx: Some(-80),
            dy: Some(80),
            ..Default::default()
        },
        EntityUpdate {
            id: 101,
            dx: Some(-80),
            dy: Some(80),
            ..Default::default()
        },
    ]);
    assert_eq!(encode_vec(&two).len() - encode_vec(&one).len(), 4);
}

#[test]
fn checksum_matches_the_documented_example() {
    // The example in PROTOCOL.md: the two entities of the `snapshot` vector.
    let entities = documented_entities();
    let doc = include_str!("../../PROTOCOL.md");
    let line = format!("checksum of the snapshot vector: 0x{:08x}", world_checksum(&entities));
    assert!(doc.contains(&line), "PROTOCOL.md lacks `{line}`");
    assert_eq!(world_checksum(&[]), 0x811c_9dc5);
}

#[test]
fn quantization_round_trips_within_half_a_step() {
    for v in [0.0, 0.03, 499.97, 1000.0] {
        assert!((dequantize(quantize(v)) - v).abs() <= 0.5 / POSITION_SCALE as f32);
    }
}

#[test]
fn peek_tick_reads_the_tick_of_every_snapshot_and_delta_vector_and_nothing_else() {
    let server_vectors = vectors()
        .into_iter()
        .filter(|(name, _)| !matches!(*name, "hello" | "move" | "ping"));
    for (name, bytes) in server_vectors {
        let peeked = ServerMsg::peek_tick(&bytes);
        match ServerMsg::decode(&bytes) {
            Ok(ServerMsg::Snapshot(s)) => assert_eq!(peeked, Some(Peeked::Snapshot(s.tick)), "{name}"),
            Ok(ServerMsg::Delta(d)) => assert_eq!(peeked, Some(Peeked::Delta(d.tick)), "{name}"),
            _ => assert_eq!(peeked, None, "{name}"),
        }
    }
    let late = ServerMsg::Delta(Delta {
        tick: u64::MAX - 1,
        ..delta()
    });
    assert_eq!(ServerMsg::peek_tick(&late.encode()), Some(Peeked::Delta(u64::MAX - 1)));
    assert_eq!(ServerMsg::peek_tick(&[2]), None, "cut short");
    assert_eq!(ServerMsg::peek_tick(&[]), None);
}
