//! Playing in a real browser (headless Chromium, see `common/browser.rs`): the JavaScript
//! client against PROTOCOL.md's vectors, and the play page played with key presses and the
//! mouse while bots move, directly and across a round trip with jitter (through
//! `tickcast-relay`); a match of tanks with names, chat, a kill and its results; and the
//! input-to-screen measurement of BENCHMARKS.md.

mod common;

use std::time::Duration;

use common::browser::{Browser, FEED_AND_RESULTS, Page, chromium_or_skip, moving_players, relayed};
use common::{TestServer, fire_at, until_snapshot, within};
use serde_json::{Value, json};
use tickcast::client::{Client, Received};
use tickcast::game::tanks;
use tickcast::protocol::{Hello, Text, Value as GameValue};
use tokio::task::JoinHandle;

/// The client module against PROTOCOL.md's vectors, in the browser: every message decodes to
/// what the document says (names as strings, the private ammunition in a `Private` of its own,
/// events, a match's end), the client's messages encode to its bytes (a hello with options, a
/// tanks chat message), the snapshot's checksum is the document's, and what the protocol rules
/// out is refused, on the way in and before anything goes out.
#[tokio::test]
async fn the_javascript_client_decodes_and_encodes_protocol_md_s_vectors() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::at(30).await;
    let vectors = common::protocol_vectors();
    assert_eq!(vectors.len(), 19, "{vectors:?}");

    let browser = Browser::launch(&binary, "vectors");
    let mut page = Page::open(&browser, &server.http_url("/play?name=vectors")).await;
    page.wait_for("window.tickcastPlay").await;
    let script = format!(
        r#"(async () => {{
        const tc = await import(location.origin + "/tickcast.js");
        const v = {vectors};
        const bytes = (hex) => Uint8Array.from(hex.split(" ").map((h) => parseInt(h, 16)));
        const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");
        const arena = tc.decodeServerMsg(bytes(v["arena welcome"]));
        const tanks = tc.decodeServerMsg(bytes(v["tanks welcome"]));
        const fields = (s) => s.kinds.map((k) => [k.name, k.fields.map((f) => [f.name, f.type, f.count, f.role, f.private])]);
        const out = {{ arena: {{ playerId: arena.playerId, tickHz: arena.tickHz, game: arena.schema.game,
                                kinds: fields(arena.schema), input: arena.schema.input,
                                rest: [arena.schema.messages, arena.schema.events, arena.schema.options, arena.schema.roomOptions] }},
                      tanks: {{ playerId: tanks.playerId, kinds: fields(tanks.schema), input: tanks.schema.input,
                                messages: tanks.schema.messages, events: tanks.schema.events,
                                options: tanks.schema.options, roomOptions: tanks.schema.roomOptions }} }};
        for (const [name, schema] of [["arena snapshot", arena.schema], ["tanks snapshot", tanks.schema],
            ["arena delta", arena.schema], ["tanks delta", tanks.schema], ["idle delta", arena.schema],
            ["ack", null], ["pong", null], ["tanks events", tanks.schema], ["tanks private", tanks.schema],
            ["match ended", null]]) out[name] = tc.decodeServerMsg(bytes(v[name]), schema);
        const world = new tc.World(arena.schema);
        world.snapshot(tc.decodeServerMsg(bytes(v["arena snapshot"]), arena.schema));
        out.checksum = world.checksum();
        // The private ammunition lands on the tank it names, and only its owner's checksum has it.
        const held = new tc.World(tanks.schema);
        held.snapshot(tc.decodeServerMsg(bytes(v["tanks snapshot"]), tanks.schema));
        const before = held.checksum();
        held.private(out["tanks private"]);
        out.privately = {{ tank: held.entities.get(3).f, publicUnchanged: held.checksum() === before,
                           owner: held.privateChecksum(3) !== 0x811c9dc5, other: held.privateChecksum(5) }};
        out.described = out["tanks events"].events.map((e) => tc.describeEvent({{ kind: tanks.schema.events[e.kind].name,
          fields: Object.fromEntries(tanks.schema.events[e.kind].params.map((p, i) => [p.name, e.values[i]])) }}));
        out.encoded = {{
          hello: hex(tc.encodeClientMsg({{ type: "hello", name: "ann", token: "" }})) === v.hello,
          helloWithOptions: hex(tc.encodeClientMsg({{ type: "hello", name: "ann", token: "", options: {{ team: 1 }} }})) === v["hello with options"],
          helloResuming: hex(tc.encodeClientMsg({{ type: "hello", resume: "default.00112233445566778899aabbccddeeff" }})) === v["hello resuming"],
          arena: hex(tc.encodeClientMsg({{ type: "input", seq: 5, values: [127, -127] }}, arena.schema)) === v["arena input"],
          tanks: hex(tc.encodeClientMsg({{ type: "input", seq: 6, values: [0, 127, 64, 1] }}, tanks.schema)) === v["tanks input"],
          ping: hex(tc.encodeClientMsg({{ type: "ping", nonce: 42, clientTimeUs: 1000000 }})) === v.ping,
          message: hex(tc.encodeClientMsg(tc.messageOf(tanks.schema, "chat", {{ line: "gg", team: 1 }}), tanks.schema)) === v["tanks message"],
        }};
        const refused = (hexBytes, schema) => {{
          try {{ tc.decodeServerMsg(bytes(hexBytes), schema); return "accepted"; }}
          catch (err) {{ return err instanceof tc.DecodeError ? "refused" : String(err); }}
        }};
        out.refused = [
          refused("04 fb 05 00"),                 // a varint not in its shortest form
          refused("04 05 00"),                    // a trailing byte
          refused("04 fe"),                       // a 128-bit varint prefix
          refused("01 03 01 07 00 fb 40 1f", arena.schema),            // truncated
          refused("01 03 01 07 02 00 00", arena.schema),               // a kind the schema lacks
          refused("01 03 01 00 01 00 00", arena.schema),               // entity id 0
          refused("02 02 01 00 01 00 01 07 00 00 00", arena.schema),   // an update mask of 0
          refused("02 02 01 00 00 00 02", arena.schema),               // an Option byte of 2
          refused("01 03 01 07 00 00 00 00 21 " + "61 ".repeat(33).trim(), arena.schema), // a name over its 32 bytes
          refused("01 03 01 07 00 00 00 00 01 0a", arena.schema),      // a name with a control character
          refused("01 03 01 07 00 00 00 00 01 ff", arena.schema),      // a name that is not UTF-8
          refused("02 1f 01 00 01 00 01 03 80 04 00 00", tanks.schema), // a private field in an update
          refused("06 1f 00 01 03 00 01 00 00", tanks.schema),         // a public field in a Private
          refused("05 1f 00", tanks.schema),                           // Events with no event
          refused("05 1f 01 03", tanks.schema),                        // an event kind the schema lacks
          refused("07 01 01 0a 00"),                                   // a summary with a control character
        ];
        // What a message may not be is refused before it is sent.
        const unsent = (name, fields) => {{
          try {{ tc.messageOf(tanks.schema, name, fields); return "sent"; }} catch (err) {{ return err.constructor.name; }}
        }};
        out.unsent = [unsent("shout", {{}}), unsent("chat", {{ team: 2 }}), unsent("chat", {{ line: "x".repeat(101) }}),
                      unsent("chat", {{ line: "a\nb" }}), unsent("chat", {{ team: "1" }}), unsent("chat", {{ colour: 1 }})];
        return JSON.stringify(out);
      }})()"#,
        vectors = Value::Object(vectors),
    );
    let out = page.eval_async(&script).await;
    assert_eq!(out["arena"]["playerId"], 7);
    assert_eq!(out["arena"]["tickHz"], 30);
    assert_eq!(
        out["arena"]["kinds"],
        json!([
            [
                "player",
                [
                    ["x", "coord", 0, "x", false],
                    ["y", "coord", 0, "y", false],
                    ["score", "uint", 0, "score", false],
                    ["name", "text", 32, "name", false]
                ]
            ],
            ["orb", [["x", "coord", 0, "x", false], ["y", "coord", 0, "y", false]]]
        ])
    );
    assert_eq!(
        out["arena"]["input"],
        json!([{"name": "dx", "type": "i8", "min": -127, "max": 127}, {"name": "dy", "type": "i8", "min": -127, "max": 127}])
    );
    assert_eq!(
        out["arena"]["rest"],
        json!([[], [], [], []]),
        "arena has no messages, events or options"
    );
    assert_eq!(out["tanks"]["playerId"], 3);
    assert_eq!(
        out["tanks"]["kinds"][0][1][5],
        json!(["team", "enum", 2, "none", false])
    );
    assert_eq!(
        out["tanks"]["kinds"][0][1][6],
        json!(["name", "text", 32, "name", false])
    );
    assert_eq!(out["tanks"]["kinds"][0][1][7], json!(["ammo", "uint", 0, "none", true]));
    assert_eq!(
        out["tanks"]["kinds"][1][1][4],
        json!(["owner", "uint", 0, "owner", false])
    );
    assert_eq!(
        out["tanks"]["input"][3],
        json!({"name": "fire", "type": "bool", "min": 0, "max": 1})
    );
    assert_eq!(
        out["tanks"]["messages"],
        json!([{"name": "chat", "perSecond": 2, "params": [
            {"name": "line", "type": "text", "max": 100}, {"name": "team", "type": "int", "min": 0, "max": 1}]}])
    );
    let events: Vec<(&str, bool, usize)> = out["tanks"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let params = e["params"].as_array().unwrap().len();
            (e["name"].as_str().unwrap(), e["public"] == true, params)
        })
        .collect();
    assert_eq!(events, [("hit", true, 2), ("kill", true, 4), ("chat", true, 4)]);
    assert_eq!(
        out["tanks"]["events"][1]["params"][3],
        json!({"name": "by_name", "type": "text", "max": 32})
    );
    assert_eq!(
        out["tanks"]["options"],
        json!([{"name": "team", "type": "int", "min": 0, "max": 1}])
    );
    assert_eq!(
        out["tanks"]["roomOptions"],
        json!([{"name": "mode", "type": "text", "max": 8}, {"name": "kills", "type": "int", "min": 1, "max": 1000},
               {"name": "team_size", "type": "int", "min": 1, "max": 1000}])
    );
    assert_eq!(
        out["arena snapshot"],
        json!({"type": "snapshot", "tick": 3, "entities": [
            {"id": 1, "kind": 1, "f": [160, 16000]}, {"id": 7, "kind": 0, "f": [8000, 8000, 3, "ann"]}]})
    );
    assert_eq!(
        out["tanks snapshot"]["entities"],
        json!([
            {"id": 3, "kind": 0, "f": [8000, 8000, 0, 100, 2, 1, "ann", 0]},
            {"id": 38, "kind": 1, "f": [4000, 4000, (-320i32) as u32, 0, 5]}
        ]),
        "a name is a string; the private ammo is not in a snapshot (0 until a Private); a signed field is \
         kept as its two's complement bits"
    );
    assert_eq!(
        out["arena delta"],
        json!({"type": "delta", "tick": 1000, "baseGap": 1,
               "spawned": [{"id": 260, "kind": 1, "f": [1600, 80]}],
               "updated": [{"id": 7, "kind": 0, "mask": 3, "values": [80, -3]}, {"id": 9, "kind": 0, "mask": 4, "values": [2]}],
               "removed": [12], "checksum": 0xdead_beef_u32})
    );
    assert_eq!(
        out["tanks delta"],
        json!({"type": "delta", "tick": 31, "baseGap": 1,
               "spawned": [{"id": 40, "kind": 1, "f": [8000, 8320, 0, 320, 3]}],
               "updated": [{"id": 3, "kind": 0, "mask": 0b100, "values": [64]},
                           {"id": 5, "kind": 0, "mask": 0b100_1000, "values": [75, "bob"]}],
               "removed": [38], "checksum": null})
    );
    assert_eq!(out["idle delta"]["tick"], 70000);
    assert_eq!(out["ack"], json!({"type": "ack", "seq": 300}));
    assert_eq!(
        out["pong"],
        json!({"type": "pong", "nonce": 42, "clientTimeUs": 1_000_000, "serverTick": 250, "serverTimeUs": 1_700_000_000_000_000u64})
    );
    assert_eq!(
        out["tanks events"],
        json!({"type": "events", "tick": 31, "events": [
            {"kind": 1, "values": [5, 3, "bob", "ann"]}, {"kind": 2, "values": [3, "ann", "gg", 0]}]})
    );
    assert_eq!(out["described"], json!(["ann destroyed bob", "ann: gg"]));
    assert_eq!(
        out["tanks private"],
        json!({"type": "private", "tick": 31, "full": false,
               "entities": [{"id": 3, "kind": 0, "mask": 0b1000_0000, "values": [4]}], "checksum": 0x0102_0304})
    );
    assert_eq!(
        out["privately"],
        json!({"tank": [8000, 8000, 0, 100, 2, 1, "ann", 4], "publicUnchanged": true, "owner": true, "other": 0x811c_9dc5u32}),
        "the ammo is the owner's alone: in its private checksum, not the world's"
    );
    assert_eq!(
        out["match ended"],
        json!({"type": "matchEnded", "tick": 600, "summary": "red wins 20 to 13", "standings": [
            {"player": 3, "name": "ann", "rank": 1, "score": 20}, {"player": 5, "name": "bob", "rank": 2, "score": 13}]})
    );
    // PROTOCOL.md, "World checksum": the arena snapshot vector's.
    assert_eq!(out["checksum"], 0x2a6c_ef51u32);
    assert_eq!(
        out["encoded"],
        json!({"hello": true, "helloWithOptions": true, "helloResuming": true, "arena": true, "tanks": true, "ping": true, "message": true})
    );
    assert_eq!(out["refused"], json!(vec!["refused"; 16]));
    assert_eq!(
        out["unsent"],
        json!([
            "RangeError",
            "RangeError",
            "RangeError",
            "RangeError",
            "TypeError",
            "RangeError"
        ])
    );
}

/// What the play page measured, read from its `window.tickcastPlay`.
async fn play_figures(page: &mut Page) -> Value {
    page.eval(
        r#"JSON.stringify((() => {
            const { client, measures } = window.tickcastPlay;
            const own = client.world && client.world.entities.get(client.playerId);
            return { status: client.status, id: client.playerId, stats: client.stats, measures,
                     width: client.schema && client.schema.width, tick: client.world && client.world.tick,
                     own: own ? [own.f[0] / 16, own.f[1] / 16] : null };
        })())"#,
    )
    .await
}

/// Plays the page at `url` with `presses` scripted key presses (300 ms each, then 700 ms at
/// rest) while bots move in the room; returns what the page measured.
async fn play_with_keys(browser: &Browser, url: &str, presses: usize) -> Value {
    let mut page = Page::open(browser, url).await;
    let mut figures = Value::Null;
    for _ in 0..100 {
        figures = play_figures(&mut page).await;
        if figures["status"] == "playing" && figures["stats"]["frames"].as_u64().is_some_and(|n| n > 30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // the page cannot be awaited
    }
    assert_eq!(figures["status"], "playing", "{figures}");
    let start = figures["own"].clone();
    let width = figures["width"].as_f64().unwrap();
    for i in 0..presses {
        let own = play_figures(&mut page).await["own"].clone();
        let (x, y) = (own[0].as_f64().unwrap(), own[1].as_f64().unwrap());
        // Away from the nearer wall, so the entity can move.
        let key = match i % 2 {
            0 if x > width / 2.0 => "ArrowLeft",
            0 => "ArrowRight",
            _ if y > width / 2.0 => "ArrowUp",
            _ => "ArrowDown",
        };
        page.press(key, Duration::from_millis(300)).await;
        tokio::time::sleep(Duration::from_millis(700)).await; // at rest before the next key
    }
    let figures = play_figures(&mut page).await;
    eprintln!("{url}: {figures}");
    assert_ne!(
        figures["own"], start,
        "the own entity never moved on the server: {figures}"
    );
    figures
}

/// What a player must feel: the own entity moves on the first animation frame after a key, its
/// predicted position is the server's to the step once the input is acknowledged, every
/// checksum matches, and the others glide no faster than they can move.
fn assert_plays_well(figures: &Value) {
    let stats = &figures["stats"];
    let measures = &figures["measures"];
    let presses = measures["keyToScreen"].as_array().unwrap();
    assert!(presses.len() >= 6, "key presses measured: {figures}");
    assert!(
        presses.iter().all(|p| p["frames"] == 1),
        "a key press took more than one animation frame to show: {figures}"
    );
    assert!(stats["predictionChecks"].as_u64().unwrap() >= 150, "{figures}");
    assert_eq!(stats["predictionMismatches"], 0, "{figures}");
    assert_eq!(stats["predictionMaxError"], 0, "{figures}");
    assert!(stats["checksumsVerified"].as_u64().unwrap() >= 5, "{figures}");
    assert_eq!(stats["checksumMismatches"], 0, "{figures}");
    assert_eq!(
        (stats["drifts"].as_u64(), stats["reconnects"].as_u64()),
        (Some(0), Some(0)),
        "{figures}"
    );
    let smooth = &measures["smoothness"];
    assert!(smooth["samples"].as_u64().unwrap() >= 500, "{figures}");
    assert_eq!(smooth["violations"], 0, "{figures}");
}

#[tokio::test]
async fn a_browser_plays_with_prediction_reconciliation_and_interpolation() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::at(30).await;
    let (ids, players) = moving_players(&server).await;
    let browser = Browser::launch(&binary, "play");
    let figures = play_with_keys(&browser, &server.http_url("/play?name=web"), 8).await;
    assert_plays_well(&figures);
    assert!(!ids.contains(&figures["id"].as_u64().unwrap().try_into().unwrap()));
    players.iter().for_each(JoinHandle::abort);
}

#[tokio::test]
async fn the_same_holds_across_an_80_ms_round_trip_with_jitter() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::start(tickcast::Config {
        // The page reaches the server through the relay, a port of its own.
        allowed_origins: vec!["*".into()],
        ..tickcast::Config::defaults()
    })
    .await;
    let (_, players) = moving_players(&server).await;
    // 40 ms ± 10 ms each way: a round trip of 80 ms ± 20 ms.
    let relay = relayed(&server, Duration::from_millis(40), Duration::from_millis(10)).await;
    let browser = Browser::launch(&binary, "play-80ms");
    let url = format!("http://{}/rooms/default/play?name=far", relay.addr());
    let figures = play_with_keys(&browser, &url, 8).await;
    assert_plays_well(&figures);
    let rtt = figures["stats"]["rttSmoothed"].as_f64().unwrap();
    assert!(
        (60.0..=140.0).contains(&rtt),
        "the relay's round trip was not felt: {figures}"
    );
    assert!(
        figures["stats"]["interpolationDelayMs"].as_f64().unwrap() > 70.0,
        "{figures}"
    );
    let relayed = relay.stop().await;
    assert!(relayed.connections >= 1, "{relayed}");
    players.iter().for_each(JoinHandle::abort);
}

#[tokio::test]
async fn in_tanks_the_page_aims_with_the_mouse_and_fires_with_a_click() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::start(tickcast::Config {
        game: "tanks".into(),
        ..tickcast::Config::defaults()
    })
    .await;
    let browser = Browser::launch(&binary, "tanks-play");
    let mut page = Page::open(&browser, &server.http_url("/play?name=gunner")).await;
    page.wait_for(
        "window.tickcastPlay && tickcastPlay.client.status === 'playing' && tickcastPlay.client.stats.frames > 10",
    )
    .await;
    // Where the own tank is drawn, on screen: the mouse goes straight below it (aim 64, +y).
    let at = page
        .eval(
            r#"JSON.stringify((() => {
                const own = tickcastPlay.client.view(performance.now()).entities.find((e) => e.own);
                return tickcastPlay.toScreen(own.x, own.y);
            })())"#,
        )
        .await;
    let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap() + 40.0);
    for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
        let event = json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 });
        page.call("Input.dispatchMouseEvent", event).await;
        tokio::time::sleep(Duration::from_millis(100)).await; // a tick or three, for the server to apply it
    }
    // The server turned the turret and launched a shell of ours, and the page shows both.
    page.wait_for(
        r#"(() => {
            const c = tickcastPlay.client, me = c.playerId, tanks = c.schema.kinds[0], shells = c.schema.kinds[1];
            const own = c.world.entities.get(me);
            const aim = own && own.f[tanks.index.aim];
            const shell = [...c.world.entities.values()].some((e) => e.kind === 1 && e.f[shells.index.owner] === me);
            return aim >= 60 && aim <= 68 && (shell || own.f[tanks.index.ammo] < 5);
        })()"#,
    )
    .await;
    assert_eq!(
        page.eval("JSON.stringify(tickcastPlay.client.stats.checksumMismatches)")
            .await,
        0
    );
}

/// Polls the play page until `done` holds for what it shows besides the world, read from its
/// DOM: names in the leaderboard, the own private fields, the feed's lines, the results; and
/// what its client counted.
async fn play_until(page: &mut Page, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let talk = format!(
        r##"JSON.stringify((() => {{
            const c = tickcastPlay.client;
            const drawn = c.view(performance.now()).entities.filter((e) => e.kind === "tank").map((e) => e.fields.name);
            return {{ status: c.status, id: c.playerId, match: c.match, stats: c.stats, drawn: drawn.sort(),
                     board: [...document.querySelectorAll("#leaderboard li")].map((li) => li.dataset.name).sort(),
                     ammo: document.getElementById("own-ammo")?.textContent,
                     {FEED_AND_RESULTS} }};
        }})())"##
    );
    page.eval_until(&talk, what, done).await
}

/// Protocol v4 in the play page, with tanks: the page joins a room made for one kill with a
/// join option (team red), a Rust player joins blue; the page shows both names by the tanks and
/// in the leaderboard and its own private ammunition, a line typed into its chat box reaches
/// the other player as a `chat` event and comes back to its feed, the other player destroys
/// the page's tank (the page stands still, so every shell aimed at it hits), the kill is in
/// the feed, the results are on screen at the match's end, and the page plays on in the next
/// match (a second welcome) with every checksum, public and private, holding.
#[tokio::test]
async fn in_tanks_the_page_shows_names_its_ammo_the_chat_a_kill_and_the_results() {
    let Some(binary) = chromium_or_skip() else { return };
    // A small world: a shell reaches anywhere in it within its one-second flight.
    let server = TestServer::start(tickcast::Config {
        world_size: 200,
        ..tickcast::Config::defaults()
    })
    .await;
    let created: Value = reqwest::Client::new()
        .post(server.http_url("/rooms"))
        .json(&json!({ "game": "tanks", "seed": 7, "options": { "kills": 1 } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let room = created["id"].as_str().expect("a room").to_owned();
    let browser = Browser::launch(&binary, "tanks-v4");
    let url = server.http_url(&format!("/rooms/{room}/play?name=ann&option.team=0"));
    let mut page = Page::open(&browser, &url).await;
    page.wait_for(
        "window.tickcastPlay && tickcastPlay.client.status === 'playing' && tickcastPlay.client.world.tick !== null",
    )
    .await;
    let hello = Hello {
        options: vec![("team".into(), GameValue::Int(1))],
        ..Hello::new("bob")
    };
    let mut bob = within(Client::connect_with(created["ws"].as_str().unwrap(), hello))
        .await
        .unwrap();
    until_snapshot(&mut bob).await;
    let shown = play_until(&mut page, "both names and its ammunition", |s| {
        s["board"] == json!(["ann", "bob"]) && s["drawn"] == json!(["ann", "bob"]) && s["ammo"] == "5"
    })
    .await;
    let ann = u32::try_from(shown["id"].as_u64().unwrap()).unwrap();

    // A line typed into the chat box: Enter opens it, Enter sends it.
    let line = "gg from the page";
    page.press("Enter", Duration::from_millis(20)).await;
    page.call("Input.insertText", json!({ "text": line })).await;
    page.press("Enter", Duration::from_millis(20)).await;
    let chat = within(async {
        loop {
            if let Received::Events(told) = bob.recv().await.expect("bob plays") {
                let chat = told.events.into_iter().find(|e| e.kind == tanks::event::CHAT);
                if let Some(chat) = chat {
                    return chat.values;
                }
            }
        }
    })
    .await;
    let text = |t: &str| GameValue::Text(Text::new(t).unwrap());
    assert_eq!(
        chat,
        [GameValue::Int(ann as i32), text("ann"), text(line), GameValue::Int(0)]
    );
    play_until(&mut page, "its chat line in the feed", |s| {
        s["feed"]
            .as_array()
            .unwrap()
            .contains(&json!(["chat", "ann: gg from the page"]))
    })
    .await;

    // bob fires at the page's tank until the match ends: four hits are a kill, one kill wins.
    let bob_id = bob.player_id();
    let (kill, ended) = within(async {
        let mut kill = None;
        let mut sent = None;
        loop {
            match bob.recv().await.expect("bob plays") {
                Received::Events(told) => {
                    kill = kill.or(told.events.into_iter().find(|e| e.kind == tanks::event::KILL));
                }
                Received::MatchEnded(ended) => return (kill, ended),
                // Aimed again after each frame, sent when it changed.
                _ => {
                    if let Some(aim) = fire_at(&bob, ann)
                        && sent.as_ref() != Some(&aim)
                    {
                        bob.send_input(&aim).await.unwrap();
                        sent = Some(aim);
                    }
                }
            }
        }
    })
    .await;
    let kill = kill.expect("bob was told of the kill");
    assert_eq!(
        kill.values,
        [
            GameValue::Int(ann as i32),
            GameValue::Int(bob_id as i32),
            text("ann"),
            text("bob")
        ]
    );
    assert_eq!(ended.results.summary.as_str(), "blue wins 1 to 0");
    // Read on, as a player does: the next match begins at once.
    let reading = tokio::spawn(async move { while bob.recv().await.is_ok() {} });

    let shown = play_until(&mut page, "the kill and the results", |s| {
        s["feed"]
            .as_array()
            .unwrap()
            .contains(&json!(["kill", "bob destroyed ann"]))
            && !s["results"].is_null()
    })
    .await;
    assert_eq!(
        shown["results"],
        json!({ "summary": "blue wins 1 to 0", "standings": [[1, "bob"], [2, "ann"]] })
    );
    let shown = play_until(&mut page, "the next match", |s| {
        s["match"] == 2 && s["status"] == "playing" && s["board"] == json!(["ann", "bob"])
    })
    .await;
    let stats = &shown["stats"];
    assert_eq!(
        (
            &stats["drifts"],
            &stats["checksumMismatches"],
            &stats["privateChecksumMismatches"]
        ),
        (&json!(0), &json!(0), &json!(0)),
        "{shown}"
    );
    assert!(stats["privateChecksumsVerified"].as_u64().unwrap() >= 1, "{shown}");
    assert!(stats["checksumsVerified"].as_u64().unwrap() >= 1, "{shown}");
    assert!(!shown["results"].is_null(), "the results stay up into the next match");
    reading.abort();
}

/// The input-to-screen latency of BENCHMARKS.md, with and without prediction, at 0 and 80 ms of
/// added round trip: `cargo test --release --test play -- --ignored --nocapture input_to_screen`.
#[tokio::test]
#[ignore = "a measurement: run it by name"]
async fn input_to_screen_with_and_without_prediction() {
    input_to_screen("arena").await;
}

/// The same for tanks (its own prediction step): `cargo test --release --test play -- --ignored
/// --nocapture tanks_input_to_screen`.
#[tokio::test]
#[ignore = "a measurement: run it by name"]
async fn tanks_input_to_screen_with_and_without_prediction() {
    input_to_screen("tanks").await;
}

/// Key presses on the play page of `game`'s default room while bots move, as a table.
async fn input_to_screen(game: &str) {
    let Some(binary) = chromium_or_skip() else { return };
    let browser = Browser::launch(&binary, &format!("input-to-screen-{game}"));
    let mut rows = Vec::new();
    for rtt_ms in [0u64, 80] {
        let server = TestServer::start(tickcast::Config {
            game: game.into(),
            allowed_origins: vec!["*".into()],
            ..tickcast::Config::defaults()
        })
        .await;
        let (_, players) = moving_players(&server).await;
        let relay = relayed(
            &server,
            Duration::from_millis(rtt_ms / 2),
            Duration::from_millis(rtt_ms / 8),
        )
        .await;
        for predict in [true, false] {
            let url = format!(
                "http://{}/rooms/default/play?name=m{rtt_ms}{predict}&predict={}",
                relay.addr(),
                u8::from(predict)
            );
            let figures = play_with_keys(&browser, &url, 20).await;
            let points = figures["measures"]["keyToScreen"].as_array().unwrap();
            let mut ms: Vec<f64> = points.iter().map(|p| p["ms"].as_f64().unwrap()).collect();
            let mut frames: Vec<u64> = points.iter().map(|p| p["frames"].as_u64().unwrap()).collect();
            ms.sort_by(f64::total_cmp);
            frames.sort_unstable();
            let at = |q: f64| ((ms.len() - 1) as f64 * q).round() as usize;
            rows.push(format!(
                "| {rtt_ms} ms ({} ± {} ms each way) | {} | {} | {:.1} ms | {:.1} ms | {} | {:.1} ms |",
                rtt_ms / 2,
                rtt_ms / 8,
                if predict { "on" } else { "off" },
                ms.len(),
                ms[at(0.5)],
                ms[at(0.95)],
                frames[frames.len() / 2],
                figures["stats"]["rttSmoothed"].as_f64().unwrap(),
            ));
        }
        relay.stop().await;
        players.iter().for_each(JoinHandle::abort);
    }
    println!("{game}:");
    println!(
        "| added round trip | prediction | key presses | key to screen p50 | p95 | animation frames p50 | RTT measured by the page |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}
