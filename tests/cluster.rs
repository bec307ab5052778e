//! A cluster of nodes on a real Redis (started by the test on a free loopback port): the
//! directory on every node, placement on the least-loaded node, spectators of a room followed
//! from another node and resumed across nodes, a node killed, Redis restarted mid-match, and a
//! node whose Redis is unreachable.
//!
//! Needs redis-server (`apt-get install redis-server`; `.ci/run` installs it). Without it each
//! test says so and passes, unless `TICKCAST_REQUIRE_REDIS` is set, as CI sets it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::sse::{SpecWorld, SseClient, SseEvent, tick_of};
use common::{TestServer, until_snapshot, within};
use serde_json::{Value, json};
use tickcast::Config;
use tickcast::client::{Client, ClientError, Received};

/// A node of the cluster on `redis`, in this process.
async fn node(redis: &RedisServer, id: &str, config: Config) -> TestServer {
    TestServer::start(Config {
        redis: Some(redis.url()),
        node_id: Some(id.into()),
        ..config
    })
    .await
}

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let res = within(reqwest::get(server.http_url(path))).await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The ids of the rooms `GET /rooms` lists on `server`.
async fn listed(server: &TestServer) -> Vec<String> {
    let (status, body) = get(server, "/rooms").await;
    assert_eq!(status, 200, "{body}");
    body["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls until `done` holds for `server`'s listing, for at most `limit`; returns how long.
async fn until_listed(server: &TestServer, limit: Duration, done: impl Fn(&[String]) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let rooms = listed(server).await;
        if done(&rooms) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "after {limit:?} the listing is still {rooms:?}"
        );
        // The list is built at most once a second, and an address may list 10 times a second.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// A player that keeps moving in a circle, so its room publishes spectator events.
fn keep_moving(mut player: Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut turn = 0u32;
        while let Ok(received) = player.recv().await {
            if matches!(received, Received::Delta { .. }) {
                turn += 1;
                let (dx, dy) = [(127, 0), (0, 127), (-127, 0), (0, -127)][(turn / 15 % 4) as usize];
                if player.send_move(dx, dy).await.is_err() {
                    return;
                }
            }
        }
    })
}

fn data(event: &SseEvent) -> Value {
    serde_json::from_str(&event.data).unwrap()
}

#[tokio::test]
async fn every_node_answers_for_the_whole_cluster_and_players_go_to_the_owner() {
    let Some(redis) = RedisServer::start() else { return };
    let a = node(&redis, "a", Config::defaults()).await;
    let b = node(
        &redis,
        "b",
        Config {
            no_default_room: true,
            ..Config::defaults()
        },
    )
    .await;
    // a's default room is listed by b, with its players' URL on a.
    until_listed(&b, Duration::from_secs(5), |rooms| {
        rooms.iter().any(|r| r == "default-a")
    })
    .await;
    let (status, room) = get(&b, "/rooms/default-a").await;
    assert_eq!(status, 200, "{room}");
    assert_eq!(room["node"], "a");
    let ws = room["ws"].as_str().unwrap();
    assert_eq!(ws, format!("ws://{}/rooms/default-a/ws", a.addr));
    assert_eq!(room["page"], format!("http://{}/rooms/default-a/", b.addr));

    // A player that knocks at the wrong node is told where to go; at the owner it plays.
    let misdirected = within(
        reqwest::Client::new()
            .get(b.http_url("/rooms/default-a/ws"))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(misdirected.status(), 421);
    assert_eq!(misdirected.headers()["location"], ws);
    // A plain GET (a page asking first) is told the same, as JSON it can read.
    let asked: serde_json::Value = within(reqwest::get(b.http_url("/rooms/default-a/ws")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&asked["admitted"], &asked["code"]),
        (&false.into(), &421.into()),
        "{asked}"
    );
    assert!(asked["reason"].as_str().unwrap().contains(ws), "{asked}");
    let mut player = within(Client::connect(ws, "ann")).await.unwrap();
    until_snapshot(&mut player).await;
    assert_eq!(get(&b, "/rooms/nope").await.0, 404);

    // A seat is the owner's to give back: a resume at b is sent to a, and a takes it.
    let resuming = tickcast::protocol::Hello::resuming(player.resume_token());
    let elsewhere = format!("ws://{}/rooms/default-a/ws", b.addr);
    match within(Client::connect_with(&elsewhere, resuming.clone())).await {
        Err(ClientError::Connect { source, .. }) => assert!(source.to_string().contains("421"), "{source}"),
        other => panic!(
            "a resume at a node that does not own the room: {:?}",
            other.map(|c| c.player_id())
        ),
    }
    let back = within(Client::connect_with(ws, resuming)).await.unwrap();
    assert_eq!(back.player_id(), player.player_id());
    let deadline = Instant::now() + Duration::from_secs(20);
    let replaced = loop {
        assert!(Instant::now() < deadline, "the replaced connection was never closed");
        if let Err(err) = within(player.recv()).await {
            break err;
        }
    };
    assert!(matches!(replaced, ClientError::Closed { code: 4002, .. }), "{replaced}");
    let mut player = back;
    until_snapshot(&mut player).await;

    // b stops cleanly: it leaves the directory at once, not at its records' expiry.
    let (status, created) = {
        let res = reqwest::Client::new()
            .post(b.http_url("/rooms"))
            .json(&json!({ "game": "tanks" }))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 201, "{created}");
    // a has a player, b none: the room lands on b.
    assert_eq!(created["node"], "b", "{created}");
    let on_b = created["id"].as_str().unwrap().to_owned();
    until_listed(&a, Duration::from_secs(5), |rooms| rooms.contains(&on_b)).await;
    b.shutdown().await.unwrap();
    let took = until_listed(&a, Duration::from_secs(5), |rooms| !rooms.contains(&on_b)).await;
    // At once from the directory; `GET /rooms` is built at most once a second.
    assert!(
        took < Duration::from_secs(2),
        "a clean stop took {took:?} to leave the listing"
    );
}

#[tokio::test]
async fn rooms_are_placed_on_the_least_loaded_node_and_closed_from_any() {
    let Some(redis) = RedisServer::start() else { return };
    let a = node(&redis, "a", Config::defaults()).await;
    let _b = node(&redis, "b", Config::defaults()).await;
    let edge = node(
        &redis,
        "edge",
        Config {
            no_rooms: true,
            ..Config::defaults()
        },
    )
    .await;
    until_listed(&edge, Duration::from_secs(5), |rooms| rooms.len() == 2).await;
    // Two players on a's default room: b is the least loaded.
    let mut players = Vec::new();
    for name in ["p1", "p2"] {
        let mut p = within(Client::connect(&a.ws_url(), name)).await.unwrap();
        until_snapshot(&mut p).await;
        players.push(p);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await; // a's next heartbeat carries them
    let http = reqwest::Client::new();
    let created: Value = http
        .post(edge.http_url("/rooms"))
        .json(&json!({ "game": "arena" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["node"], "b", "created through the edge: {created}");
    let id = created["id"].as_str().unwrap().to_owned();
    // Listed oldest first, whichever node each room is on: the two default rooms (opened
    // together, as the nodes started), then the room created since.
    until_listed(&edge, Duration::from_secs(8), |rooms| {
        rooms.len() == 3 && rooms[2] == id
    })
    .await;
    let (_, page) = get(&edge, "/rooms").await;
    let times: Vec<u64> = page["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["created"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{page}");
    let mut player = within(Client::connect(created["ws"].as_str().unwrap(), "cat"))
        .await
        .unwrap();
    until_snapshot(&mut player).await;

    // Matchmaking through a finds the room on b (it has free places) and holds one there.
    let seat: Value = http
        .post(a.http_url("/matchmake"))
        .json(&json!({ "game": "arena", "name": "dog" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        seat["room"] == "default-a" || seat["room"] == id.as_str(),
        "matchmaking chose an open room: {seat}"
    );
    assert_eq!(seat["created"], false, "{seat}");

    // Closed through a, with the room's key (b checks it): its player on b is told.
    let close = |key: &str| {
        http.delete(a.http_url(&format!("/rooms/{id}")))
            .header("content-type", "application/json")
            .bearer_auth(key)
            .send()
    };
    assert_eq!(close("not-the-key").await.unwrap().status(), 403);
    let closed = close(created["key"].as_str().unwrap()).await.unwrap();
    assert_eq!(closed.status(), 204);
    let err = loop {
        if let Err(err) = within(player.recv()).await {
            break err;
        }
    };
    assert!(
        matches!(&err, ClientError::Closed { code: 1001, reason } if reason == "room closed"),
        "{err}"
    );
    until_listed(&edge, Duration::from_secs(5), |rooms| !rooms.contains(&id)).await;
}

#[tokio::test]
async fn a_spectator_follows_a_room_of_another_node_and_resumes_across_nodes() {
    let Some(redis) = RedisServer::start() else { return };
    let config = Config {
        tick_hz: 30,
        spectator_hz: 10,
        ..Config::defaults()
    };
    let a = node(&redis, "a", config.clone()).await;
    let b = node(
        &redis,
        "b",
        Config {
            no_rooms: true,
            ..config
        },
    )
    .await;
    let mover = within(Client::connect(&a.ws_url(), "mover")).await.unwrap();
    let moving = keep_moving(mover);
    until_listed(&b, Duration::from_secs(5), |rooms| {
        rooms.iter().any(|r| r == "default-a")
    })
    .await;

    // The owner's own stream and b's copy: the same events, with the same ids.
    let mut at_a = SseClient::connect(&a.http_url("/rooms/default-a/events"), None).await;
    let mut at_b = SseClient::connect(&b.http_url("/rooms/default-a/events"), None).await;
    let (mut world_a, mut world_b) = (SpecWorld::default(), SpecWorld::default());
    let first_b = at_b.next().await.unwrap();
    assert_eq!(first_b.event, "snapshot");
    world_b.apply("snapshot", &data(&first_b)).unwrap();
    // Read a up to the same event, then both side by side.
    let last_a = loop {
        let e = at_a.next().await.unwrap();
        world_a.apply(&e.event, &data(&e)).unwrap();
        let id = e.id.clone().unwrap();
        if tick_of(&id) >= tick_of(first_b.id.as_ref().unwrap()) {
            break id;
        }
    };
    assert_eq!(last_a, first_b.id.clone().unwrap(), "both nodes name the event alike");
    assert_eq!(world_a, world_b, "both nodes show the same world");
    let mut last_b = String::new();
    for _ in 0..10 {
        let (ea, eb) = (at_a.next().await.unwrap(), at_b.next().await.unwrap());
        assert_eq!(ea.id, eb.id);
        assert_eq!((ea.event.as_str(), eb.event.as_str()), ("delta", "delta"));
        world_a.apply("delta", &data(&ea)).unwrap();
        world_b.apply("delta", &data(&eb)).unwrap();
        assert_eq!(world_a, world_b, "at {:?}", ea.id);
        last_b = eb.id.unwrap();
    }
    drop(at_b);

    // Ten events later the spectator comes back, to the other node, with b's last id: it gets
    // exactly the deltas it missed, no snapshot.
    let mut missed = Vec::new();
    while missed.len() < 10 {
        missed.push(at_a.next().await.unwrap());
    }
    let mut resumed = SseClient::connect(&a.http_url("/rooms/default-a/events"), Some(&last_b)).await;
    let mut world = world_b.clone();
    for expected in &missed {
        let got = resumed.next().await.unwrap();
        assert_eq!((got.event.as_str(), &got.id), ("delta", &expected.id));
        world.apply("delta", &data(&got)).unwrap();
        world_a.apply("delta", &data(expected)).unwrap();
    }
    assert_eq!(world, world_a);
    // And the other way: an id from a resumes on b, by long-poll too.
    let last = missed.last().unwrap().id.clone().unwrap();
    let polled: Value = within(reqwest::get(
        b.http_url(&format!("/rooms/default-a/poll?after={last}&timeout_ms=5000")),
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let first = &polled[0];
    assert_eq!(first["event"], "delta", "{polled}");
    assert_eq!(first["data"]["base"].as_u64(), Some(tick_of(&last)));

    // Over more than the owner's keyframe interval (5 s), a spectator on b gets nothing but
    // deltas after its snapshot: a keyframe of an event b holds changes nothing.
    let mut steady = SseClient::connect(&b.http_url("/rooms/default-a/events"), None).await;
    assert_eq!(steady.next().await.unwrap().event, "snapshot");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        let event = steady.next().await.unwrap();
        assert_eq!(event.event, "delta", "at {:?}", event.id);
    }
    assert_eq!(b.metrics.cluster_mirror_resyncs.get(), 0);
    assert!(a.metrics.cluster_events_written.get() > 60);
    moving.abort();
}

#[tokio::test]
async fn a_killed_node_and_its_rooms_leave_the_directory_within_the_expiry() {
    let Some(redis) = RedisServer::start() else { return };
    let a = node(&redis, "a", Config::defaults()).await;
    let mut doomed = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_tickcast"))
            .args(["--bind", "127.0.0.1:0", "--node-id", "doomed", "--redis", &redis.url()])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a node"),
    );
    let stdout = doomed.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url_line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("ws://"))
        .expect("the node says where it listens");
    // Keep reading its log, so that it never writes into a closed pipe.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    assert!(url_line.contains("/rooms/default-doomed/"), "{url_line}");
    until_listed(&a, Duration::from_secs(5), |rooms| {
        rooms.iter().any(|r| r == "default-doomed")
    })
    .await;
    let mut spectator = SseClient::connect(&a.http_url("/rooms/default-doomed/events"), None).await;
    assert_eq!(spectator.next().await.unwrap().event, "snapshot");
    // A player on a: the doomed node is the least loaded, where a new room would go.
    let mut player = within(Client::connect(&a.ws_url(), "here")).await.unwrap();
    until_snapshot(&mut player).await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // a's next heartbeat carries it

    doomed.0.kill().expect("SIGKILL the node");
    doomed.0.wait().unwrap();
    // A room asked for at once goes to a live node: the silent one is passed over once it
    // has not answered (or missed two heartbeats), not answered 503.
    let created = within(
        reqwest::Client::new()
            .post(a.http_url("/rooms"))
            .json(&json!({ "game": "arena" }))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["node"], "a", "{created}");
    let took = until_listed(&a, Duration::from_secs(8), |rooms| {
        !rooms.iter().any(|r| r == "default-doomed")
    })
    .await;
    // The directory's expiry (5 s), and a listing built at most once a second.
    assert!(took <= Duration::from_millis(6500), "its rooms left after {took:?}");
    // Its spectators here are told, by whichever node noticed first.
    let last = loop {
        let event = spectator.next().await.expect("the stream ends with a last event");
        if event.event != "delta" {
            break event;
        }
    };
    assert_eq!(last.event, "closed");
    assert!(last.data.contains("room lost"), "{}", last.data);
    // And nothing else was disturbed.
    let mut player = within(Client::connect(&a.ws_url(), "still")).await.unwrap();
    until_snapshot(&mut player).await;
}

#[tokio::test]
async fn rooms_play_on_while_redis_restarts_and_nodes_register_again() {
    let Some(mut redis) = RedisServer::start() else { return };
    let a = node(&redis, "a", Config::defaults()).await;
    let b = node(
        &redis,
        "b",
        Config {
            no_rooms: true,
            ..Config::defaults()
        },
    )
    .await;
    let mut player = within(Client::connect(&a.ws_url(), "steady")).await.unwrap();
    until_snapshot(&mut player).await;
    until_listed(&b, Duration::from_secs(5), |rooms| {
        rooms.iter().any(|r| r == "default-a")
    })
    .await;
    let mut spectator = SseClient::connect(&b.http_url("/rooms/default-a/events"), None).await;
    let first = spectator.next().await.unwrap();
    assert_eq!(first.event, "snapshot");
    let seen_before = tick_of(first.id.as_ref().unwrap());

    redis.stop();
    // The room keeps ticking and its player playing for two seconds without Redis.
    let before = player.world().unwrap().tick();
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(2) {
        if let Received::Delta { tick, .. } = within(player.recv()).await.expect("the player plays on")
            && tick % 10 == 0
        {
            player.send_move(127, 0).await.unwrap();
        }
    }
    let during = player.world().unwrap().tick() - before;
    assert!(during >= 50, "only {during} ticks in 2 s at 30 Hz without Redis");
    assert_eq!(get(&b, "/rooms").await.0, 503, "b cannot list without Redis");

    redis.restart();
    let moving = keep_moving(player);
    let took = until_listed(&b, Duration::from_secs(8), |rooms| {
        rooms.iter().any(|r| r == "default-a")
    })
    .await;
    assert!(took <= Duration::from_secs(5), "a registered again after {took:?}");
    // The spectator on b waited and carries on from a fresh keyframe: a snapshot, then deltas
    // from after the outage, never a delta on the wrong base.
    let mut world = SpecWorld::default();
    loop {
        let event = within(spectator.next()).await.expect("the stream stays open");
        assert!(event.event == "snapshot" || event.event == "delta", "{event:?}");
        world.apply(&event.event, &data(&event)).unwrap();
        if event.event == "delta" && tick_of(event.id.as_ref().unwrap()) > seen_before + 90 {
            break;
        }
    }
    moving.abort();
}

#[test]
fn a_node_whose_redis_is_unreachable_says_so_and_exits() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--redis",
            &format!("redis://127.0.0.1:{port}/"),
        ])
        .env("NO_COLOR", "1")
        .output()
        .expect("run the node");
    assert!(!out.status.success(), "a node without its Redis ran on");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("cannot reach the cluster's Redis"), "{said}");
    assert!(!said.contains("listening"), "it opened its port first: {said}");
}

/// A node process, killed if the test ends before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
