//! The holes an outside attack run found, one test each, against the real server: floods
//! before the hello, hello squatting, stalled resumers, control characters in names, origin
//! rebinding, uncounted upgrades, stalled players, protocol faults and shutdown, guessed resume
//! tokens; and the rooms
//! layer's ([`rooms_api`]: other's rooms closed, places held, the room cap filled, cross-site
//! writes, spectators locked out, names taken, the room list, fast rooms) and the cluster's
//! ([`cluster`]: HTTP turned into Redis load). (`tickcast-bench attack` runs the same attacks at
//! full size and measures what they cost.)

mod common;

#[path = "attacks/cluster.rs"]
mod cluster;
#[path = "attacks/rooms_api.rs"]
mod rooms_api;

use std::time::Duration;

use common::raw::{self, KEY};
use common::{PATIENCE, TestServer, until_snapshot, within};
use tickcast::Config;
use tickcast::client::{Client, ClientError};
use tickcast::metrics::CloseReason;
use tickcast::protocol::{ClientMsg, Hello, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

const PING: u8 = 0x9;
const PONG: u8 = 0xa;
const CONTINUATION: u8 = 0x0;
const BINARY: u8 = 0x2;

fn hello(name: &str, token: &str) -> Vec<u8> {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        name: name.into(),
        token: token.into(),
        resume: String::new(),
        options: Vec::new(),
    };
    ClientMsg::Hello(hello).encode(None)
}

/// Upgrades, sends no hello, and writes `frames` over and over until the server closes;
/// returns what it sent back.
async fn flood_before_hello(server: &TestServer, frames: Vec<u8>, opening: Vec<u8>) -> raw::Ending {
    let (tcp, status) = raw::upgrade(server.addr, Some(KEY), &[]).await;
    assert_eq!(status, 101);
    let (mut read, mut write) = tcp.into_split();
    let batch = frames.repeat(64);
    let writer = tokio::spawn(async move {
        write.write_all(&opening).await.ok()?;
        let started = Instant::now();
        while started.elapsed() < PATIENCE {
            write.write_all(&batch).await.ok()?;
        }
        Some(())
    });
    let ending = raw::ending(&mut read, PATIENCE).await;
    writer.abort();
    ending
}

#[tokio::test]
async fn floods_before_the_hello_are_rate_limited_and_closed_with_1008() {
    // A hello deadline far away: only the rate limit can close these peers.
    let server = TestServer::start(Config {
        hello_timeout: Duration::from_secs(60),
        ..Config::defaults()
    })
    .await;
    let floods = [
        ("pings", raw::frame(PING, true, &[b'p'; 125]), vec![]),
        ("pongs", raw::frame(PONG, true, &[b'p'; 125]), vec![]),
        // A fragmented message that never ends: empty continuation frames.
        (
            "continuations",
            raw::frame(CONTINUATION, false, &[]),
            raw::frame(BINARY, false, &[]),
        ),
    ];
    for (name, frames, opening) in floods {
        let ending = flood_before_hello(&server, frames, opening).await;
        let (code, reason) = ending.close.unwrap_or_else(|| panic!("{name}: no close frame"));
        assert_eq!(code, 1008, "{name}: {reason}");
        assert!(reason.contains("flooding"), "{name}: {reason}");
        // A pong for the latest ping at most per message allowed (60 a second at 30 Hz, a
        // burst of 60): queued replies are bounded by the limit, not by the flood.
        assert!(ending.pongs <= 60 + 60 * 3, "{name}: {} pongs", ending.pongs);
    }
    assert_eq!(server.metrics.closes(CloseReason::Flood), 3);
}

#[tokio::test]
async fn the_hello_deadline_counts_from_the_upgrade_and_pings_do_not_rearm_it() {
    let server = TestServer::start(Config {
        hello_timeout: Duration::from_millis(800),
        ..Config::defaults()
    })
    .await;
    let (tcp, _) = raw::upgrade(server.addr, Some(KEY), &[]).await;
    let (mut read, mut write) = tcp.into_split();
    let pinger = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if write.write_all(&raw::frame(PING, true, b"still here")).await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let ending = raw::ending(&mut read, PATIENCE).await;
    pinger.abort();
    let (code, reason) = ending.close.expect("a close frame");
    assert_eq!((code, reason.as_str()), (1008, "no hello within 800ms"));
    assert!(ending.pongs >= 1, "its pings were answered meanwhile");
    // Re-armed by each ping, it would never have closed; this only shows it was not.
    assert!(started.elapsed() < PATIENCE);
}

#[tokio::test]
async fn sockets_waiting_for_their_hello_hold_no_player_place() {
    let secret = "s3cret";
    let server = TestServer::start(Config {
        max_players: 2,
        auth_secret: Some(secret.into()),
        hello_timeout: Duration::from_secs(30),
        ..Config::defaults()
    })
    .await;
    // Five squatters upgrade and say nothing, on a server with two places.
    let mut squatters = Vec::new();
    for _ in 0..5 {
        let (tcp, status) = raw::upgrade(server.addr, Some(KEY), &[]).await;
        assert_eq!(status, 101);
        squatters.push(tcp);
    }
    let now = tickcast::protocol::unix_micros() / 1_000_000;
    let url = server.ws_url();
    let join = |name: &str| {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            name: name.into(),
            token: tickcast::auth::mint(secret.as_bytes(), "default", name, now + 60),
            resume: String::new(),
            options: Vec::new(),
        };
        Client::connect_with(&url, hello)
    };
    let mut players = Vec::new();
    for name in ["ann", "bob"] {
        let mut player = within(join(name))
            .await
            .unwrap_or_else(|err| panic!("{name} with a valid token was refused: {err}"));
        until_snapshot(&mut player).await;
        players.push(player);
    }
    // A third valid hello finds both places taken, by players.
    let err = within(join("cal")).await.err();
    assert!(matches!(err, Some(ClientError::Closed { code: 1013, .. })), "{err:?}");
    drop(squatters);
}

#[tokio::test]
async fn a_valid_hello_over_the_player_cap_gets_1013() {
    let server = TestServer::start(Config {
        max_players: 1,
        ..Config::defaults()
    })
    .await;
    let _ann = server.player("ann").await;
    let err = within(Client::connect(&server.ws_url(), "bob")).await.err();
    assert!(
        matches!(&err, Some(ClientError::Closed { code: 1013, reason }) if reason == "server full"),
        "{err:?}"
    );
}

#[tokio::test]
async fn names_with_control_characters_are_refused() {
    let server = TestServer::at(30).await;
    for name in ["two\nlines", "esc\u{1b}[2J", "del\u{7f}", "c1\u{85}"] {
        let err = within(Client::connect(&server.ws_url(), name)).await.err();
        assert!(
            matches!(&err, Some(ClientError::Closed { code: 1008, reason }) if reason == "name contains control characters"),
            "{name:?}: {err:?}"
        );
    }
    // Letters from any script are names, not control characters.
    let mut fine = server.player("Zoë 李").await;
    until_snapshot(&mut fine).await;
}

#[tokio::test]
async fn only_the_servers_own_origins_and_listed_ones_open_player_sockets() {
    let server = TestServer::start(Config {
        allowed_origins: vec!["https://play.example".into()],
        ..Config::defaults()
    })
    .await;
    let port = server.addr.port();
    let own = format!("http://{}", server.addr);
    let localhost = format!("http://localhost:{port}");
    let rebinding_host = format!("evil.example:{port}");
    let rebinding = format!("http://evil.example:{port}");
    let other_scheme = format!("https://{}", server.addr);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);
    let cases: Vec<Case> = vec![
        ("own", vec![("origin", &own)], 101),
        ("localhost", vec![("origin", &localhost)], 101),
        ("listed", vec![("origin", "https://play.example")], 101),
        ("no origin (a native client)", vec![], 101),
        ("foreign", vec![("origin", "https://evil.example")], 403),
        (
            "DNS rebinding",
            vec![("host", &rebinding_host), ("origin", &rebinding)],
            403,
        ),
        ("another scheme", vec![("origin", &other_scheme)], 403),
        (
            "duplicated",
            vec![("origin", &own), ("origin", "https://evil.example")],
            403,
        ),
        ("non-ASCII", vec![("origin", "http://\u{e9}vil.example")], 403),
        ("null", vec![("origin", "null")], 403),
    ];
    let refused = cases.iter().filter(|c| c.2 == 403).count() as u64;
    for (name, headers, expected) in cases {
        let (_, status) = raw::upgrade(server.addr, Some(KEY), &headers).await;
        assert_eq!(status, expected, "{name}");
    }
    assert_eq!(server.metrics.closes(CloseReason::Origin), refused);
}

#[tokio::test]
async fn upgraded_sockets_count_under_the_connection_cap_until_they_close() {
    let server = TestServer::start(Config {
        max_connections: Some(3),
        ..Config::defaults()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let (tcp, status) = raw::upgrade(server.addr, Some(KEY), &[]).await;
        assert_eq!(status, 101);
        held.push(tcp);
    }
    let mut fourth = TcpStream::connect(server.addr).await.unwrap();
    fourth
        .write_all(b"GET /state HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    within(fourth.read_to_string(&mut reply)).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    // One closes: its place is free again.
    drop(held.pop());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, status) = raw::upgrade(server.addr, Some(KEY), &[]).await;
        if status == 101 {
            break;
        }
        assert!(Instant::now() < deadline, "the closed socket's place never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_player_whose_socket_takes_nothing_is_closed_as_too_slow_with_whole_frames() {
    // The write timeout trips long before the queue rule could.
    let server = TestServer::start(Config {
        orbs: 60_000,
        write_timeout: Duration::from_millis(500),
        slow_timeout: Duration::from_secs(30),
        ..Config::defaults()
    })
    .await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(server.ws_url(), tcp).await.unwrap();
    futures_util::SinkExt::send(
        &mut ws,
        tokio_tungstenite::tungstenite::Message::Binary(hello("stalled", "").into()),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while server.metrics.closes(CloseReason::TooSlow) == 0 {
        assert!(Instant::now() < deadline, "the stalled player was never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reading again, it finds whole frames (a keyframe cut short would fail to parse), then
    // the close frame if the socket had room for it, or the end of the stream.
    loop {
        match within(futures_util::StreamExt::next(&mut ws)).await {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(close)))) => {
                assert_eq!(u16::from(close.code), 1008);
                assert!(close.reason.starts_with("too slow"), "{}", close.reason);
                break;
            }
            Some(Ok(_)) => continue,
            None => break,
            Some(Err(err)) => {
                assert!(
                    matches!(
                        err,
                        tokio_tungstenite::tungstenite::Error::Io(_)
                            | tokio_tungstenite::tungstenite::Error::Protocol(
                                tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
                            )
                    ),
                    "garbage after the stall: {err}"
                );
                break;
            }
        }
    }
}

#[tokio::test]
async fn invalid_utf8_gets_1007_and_malformed_keys_get_400() {
    let server = TestServer::at(30).await;
    let faults = [
        ("text", raw::frame(0x1, true, &[0xff, 0xfe, 0xfd])),
        ("close reason", raw::frame(0x8, true, &[0x03, 0xe8, 0xc3, 0x28])),
    ];
    for (name, frame) in faults {
        let (mut tcp, _) = raw::upgrade(server.addr, Some(KEY), &[]).await;
        tcp.write_all(&raw::binary(&hello("faulty", ""))).await.unwrap();
        tcp.write_all(&frame).await.unwrap();
        let ending = raw::ending(&mut tcp, PATIENCE).await;
        let (code, reason) = ending.close.unwrap_or_else(|| panic!("{name}: no close frame"));
        assert_eq!(code, 1007, "{name}: {reason}");
    }
    assert_eq!(server.metrics.closes(CloseReason::Framing), 2);
    for key in [Some(""), Some("not base64 at all!"), Some("c2hvcnQ="), None] {
        let (_, status) = raw::upgrade(server.addr, key, &[]).await;
        assert_eq!(status, 400, "key {key:?}");
    }
}

#[tokio::test]
async fn shutdown_tells_sockets_waiting_for_their_hello_and_does_not_wait_for_half_requests() {
    // A grace longer than the test's patience: waiting for it would fail the test.
    let server = TestServer::start(Config {
        shutdown_grace: PATIENCE * 2,
        ..Config::defaults()
    })
    .await;
    let (mut waiting, _) = raw::upgrade(server.addr, Some(KEY), &[]).await;
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"GET /state HTTP/1.1\r\nhost: t\r\n").await.unwrap();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /state HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // let the requests arrive
    let told = tokio::spawn(async move { raw::ending(&mut waiting, PATIENCE).await });
    within(server.shutdown()).await.unwrap();
    let ending = told.await.unwrap();
    assert_eq!(ending.close, Some((1001, "server shutting down".into())));
}

#[tokio::test]
async fn a_player_upgrade_by_another_method_than_get_is_405() {
    let server = TestServer::at(30).await;
    let res = reqwest::Client::new()
        .post(server.ws_url().replace("ws://", "http://"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", KEY)
        .send()
        .await
        .unwrap();
    // As PROTOCOL.md says: the method is refused before anything else is looked at.
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET,HEAD");
}

#[tokio::test]
async fn guessed_resume_tokens_take_no_seat_and_no_place_and_skip_no_join_token() {
    // A full room (one place) on a server that requires join tokens: a resume needs neither a
    // place nor a join token, so it is where a guesser would try.
    let secret = "s3cret";
    let server = TestServer::start(Config {
        max_players: 1,
        auth_secret: Some(secret.into()),
        ..Config::defaults()
    })
    .await;
    let expiry = tickcast::protocol::unix_micros() / 1_000_000 + 600;
    let token = tickcast::auth::mint(secret.as_bytes(), "default", "ann", expiry);
    let mut ann = within(Client::connect_with(
        &server.ws_url(),
        Hello {
            token,
            ..Hello::new("ann")
        },
    ))
    .await
    .unwrap();
    until_snapshot(&mut ann).await;
    let real = ann.resume_token().to_owned();

    let guesses = (0..64u128).map(|i| {
        let url = server.ws_url();
        // The real token's room, a secret of the guesser's.
        let guess = format!(
            "default.{:032x}",
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
        );
        tokio::spawn(async move { Client::connect_with(&url, Hello::resuming(&guess)).await })
    });
    for guess in guesses {
        match within(guess).await.unwrap() {
            Err(ClientError::Closed { code, reason }) => {
                assert_eq!(
                    (code, reason.as_str()),
                    (4001, "resume token unknown: expired, already used, or never given")
                );
            }
            Ok(client) => panic!("a guessed token took seat {}", client.player_id()),
            Err(other) => panic!("{other}"),
        }
    }
    // Over the length limit: refused before anything else is looked at.
    let long = format!("default.{}", "0".repeat(100));
    match within(Client::connect_with(&server.ws_url(), Hello::resuming(&long))).await {
        Err(ClientError::Closed { code: 1008, reason }) => assert_eq!(reason, "resume token over 96 bytes"),
        other => panic!("{:?}", other.map(|c| c.player_id())),
    }
    // Ann played on throughout: her seat is hers, her token still works once.
    let tick = ann.world().unwrap().tick();
    common::until_tick(&mut ann, tick + 3).await;
    assert_eq!(server.metrics.resumes_refused.get(), 64);
    assert_eq!(server.metrics.resumes.get(), 0);
    assert_eq!(server.metrics.closes(CloseReason::Replaced), 0);
    let back = within(Client::connect_with(&server.ws_url(), Hello::resuming(&real)))
        .await
        .unwrap();
    assert_eq!(back.player_id(), ann.player_id());
}
