//! The player WebSocket itself, against the real server: the upgrade, a first message sent
//! with the upgrade request, WebSocket pings from the client and the closing handshake.

mod common;

use std::io::Cursor;

use common::{TestServer, within};
use futures_util::{SinkExt, StreamExt};
use tickcast::game::Arena;
use tickcast::game::{Game, GameConfig};
use tickcast::protocol::{ClientMsg, Hello, PROTOCOL_VERSION, Schema, ServerMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketContext};
use tokio_tungstenite::tungstenite::{Bytes, Message};

fn hello() -> Vec<u8> {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        name: "eager".into(),
        token: String::new(),
        resume: String::new(),
        options: Vec::new(),
    };
    ClientMsg::Hello(hello).encode(None)
}

/// The test server's game's schema.
fn arena() -> Schema {
    Arena::schema(&GameConfig::default())
}

/// The next binary message, decoded, skipping WebSocket pings.
async fn next_msg<S>(ws: &mut WebSocketStream<S>) -> ServerMsg
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match within(ws.next()).await {
            Some(Ok(Message::Binary(bytes))) => return ServerMsg::decode(&bytes, Some(&arena())).unwrap(),
            Some(Ok(Message::Ping(_))) => continue,
            other => panic!("expected a server message, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_hello_sent_in_the_same_write_as_the_upgrade_request_is_not_lost() {
    let server = TestServer::at(30).await;
    let addr = server
        .ws_url()
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_string();
    // The hello, framed and masked as a client frames it.
    let mut framed = Cursor::new(Vec::new());
    let mut client = WebSocketContext::new(Role::Client, None);
    client.write(&mut framed, Message::Binary(hello().into())).unwrap();
    client.flush(&mut framed).unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(&[request.as_bytes(), framed.get_ref()].concat())
        .await
        .unwrap();

    // Read the response head; whatever follows it is the start of the WebSocket stream.
    let mut got = Vec::new();
    let end = loop {
        let mut chunk = [0; 1024];
        let n = within(tcp.read(&mut chunk)).await.unwrap();
        assert!(n > 0, "closed before the response head");
        got.extend_from_slice(&chunk[..n]);
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    let mut ws = WebSocketStream::from_partially_read(tcp, got[end..].to_vec(), Role::Client, None).await;
    assert!(matches!(next_msg(&mut ws).await, ServerMsg::Welcome(w) if w.player_id > 0));
    assert!(matches!(next_msg(&mut ws).await, ServerMsg::Snapshot(_)));
}

#[tokio::test]
async fn a_client_websocket_ping_is_answered_before_the_next_tick() {
    // One tick a second: a pong that waited to go out with the next frame would trail it.
    let server = TestServer::at(1).await;
    let (mut ws, _) = within(tokio_tungstenite::connect_async(server.ws_url())).await.unwrap();
    ws.send(Message::Binary(hello().into())).await.unwrap();
    assert!(matches!(next_msg(&mut ws).await, ServerMsg::Welcome(_)));
    assert!(matches!(next_msg(&mut ws).await, ServerMsg::Snapshot(_)));
    for payload in [&b"one"[..], b"two"] {
        ws.send(Message::Ping(Bytes::from_static(payload))).await.unwrap();
        match within(ws.next()).await {
            Some(Ok(Message::Pong(echo))) => assert_eq!(echo, payload),
            other => panic!("expected the pong first, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_client_that_closes_gets_the_closing_handshake_back() {
    let server = TestServer::at(30).await;
    let (mut ws, _) = within(tokio_tungstenite::connect_async(server.ws_url())).await.unwrap();
    ws.send(Message::Binary(hello().into())).await.unwrap();
    assert!(matches!(next_msg(&mut ws).await, ServerMsg::Welcome(_)));
    let bye = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    ws.send(Message::Close(Some(bye))).await.unwrap();
    let echo = loop {
        match within(ws.next()).await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue, // frames already in flight
            other => panic!("expected the server's close reply, got {other:?}"),
        }
    };
    assert_eq!(echo.map(|f| f.code), Some(CloseCode::Normal));
    assert!(within(ws.next()).await.is_none(), "the stream ends after the handshake");
}

#[tokio::test]
async fn requests_that_are_not_websocket_upgrades_are_refused_with_a_reason() {
    let server = TestServer::at(30).await;
    let http = reqwest::Client::new();
    let bad_key = http
        .get(server.http_url("/ws"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 400);
    assert!(bad_key.text().await.unwrap().contains("Sec-WebSocket-Key"));

    let old = http
        .get(server.http_url("/ws"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "8")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 426);
    assert_eq!(old.headers()["sec-websocket-version"], "13");
}

/// What a plain GET of the player URL answers: whether this page's upgrade and hello would be
/// let in, and if not, the code and reason it would get (which a browser cannot read from a
/// refused upgrade), readable from any origin.
#[tokio::test]
async fn a_plain_get_of_the_player_url_says_whether_a_page_would_be_let_in_and_why_not() {
    let secret = "s3cret";
    let server = TestServer::start(tickcast::Config {
        max_players: 1,
        auth_secret: Some(secret.into()),
        ..tickcast::Config::defaults()
    })
    .await;
    let ask = |path: &str, origin: Option<&str>| {
        let mut req = reqwest::Client::new().get(server.http_url(path));
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        async move {
            let res = within(req.send()).await.unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["access-control-allow-origin"], "*");
            res.json::<serde_json::Value>().await.unwrap()
        }
    };
    let token = tickcast::auth::mint(secret.as_bytes(), "default", "ann", u64::MAX / 2);
    let own = Some(server.http_url(""));
    let admitted = ask(&format!("/ws?name=ann&token={token}"), own.as_deref()).await;
    assert_eq!(admitted, serde_json::json!({"admitted": true}));

    let refused = |code: u16, says: &'static str| {
        move |answer: serde_json::Value| {
            assert_eq!(
                (&answer["admitted"], &answer["code"]),
                (&false.into(), &code.into()),
                "{answer}"
            );
            assert!(answer["reason"].as_str().unwrap().contains(says), "{answer}");
        }
    };
    refused(403, "origin")(ask("/ws?name=ann", Some("http://evil.example")).await);
    refused(404, "no room")(ask("/rooms/nosuchroom/ws", None).await);
    refused(1008, "join token")(ask("/ws?name=ann", None).await);
    refused(1008, "control characters")(ask("/ws?name=a%07b", None).await);
    refused(1008, "name over 32 bytes")(ask(&format!("/ws?name={}", "a".repeat(33)), None).await);
    refused(1008, "malformed join token")(ask("/ws?name=bob&token=v2.1.AAAA", None).await);
    refused(1008, "invalid join token")(ask(&format!("/ws?name=bob&token={token}"), None).await);

    // The one place taken: the next page would get 1013.
    let mut hello = Hello::new("ann");
    hello.token = token.clone();
    let _ann = within(tickcast::client::Client::connect_with(&server.ws_url(), hello))
        .await
        .unwrap();
    refused(1013, "server full")(ask(&format!("/ws?name=ann&token={token}"), None).await);
}
