//! Games as plug-ins, through a real server: tanks played end to end, a game of your own (the
//! example) run by the engine untouched, and the v3 handshake.

mod common;

#[path = "../examples/tag.rs"]
#[allow(dead_code, unreachable_pub)]
mod tag;

use common::sse::SseClient;
use common::{TestServer, count_of, field_of, fire_at, until_snapshot, within};
use futures_util::{SinkExt, StreamExt};
use tickcast::Games;
use tickcast::client::{Client, ClientError, Received};
use tickcast::game::Game;
use tickcast::protocol::{ClientMsg, Input, InputValues};
use tickcast::{Config, Server};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn tanks_fire_shells_that_hit_and_every_checksum_holds() {
    let server = TestServer::start(Config {
        game: "tanks".into(),
        world_size: 200,
        ..Config::defaults()
    })
    .await;
    let mut a = server.player("a").await;
    let mut b = server.player("b").await;
    assert_eq!(a.schema().game, "tanks");
    until_snapshot(&mut a).await;
    until_snapshot(&mut b).await;
    let (a_id, b_id) = (a.player_id(), b.player_id());
    let mut checksums = 0;
    let mut shells_seen = 0;
    // a keeps its turret on b and fires; b sits still. In a 200-unit world a shell reaches
    // anywhere within its one-second flight.
    for tick in 0..600 {
        let received = within(a.recv()).await.expect("a receives");
        if let Received::Delta { tick: t, .. } = received {
            checksums += u32::from(t % 30 == 0);
        }
        shells_seen = shells_seen.max(count_of(&a, "shell"));
        if tick % 3 == 0
            && let Some(values) = fire_at(&a, b_id)
        {
            a.send_input(&values).await.unwrap();
        }
        while let Ok(Ok(_)) = tokio::time::timeout(std::time::Duration::ZERO, b.recv()).await {}
        if field_of(&a, a_id, "score").unwrap_or(0) >= 1 {
            break;
        }
    }
    assert!(shells_seen >= 1, "no shell was ever in the world");
    assert!(field_of(&a, a_id, "score").unwrap_or(0) >= 1, "a never destroyed b");
    assert!(checksums >= 1, "no checksum came (and each one was checked by recv)");
}

#[tokio::test]
async fn the_example_game_runs_on_the_engine_untouched() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut games = Games::builtin();
    games.register::<tag::Tag>().unwrap();
    let config = Config {
        game: tag::Tag::NAME.into(),
        ..Config::defaults()
    };
    let server = Server::with_games(listener, config, games);
    let addr = server.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(server.run(shutdown.clone()));

    let url = format!("ws://{addr}/ws");
    let mut it = within(Client::connect(&url, "it")).await.unwrap();
    let mut runner = within(Client::connect(&url, "runner")).await.unwrap();
    assert_eq!(it.schema().kinds[0].name, "runner");
    until_snapshot(&mut it).await;
    until_snapshot(&mut runner).await;
    let (it_id, runner_id) = (it.player_id(), runner.player_id());
    // The first to join is "it"; it runs at the other until the flag passes.
    let mut passed = false;
    for _ in 0..600 {
        within(it.recv()).await.unwrap();
        while let Ok(Ok(_)) = tokio::time::timeout(std::time::Duration::ZERO, runner.recv()).await {}
        if field_of(&it, runner_id, "it") == Some(1) {
            passed = true;
            break;
        }
        let (x, y) = (
            field_of(&it, it_id, "x").unwrap_or(0),
            field_of(&it, it_id, "y").unwrap_or(0),
        );
        let (tx, ty) = (
            field_of(&it, runner_id, "x").unwrap_or(0),
            field_of(&it, runner_id, "y").unwrap_or(0),
        );
        let toward = |from: u32, to: u32| (i64::from(to) - i64::from(from)).clamp(-127, 127) as i32;
        let values = it
            .input_values(&[("dx", toward(x, tx)), ("dy", toward(y, ty))])
            .unwrap();
        it.send_input(&values).await.unwrap();
    }
    assert!(passed, "tag never passed from {it_id} to {runner_id}");
    assert_eq!(field_of(&it, it_id, "it"), Some(0), "one runner is it at a time");

    // The runner's connection drops (no goodbye): the game is told, and shows it away; it
    // takes its seat back, and the game is told that too.
    let token = runner.resume_token().to_owned();
    drop(runner);
    let away = |it: &Client| field_of(it, runner_id, "away");
    while away(&it) != Some(1) {
        within(it.recv()).await.unwrap();
    }
    let back = within(Client::connect_with(&url, tickcast::protocol::Hello::resuming(&token)))
        .await
        .unwrap();
    assert_eq!(back.player_id(), runner_id);
    while away(&it) != Some(0) {
        within(it.recv()).await.unwrap();
    }

    // Spectators see the game by its schema too.
    let mut sse = SseClient::connect(&format!("http://{addr}/events"), None).await;
    let snapshot = sse.next().await.unwrap();
    let data: serde_json::Value = serde_json::from_str(&snapshot.data).unwrap();
    assert_eq!(data["schema"]["game"], "tag");
    assert!(data["entities"].as_array().unwrap().iter().any(|e| e["it"] == true));
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_older_client_is_refused_naming_this_version_and_inputs_are_range_checked() {
    let server = TestServer::at(30).await;
    // A version 3 hello, byte for byte as a v3 client sends it (no options after the token).
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await.unwrap();
    ws.send(WsMessage::Binary(vec![0x00, 0x03, 0x03, b'o', b'l', b'd', 0x00].into()))
        .await
        .unwrap();
    let close = loop {
        match within(ws.next()).await {
            Some(Ok(WsMessage::Close(frame))) => break frame.unwrap(),
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1002);
    assert_eq!(close.reason, "protocol version 3 not supported: this server speaks 5");
    let mut player = server.player("p").await;
    until_snapshot(&mut player).await;
    player
        .send(&ClientMsg::Input(Input {
            seq: 1,
            values: InputValues::new(&[-128, 0]),
        }))
        .await
        .unwrap();
    let err = loop {
        if let Err(err) = within(player.recv()).await {
            break err;
        }
    };
    assert!(
        matches!(&err, ClientError::Closed { code: 1008, reason } if reason == "input dx = -128 is outside [-127, 127]"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unknown_default_game_fails_at_start() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(
        listener,
        Config {
            game: "chess".into(),
            ..Config::defaults()
        },
    );
    let err = server.run(CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("unknown game \"chess\""), "{err}");
}
