//! Rooms against the real server: isolation, the rooms API, matchmaking, room-bound tokens,
//! idle rooms, and the default room behind the old paths.

mod common;

use std::time::Duration;

use common::sse::{SpecWorld, SseClient};
use common::{PATIENCE, TestServer, until_snapshot, within};
use serde_json::{Value, json};
use tickcast::Config;
use tickcast::client::{Client, ClientError, Received};
use tickcast::protocol::ended::Ended;
use tickcast::protocol::{Hello, PROTOCOL_VERSION};

/// Sends `method path` with a JSON body (and a bearer token) and returns the status and the
/// JSON answer (`Null` when there is none).
async fn api(server: &TestServer, method: &str, path: &str, body: Option<Value>, bearer: Option<&str>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let mut req = http.request(method.parse().unwrap(), server.http_url(path));
    if method != "GET" {
        req = req.header("content-type", "application/json");
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let res = within(req.send()).await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn create(server: &TestServer, body: Value) -> Value {
    let (status, room) = api(server, "POST", "/rooms", Some(body), None).await;
    assert_eq!(status, 201, "{room}");
    room
}

fn player_ids(client: &Client) -> Vec<u32> {
    let world = client.world().expect("a world");
    world
        .entities()
        .iter()
        .filter(|e| client.schema().kind(e.kind).is_some_and(|k| k.name == "player"))
        .map(|e| e.id)
        .collect()
}

#[tokio::test]
async fn rooms_do_not_see_each_others_players_or_events() {
    let server = TestServer::at(30).await;
    let other = create(&server, json!({ "game": "arena", "tick_hz": 20 })).await;
    let other_id = other["id"].as_str().unwrap();
    assert_eq!(other["tick_hz"], 20);

    let mut here = server.player("ann").await;
    let mut there = within(Client::connect(other["ws"].as_str().unwrap(), "bob"))
        .await
        .unwrap();
    assert_eq!(there.welcome().tick_hz, 20, "the room's own settings");
    until_snapshot(&mut here).await;
    until_snapshot(&mut there).await;
    // A spectator of one room sees its player arrive, and only it.
    let mut spectator = SseClient::connect(&server.http_url(&format!("/rooms/{other_id}/events")), None).await;
    let mut seen = SpecWorld::default();
    let players = loop {
        let event = spectator.next().await.unwrap();
        seen.apply(&event.event, &serde_json::from_str(&event.data).unwrap())
            .unwrap();
        let players: Vec<u64> = seen
            .entities
            .iter()
            .filter(|(_, e)| e["kind"] == "player")
            .map(|(id, _)| *id)
            .collect();
        if !players.is_empty() {
            break players;
        }
    };
    assert_eq!(players, vec![u64::from(there.player_id())]);
    for _ in 0..10 {
        within(here.recv()).await.unwrap();
        within(there.recv()).await.unwrap();
    }
    assert_eq!(player_ids(&here), vec![here.player_id()]);
    assert_eq!(player_ids(&there), vec![there.player_id()]);
}

#[tokio::test]
async fn the_rooms_api_creates_lists_shows_and_closes_rooms() {
    let server = TestServer::at(30).await;
    let public = create(&server, json!({ "game": "arena", "max_players": 4, "seed": 9 })).await;
    let private = create(&server, json!({ "game": "arena", "private": true })).await;
    let (public_id, private_id) = (public["id"].as_str().unwrap(), private["id"].as_str().unwrap());
    assert_eq!(public["max_players"], 4);
    assert_eq!(public["game"], "arena");
    assert_eq!(public["joinable"], true);
    assert!(public["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        public["ws"],
        json!(format!("ws://{}/rooms/{public_id}/ws", server.addr))
    );

    let (status, listed) = api(&server, "GET", "/rooms", None, None).await;
    assert_eq!(status, 200);
    let ids: Vec<_> = listed["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert!(
        ids.contains(&json!("default")) && ids.contains(&json!(public_id)),
        "{listed}"
    );
    assert!(!ids.contains(&json!(private_id)), "a private room is listed");
    for field in [
        "id",
        "game",
        "players",
        "max_players",
        "spectators",
        "tick",
        "tick_hz",
        "created",
        "joinable",
    ] {
        assert!(listed["rooms"][0].get(field).is_some(), "no {field} in {listed}");
    }
    // Knowing a private room's id is enough to see it.
    let (status, shown) = api(&server, "GET", &format!("/rooms/{private_id}"), None, None).await;
    assert_eq!((status, shown["private"].clone()), (200, json!(true)));

    // Close the public room with a player and a spectator in it.
    let mut player = within(Client::connect(public["ws"].as_str().unwrap(), "ann"))
        .await
        .unwrap();
    until_snapshot(&mut player).await;
    let (_, shown) = api(&server, "GET", &format!("/rooms/{public_id}"), None, None).await;
    assert_eq!(shown["players"], 1);
    let mut spectator = SseClient::connect(&server.http_url(&format!("/rooms/{public_id}/events")), None).await;
    spectator.next().await.unwrap();
    // Only the room's key closes it: no credential is 401, another room's key 403.
    let path = format!("/rooms/{public_id}");
    let (status, _) = api(&server, "DELETE", &path, None, None).await;
    assert_eq!(status, 401);
    let (status, _) = api(&server, "DELETE", &path, None, private["key"].as_str()).await;
    assert_eq!(status, 403);
    let (status, _) = api(&server, "DELETE", &path, None, public["key"].as_str()).await;
    assert_eq!(status, 204);
    let closed = loop {
        if let Err(err) = within(player.recv()).await {
            break err;
        }
    };
    assert!(
        matches!(&closed, ClientError::Closed { code: 1001, reason } if reason == "room closed"),
        "{closed}"
    );
    let last = loop {
        let event = spectator.next().await.expect("a last event");
        if event.event != "delta" {
            break event;
        }
    };
    assert_eq!(
        (last.event.as_str(), last.data.as_str()),
        ("closed", r#"{"reason":"room closed"}"#)
    );
    assert!(spectator.next().await.is_none(), "the stream ends after it");
    assert_eq!(server.metrics.rooms_closed(Ended::Closed), 1);

    let (status, error) = api(&server, "GET", &format!("/rooms/{public_id}"), None, None).await;
    assert_eq!(status, 404);
    assert!(error["error"].as_str().unwrap().contains(public_id), "{error}");
    let (status, _) = api(&server, "DELETE", "/rooms/nope", None, public["key"].as_str()).await;
    assert_eq!(status, 404);
    // No key opens the default room (nor does anything, without an admin secret).
    let (status, error) = api(&server, "DELETE", "/rooms/default", None, private["key"].as_str()).await;
    assert_eq!(status, 403, "{error}");
    let gone = reqwest::get(server.http_url(&format!("/rooms/{public_id}/state")))
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn bad_requests_to_the_rooms_api_say_what_is_wrong() {
    let server = TestServer::at(30).await;
    let cases = [
        (json!({ "game": "chess" }), 400, "unknown game"),
        (json!({ "game": "arena", "tick_hz": 0 }), 400, "tick_hz"),
        (json!({ "game": "arena", "max_players": 0 }), 400, "max_players"),
        (json!({ "game": "arena", "colour": "red" }), 400, "unknown field"),
        (json!({ "tick_hz": 30 }), 400, "missing field"),
    ];
    for (body, status, says) in cases {
        let (got, error) = api(&server, "POST", "/rooms", Some(body.clone()), None).await;
        assert_eq!(got, status, "{body}: {error}");
        assert!(error["error"].as_str().unwrap().contains(says), "{body}: {error}");
    }
    let http = reqwest::Client::new();
    let post = || {
        http.post(server.http_url("/rooms"))
            .header("content-type", "application/json")
    };
    let not_json = post().body("{nope").send().await.unwrap();
    assert_eq!(not_json.status(), 400);
    let huge = post()
        .body(format!(r#"{{"game":"arena","pad":"{}"}}"#, "x".repeat(10_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    let (status, _) = api(&server, "GET", "/rooms/a%20b", None, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn max_rooms_and_the_admin_secret_are_enforced() {
    let server = TestServer::start(Config {
        max_rooms: 2,
        admin_secret: Some("adm1n".into()),
        ..Config::defaults()
    })
    .await;
    let body = || Some(json!({ "game": "arena" }));
    let (status, _) = api(&server, "POST", "/rooms", body(), None).await;
    assert_eq!(status, 401);
    let (status, _) = api(&server, "POST", "/rooms", body(), Some("guess")).await;
    assert_eq!(status, 401);
    let (status, room) = api(&server, "POST", "/rooms", body(), Some("adm1n")).await;
    assert_eq!(status, 201, "{room}");
    // The default room and this one: the cap is reached.
    let (status, error) = api(&server, "POST", "/rooms", body(), Some("adm1n")).await;
    assert_eq!(status, 503, "{error}");
    let full = reqwest::Client::new()
        .post(server.http_url("/rooms"))
        .bearer_auth("adm1n")
        .json(&json!({ "game": "arena" }))
        .send()
        .await
        .unwrap();
    assert_eq!(full.headers()["retry-after"], "5");
    let path = format!("/rooms/{}", room["id"].as_str().unwrap());
    let (status, _) = api(&server, "DELETE", &path, None, None).await;
    assert_eq!(status, 401);
    let (status, error) = api(&server, "DELETE", "/rooms/default", None, Some("adm1n")).await;
    assert_eq!(status, 409, "the admin cannot close the default room either: {error}");
    let (status, _) = api(&server, "DELETE", &path, None, Some("adm1n")).await;
    assert_eq!(status, 204);
    // Its place is free once it has ended.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while api(&server, "POST", "/rooms", body(), Some("adm1n")).await.0 != 201 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed room's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn creating_rooms_is_rate_limited_per_client_address() {
    let server = TestServer::at(30).await;
    let mut created = 0;
    let (status, error) = loop {
        let (status, answer) = api(&server, "POST", "/rooms", Some(json!({ "game": "arena" })), None).await;
        if status != 201 {
            break (status, answer);
        }
        created += 1;
        assert!(created <= 100, "never limited");
    };
    assert_eq!((status, created), (429, 10), "{error}");
}

#[tokio::test]
async fn matchmaking_fills_a_room_then_opens_the_next_with_room_bound_tokens() {
    let secret = "s3cret";
    let server = TestServer::start(Config {
        max_players: 2,
        no_default_room: true,
        auth_secret: Some(secret.into()),
        ..Config::defaults()
    })
    .await;
    let matchmake = |name: &str| {
        let identity = tickcast::auth::mint_identity(secret.as_bytes(), name, u64::MAX);
        api(
            &server,
            "POST",
            "/matchmake",
            Some(json!({ "game": "arena", "name": name, "identity": identity })),
            None,
        )
    };
    let hello = |name: &str, token: &Value| Hello {
        version: PROTOCOL_VERSION,
        name: name.into(),
        token: token.as_str().unwrap().into(),
        resume: String::new(),
        options: Vec::new(),
    };
    // Each player matchmakes and joins its room with its token.
    let (mut seats, mut players) = (Vec::new(), Vec::new());
    for name in ["ann", "bob", "cal"] {
        let (status, seat) = matchmake(name).await;
        assert_eq!(status, 200, "{seat}");
        let mut player = within(Client::connect_with(
            seat["ws"].as_str().unwrap(),
            hello(name, &seat["token"]),
        ))
        .await
        .unwrap_or_else(|err| panic!("{name}: {err}"));
        until_snapshot(&mut player).await;
        players.push(player);
        seats.push(seat);
    }
    assert_eq!(
        (seats[0]["created"].clone(), seats[1]["created"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(
        seats[0]["room"], seats[1]["room"],
        "the second player fills the first room"
    );
    assert_eq!(seats[2]["created"], true, "the third opens the next room");
    assert_ne!(seats[2]["room"], seats[0]["room"]);
    // A token for one room does not open another.
    let refused = within(Client::connect_with(
        seats[2]["ws"].as_str().unwrap(),
        hello("ann", &seats[0]["token"]),
    ))
    .await
    .err();
    assert!(
        matches!(&refused, Some(ClientError::Closed { code: 1008, reason }) if reason == "invalid join token"),
        "{refused:?}"
    );
    // The first room is full now: matchmaking looks elsewhere.
    let (_, seat) = matchmake("dan").await;
    assert_eq!(seat["room"], seats[2]["room"]);
    let (status, error) = matchmake("a\nb").await;
    assert_eq!(status, 400, "{error}");
}

#[tokio::test]
async fn an_idle_room_closes_itself_and_the_default_room_does_not() {
    const IDLE: Duration = Duration::from_secs(1);
    let server = TestServer::start(Config {
        room_idle: IDLE,
        ..Config::defaults()
    })
    .await;
    let room = create(&server, json!({ "game": "arena" })).await;
    let path = format!("/rooms/{}", room["id"].as_str().unwrap());
    // A player comes (well within the idle time of the room's creation) and plays for longer
    // than the idle time, and goes; the room is idle from when it leaves.
    let mut player = within(Client::connect(room["ws"].as_str().unwrap(), "ann"))
        .await
        .unwrap();
    until_snapshot(&mut player).await;
    let unplayed = create(&server, json!({ "game": "arena" })).await;
    let playing = tokio::time::Instant::now();
    while playing.elapsed() < IDLE + IDLE / 2 {
        within(player.recv()).await.unwrap();
    }
    assert_eq!(
        api(&server, "GET", &path, None, None).await.0,
        200,
        "a room played in stays"
    );
    within(player.close()).await.unwrap();
    let left = tokio::time::Instant::now();
    let deadline = left + PATIENCE;
    while api(&server, "GET", &path, None, None).await.0 != 404 {
        assert!(tokio::time::Instant::now() < deadline, "the idle room never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(left.elapsed() >= IDLE, "closed before its idle time");
    let unplayed = format!("/rooms/{}", unplayed["id"].as_str().unwrap());
    assert_eq!(
        api(&server, "GET", &unplayed, None, None).await.0,
        404,
        "nobody ever played in it"
    );
    assert_eq!(server.metrics.rooms_closed(Ended::Idle), 2);
    let (status, _) = api(&server, "GET", "/rooms/default", None, None).await;
    assert_eq!(status, 200, "the default room never idles out");
}

#[tokio::test]
async fn the_old_paths_are_the_default_room() {
    let server = TestServer::at(30).await;
    let mut old = server.player("old").await;
    let mut new = within(Client::connect(
        &format!("ws://{}/rooms/default/ws", server.addr),
        "new",
    ))
    .await
    .unwrap();
    until_snapshot(&mut old).await;
    until_snapshot(&mut new).await;
    let (a, b) = (old.player_id(), new.player_id());
    while !(player_ids(&old).contains(&b) && player_ids(&new).contains(&a)) {
        match within(old.recv()).await.unwrap() {
            Received::Delta { .. } | Received::Snapshot { .. } => within(new.recv()).await.map(|_| ()).unwrap(),
            _ => {}
        }
    }
    let old_state: Value = reqwest::get(server.http_url("/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_state: Value = reqwest::get(server.http_url("/rooms/default/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(old_state["width"], new_state["width"]);

    let none = TestServer::start(Config {
        no_default_room: true,
        ..Config::defaults()
    })
    .await;
    let missing = reqwest::get(none.http_url("/state")).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("--no-default-room"));
    let refused = within(Client::connect(&none.ws_url(), "x")).await.err();
    assert!(matches!(refused, Some(ClientError::Connect { .. })), "{refused:?}");
}
