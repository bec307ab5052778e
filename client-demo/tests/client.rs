//! Connecting, failing clearly, and drawing a real server's world, on 127.0.0.1:0.

mod common;

use client_demo::arena::Arena;
use client_demo::connect::{connect, hint};
use client_demo::draw::View;
use client_demo::stats::RttStats;
use common::{TestServer, closed_port, within};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use tickcast::client::{Client, ClientError, Received};
use tickcast::protocol::{Hello, PROTOCOL_VERSION};

#[tokio::test]
async fn a_server_that_is_not_running_is_named_as_such() {
    let url = format!("ws://{}/ws", closed_port().await);
    let err = within(connect(&url, "p")).await.err().expect("nothing listens there");
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(hint(&err).expect("a hint").contains("is the server running"), "{err}");
}

#[tokio::test]
async fn a_version_mismatch_is_refused_with_the_servers_reason() {
    let server = TestServer::at(30).await;
    let hello = Hello {
        version: PROTOCOL_VERSION + 1,
        name: "future".into(),
        token: String::new(),
        resume: String::new(),
        options: Vec::new(),
    };
    let err = within(Client::connect_with(&server.ws_url(), hello))
        .await
        .err()
        .expect("refused");
    let ClientError::Closed { code, reason } = &err else {
        panic!("expected a close, got {err}");
    };
    assert_eq!(*code, 1002);
    assert!(reason.contains("not supported"), "{reason}");
    assert!(hint(&err).expect("a hint").contains("protocol version"), "{err}");
}

#[tokio::test]
async fn the_screen_shows_this_player_where_the_server_put_it() {
    let server = TestServer::at(30).await;
    let mut client = within(connect(&server.ws_url(), "viewer")).await.expect("connects");
    let mut rtt = RttStats::new();
    client.send_ping(1).await.expect("ping sent");
    // Until both the first snapshot and the pong are in.
    while client.world().is_none() || rtt.is_empty() {
        if let Received::Pong { rtt: sample, .. } = within(client.recv()).await.expect("recv") {
            rtt.record(sample);
        }
    }
    let world = client.world().expect("a world");
    let view = View {
        world: Some(world),
        arena: Arena::from_schema(client.schema()),
        aim: None,
        me: client.player_id(),
        direction: (0, 0),
        rtt: &rtt,
        resyncs: 0,
        told: &std::collections::VecDeque::new(),
        typing: None,
        chat: false,
    };
    let mut buf = Buffer::empty(Rect::new(0, 0, 100, 30));
    view.render(buf.area, &mut buf);

    let cells = buf.content().iter();
    assert_eq!(cells.filter(|c| c.symbol() == "@").count(), 1, "this player, once");
    let orbs = buf.content().iter().filter(|c| c.symbol() == "•").count();
    assert!(orbs > 10, "100 orbs should fill many cells, got {orbs}");
    let screen: String = buf.content().iter().map(|c| c.symbol()).collect();
    assert!(
        screen.contains("you        viewer"),
        "this player, by its name: {screen}"
    );
    assert!(!screen.contains("rtt        -"), "the pong's RTT is shown");
}
