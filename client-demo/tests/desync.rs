//! A bot whose world disagrees with the server's checksum counts a desync and recovers with a
//! fresh connection. The server here is a stand-in that speaks the wire protocol and sends a
//! wrong checksum on purpose on its first connection.

mod common;

use std::time::Duration;

use client_demo::swarm::{self, SwarmConfig};
use common::within;
use futures_util::{SinkExt, StreamExt};
use tickcast::game::Arena;
use tickcast::game::{Game, GameConfig};
use tickcast::protocol::{
    ClientMsg, Delta, Entity, PROTOCOL_VERSION, ServerMsg, Snapshot, Updates, Welcome, world_checksum,
};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Serves `connections` players: a welcome, a snapshot of one orb, then one delta whose
/// checksum is wrong on the first connection and right on the others; then reads until the
/// player leaves.
async fn stand_in(listener: TcpListener, connections: usize) {
    let schema = Arena::schema(&GameConfig::default());
    let orb_kind = schema
        .kinds
        .iter()
        .position(|k| k.name == "orb")
        .expect("arena has orbs") as u8;
    // x and y, in 1/16ths of a unit.
    let orb = Entity::new(1, orb_kind, &[160, 160]);
    for n in 0..connections {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
        let hello = ws.next().await.expect("a hello").expect("read");
        assert!(matches!(
            ClientMsg::decode(&hello.into_data(), Some(&schema)),
            Ok(ClientMsg::Hello(_))
        ));
        let checksum = world_checksum(&[orb], &[], &schema) ^ if n == 0 { 1 } else { 0 };
        let messages = [
            ServerMsg::Welcome(Welcome {
                version: PROTOCOL_VERSION,
                player_id: 100 + n as u32,
                tick_hz: 1,
                resume: String::new(),
                grace_ms: 0,
                schema: schema.clone(),
            }),
            ServerMsg::Snapshot(Snapshot {
                tick: 1,
                entities: vec![orb],
                texts: Vec::new(),
            }),
            ServerMsg::Delta(Delta {
                tick: 2,
                base_gap: 1,
                spawned: vec![],
                updated: Updates::default(),
                removed: vec![],
                checksum: Some(checksum),
                texts: Vec::new(),
            }),
        ];
        for msg in messages {
            ws.send(Message::Binary(msg.encode(&schema).into()))
                .await
                .expect("send");
        }
        // Moves and pings are read and ignored; the loop ends when the player closes.
        tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    }
}

#[tokio::test]
async fn a_checksum_mismatch_is_counted_and_healed_by_reconnecting() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let server = tokio::spawn(stand_in(listener, 2));
    let config = SwarmConfig {
        url,
        ramp: Duration::ZERO,
        ..SwarmConfig::new(1, Duration::from_secs(1))
    };
    let report = within(swarm::run(&config, CancellationToken::new(), |_| {}))
        .await
        .expect("the swarm runs");
    within(server).await.expect("the second connection was made");

    assert_eq!((report.bots_connected, report.desyncs), (1, 1), "{report}");
    // The second connection's checksum (tick 2, a multiple of tick_hz 1) matched.
    assert_eq!(report.checksums_verified, 1, "{report}");
    assert!(report.close_reasons.is_empty(), "{report}");
}
