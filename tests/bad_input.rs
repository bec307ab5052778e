//! Bad input closes only the offending connection, with the right close code, and is counted.

mod common;

use std::time::Duration;

use common::{TestServer, arena_bytes, moving, until_snapshot, until_tick, within};
use futures_util::{SinkExt, StreamExt};
use tickcast::Config;
use tickcast::metrics::CloseReason;
use tickcast::protocol::{ClientMsg, Hello, PROTOCOL_VERSION};
use tokio_tungstenite::tungstenite::Message;

fn hello() -> Message {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        name: "raw".into(),
        token: String::new(),
        resume: String::new(),
        options: Vec::new(),
    };
    Message::Binary(ClientMsg::Hello(hello).encode(None).into())
}

fn binary(msg: ClientMsg) -> Message {
    Message::Binary(arena_bytes(&msg).into())
}

/// Opens a raw WebSocket, sends `messages` and returns the close code and reason it gets.
async fn close_after(server: &TestServer, messages: Vec<Message>) -> (u16, String) {
    let (mut ws, _) = within(tokio_tungstenite::connect_async(server.ws_url())).await.unwrap();
    for m in messages {
        // The server may already have closed; its close frame is what we are after.
        if ws.send(m).await.is_err() {
            break;
        }
    }
    loop {
        match within(ws.next()).await {
            Some(Ok(Message::Close(Some(frame)))) => return (frame.code.into(), frame.reason.to_string()),
            Some(Ok(Message::Close(None))) => panic!("closed without a code"),
            Some(Ok(_)) => continue,
            Some(Err(err)) => panic!("connection failed without a close frame: {err}"),
            None => panic!("connection ended without a close frame"),
        }
    }
}

#[tokio::test]
async fn each_bad_input_closes_only_its_own_connection_with_its_code() {
    let server = TestServer::start(Config {
        hello_timeout: Duration::from_millis(300),
        ..Config::defaults()
    })
    .await;
    let mut bystander = server.player("bystander").await;
    until_snapshot(&mut bystander).await;

    let cases: Vec<(&str, Vec<Message>, u16, &str, CloseReason)> = vec![
        (
            "text frame",
            vec![Message::Text("hi".into())],
            1003,
            "text frames",
            CloseReason::TextFrame,
        ),
        (
            "undecodable bytes",
            vec![Message::Binary(vec![9, 9, 9].into())],
            1003,
            "malformed",
            CloseReason::Malformed,
        ),
        (
            "trailing bytes",
            vec![Message::Binary(vec![1, 1, 0, 0, 0].into())],
            1003,
            "trailing",
            CloseReason::Malformed,
        ),
        (
            "oversize",
            vec![Message::Binary(vec![0; 2000].into())],
            1009,
            "limit",
            CloseReason::TooBig,
        ),
        (
            "wrong version",
            vec![binary(ClientMsg::Hello(Hello {
                version: 99,
                name: String::new(),
                token: String::new(),
                resume: String::new(),
                options: Vec::new(),
            }))],
            1002,
            "version 99",
            CloseReason::Handshake,
        ),
        (
            "move before hello",
            vec![binary(moving(1, 0, 0))],
            1002,
            "expected hello",
            CloseReason::Handshake,
        ),
        ("no hello", vec![], 1008, "no hello", CloseReason::Handshake),
        (
            "move out of range",
            vec![hello(), binary(moving(1, -128, 0))],
            1008,
            "outside",
            CloseReason::Policy,
        ),
        (
            "second hello",
            vec![hello(), hello()],
            1008,
            "hello sent twice",
            CloseReason::Policy,
        ),
        (
            "oversize after joining",
            vec![hello(), Message::Binary(vec![1; 5000].into())],
            1009,
            "limit",
            CloseReason::TooBig,
        ),
    ];
    for (name, messages, code, reason, counted) in cases {
        let before = server.metrics.closes(counted);
        let (got, text) = close_after(&server, messages).await;
        assert_eq!(got, code, "{name}: close code (reason {text:?})");
        assert!(text.contains(reason), "{name}: reason {text:?} lacks {reason:?}");
        assert!(
            server.metrics.closes(counted) > before,
            "{name}: not counted as {counted:?}"
        );
    }
    assert!(server.metrics.decode_errors.get() >= 2);

    // The bystander never noticed: its deltas kept coming and still apply.
    let tick = bystander.world().unwrap().tick();
    until_tick(&mut bystander, tick + 3).await;
    bystander.send_move(10, 10).await.unwrap();
    until_tick(&mut bystander, tick + 6).await;
}

#[tokio::test]
async fn stale_sequence_numbers_are_ignored() {
    let server = TestServer::at(30).await;
    let mut player = server.player("replayer").await;
    until_snapshot(&mut player).await;
    let id = player.player_id();
    player.send(&moving(10, 0, 0)).await.unwrap();
    // A replayed older command must not start the player moving again.
    player.send(&moving(9, 127, 127)).await.unwrap();
    let tick = player.world().unwrap().tick();
    until_tick(&mut player, tick + 3).await;
    let at = *player.world().unwrap().get(id).unwrap();
    until_tick(&mut player, tick + 6).await;
    assert_eq!(
        *player.world().unwrap().get(id).unwrap(),
        at,
        "a stale command moved the player"
    );
    assert!(server.metrics.inputs_dropped.get() >= 1);
}

#[tokio::test]
async fn over_the_player_cap_a_player_is_refused_with_1013() {
    let server = TestServer::start(Config {
        max_players: 1,
        ..Config::defaults()
    })
    .await;
    let _first = server.player("first").await;
    let err = match within(tickcast::client::Client::connect(&server.ws_url(), "second")).await {
        Err(err) => err,
        Ok(_) => panic!("a second player got in over a cap of one"),
    };
    assert!(
        matches!(&err, tickcast::client::ClientError::Closed { code: 1013, reason } if reason == "server full"),
        "{err}"
    );
    assert_eq!(server.metrics.closes(CloseReason::Full), 1);
}
