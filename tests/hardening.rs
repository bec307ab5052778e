//! Hostile and broken peers against the real server: floods, silence, stalled readers, foreign
//! origins, forged tokens, oversized or trickled HTTP heads, too many connections.

mod common;

use std::time::Duration;

use common::{PATIENCE, TestServer, until_snapshot, until_tick, within};
use futures_util::SinkExt;
use tickcast::Config;
use tickcast::client::{Client, ClientError, Received};
use tickcast::metrics::CloseReason;
use tickcast::protocol::{ClientMsg, Hello, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn hello(name: &str, token: &str) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        name: name.into(),
        token: token.into(),
        resume: String::new(),
        options: Vec::new(),
    }
}

/// Reads until the connection's close frame and returns its code and reason.
async fn close_of(client: &mut Client) -> (u16, String) {
    loop {
        match within(client.recv()).await {
            Ok(_) => continue,
            Err(ClientError::Closed { code, reason }) => return (code, reason),
            Err(err) => panic!("ended without a close frame: {err}"),
        }
    }
}

#[tokio::test]
async fn a_burst_over_the_allowance_is_dropped_and_a_sustained_flood_is_closed() {
    // 10 Hz: an allowance of 20 messages a second, a burst of 20.
    let server = TestServer::start(Config {
        tick_hz: 10,
        ..Config::defaults()
    })
    .await;
    let mut flooder = server.player("flooder").await;
    until_snapshot(&mut flooder).await;
    for seq in 1..=100 {
        flooder.send(&common::moving(seq, 1, 1)).await.unwrap();
    }
    let tick = flooder.world().unwrap().tick();
    until_tick(&mut flooder, tick + 3).await; // still connected
    assert!(
        server.metrics.rate_limited.get() >= 50,
        "the burst's excess was not dropped"
    );
    assert_eq!(server.metrics.closes(CloseReason::Flood), 0);

    // Now 200 a second, without pause: ten times the allowance, for seconds.
    let mut seq = 1000;
    let started = Instant::now();
    let closed = loop {
        for _ in 0..10 {
            seq += 1;
            if flooder.send(&common::moving(seq, 1, 1)).await.is_err() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if server.metrics.closes(CloseReason::Flood) > 0 || started.elapsed() > PATIENCE {
            break server.metrics.closes(CloseReason::Flood) > 0;
        }
    };
    assert!(closed, "a sustained flood was never closed");
    let (code, reason) = close_of(&mut flooder).await;
    assert_eq!(code, 1008);
    assert!(reason.contains("flooding"), "{reason}");
}

#[tokio::test]
async fn a_silent_peer_is_closed_after_the_idle_timeout_and_a_live_one_is_not() {
    let config = Config {
        idle_timeout: Duration::from_millis(600),
        ..Config::defaults()
    };
    let server = TestServer::start(config).await;
    // A live client reads, so its WebSocket stack answers the server's pings.
    let mut live = server.player("live").await;
    // A half-open one: it joins, then never reads (so never answers a ping).
    let mut silent = server.player("silent").await;
    until_snapshot(&mut live).await;
    while server.metrics.closes(CloseReason::Idle) == 0 {
        within(live.recv()).await.expect("the live player stays connected");
    }
    let tick = live.world().unwrap().tick();
    until_tick(&mut live, tick + 60).await; // two more seconds, well past the timeout
    // Reading now, its stack first tries to answer the buffered pings, which may fail on the
    // closed socket before the close frame is reached; either way it has been disconnected.
    loop {
        match within(silent.recv()).await {
            Ok(_) => continue,
            Err(ClientError::Closed { code, reason }) => {
                assert_eq!(code, 1008);
                assert!(reason.contains("nothing received"), "{reason}");
                break;
            }
            Err(ClientError::Lost(_)) => break,
            Err(err) => panic!("{err}"),
        }
    }
    assert_eq!(
        server.metrics.closes(CloseReason::Idle),
        1,
        "only the silent player was idle"
    );
    let probes = server.metrics.encode();
    let count = probes
        .lines()
        .find(|l| l.starts_with("tickcast_probe_rtt_seconds_count"))
        .unwrap();
    assert_ne!(
        count.split_whitespace().last(),
        Some("0"),
        "no ping round trips measured"
    );
}

/// Opens a player socket whose receive buffer is tiny, sends the hello and never reads.
async fn stalled_player(server: &TestServer) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(server.ws_url(), tcp).await.unwrap();
    ws.send(Message::Binary(
        ClientMsg::Hello(hello("stalled", "")).encode(None).into(),
    ))
    .await
    .unwrap();
    ws
}

#[tokio::test]
async fn a_player_that_stops_reading_is_closed_as_too_slow_and_nobody_else_notices() {
    // The server bounds each socket's send buffer (256 KiB as Linux counts it); a keyframe of
    // 60 000 orbs (about 0.7 MB) is more, so the write really stalls. A short queue and deadline
    // keep it brief.
    let config = Config {
        tick_hz: 10,
        orbs: 60_000,
        player_queue: 4,
        slow_timeout: Duration::from_millis(500),
        write_timeout: Duration::from_secs(10),
        // Without seats kept, a kicked player leaves the world at once (with them, it would
        // be kept for the grace, as a dropped connection is: tests/resume.rs).
        reconnect_grace: Duration::ZERO,
        ..Config::defaults()
    };
    let server = TestServer::start(config).await;
    let mut watcher = server.player("watcher").await;
    until_snapshot(&mut watcher).await;
    let stalled = stalled_player(&server).await;

    // The watcher applies every delta (a gap would be an error) and its pings come back,
    // while the stalled player is dropped and then kicked.
    let mut nonce = 0;
    let mut pongs = 0;
    while server.metrics.closes(CloseReason::TooSlow) == 0 {
        match within(watcher.recv()).await.expect("the watcher keeps receiving") {
            Received::Pong { .. } => pongs += 1,
            Received::Delta { tick, .. } if tick % 3 == 0 => {
                nonce += 1;
                watcher.send_ping(nonce).await.unwrap();
            }
            _ => {}
        }
    }
    assert!(
        server.metrics.deltas_dropped.get() >= 1,
        "no delta was dropped for the stalled player"
    );
    assert!(pongs > 0 || nonce == 0, "the watcher's pings went unanswered");
    // The stalled player is gone from the world the watcher sees.
    let tick = watcher.world().unwrap().tick();
    until_tick(&mut watcher, tick + 2).await;
    assert_eq!(common::count_of(&watcher, "player"), 1);
    drop(stalled);
}

#[tokio::test]
async fn a_page_from_a_foreign_origin_cannot_open_a_player_socket() {
    let config = Config {
        allowed_origins: vec!["https://play.example".into()],
        ..Config::defaults()
    };
    let server = TestServer::start(config).await;
    let with_origin = |origin: &str| {
        let mut req = server.ws_url().into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        req
    };
    let refused = tokio_tungstenite::connect_async(with_origin("https://evil.example")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        other => panic!("a foreign origin was not refused: {other:?}"),
    }
    assert_eq!(server.metrics.closes(CloseReason::Origin), 1);
    let same_host = format!("http://{}", server.addr);
    for ok in [same_host.as_str(), "https://play.example"] {
        let (ws, _) = tokio_tungstenite::connect_async(with_origin(ok)).await.expect(ok);
        drop(ws);
    }
}

#[tokio::test]
async fn with_an_auth_secret_only_valid_unexpired_tokens_for_the_name_join() {
    let secret = "s3cret";
    let server = TestServer::start(Config {
        auth_secret: Some(secret.into()),
        ..Config::defaults()
    })
    .await;
    let now = tickcast::protocol::unix_micros() / 1_000_000;
    let valid = tickcast::auth::mint(secret.as_bytes(), "default", "ann", now + 60);
    let cases = [
        ("ann", String::new(), "a join token is required"),
        (
            "ann",
            tickcast::auth::mint(secret.as_bytes(), "default", "ann", now - 1),
            "join token expired",
        ),
        ("bob", valid.clone(), "invalid join token"),
        (
            "ann",
            tickcast::auth::mint(b"guess", "default", "ann", now + 60),
            "invalid join token",
        ),
        (
            "ann",
            tickcast::auth::mint(secret.as_bytes(), "another-room", "ann", now + 60),
            "invalid join token",
        ),
        ("ann", "v2.garbage".into(), "malformed join token"),
        (
            "ann",
            valid.replacen("v2.", "v1.", 1),
            "join token v1 names no room: mint a v2 token",
        ),
    ];
    for (name, token, expected) in cases {
        let err = match within(Client::connect_with(&server.ws_url(), hello(name, &token))).await {
            Ok(_) => panic!("{name} joined with {token:?}"),
            Err(err) => err,
        };
        assert!(
            matches!(&err, ClientError::Closed { code: 1008, reason } if reason == expected),
            "{name}/{token}: {err}"
        );
    }
    assert_eq!(server.metrics.closes(CloseReason::Auth), 7);
    let mut ann = within(Client::connect_with(&server.ws_url(), hello("ann", &valid)))
        .await
        .unwrap();
    until_snapshot(&mut ann).await;
}

/// Sends raw bytes on a fresh connection and returns what comes back before it closes.
async fn raw_exchange(server: &TestServer, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    within(tcp.read_to_end(&mut reply)).await.unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test]
async fn oversized_or_trickled_request_heads_are_refused() {
    let config = Config {
        head_timeout: Duration::from_millis(300),
        ..Config::defaults()
    };
    let server = TestServer::start(config).await;
    let big = format!(
        "GET /state HTTP/1.1\r\nhost: t\r\nx-big: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
    assert!(
        raw_exchange(&server, big.as_bytes()).await.starts_with("HTTP/1.1 431"),
        "a 20 KB header was accepted"
    );
    let many: String = (0..100).map(|i| format!("x-h{i}: v\r\n")).collect();
    let many = format!("GET /state HTTP/1.1\r\nhost: t\r\n{many}connection: close\r\n\r\n");
    assert!(
        raw_exchange(&server, many.as_bytes()).await.starts_with("HTTP/1.1 431"),
        "100 headers were accepted"
    );
    // A head that never completes: the connection is closed once the head timeout passes.
    let trickled = raw_exchange(&server, b"GET /state HTTP/1.1\r\nhost: t\r\n").await;
    assert!(!trickled.contains("200 OK"), "{trickled}");
    let fine = raw_exchange(&server, b"GET /state HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").await;
    assert!(fine.starts_with("HTTP/1.1 200"), "{fine}");
}

/// Reads from `tcp` until `needle` has arrived (or fails the test).
async fn read_until_text(tcp: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    within(async {
        while !String::from_utf8_lossy(&got).contains(needle) {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before {needle:?}: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn event_streams_served_without_hyper_keep_the_same_limits_and_framing() {
    let config = Config {
        head_timeout: Duration::from_millis(300),
        ..Config::defaults()
    };
    let server = TestServer::start(config).await;
    let big = format!(
        "GET /events HTTP/1.1\r\nhost: t\r\nx-big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let reply = raw_exchange(&server, big.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    let many: String = (0..100).map(|i| format!("x-h{i}: v\r\n")).collect();
    let reply = raw_exchange(&server, format!("GET /events HTTP/1.1\r\n{many}\r\n").as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    let trickled = raw_exchange(&server, b"GET /events HTTP/1.1\r\nhost: t\r\n").await;
    assert!(trickled.is_empty(), "{trickled}");
    let reply = raw_exchange(&server, b"GET /events?last_event_id=x HTTP/1.1\r\nhost: t\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    let reply = raw_exchange(&server, b"GET /rooms/nope/events HTTP/1.1\r\nhost: t\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");

    // A stream is chunked for HTTP/1.1 and plain for HTTP/1.0; a head split over packets is
    // served too (by hyper, the same stream).
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /events HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();
    let head = read_until_text(&mut tcp, "event: snapshot").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("text/event-stream") && head.contains("transfer-encoding: chunked"),
        "{head}"
    );
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /events HTTP/1.0\r\n\r\n").await.unwrap();
    let head = read_until_text(&mut tcp, "event: snapshot").await;
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding"), "{head}");
    assert!(head.contains("\r\n\r\nretry: "), "the body is not framed: {head}");
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /ev").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tcp.write_all(b"ents HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();
    let head = read_until_text(&mut tcp, "event: snapshot").await;
    assert!(head.to_ascii_lowercase().contains("text/event-stream"), "{head}");
}

#[tokio::test]
async fn connections_over_the_cap_get_503_at_once() {
    let server = TestServer::start(Config {
        max_connections: Some(2),
        ..Config::defaults()
    })
    .await;
    let _held: Vec<TcpStream> = vec![
        TcpStream::connect(server.addr).await.unwrap(),
        TcpStream::connect(server.addr).await.unwrap(),
    ];
    let reply = raw_exchange(&server, b"GET /state HTTP/1.1\r\nhost: t\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.to_ascii_lowercase().contains("retry-after: 5"), "{reply}");
    assert_eq!(server.metrics.closes(CloseReason::Full), 1);
}

#[tokio::test]
async fn shutdown_finishes_within_its_grace_even_with_stalled_peers() {
    let grace = Duration::from_millis(500);
    let server = TestServer::start(Config {
        shutdown_grace: grace,
        orbs: 40_000,
        ..Config::defaults()
    })
    .await;
    let _stalled_player = stalled_player(&server).await;
    // A spectator that never reads its stream, and a connection that never finishes its head.
    let mut stalled_sse = TcpStream::connect(server.addr).await.unwrap();
    stalled_sse
        .write_all(b"GET /events HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // let the stalls set in
    let started = Instant::now();
    server.shutdown().await.unwrap();
    // Not a speed assertion: it shows the deadline holds rather than waiting on the peers.
    assert!(
        started.elapsed() < grace + Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_peer_that_vanishes_without_a_close_handshake_is_a_departure_not_an_error() {
    let server = TestServer::at(30).await;
    let mut watcher = server.player("watcher").await;
    until_snapshot(&mut watcher).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(server.ws_url(), tcp).await.unwrap();
    ws.send(Message::Binary(
        ClientMsg::Hello(hello("vanisher", "")).encode(None).into(),
    ))
    .await
    .unwrap();
    let before = server.metrics.closes(CloseReason::PeerGone);
    // Wait until it is in the world, then drop the socket without a close frame.
    while common::count_of(&watcher, "player") < 2 {
        within(watcher.recv()).await.unwrap();
    }
    drop(ws);
    // Up to five seconds of ticks while the server notices.
    for _ in 0..150 {
        if server.metrics.closes(CloseReason::PeerGone) > before {
            break;
        }
        within(watcher.recv()).await.unwrap();
    }
    assert!(
        server.metrics.closes(CloseReason::PeerGone) > before,
        "the departure was not counted"
    );
    assert_eq!(server.metrics.closes(CloseReason::Malformed), 0);
}
