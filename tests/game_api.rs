//! The v4 game API through a real server, read byte for byte: events reach exactly the players
//! they name (and public ones the spectators), private fields only their owner, a refused join
//! closes with the game's reason, a match's end reaches every player and spectator with its
//! results, matchmaking and listings filter by the game's labels, and each message kind's bad
//! input closes only its sender with its documented code.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::sse::SseClient;
use common::{TestServer, within};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use tickcast::client::{Client, Received};
use tickcast::game::{Dispatch, Entities, Game, GameConfig, Join, Refusal, To};
use tickcast::metrics::CloseReason;
use tickcast::protocol::{
    ClientMsg, Entity, EntityId, EventKind, Field, FieldType, Hello, InputField, Kind, Message, MessageKind, Param,
    Results, Role, Schema, ServerMsg, Standing, Text, Value,
};
use tickcast::{Config, Games};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A game made for these tests: guests with a name, a private `secret` and a team (both from
/// their join options; two guests to a team, a third is refused). `say` tells a line to one
/// guest (`to` its id), the sender's team (`to` -1), everyone (-2) or everyone and the
/// spectators (-3); `finish` tells everyone `last-words` and ends the match, ranking guests by
/// when they joined.
#[derive(Default)]
struct Parlour {
    guests: BTreeMap<EntityId, Guest>,
    next: EntityId,
}

struct Guest {
    name: Text,
    secret: Text,
    team: u32,
}

const SAY: u8 = 0;
const SAID: u8 = 0;
const ANNOUNCED: u8 = 1;

impl Game for Parlour {
    const NAME: &'static str = "parlour";

    fn schema(config: &GameConfig) -> Schema {
        let guest = [
            Field::new("name", FieldType::Text(16), Role::Name),
            Field::new("secret", FieldType::Text(24), Role::None).private(),
            Field::new("team", FieldType::Uint, Role::None),
        ];
        Schema::new(Self::NAME, 16, config.world_size, config.world_size)
            .with_kind(Kind::new("guest", guest))
            .with_input(InputField::axis("dx"))
            .with_message(MessageKind::new(
                "say",
                [Param::int("to", -3, 1_000_000), Param::text("line", 24)],
                5,
            ))
            .with_message(MessageKind::new("finish", [Param::flag("now")], 1))
            .with_event(EventKind::new(
                "said",
                [Param::int("from", 0, 1_000_000), Param::text("line", 24)],
                false,
            ))
            .with_event(EventKind::new("announced", [Param::text("line", 24)], true))
            .with_option(Param::int("team", 0, 1))
            .with_option(Param::text("secret", 24))
            .with_room_option(Param::text("mood", 8))
    }

    fn new(_: &GameConfig, _: u64) -> Self {
        Self {
            next: 1,
            ..Self::default()
        }
    }

    fn join(&mut self, join: &Join<'_>, _: &mut Dispatch) -> Result<EntityId, Refusal> {
        let team = join.options.int("team").unwrap_or(0) as u32;
        if self.guests.values().filter(|g| g.team == team).count() >= 2 {
            return Err(Refusal::new(&format!("table {team} is full")));
        }
        let secret = join.options.text("secret").cloned().unwrap_or_default();
        let id = self.next;
        self.next += 1;
        self.guests.insert(
            id,
            Guest {
                name: join.name.clone(),
                secret,
                team,
            },
        );
        Ok(id)
    }

    fn leave(&mut self, player: EntityId, _: &mut Dispatch) {
        self.guests.remove(&player);
    }

    fn message(&mut self, player: EntityId, message: &Message, out: &mut Dispatch) {
        let Some(guest) = self.guests.get(&player) else { return };
        let (SAY, [Value::Int(to), Value::Text(line)]) = (message.kind, message.values.as_slice()) else {
            let standings = self.guests.iter().enumerate().map(|(i, (&id, g))| Standing {
                player: id,
                name: g.name.clone(),
                rank: i as u32 + 1,
                score: 10 - i as i32,
            });
            let summary = Text::lossy(&format!("{} finished it", guest.name), 64);
            out.tell_all(ANNOUNCED, vec![Value::text("last-words")]).expect("fits");
            return out.end(Results {
                summary,
                standings: standings.collect(),
            });
        };
        let said = vec![Value::Int(player as i32), Value::Text(line.clone())];
        let told = match *to {
            -3 => out.tell_all(ANNOUNCED, vec![Value::Text(line.clone())]),
            -2 => out.tell_all(SAID, said),
            -1 => out.tell(To::Team(guest.team), SAID, said),
            id => out.tell(To::Player(id as EntityId), SAID, said),
        };
        told.expect("the events fit the schema");
    }

    fn input(&mut self, _: EntityId, _: &[i32]) {}

    fn step(&mut self, _: &mut Dispatch) {}

    fn entities(&self, out: &mut Entities<'_>) {
        for (&id, g) in &self.guests {
            out.push(Entity::new(id, 0, &[0, 0, g.team]))
                .text(0, &g.name)
                .text(1, &g.secret);
        }
    }

    fn labels(&self, out: &mut tickcast::game::Labels) {
        out.set("mood", "calm");
    }

    fn team(&self, player: EntityId) -> Option<u32> {
        self.guests.get(&player).map(|g| g.team)
    }
}

/// A server whose default room plays [`Parlour`].
async fn parlour() -> TestServer {
    let mut games = Games::builtin();
    games.register::<Parlour>().unwrap();
    let config = Config {
        game: Parlour::NAME.into(),
        ..Config::defaults()
    };
    TestServer::with_games(config, games).await
}

/// A player at the byte level: every byte the server sends it is kept, to be searched.
struct Tap {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    schema: Schema,
    id: EntityId,
    bytes: Vec<u8>,
    frames: Vec<ServerMsg>,
}

impl Tap {
    /// Joins `url` as `name` with `options` and reads its welcome.
    async fn join(url: &str, name: &str, options: &[(&str, Value)]) -> Self {
        let mut ws = Self::hello(url, name, options).await;
        let first = match within(ws.next()).await {
            Some(Ok(Ws::Binary(b))) => b,
            other => panic!("{name}: no welcome but {other:?}"),
        };
        let Ok(ServerMsg::Welcome(welcome)) = ServerMsg::decode(&first, None) else {
            panic!("{name}: the first message is not a welcome")
        };
        Self {
            ws,
            schema: welcome.schema.clone(),
            id: welcome.player_id,
            bytes: first.to_vec(),
            frames: Vec::new(),
        }
    }

    /// Connects to `url` and sends a hello as `name` with `options`.
    async fn hello(url: &str, name: &str, options: &[(&str, Value)]) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        let (mut ws, _) = within(tokio_tungstenite::connect_async(url)).await.expect("upgrade");
        let mut hello = Hello::new(name);
        hello.options = options.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        ws.send(Ws::Binary(ClientMsg::Hello(hello).encode(None).into()))
            .await
            .unwrap();
        ws
    }

    /// Sends message `kind` with `values`.
    async fn say(&mut self, kind: u8, values: Vec<Value>) {
        let msg = ClientMsg::Message(Message { kind, values });
        self.ws
            .send(Ws::Binary(msg.encode(Some(&self.schema)).into()))
            .await
            .unwrap();
    }

    /// Reads until the bytes received hold `text`, then `more` frames after it.
    async fn read_until(&mut self, text: &str, more: usize) {
        let mut after = None;
        while after != Some(0) {
            let Some(Ok(Ws::Binary(frame))) = within(self.ws.next()).await else {
                panic!("the connection ended before {text:?} came")
            };
            self.bytes.extend_from_slice(&frame);
            self.frames
                .push(ServerMsg::decode(&frame, Some(&self.schema)).expect("every frame decodes"));
            after = after.map(|n: usize| n - 1).or_else(|| self.has(text).then_some(more));
        }
    }

    /// Whether the bytes received so far hold `text`.
    fn has(&self, text: &str) -> bool {
        self.bytes.windows(text.len()).any(|w| w == text.as_bytes())
    }
}

/// Reads `ws` until the server's close frame, returning its code and reason.
async fn close_of(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>) -> (u16, String) {
    loop {
        match within(ws.next()).await {
            Some(Ok(Ws::Close(Some(frame)))) => return (frame.code.into(), frame.reason.to_string()),
            Some(Ok(_)) => {}
            other => panic!("no close frame but {other:?}"),
        }
    }
}

/// Everything an SSE spectator received until `text`.
async fn spectator_until(sse: &mut SseClient, text: &str) -> String {
    let mut seen = String::new();
    let mut done = false;
    while !done {
        let event = within(sse.next()).await.expect("the stream goes on");
        seen.push_str(&format!("event: {}\ndata: {}\n\n", event.event, event.data));
        done = seen.contains(text);
    }
    seen
}

#[tokio::test]
async fn an_event_reaches_exactly_the_players_it_names_and_public_ones_the_spectators() {
    let server = parlour().await;
    let mut sse = SseClient::connect(&server.http_url("/events"), None).await;
    let url = server.ws_url();
    let team = |t: i32| vec![("team", Value::Int(t))];
    let mut ann = Tap::join(&url, "ann", &team(0)).await;
    let mut bob = Tap::join(&url, "bob", &team(0)).await;
    let mut cat = Tap::join(&url, "cat", &team(1)).await;
    let mut dan = Tap::join(&url, "dan", &team(1)).await;
    let lines: [(i32, &str); 4] = [
        (bob.id as i32, "for-bob-alone"),
        (-1, "for-ann-and-bob"),
        (-2, "for-every-player"),
        (-3, "for-all-who-watch"),
    ];
    for (to, line) in lines {
        ann.say(SAY, vec![Value::Int(to), Value::text(line)]).await;
    }
    // Events arrive in the order told: once the last is in, every earlier one is too.
    for tap in [&mut ann, &mut bob, &mut cat, &mut dan] {
        tap.read_until("for-all-who-watch", 3).await;
    }
    let watched = spectator_until(&mut sse, "for-all-who-watch").await;

    let who = |line: &str| {
        let got: Vec<&str> = [("ann", &ann), ("bob", &bob), ("cat", &cat), ("dan", &dan)]
            .into_iter()
            .filter(|(_, tap)| tap.has(line))
            .map(|(name, _)| name)
            .collect();
        (got, watched.contains(line))
    };
    assert_eq!(who("for-bob-alone"), (vec!["bob"], false));
    assert_eq!(who("for-ann-and-bob"), (vec!["ann", "bob"], false));
    assert_eq!(who("for-every-player"), (vec!["ann", "bob", "cat", "dan"], false));
    assert_eq!(who("for-all-who-watch"), (vec!["ann", "bob", "cat", "dan"], true));

    // Decoded, bob's events come after their tick's frame, in the order told.
    let told: Vec<(u64, String)> = bob
        .frames
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Events(e) => Some(e.events.iter().map(move |ev| (e.tick, format!("{:?}", ev.values)))),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(told.len(), 4, "{told:?}");
    assert!(told.windows(2).all(|w| w[0].0 <= w[1].0), "in tick order: {told:?}");
    assert!(told[0].1.contains("for-bob-alone") && told[3].1.contains("for-all-who-watch"));
    // The spectator's event names its kind and fields.
    let event = watched
        .split("\n\n")
        .find(|e| e.starts_with("event: event\n"))
        .expect("an `event` event");
    let data: Json = serde_json::from_str(event.split_once("data: ").unwrap().1).unwrap();
    assert_eq!(data["kind"], "announced");
    assert_eq!(data["line"], "for-all-who-watch");
    assert!(data["tick"].as_u64().is_some());
    assert_eq!(server.metrics.messages_applied.get(), 4);
    assert_eq!(server.metrics.events_told.get(), 4);
}

#[tokio::test]
async fn a_message_past_the_connections_frame_allowance_is_never_dropped() {
    let server = parlour().await;
    let mut ann = Tap::join(&server.ws_url(), "ann", &[]).await;
    // A second's burst of frames and more: the inputs past it are dropped, the message is not.
    let input = ClientMsg::Input(tickcast::protocol::Input {
        seq: 1,
        values: tickcast::protocol::InputValues::new(&[0]),
    });
    for _ in 0..80 {
        ann.ws
            .send(Ws::Binary(input.encode(Some(&ann.schema)).into()))
            .await
            .unwrap();
    }
    ann.say(SAY, vec![Value::Int(-2), Value::text("still-heard")]).await;
    ann.read_until("still-heard", 0).await;
    assert!(server.metrics.rate_limited.get() >= 1, "the allowance was spent");
}

#[tokio::test]
async fn a_private_field_reaches_its_owner_alone_never_another_player_or_a_spectator() {
    let server = parlour().await;
    let url = server.ws_url();
    let secret = |s: &str| vec![("secret", Value::text(s))];
    let mut ann = Tap::join(&url, "ann", &secret("ann-holds-QH-KS")).await;
    let mut bob = Tap::join(&url, "bob", &secret("bob-holds-2C-3D")).await;
    ann.say(SAY, vec![Value::Int(-3), Value::text("done")]).await;
    ann.read_until("done", 3).await;
    bob.read_until("done", 3).await;
    assert!(ann.has("ann-holds-QH-KS") && !ann.has("bob-holds-2C-3D"));
    assert!(bob.has("bob-holds-2C-3D") && !bob.has("ann-holds-QH-KS"));

    let mut sse = SseClient::connect(&server.http_url("/events"), None).await;
    let watched = spectator_until(&mut sse, "\"name\":\"bob\"").await;
    let state = reqwest::get(server.http_url("/state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for seen in [&watched, &state] {
        assert!(
            seen.contains("\"ann\"") && seen.contains("\"bob\""),
            "names are public: {seen}"
        );
        assert!(!seen.contains("holds") && !seen.contains("\"secret\":"), "{seen}");
    }

    // A real client holds its own secret, and every checksum (covering it) holds.
    let mut cat = within(Client::connect_with(&url, {
        let mut hello = Hello::new("cat");
        hello.options = vec![
            ("team".into(), Value::Int(1)),
            ("secret".into(), Value::text("cat-holds-AS")),
        ];
        hello
    }))
    .await
    .unwrap();
    let mut privates = 0;
    while privates == 0 || cat.world().is_none_or(|w| w.tick() % 30 != 0) {
        if let Received::Private { .. } = within(cat.recv()).await.unwrap() {
            privates += 1;
        }
    }
    let me = *cat.world().unwrap().get(cat.player_id()).unwrap();
    assert_eq!(cat.world().unwrap().text(me.values[1]), "cat-holds-AS");
}

#[tokio::test]
async fn a_refused_join_closes_with_the_games_reason_and_no_one_else_notices() {
    let server = parlour().await;
    let url = server.ws_url();
    let blue = vec![("team", Value::Int(1))];
    let mut cat = Tap::join(&url, "cat", &blue).await;
    let _dan = Tap::join(&url, "dan", &blue).await;
    let mut eve = Tap::hello(&url, "eve", &blue).await;
    assert_eq!(close_of(&mut eve).await, (4000, "table 1 is full".to_owned()));
    assert_eq!(server.metrics.joins_refused.get(), 1);
    assert_eq!(server.metrics.closes(CloseReason::Refused), 1);
    cat.say(SAY, vec![Value::Int(-2), Value::text("still-here")]).await;
    cat.read_until("still-here", 1).await;
}

#[tokio::test]
async fn a_match_ends_with_its_results_to_every_player_and_spectator_then_restarts_or_closes() {
    let server = parlour().await;
    let http = reqwest::Client::new();
    let create = |after: &str| {
        http.post(server.http_url("/rooms"))
            .json(&json!({"game": "parlour", "after_match": after}))
            .send()
    };
    let room: Json = within(create("close")).await.unwrap().json().await.unwrap();
    let id = room["id"].as_str().unwrap().to_owned();
    let url = server.http_url(&format!("/rooms/{id}/ws")).replace("http", "ws");
    let mut ann = within(Client::connect(&url, "ann")).await.unwrap();
    let mut bob = within(Client::connect(&url, "bob")).await.unwrap();
    let mut sse = SseClient::connect(&server.http_url(&format!("/rooms/{id}/events")), None).await;
    within(sse.next()).await.unwrap();
    ann.send_message("finish", vec![Value::Int(1)]).await.unwrap();

    for player in [&mut ann, &mut bob] {
        let ended = loop {
            if let Received::MatchEnded(ended) = within(player.recv()).await.unwrap() {
                break ended;
            }
        };
        assert_eq!(ended.results.summary.as_str(), "ann finished it");
        let names: Vec<_> = ended
            .results
            .standings
            .iter()
            .map(|s| (s.name.as_str(), s.rank))
            .collect();
        assert_eq!(names, [("ann", 1), ("bob", 2)]);
        let closed = within(player.recv()).await.unwrap_err().to_string();
        assert!(closed.contains("1000") && closed.contains("match over"), "{closed}");
    }
    let ended = loop {
        let event = within(sse.next()).await.expect("an ended event");
        if event.event == "ended" {
            break event;
        }
    };
    let results: Json = serde_json::from_str(&ended.data).unwrap();
    assert_eq!(results["summary"], "ann finished it");
    assert_eq!(results["standings"][1]["name"], "bob");
    let gone = within(http.get(server.http_url(&format!("/rooms/{id}"))).send())
        .await
        .unwrap();
    assert_eq!(gone.status(), 410);
    let body: Json = gone.json().await.unwrap();
    assert_eq!(body["last_results"]["standings"][0]["name"], "ann", "{body}");
    assert_eq!(server.metrics.matches_ended.get(), 1);

    // With `restart` the same players get a new welcome and play on; the room shows the results.
    let room: Json = within(create("restart")).await.unwrap().json().await.unwrap();
    let id = room["id"].as_str().unwrap().to_owned();
    let url = server.http_url(&format!("/rooms/{id}/ws")).replace("http", "ws");
    let mut cat = within(Client::connect(&url, "cat")).await.unwrap();
    let mut sse = SseClient::connect(&server.http_url(&format!("/rooms/{id}/events")), None).await;
    within(sse.next()).await.unwrap();
    cat.send_message("finish", vec![Value::Int(1)]).await.unwrap();
    let mut seen: Vec<&str> = Vec::new();
    while seen.last() != Some(&"snapshot") || !seen.contains(&"welcome") {
        seen.push(match within(cat.recv()).await.unwrap() {
            Received::MatchEnded(_) => "ended",
            Received::Welcome { .. } => "welcome",
            Received::Snapshot { .. } => "snapshot",
            _ => continue,
        });
    }
    let order: Vec<_> = seen.iter().skip_while(|s| **s != "ended").copied().collect();
    assert_eq!(order[..3], ["ended", "welcome", "snapshot"], "{seen:?}");
    // The spectator is told the match's last event and its end, then the new match's snapshot.
    let mut watched = Vec::new();
    while watched.last().is_none_or(|e| e != "snapshot") {
        let event = within(sse.next()).await.expect("the stream goes on").event;
        if event != "delta" {
            watched.push(event);
        }
    }
    assert_eq!(watched, ["event", "ended", "snapshot"]);
    let shown: Json = within(http.get(server.http_url(&format!("/rooms/{id}"))).send())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["last_results"]["summary"], "cat finished it", "{shown}");
}

#[tokio::test]
async fn matchmaking_and_listings_filter_by_the_games_labels() {
    let server = TestServer::at(30).await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: Json| http.post(server.http_url(path)).json(&body).send();
    let ffa: Json = within(post("/rooms", json!({"game": "tanks", "options": {"mode": "ffa"}})))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let teams: Json = within(post("/rooms", json!({"game": "tanks"})))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Labels come from the game once its match starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let listed = |query: &'static str| {
        let http = http.clone();
        let url = server.http_url(&format!("/rooms?{query}"));
        async move {
            let page: Json = within(http.get(url).send()).await.unwrap().json().await.unwrap();
            let ids: Vec<String> = page["rooms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect();
            (ids, page)
        }
    };
    let (ids, page) = listed("game=tanks&labels=mode:ffa").await;
    assert_eq!(ids, [ffa["id"].as_str().unwrap()], "{page}");
    assert_eq!(page["rooms"][0]["labels"]["mode"], "ffa");
    let (ids, _) = listed("game=tanks&labels=mode:teams").await;
    assert_eq!(ids, [teams["id"].as_str().unwrap()]);

    let held: Json = within(post(
        "/matchmake",
        json!({"game": "tanks", "name": "ann", "filter": {"mode": "ffa"}}),
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(held["room"], ffa["id"], "{held}");
    assert_eq!(held["created"], false);
    // No room has the labels asked for: one is opened with them as its room options.
    let held: Json = within(post(
        "/matchmake",
        json!({"game": "tanks", "name": "bob", "filter": {"mode": "ffa", "kills": "3"}}),
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(held["created"], true, "{held}");
    // The room opened for it carries those labels, so the next asker with them finds it.
    let opened = held["room"].clone();
    let held: Json = within(post(
        "/matchmake",
        json!({"game": "tanks", "name": "dan", "filter": {"mode": "ffa", "kills": "3"}}),
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!((&held["room"], &held["created"]), (&opened, &json!(false)), "{held}");
    // A label the game's rooms cannot be opened with is refused, saying why.
    let refused = within(post(
        "/matchmake",
        json!({"game": "tanks", "name": "cat", "filter": {"map": "moon"}}),
    ))
    .await
    .unwrap();
    assert_eq!(refused.status(), 400);
    let why = refused.text().await.unwrap();
    assert!(why.contains("map"), "{why}");
}

#[tokio::test]
async fn each_message_kinds_bad_input_closes_only_its_sender_with_its_code() {
    let server = TestServer::start(Config {
        game: "tanks".into(),
        ..Config::defaults()
    })
    .await;
    let url = server.ws_url();
    let mut bystander = Tap::join(&url, "bystander", &[]).await;
    let chat = |line: Vec<u8>| -> Vec<u8> {
        // kind 0 (chat): the line as a string, then `team` 0.
        let mut bytes = vec![3, 0, line.len() as u8];
        bytes.extend(line);
        bytes.push(0);
        bytes
    };
    // What is wrong, the hello's options, the frames after the hello, the close expected.
    type Case = (
        &'static str,
        Vec<(&'static str, Value)>,
        Vec<Vec<u8>>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "an unknown message kind",
            vec![],
            vec![vec![3, 9]],
            1003,
            "unknown message kind",
        ),
        (
            "a line over 100 bytes",
            vec![],
            vec![chat(vec![b'a'; 101])],
            1003,
            "string length out of range",
        ),
        (
            "a line with a control character",
            vec![],
            vec![chat(b"a\x07b".to_vec())],
            1003,
            "control characters",
        ),
        (
            "a line of invalid UTF-8",
            vec![],
            vec![chat(vec![0xff, 0xfe])],
            1003,
            "invalid UTF-8",
        ),
        (
            "a parameter outside its range",
            vec![],
            vec![vec![3, 0, 2, b'h', b'i', 4]],
            1008,
            "outside",
        ),
        (
            "a flood of one kind",
            vec![],
            vec![chat(b"hi".to_vec()); 8],
            1008,
            "flooding: message chat",
        ),
        (
            "an option the schema lacks",
            vec![("colour", Value::Int(1))],
            vec![],
            1008,
            "unknown option",
        ),
        (
            "an option outside its range",
            vec![("team", Value::Int(7))],
            vec![],
            1008,
            "outside",
        ),
        (
            "an option of the wrong type",
            vec![("team", Value::text("red"))],
            vec![],
            1008,
            "must be a number",
        ),
    ];
    for (name, options, frames, code, reason) in cases {
        let mut ws = Tap::hello(&url, "mallory", &options).await;
        for frame in frames {
            if ws.send(Ws::Binary(frame.into())).await.is_err() {
                break;
            }
        }
        let (got, text) = close_of(&mut ws).await;
        assert_eq!(got, code, "{name}: close code (reason {text:?})");
        assert!(text.contains(reason), "{name}: reason {text:?} lacks {reason:?}");
    }
    assert!(server.metrics.decode_errors.get() >= 4);
    assert!(server.metrics.closes(CloseReason::Flood) >= 1);
    // The bystander played on throughout.
    bystander.say(0, vec![Value::text("unharmed"), Value::Int(0)]).await;
    bystander.read_until("unharmed", 1).await;
}
