//! Spectators over SSE, long-polling and polling, against the real server on 127.0.0.1:0.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sse::{SpecWorld, SseClient, SseEvent, SseParser, tick_of};
use common::{TestServer, idle_match, until_snapshot, within};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tickcast::Config;
use tickcast::client::Received;
use tickcast::protocol::Schema;
use tickcast::protocol::delta::NetWorld;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Players wandering at random; one of them remembers the world at every tick, which is the
/// server's truth to compare spectators with (players are checked against keyframes elsewhere).
struct Truth {
    history: Arc<Mutex<BTreeMap<u64, NetWorld>>>,
    schema: Arc<Schema>,
    latest: watch::Receiver<u64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Truth {
    async fn start(server: &TestServer, players: u64) -> Self {
        let history = Arc::new(Mutex::new(BTreeMap::new()));
        let (latest_tx, latest) = watch::channel(0);
        let latest_tx = Arc::new(latest_tx);
        let mut tasks = Vec::new();
        let mut schema = None;
        for n in 0..players {
            let mut client = server.player(&format!("w{n}")).await;
            schema.get_or_insert_with(|| client.schema().clone());
            let (history, latest_tx) = (history.clone(), latest_tx.clone());
            tasks.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(n);
                while let Ok(received) = client.recv().await {
                    if !matches!(received, Received::Delta { .. } | Received::Snapshot { .. }) {
                        continue;
                    }
                    if rng.random_bool(0.2) && client.send_move(rng.random(), rng.random()).await.is_err() {
                        break;
                    }
                    if n == 0 {
                        let world = client.world().unwrap().clone();
                        let tick = world.tick();
                        history.lock().unwrap().insert(tick, world);
                        latest_tx.send_replace(tick);
                    }
                }
            }));
        }
        let schema = schema.expect("at least one player");
        let mut truth = Self {
            history,
            schema,
            latest,
            tasks,
        };
        within(truth.latest.wait_for(|t| *t > 0)).await.unwrap();
        truth
    }

    /// The server's world at `tick`, once the recording player has reached it.
    async fn at(&mut self, tick: u64) -> SpecWorld {
        within(self.latest.wait_for(|t| *t >= tick)).await.unwrap();
        let history = self.history.lock().unwrap();
        SpecWorld::from_net(history.get(&tick).expect("the recorder saw that tick"), &self.schema)
    }
}

impl Drop for Truth {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// GETs `url` and parses the JSON body.
async fn get_json(http: &reqwest::Client, url: String) -> serde_json::Value {
    within(http.get(url).send()).await.unwrap().json().await.unwrap()
}

fn config() -> Config {
    Config {
        tick_hz: 60,
        spectator_hz: 10,
        orbs: 1000,
        ..Config::defaults()
    }
}

fn apply(world: &mut SpecWorld, event: &SseEvent) {
    let data: serde_json::Value = serde_json::from_str(&event.data).expect("event data is JSON");
    let id = event.id.as_deref().expect("every event has an id");
    assert_eq!(Some(tick_of(id)), data["tick"].as_u64(), "an event's id names its tick");
    world.apply(&event.event, &data).unwrap_or_else(|err| panic!("{err}"));
}

#[tokio::test]
async fn an_sse_spectator_rebuilds_exactly_the_servers_world() {
    let server = TestServer::start(config()).await;
    let mut truth = Truth::start(&server, 3).await;
    let mut sse = SseClient::connect(&server.http_url("/events"), None).await;
    let headers = &sse.response_headers;
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");

    let mut world = SpecWorld::default();
    let first = sse.next().await.unwrap();
    assert_eq!(first.event, "snapshot");
    assert_eq!(sse.parser.retry, Some(2000), "retry: comes first");
    apply(&mut world, &first);
    for _ in 0..30 {
        let event = sse.next().await.unwrap();
        assert_eq!(event.event, "delta");
        apply(&mut world, &event);
    }
    let tick = world.tick.unwrap();
    assert_eq!(world, truth.at(tick).await, "spectator world differs at tick {tick}");
    assert_eq!(sse.parser.non_lf_endings, 0, "lines must end in LF");
    assert!(server.metrics.sse.messages_sent.get() > 0);
}

#[tokio::test]
async fn a_long_polling_spectator_rebuilds_exactly_the_servers_world() {
    let server = TestServer::start(config()).await;
    let mut truth = Truth::start(&server, 3).await;
    let http = reqwest::Client::new();
    let mut world = SpecWorld::default();
    let mut rounds = 0;
    let mut last_id: Option<String> = None;
    while rounds < 20 {
        let after = last_id.as_ref().map(|id| format!("after={id}&")).unwrap_or_default();
        let res = within(
            http.get(server.http_url(&format!("/poll?{after}timeout_ms=5000")))
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert_eq!(res.status(), 200);
        let events: Vec<serde_json::Value> = res.json().await.unwrap();
        assert!(!events.is_empty());
        for e in events {
            let id = e["id"].as_str().expect("an id");
            assert_eq!(Some(tick_of(id)), e["data"]["tick"].as_u64());
            last_id = Some(id.to_owned());
            world.apply(e["event"].as_str().unwrap(), &e["data"]).unwrap();
        }
        rounds += 1;
    }
    let tick = world.tick.unwrap();
    assert_eq!(world, truth.at(tick).await, "long-poll world differs at tick {tick}");
}

#[tokio::test]
async fn a_long_poll_with_nothing_new_waits_then_answers_204() {
    let server = TestServer::start(idle_match()).await;
    let http = reqwest::Client::new();
    let state: serde_json::Value = get_json(&http, server.http_url("/state")).await;
    let url = server.http_url(&format!("/poll?after={}&timeout_ms=300", state["tick"]));
    let res = within(http.get(url).send()).await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["cache-control"], "no-store");
    // Without `after` the answer is immediate: the snapshot.
    let events: serde_json::Value = get_json(&http, server.http_url("/poll")).await;
    assert_eq!(events[0]["event"], "snapshot");
}

#[tokio::test]
async fn polling_state_matches_the_world_and_honours_its_etag() {
    let server = TestServer::start(Config {
        tick_hz: 2,
        spectator_hz: 1,
        ..config()
    })
    .await;
    let mut truth = Truth::start(&server, 1).await;
    // Let the recorder's own arrival reach the feed, so the state is one it has seen.
    let joined = *truth.latest.borrow();
    truth.at(joined + 4).await;
    let http = reqwest::Client::new();
    let res = http.get(server.http_url("/state")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let snapshot: serde_json::Value = res.json().await.unwrap();
    assert_eq!(tick_of(etag.trim_matches('"')), snapshot["tick"].as_u64().unwrap());
    let mut world = SpecWorld::default();
    world.apply("snapshot", &snapshot).unwrap();
    assert_eq!(world, truth.at(world.tick.unwrap()).await);

    // Nothing changes on an idle server, so the tag stays current.
    let idle = TestServer::start(idle_match()).await;
    let res = http.get(idle.http_url("/state")).send().await.unwrap();
    let etag = res.headers()["etag"].clone();
    let again = http
        .get(idle.http_url("/state"))
        .header("If-None-Match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag);
    assert!(again.bytes().await.unwrap().is_empty());
    let other = http
        .get(idle.http_url("/state"))
        .header("If-None-Match", "\"12345\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "a stale tag gets the state in full");
}

/// Reads events from `sse` until one has id `tick`, returning everything read.
async fn read_until(sse: &mut SseClient, tick: u64) -> Vec<SseEvent> {
    let mut seen = Vec::new();
    loop {
        let event = sse.next().await.expect("stream open");
        let done = event.id.as_deref().map(tick_of) == Some(tick);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn ids(events: &[SseEvent]) -> Vec<String> {
    events.iter().filter_map(|e| e.id.clone()).collect()
}

#[tokio::test]
async fn a_resumed_spectator_gets_exactly_the_events_it_missed() {
    let server = TestServer::start(config()).await;
    let mut truth = Truth::start(&server, 2).await;
    let mut observer = SseClient::connect(&server.http_url("/events"), None).await;
    let mut observed = vec![observer.next().await.unwrap()];

    let mut resumer = SseClient::connect(&server.http_url("/events"), None).await;
    let mut world = SpecWorld::default();
    let mut last_id = String::new();
    for _ in 0..5 {
        let event = resumer.next().await.unwrap();
        last_id = event.id.clone().unwrap();
        apply(&mut world, &event);
    }
    let last_tick = world.tick.unwrap();
    drop(resumer);

    // Let ten more events go by, then come back with the last id, once by header, once by query.
    let target = last_tick + 10 * 6;
    observed.extend(read_until(&mut observer, target).await);
    let missed: Vec<_> = observed
        .iter()
        .filter(|e| tick_of(e.id.as_ref().unwrap()) > last_tick)
        .cloned()
        .collect();
    assert_eq!(missed.len(), 10);

    for via_query in [false, true] {
        let mut resumer = if via_query {
            SseClient::connect(&server.http_url(&format!("/events?last_event_id={last_id}")), None).await
        } else {
            SseClient::connect(&server.http_url("/events"), Some(&last_id)).await
        };
        let got = read_until(&mut resumer, target).await;
        assert_eq!(
            ids(&got),
            ids(&missed),
            "resume by {}",
            if via_query { "query" } else { "header" }
        );
        assert!(
            got.iter().all(|e| e.event == "delta"),
            "a resume within the ring needs no snapshot"
        );
        let mut resumed = world.clone();
        got.iter().for_each(|e| apply(&mut resumed, e));
        assert_eq!(resumed, truth.at(target).await);
    }
    assert_eq!(server.metrics.spectator_resyncs.get(), 0);
}

#[tokio::test]
async fn a_resume_whose_missed_events_outweigh_a_snapshot_gets_the_snapshot() {
    // Three movers and no orbs: a snapshot is about as big as one delta, so ten missed
    // deltas weigh more than the snapshot that says the same.
    let server = TestServer::start(Config { orbs: 0, ..config() }).await;
    let mut truth = Truth::start(&server, 3).await;
    let mut sse = SseClient::connect(&server.http_url("/events"), None).await;
    let first_id = sse.next().await.unwrap().id.unwrap();
    let target = tick_of(&first_id) + 10 * 6;
    read_until(&mut sse, target).await;
    let mut resumer = SseClient::connect(&server.http_url("/events"), Some(&first_id)).await;
    let caught_up = resumer.next().await.unwrap();
    assert_eq!(
        caught_up.event, "snapshot",
        "ten deltas were sent instead of one snapshot"
    );
    let tick = tick_of(caught_up.id.as_ref().unwrap());
    let mut world = SpecWorld::default();
    apply(&mut world, &caught_up);
    assert_eq!(world, truth.at(tick).await);
    assert_eq!(server.metrics.spectator_resyncs.get(), 1);
}

#[tokio::test]
async fn a_too_old_or_unknown_id_gets_a_fresh_snapshot() {
    let history = Duration::from_millis(500); // five events at 10 Hz
    let server = TestServer::start(Config {
        spectator_history: history,
        ..config()
    })
    .await;
    let _movers = Truth::start(&server, 2).await;
    let mut sse = SseClient::connect(&server.http_url("/events"), None).await;
    let first = sse.next().await.unwrap();
    let old = first.id.clone().unwrap();
    let now = tick_of(&old) + 6 * 8;
    let latest = read_until(&mut sse, now).await.pop().unwrap().id.unwrap();
    // The latest tick, but of another incarnation of the room: a fresh snapshot too.
    let (epoch, _) = old.split_once('-').unwrap();
    let other_epoch: String = epoch.chars().map(|c| if c == '0' { '1' } else { '0' }).collect();
    let other = format!("{other_epoch}-{}", tick_of(&latest));
    let unknown = format!("{epoch}-999999999");

    for (id, counts) in [
        (old.as_str(), true),
        (unknown.as_str(), true),
        ("7", true),
        (other.as_str(), true),
    ] {
        let before = server.metrics.spectator_resyncs.get();
        let mut resumer = SseClient::connect(&server.http_url("/events"), Some(id)).await;
        let event = resumer.next().await.unwrap();
        assert_eq!(event.event, "snapshot", "id {id}");
        assert!(tick_of(&event.id.unwrap()) >= now);
        assert_eq!(server.metrics.spectator_resyncs.get() > before, counts, "id {id}");
    }
    let res = reqwest::Client::new()
        .get(server.http_url("/events"))
        .header("Last-Event-ID", "abc")
        .send()
        .await;
    assert_eq!(res.unwrap().status(), 400);
}

#[tokio::test]
async fn spectators_that_never_read_slow_down_nobody() {
    // Many orbs make every snapshot large, so stalled readers fill their socket buffers quickly.
    let server = TestServer::start(Config {
        orbs: 5_000,
        tick_hz: 30,
        ..config()
    })
    .await;
    let _movers = Truth::start(&server, 2).await;
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        stalled.push(tcp); // never read
    }
    let mut player = server.player("p").await;
    until_snapshot(&mut player).await;
    let mut sse = SseClient::connect(&server.http_url("/events"), None).await;
    let mut world = SpecWorld::default();
    apply(&mut world, &sse.next().await.unwrap());
    let start = world.tick.unwrap();
    // Four seconds of events, each applying to the last: no gap, no stall.
    while world.tick.unwrap() < start + 4 * 30 {
        let event = sse.next().await.unwrap();
        assert_eq!(event.event, "delta", "the reading spectator was never resynced");
        apply(&mut world, &event);
        // The player keeps up too.
        while player.world().unwrap().tick() < world.tick.unwrap() {
            within(player.recv()).await.unwrap();
        }
    }
    assert_eq!(
        server.metrics.spectators_sse.get(),
        5,
        "the stalled ones are still connected"
    );
    assert_eq!(server.metrics.spectator_resyncs.get(), 0);
    drop(stalled);
}

#[tokio::test]
async fn spectator_endpoints_are_read_only_and_check_their_queries() {
    let server = TestServer::at(30).await;
    let http = reqwest::Client::new();
    for path in [
        "/",
        "/events",
        "/poll",
        "/state",
        "/rooms/default/",
        "/rooms/default/events",
        "/rooms/default/poll",
        "/rooms/default/state",
    ] {
        let res = http.post(server.http_url(path)).send().await.unwrap();
        assert_eq!(res.status(), 405, "POST {path}");
    }
    for query in ["/poll?after=x", "/poll?timeout_ms=-1", "/events?last_event_id=1.5"] {
        let res = http.get(server.http_url(query)).send().await.unwrap();
        assert_eq!(res.status(), 400, "GET {query}");
        assert!(!res.text().await.unwrap().is_empty(), "a 400 says why");
    }
    assert_eq!(http.get(server.http_url("/nope")).send().await.unwrap().status(), 404);
    let page = http.get(server.http_url("/rooms/default/")).send().await.unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().await.unwrap().contains("EventSource"));
    let lobby = http.get(server.http_url("/")).send().await.unwrap();
    assert_eq!(lobby.headers()["content-type"], "text/html; charset=utf-8");
    // By a relative URL, so the lobby works behind a proxy that serves it under a prefix.
    assert!(lobby.text().await.unwrap().contains("fetch(`rooms?"));
}

#[tokio::test]
async fn over_the_spectator_cap_a_spectator_gets_503_with_retry_after() {
    let server = TestServer::start(Config {
        max_spectators: 1,
        ..config()
    })
    .await;
    let _first = SseClient::connect(&server.http_url("/events"), None).await;
    let res = reqwest::Client::new()
        .get(server.http_url("/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
}

#[tokio::test]
async fn shutdown_sends_every_spectator_a_final_event_and_ends_its_stream() {
    let server = TestServer::start(idle_match()).await;
    let mut sse = SseClient::connect(&server.http_url("/events"), None).await;
    let snapshot = sse.next().await.unwrap();
    assert_eq!(snapshot.event, "snapshot");
    // A long-poll waiting for an event that an idle match never publishes.
    let url = server.http_url(&format!("/poll?after={}", snapshot.id.unwrap()));
    let poll = tokio::spawn(reqwest::Client::new().get(url).send());
    while server.metrics.spectators_longpoll.get() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await; // a gauge cannot be awaited
    }
    let metrics = server.metrics.clone();
    server.shutdown().await.unwrap();

    let last = sse.next().await.expect("a shutdown event before the end");
    assert_eq!(last.event, "shutdown");
    assert_eq!(last.data, r#"{"reason":"server shutting down"}"#);
    assert!(sse.next().await.is_none(), "the stream ends after the shutdown event");
    let polled: serde_json::Value = within(poll).await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(
        polled,
        serde_json::json!([{"event": "shutdown", "data": {"reason": "server shutting down"}}])
    );
    assert_eq!(metrics.spectators_sse.get() + metrics.spectators_longpoll.get(), 0);
}

#[test]
fn the_sse_parser_follows_the_spec_examples() {
    let mut p = SseParser::default();
    let events =
        p.feed(b": hi\r\nretry: 1500\n\ndata: YHOO\ndata: +2\ndata:10\n\nid: 7\nevent: add\ndata\r\n\r\ndata: x");
    assert_eq!(p.retry, Some(1500));
    assert_eq!(p.comments, 1);
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0],
        SseEvent {
            event: "message".into(),
            data: "YHOO\n+2\n10".into(),
            id: None
        }
    );
    assert_eq!(
        events[1],
        SseEvent {
            event: "add".into(),
            data: String::new(),
            id: Some("7".into())
        }
    );
    assert!(p.non_lf_endings >= 2);
    assert_eq!(
        p.feed(b"\n\n"),
        vec![SseEvent {
            event: "message".into(),
            data: "x".into(),
            id: Some("7".into())
        }]
    );
}

#[tokio::test]
async fn a_room_nobody_watches_renders_no_events_and_a_poller_within_the_history_misses_none() {
    // One second of history: ten events at 10 Hz.
    let server = TestServer::start(Config {
        spectator_history: Duration::from_secs(1),
        ..config()
    })
    .await;
    let mut truth = Truth::start(&server, 3).await;
    let unwatched = || server.metrics.spectator_events_unwatched.get();
    // Counted by the room's tick loop; nothing to await but the count.
    let skipped_past = |n| async move {
        while unwatched() < n {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    within(skipped_past(5)).await;
    // A poller that comes back well within the history, holding no place in between: every
    // answer after the first is the deltas it missed, and the room renders every event.
    let http = reqwest::Client::new();
    let mut world = SpecWorld::default();
    let mut last_id: Option<String> = None;
    let mut kinds = Vec::new();
    let before = unwatched();
    for _ in 0..8 {
        let after = last_id.as_ref().map(|id| format!("after={id}&")).unwrap_or_default();
        let url = server.http_url(&format!("/poll?{after}timeout_ms=5000"));
        let events: Vec<serde_json::Value> = within(http.get(url).send()).await.unwrap().json().await.unwrap();
        for e in events {
            last_id = Some(e["id"].as_str().expect("an id").to_owned());
            kinds.push(e["event"].as_str().unwrap().to_owned());
            world.apply(e["event"].as_str().unwrap(), &e["data"]).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(kinds[0], "snapshot");
    assert!(kinds[1..].iter().all(|k| k == "delta"), "{kinds:?}");
    assert_eq!(
        unwatched(),
        before,
        "events were skipped while a poller was within the history"
    );
    let tick = world.tick.unwrap();
    assert_eq!(world, truth.at(tick).await, "long-poll world differs at tick {tick}");
    // Gone for longer than the history: the room stops rendering, and the poller's position
    // is answered with a snapshot, as it was before events were skipped.
    within(skipped_past(before + 3)).await;
    let url = server.http_url(&format!("/poll?after={}&timeout_ms=5000", last_id.unwrap()));
    let events: Vec<serde_json::Value> = within(http.get(url).send()).await.unwrap().json().await.unwrap();
    assert_eq!(events[0]["event"], "snapshot");
    let mut fresh = SpecWorld::default();
    fresh.apply("snapshot", &events[0]["data"]).unwrap();
    let tick = fresh.tick.unwrap();
    assert_eq!(fresh, truth.at(tick).await);
}

/// A snapshot of `server`'s room, polled.
async fn polled(server: &TestServer) -> SpecWorld {
    let state = get_json(&reqwest::Client::new(), server.http_url("/state")).await;
    let mut world = SpecWorld::default();
    world.apply("snapshot", &state).unwrap();
    world
}

/// Reads `sse`'s events into `world` until it holds tick `tick`.
async fn follow_until(sse: &mut SseClient, world: &mut SpecWorld, tick: u64) {
    while world.tick < Some(tick) {
        let event = within(sse.next()).await.expect("stream open");
        apply(world, &event);
    }
}

#[tokio::test]
async fn a_room_at_rest_gives_spectators_its_world_and_takes_it_up_again() {
    let server = TestServer::start(Config { orbs: 50, ..config() }).await;
    // Nobody has played yet: the room keeps no world, and makes it again for a spectator.
    let mut watching = SseClient::connect(&server.http_url("/events"), None).await;
    let mut seen = SpecWorld::default();
    apply(&mut seen, &within(watching.next()).await.unwrap());
    assert_eq!(seen.tick, Some(0));
    assert_eq!(seen.entities.len(), 50, "every orb");

    // Someone plays, and leaves: the room rests, its world kept packed.
    let mut player = server.player("p").await;
    until_snapshot(&mut player).await;
    for _ in 0..20 {
        player.send_move(1, 1).await.unwrap();
        player.recv().await.unwrap();
    }
    // A goodbye gives the seat up (a dropped connection's would be kept, and the room tick on).
    player.close().await.unwrap();
    within(async {
        while server.metrics.players.get() + server.metrics.players_away.get() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let rested = polled(&server).await;
    follow_until(&mut watching, &mut seen, rested.tick.unwrap()).await;
    assert_eq!(
        seen, rested,
        "a spectator who watched it all holds the world the room rests on"
    );
    let mut late = SseClient::connect(&server.http_url("/events"), None).await;
    let mut fresh = SpecWorld::default();
    apply(&mut fresh, &within(late.next()).await.unwrap());
    assert_eq!(fresh, rested, "a spectator who comes now gets it too");

    // Someone plays again: the next events are diffed from the world at rest.
    let mut player = server.player("q").await;
    until_snapshot(&mut player).await;
    for _ in 0..20 {
        player.send_move(-1, 1).await.unwrap();
        player.recv().await.unwrap();
    }
    let now = polled(&server).await;
    let tick = now.tick.unwrap();
    assert!(tick > rested.tick.unwrap());
    follow_until(&mut watching, &mut seen, tick).await;
    follow_until(&mut late, &mut fresh, tick).await;
    assert_eq!(seen, now);
    assert_eq!(fresh, now);
}
