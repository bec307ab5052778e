//! The spectator's HTTP side against a stand-in feed on 127.0.0.1:0 that speaks the feed's
//! specification (server-sent events over a plain HTTP/1.1 response).

mod common;

use client_demo::spectate::{self, Ended, SpectateError};
use common::{closed_port, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SNAPSHOT: &str = r#"{"tick":300,"width":1000,"height":1000,"spectators":1,"schema":{"game":"arena","kinds":[{"name":"player","fields":[{"name":"x","type":"coord","role":"x"},{"name":"y","type":"coord","role":"y"},{"name":"score","type":"uint","role":"score"}]},{"name":"orb","fields":[{"name":"x","type":"coord","role":"x"},{"name":"y","type":"coord","role":"y"}]}]},"entities":[{"id":1,"kind":"orb","x":12.5,"y":40.0625},{"id":101,"kind":"player","x":500.0,"y":20.5,"score":3}]}"#;
const DELTA: &str =
    r#"{"tick":301,"base":300,"spectators":1,"spawned":[],"updated":[{"id":101,"score":4}],"removed":[1]}"#;
const EVENT_STREAM: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n";

/// Accepts one connection and returns it with its request head, lowercased.
async fn accept(listener: &TcpListener) -> (TcpStream, String) {
    let (mut socket, _) = listener.accept().await.expect("accept");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        socket.read_exact(&mut byte).await.expect("request head");
        head.push(byte[0]);
    }
    (socket, String::from_utf8_lossy(&head).to_lowercase())
}

/// Writes `text` in small pieces, so events cross chunk boundaries as on a real network.
async fn send(socket: &mut TcpStream, text: &str) {
    for piece in text.as_bytes().chunks(7) {
        socket.write_all(piece).await.expect("write");
        socket.flush().await.expect("flush");
    }
}

fn event(name: &str, id: u64, data: &str) -> String {
    format!("event: {name}\r\nid: {id}\r\ndata: {data}\r\n\r\n")
}

#[tokio::test]
async fn the_follower_rebuilds_the_world_and_stops_at_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let feed = tokio::spawn(async move {
        let (mut socket, head) = accept(&listener).await;
        assert!(head.starts_with("get /events http/1.1"), "{head}");
        assert!(head.contains("accept: text/event-stream"), "{head}");
        send(&mut socket, EVENT_STREAM).await;
        send(&mut socket, "retry: 500\r\n: welcome\r\n\r\n").await;
        send(&mut socket, &event("snapshot", 300, SNAPSHOT)).await;
        send(&mut socket, &event("delta", 301, DELTA)).await;
        // Shut down only once the follower has summarised the world the delta made.
        seen_rx.recv().await;
        send(
            &mut socket,
            &event("shutdown", 301, r#"{"reason":"server shutting down"}"#),
        )
        .await;
    });

    let mut summaries = Vec::new();
    let ended = within(spectate::follow(&url, CancellationToken::new(), |s| {
        if s.tick == Some(301) {
            let _ = seen_tx.send(());
        }
        summaries.push(s.clone());
    }))
    .await
    .expect("follows the feed");

    assert_eq!(ended, Ended::Shutdown("server shutting down".into()));
    let last = summaries.last().expect("a summary");
    assert_eq!((last.tick, last.spectators), (Some(301), 1));
    assert_eq!(last.census, [("player".to_owned(), 1), ("orb".to_owned(), 0)]);
    assert_eq!(last.leaders.first().map(|s| (s.id, s.score)), Some((101, 4)));
    assert!(last.to_string().contains("tick 301 | 1 player, 0 orb"), "{last}");
    within(feed).await.unwrap();
}

#[tokio::test]
async fn a_broken_stream_is_resumed_with_the_last_event_id() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let feed = tokio::spawn(async move {
        let (mut first, _) = accept(&listener).await;
        send(&mut first, EVENT_STREAM).await;
        send(
            &mut first,
            &format!("retry: 10\r\n\r\n{}", event("snapshot", 300, SNAPSHOT)),
        )
        .await;
        drop(first); // the stream breaks

        let (mut second, head) = accept(&listener).await;
        send(&mut second, EVENT_STREAM).await;
        send(&mut second, &event("shutdown", 300, r#"{"reason":"bye"}"#)).await;
        head
    });
    let ended = within(spectate::follow(&url, CancellationToken::new(), |_| {}))
        .await
        .expect("follows the feed");
    assert_eq!(ended, Ended::Shutdown("bye".into()));
    let head = within(feed).await.unwrap();
    assert!(head.contains("last-event-id: 300"), "{head}");
}

#[tokio::test]
async fn wrong_places_fail_at_once_with_a_clear_error() {
    let nowhere = format!("http://{}/events", closed_port().await);
    let err = within(spectate::follow(&nowhere, CancellationToken::new(), |_| {}))
        .await
        .unwrap_err();
    assert!(matches!(err, SpectateError::Connect { .. }), "{err}");
    assert!(err.hint().unwrap().contains("is the server running"));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/nothing", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut socket, _) = accept(&listener).await;
        send(&mut socket, "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await;
        let (mut socket, _) = accept(&listener).await;
        send(
            &mut socket,
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 0\r\n\r\n",
        )
        .await;
    });
    let err = within(spectate::follow(&url, CancellationToken::new(), |_| {}))
        .await
        .unwrap_err();
    assert!(matches!(err, SpectateError::Status { .. }), "{err}");
    assert!(err.hint().unwrap().contains("/events"));
    let err = within(spectate::follow(&url, CancellationToken::new(), |_| {}))
        .await
        .unwrap_err();
    assert!(matches!(err, SpectateError::NotEventStream { .. }), "{err}");
    within(server).await.unwrap();

    let err = within(spectate::follow(
        "https://127.0.0.1/events",
        CancellationToken::new(),
        |_| {},
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, SpectateError::BadUrl { .. }), "{err}");
}
