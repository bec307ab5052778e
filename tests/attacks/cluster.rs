//! The cluster's attack: HTTP requests turned into Redis load on a node that does not own the
//! rooms asked for. Against a real Redis (started by the test on a free loopback port): polls
//! of other nodes' rooms start no follower, matchmaking through another node opens no Redis
//! connection per request, unknown rooms are looked up once a second, and a node follows a
//! bounded number of rooms for its streams.

use std::time::Duration;

use serde_json::{Value, json};
use tickcast::Config;

use crate::common::redis::RedisServer;
use crate::common::{TestServer, within};

const ADMIN: &str = "adm1n";

async fn node(redis: &RedisServer, id: &str, config: Config) -> TestServer {
    TestServer::start(Config {
        redis: Some(redis.url()),
        node_id: Some(id.into()),
        admin_secret: Some(ADMIN.into()),
        ..config
    })
    .await
}

#[tokio::test]
async fn http_on_a_node_that_does_not_own_the_rooms_is_not_redis_load() {
    let Some(redis) = RedisServer::start() else { return };
    let owner = node(&redis, "owner", Config::defaults()).await;
    let edge = node(
        &redis,
        "edge",
        Config {
            no_rooms: true,
            max_followed_rooms: 5,
            ..Config::defaults()
        },
    )
    .await;
    let http = reqwest::Client::new();
    let mut rooms = Vec::new();
    for _ in 0..20 {
        let created: Value = within(
            http.post(owner.http_url("/rooms"))
                .bearer_auth(ADMIN)
                .json(&json!({"game": "arena"}))
                .send(),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        rooms.push(created["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(1500)).await; // every room in the directory
    let clients = || redis.stat("clients", "connected_clients", None);
    let connections = || redis.stat("stats", "total_connections_received", None);
    let commands = |cmd: &str| redis.stat("commandstats", &format!("cmdstat_{cmd}"), Some("calls"));
    let clients_before = clients();

    // 400 polls of the 20 rooms' state on the edge: no follower, no connection; the streams
    // are read at most once a second per room.
    let xrevrange_before = commands("xrevrange");
    let started = tokio::time::Instant::now();
    for i in 0..400 {
        let url = edge.http_url(&format!("/rooms/{}/state", rooms[i % rooms.len()]));
        let res = within(http.get(url).send()).await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let polled_for = started.elapsed().as_secs() + 1;
    assert_eq!(edge.metrics.cluster_mirrors.get(), 0, "a poll started a follower");
    assert_eq!(clients(), clients_before, "polls opened Redis connections");
    let reads = commands("xrevrange") - xrevrange_before;
    assert!(
        reads <= 20 * (polled_for + 1),
        "{reads} stream reads for 400 polls in {polled_for} s"
    );

    // 200 matchmakings through the edge (holds on the owner): no connection per request. (Each
    // INFO this test reads is a connection of its own: one between the two readings.)
    let connections_before = connections();
    for i in 0..200 {
        let res = within(
            http.post(edge.http_url("/matchmake"))
                .bearer_auth(ADMIN)
                .json(&json!({"game": "arena", "name": format!("m{i}")}))
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 200);
    }
    let opened = connections() - connections_before - 1;
    assert!(opened <= 1, "{opened} connections for 200 matchmakings");
    assert_eq!(clients(), clients_before);

    // The same unknown room 1 000 times: looked up once a second at most.
    let gets_before = commands("get");
    let started = tokio::time::Instant::now();
    for _ in 0..1000 {
        let res = within(http.get(edge.http_url("/rooms/NoSuchRoom00")).send())
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
    let gets = commands("get") - gets_before;
    assert!(gets <= started.elapsed().as_secs() + 2, "{gets} lookups");

    // Streams start followers, at most --max-followed-rooms (5) of them.
    let mut streams = Vec::new();
    for room in &rooms[..5] {
        let res = within(http.get(edge.http_url(&format!("/rooms/{room}/events"))).send())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        streams.push(res);
    }
    let res = within(http.get(edge.http_url(&format!("/rooms/{}/events", rooms[5]))).send())
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.text().await.unwrap().contains("maximum of 5 rooms"));
    assert_eq!(edge.metrics.cluster_mirrors.get(), 5);
    // And a room followed already is still served, as is a poll of one that is not.
    let res = within(http.get(edge.http_url(&format!("/rooms/{}/events", rooms[0]))).send())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = within(http.get(edge.http_url(&format!("/rooms/{}/state", rooms[9]))).send())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Nobody closes the owner's rooms through the edge without a credential.
    let res = within(
        http.delete(edge.http_url(&format!("/rooms/{}", rooms[0])))
            .header("content-type", "application/json")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 401);
}
