//! Players who drop come back: seats kept through network cuts (through a real relay that
//! cuts connections without a FIN), resume tokens checked, the grace, goodbyes.

mod common;

use std::time::Duration;

use common::{PATIENCE, TestServer, within};
use futures_util::{SinkExt, StreamExt};
use tickcast::Config;
use tickcast::client::{Client, ClientError, Received};
use tickcast::protocol::{ClientMsg, Hello, ServerMsg};
use tickcast_relay::{Relay, RelayConfig};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

/// An arena thick with orbs, so that a moving player scores within a second.
fn orchard() -> Config {
    Config {
        world_size: 400,
        orbs: 2000,
        ..Config::defaults()
    }
}

async fn relay_to(server: &TestServer) -> Relay {
    Relay::start(RelayConfig::new(server.addr, Duration::ZERO), CancellationToken::new())
        .await
        .unwrap()
}

/// Receives until the local world (from a snapshot, if it has none yet) is `ticks` further on.
async fn play_for(client: &mut Client, ticks: u64) {
    if client.world().is_none() {
        common::until_snapshot(client).await;
    }
    let from = client.world().unwrap().tick();
    common::until_tick(client, from + ticks).await;
}

fn field(client: &Client, id: u32, name: &str) -> Option<u32> {
    common::field_of(client, id, name)
}

/// Expects a close with `code` (and a reason starting with `reason`) from a hello.
async fn refused(url: &str, hello: Hello, code: u16, reason: &str) {
    match within(Client::connect_with(url, hello)).await {
        Err(ClientError::Closed { code: got, reason: why }) => {
            assert_eq!(got, code, "{why}");
            assert!(why.starts_with(reason), "{why:?} is not {reason:?}");
        }
        Ok(client) => panic!("resumed as {}", client.player_id()),
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn a_player_cut_mid_match_resumes_its_entity_and_score_in_sync() {
    let server = TestServer::start(orchard()).await;
    let relay = relay_to(&server).await;
    let mut ann = within(Client::connect(&format!("ws://{}/ws", relay.addr()), "ann"))
        .await
        .unwrap();
    ann.auto_resume(true, Some(Duration::from_millis(600)));
    let me = ann.player_id();
    let token = ann.resume_token().to_owned();
    assert!(token.starts_with("default."), "{token}");
    assert_eq!(ann.grace(), Duration::from_secs(15));
    let mut bob = server.player("bob").await;

    // Ann moves and scores.
    let mut seq = 0;
    let deadline = Instant::now() + PATIENCE;
    while field(&ann, me, "score").unwrap_or(0) < 2 {
        assert!(Instant::now() < deadline, "ann never scored");
        seq = ann.send_move(127, 40).await.unwrap();
        within(ann.recv()).await.unwrap();
    }
    let score = field(&ann, me, "score").unwrap();

    // The network goes: no FIN either way. Ann notices the silence and comes back.
    relay.cut();
    let deadline = Instant::now() + PATIENCE;
    let resumed = loop {
        assert!(Instant::now() < deadline, "ann never resumed");
        match within(ann.recv()).await.unwrap() {
            Received::Resumed { attempts, took } => break (attempts, took),
            _ => continue,
        }
    };
    assert!(resumed.0 >= 1);
    assert_eq!(ann.player_id(), me, "the same entity");
    assert_ne!(ann.resume_token(), token, "a token works once: a new one came");
    assert!(ann.world().is_none(), "a fresh snapshot follows");
    play_for(&mut ann, 60).await; // two seconds of deltas, two checksums: recv checks them
    assert!(field(&ann, me, "score").unwrap() >= score, "its score kept");
    // Its input `seq` goes on where it was.
    let next = ann.send_move(0, 0).await.unwrap();
    assert_eq!(next, seq + 1);
    let deadline = Instant::now() + PATIENCE;
    while ann.ack() < next {
        assert!(Instant::now() < deadline, "the move after the resume was not applied");
        within(ann.recv()).await.unwrap();
    }

    // Bob never saw ann leave: her old connection was replaced, not closed as a goodbye.
    play_for(&mut bob, 5).await;
    assert!(bob.world().unwrap().get(me).is_some());
    assert_eq!(server.metrics.resumes.get(), 1);
    assert_eq!(server.metrics.seats_expired.get(), 0);
}

#[tokio::test]
async fn a_dropped_player_is_kept_with_neutral_input_then_leaves_when_the_grace_ends() {
    let server = TestServer::start(Config {
        reconnect_grace: Duration::from_secs(2),
        // The server notices the silent connection quickly (pings every 100 ms).
        idle_timeout: Duration::from_millis(300),
        ..orchard()
    })
    .await;
    let relay = relay_to(&server).await;
    let url = format!("ws://{}/ws", relay.addr());
    let mut ann = within(Client::connect(&url, "ann")).await.unwrap();
    let me = ann.player_id();
    assert_eq!(ann.grace(), Duration::from_secs(2));
    let token = ann.resume_token().to_owned();
    let mut cal = within(Client::connect(&url, "cal")).await.unwrap();
    let mut bob = server.player("bob").await;
    common::until_snapshot(&mut bob).await;
    ann.send_move(127, 0).await.unwrap();
    play_for(&mut ann, 5).await;

    relay.cut();
    let cut = Instant::now();
    // Kept, and still: its input is neutral while it is away.
    let deadline = Instant::now() + PATIENCE;
    while server.metrics.players_away.get() < 2 {
        assert!(Instant::now() < deadline, "ann and cal were never away");
        within(bob.recv()).await.unwrap();
    }
    // Cal comes back within the grace, after the server gave its connection up.
    let cal_id = cal.player_id();
    within(cal.resume()).await.unwrap();
    assert_eq!(cal.player_id(), cal_id);
    play_for(&mut cal, 3).await;
    assert_eq!(server.metrics.players_away.get(), 1);
    let at = |bob: &Client| (field(bob, me, "x"), field(bob, me, "y"));
    let still = at(&bob);
    assert!(still.0.is_some(), "kept in the world");
    play_for(&mut bob, 10).await;
    assert_eq!(at(&bob), still, "an entity away does not move");
    // Then the grace ends: it leaves the world, and its token is dead.
    let deadline = Instant::now() + PATIENCE;
    while bob.world().unwrap().get(me).is_some() {
        assert!(Instant::now() < deadline, "ann was never taken out");
        within(bob.recv()).await.unwrap();
    }
    assert!(cut.elapsed() >= Duration::from_secs(2), "left before its grace");
    assert_eq!(server.metrics.seats_expired.get(), 1);
    assert!(bob.world().unwrap().get(cal_id).is_some(), "cal came back in time");
    refused(&server.ws_url(), Hello::resuming(&token), 4001, "resume token unknown").await;
}

#[tokio::test]
async fn a_resume_from_another_address_takes_the_seat_and_the_old_socket_is_replaced() {
    let server = TestServer::start(Config::defaults()).await;
    let mut ann = server.player("ann").await;
    let me = ann.player_id();
    common::until_snapshot(&mut ann).await;
    let token = ann.resume_token().to_owned();

    // A phone that changed networks: a new connection from another address, while the old
    // one still looks open.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let (mut ws, _) = within(tokio_tungstenite::client_async(server.ws_url(), stream))
        .await
        .unwrap();
    let hello = ClientMsg::Hello(Hello::resuming(&token)).encode(None);
    ws.send(WsMessage::Binary(hello.into())).await.unwrap();
    let welcome = loop {
        match within(ws.next()).await.unwrap().unwrap() {
            WsMessage::Binary(bytes) => match ServerMsg::decode(&bytes, None).unwrap() {
                ServerMsg::Welcome(welcome) => break welcome,
                other => panic!("{other:?} before the welcome"),
            },
            _ => continue,
        }
    };
    assert_eq!(welcome.player_id, me);
    assert!(!welcome.resume.is_empty() && welcome.resume != token);

    // The old socket is told why it is closed.
    let deadline = Instant::now() + PATIENCE;
    let closed = loop {
        assert!(Instant::now() < deadline, "the old socket was never closed");
        match within(ann.recv()).await {
            Ok(_) => continue,
            Err(err) => break err,
        }
    };
    match closed {
        ClientError::Closed { code, reason } => {
            assert_eq!((code, reason.as_str()), (4002, "replaced by a resumed connection"));
        }
        other => panic!("{other}"),
    }
    // The token it came back with is used up.
    refused(&server.ws_url(), Hello::resuming(&token), 4001, "resume token unknown").await;
    drop(ws);
}

#[tokio::test]
async fn tokens_of_other_rooms_used_or_malformed_are_refused_and_a_goodbye_leaves_at_once() {
    let server = TestServer::start(Config::defaults()).await;
    let created = common::create_room(&server, serde_json::json!({"game": "arena", "reconnect_grace": 0})).await;
    let graceless = created["ws"].as_str().unwrap().to_owned();

    let ann = server.player("ann").await;
    let me = ann.player_id();
    let token = ann.resume_token().to_owned();
    // Ann's token, taken to another room.
    refused(
        &graceless,
        Hello::resuming(&token),
        4001,
        "resume token is for another room",
    )
    .await;
    let other_room = token.replacen("default", created["id"].as_str().unwrap(), 1);
    refused(
        &graceless,
        Hello::resuming(&other_room),
        4001,
        "this room keeps no seats",
    )
    .await;
    refused(
        &server.ws_url(),
        Hello::resuming("default.xyz"),
        4001,
        "resume token malformed",
    )
    .await;
    let forged = format!("default.{:032x}", 12345);
    refused(&server.ws_url(), Hello::resuming(&forged), 4001, "resume token unknown").await;

    // A room without seats says so in its welcome.
    let cal = within(Client::connect(&graceless, "cal")).await.unwrap();
    assert_eq!((cal.resume_token(), cal.grace()), ("", Duration::ZERO));

    // A goodbye leaves at once: no seat is kept, and the token is dead.
    let mut bob = server.player("bob").await;
    play_for(&mut bob, 2).await;
    assert!(bob.world().unwrap().get(me).is_some());
    ann.close().await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    while bob.world().unwrap().get(me).is_some() {
        assert!(Instant::now() < deadline, "ann's goodbye was not taken");
        within(bob.recv()).await.unwrap();
    }
    assert_eq!(server.metrics.players_away.get(), 0);
    refused(&server.ws_url(), Hello::resuming(&token), 4001, "resume token unknown").await;
    assert!(server.metrics.resumes_refused.get() >= 5);
}

#[tokio::test]
async fn a_resume_the_network_holds_silent_is_given_up_and_the_next_attempt_comes_back() {
    let server = TestServer::start(Config::defaults()).await;
    let relay = relay_to(&server).await;
    let mut ann = within(Client::connect(&format!("ws://{}/ws", relay.addr()), "ann"))
        .await
        .unwrap();
    ann.auto_resume(true, Some(Duration::from_millis(300)));
    let me = ann.player_id();
    play_for(&mut ann, 3).await;
    // The network goes, and for a while new connections go nowhere either.
    relay.cut();
    relay.blackhole(Duration::from_secs(2));
    let deadline = Instant::now() + PATIENCE;
    let (attempts, took) = loop {
        assert!(Instant::now() < deadline, "ann never resumed");
        if let Received::Resumed { attempts, took } = within(ann.recv()).await.unwrap() {
            break (attempts, took);
        }
    };
    assert!(
        attempts >= 2,
        "the first attempt was held silent, yet {attempts} attempt(s)"
    );
    assert!(took >= tickcast::client::RESUME_ATTEMPT_LIMIT, "{took:?}");
    assert_eq!(ann.player_id(), me);
    play_for(&mut ann, 3).await;
}

#[tokio::test]
async fn a_goodbye_gives_the_seat_up_before_the_rooms_next_tick() {
    // A room that ticks once a second: a resume right after the goodbye comes well before
    // the tick that takes the player out of the roster.
    let server = TestServer::start(Config::defaults()).await;
    let created = common::create_room(&server, serde_json::json!({"game": "arena", "tick_hz": 1})).await;
    let url = created["ws"].as_str().unwrap().to_owned();
    let (mut ws, _) = within(tokio_tungstenite::connect_async(url.as_str())).await.unwrap();
    let hello = ClientMsg::Hello(Hello::new("ann")).encode(None);
    ws.send(WsMessage::Binary(hello.into())).await.unwrap();
    let token = loop {
        if let WsMessage::Binary(bytes) = within(ws.next()).await.unwrap().unwrap()
            && let ServerMsg::Welcome(welcome) = ServerMsg::decode(&bytes, None).unwrap()
        {
            break welcome.resume;
        }
    };
    // The goodbye, and at once (not waiting for the server's answer) a resume.
    ws.send(WsMessage::Close(None)).await.unwrap();
    refused(&url, Hello::resuming(&token), 4001, "resume token unknown").await;
}
