//! Playing in a real browser (headless Chromium, see `common/browser.rs`): the JavaScript
//! client against PROTOCOL.md's vectors, and the play page played with key presses and the
//! mouse while bots move, directly and across a round trip with jitter (through
//! `tickcast-relay`); and the input-to-screen measurement of BENCHMARKS.md.

mod common;

use std::time::Duration;

use common::TestServer;
use common::browser::{Browser, Page, chromium_or_skip, moving_players, relayed};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The client module against PROTOCOL.md's vectors, in the browser: every message decodes to
/// what the document says, the client's messages encode to its bytes, the snapshot's checksum
/// is the document's, and what the protocol rules out is refused.
#[tokio::test]
async fn the_javascript_client_decodes_and_encodes_protocol_md_s_vectors() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::at(30).await;
    let doc = include_str!("../PROTOCOL.md");
    let block = doc.split("```\nhello:").nth(1).expect("the vectors block");
    let block = format!("hello:{}", block.split("```").next().unwrap());
    let vectors: serde_json::Map<String, Value> = block
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(name, hex)| (name.to_owned(), json!(hex.trim())))
        .collect();
    assert_eq!(vectors.len(), 13, "{block}");

    let browser = Browser::launch(&binary, "vectors");
    let mut page = Page::open(&browser, &server.http_url("/play?name=vectors")).await;
    page.wait_for("window.tickcastPlay").await;
    let script = format!(
        r#"(async () => {{
        const tc = await import(location.origin + "/tickcast.js");
        const v = {vectors};
        const bytes = (hex) => Uint8Array.from(hex.split(" ").map((h) => parseInt(h, 16)));
        const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");
        const plain = (m) => JSON.parse(JSON.stringify(m, (k, x) => x instanceof Uint32Array ? [...x] : x));
        const arena = tc.decodeServerMsg(bytes(v["arena welcome"]));
        const tanks = tc.decodeServerMsg(bytes(v["tanks welcome"]));
        const out = {{ arena: {{ playerId: arena.playerId, tickHz: arena.tickHz, game: arena.schema.game,
                                kinds: arena.schema.kinds.map((k) => [k.name, k.fields.map((f) => [f.name, f.type, f.role])]),
                                input: arena.schema.input }},
                      tanks: {{ kinds: tanks.schema.kinds.map((k) => [k.name, k.fields.map((f) => [f.name, f.type, f.count, f.role])]),
                                input: tanks.schema.input }} }};
        for (const [name, schema] of [["arena snapshot", arena.schema], ["tanks snapshot", tanks.schema],
            ["arena delta", arena.schema], ["tanks delta", tanks.schema], ["idle delta", arena.schema],
            ["ack", null], ["pong", null]]) out[name] = plain(tc.decodeServerMsg(bytes(v[name]), schema));
        const world = new tc.World(arena.schema);
        world.snapshot(tc.decodeServerMsg(bytes(v["arena snapshot"]), arena.schema));
        out.checksum = world.checksum();
        out.encoded = {{
          hello: hex(tc.encodeClientMsg({{ type: "hello", name: "ann", token: "" }})) === v.hello,
          arena: hex(tc.encodeClientMsg({{ type: "input", seq: 5, values: [127, -127] }}, arena.schema)) === v["arena input"],
          tanks: hex(tc.encodeClientMsg({{ type: "input", seq: 6, values: [0, 127, 64, 1] }}, tanks.schema)) === v["tanks input"],
          ping: hex(tc.encodeClientMsg({{ type: "ping", nonce: 42, clientTimeUs: 1000000 }})) === v.ping,
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
          refused("02 02 01 00 00 00 00 02", arena.schema),            // an Option byte of 2
        ];
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
                [["x", "coord", "x"], ["y", "coord", "y"], ["score", "uint", "score"]]
            ],
            ["orb", [["x", "coord", "x"], ["y", "coord", "y"]]]
        ])
    );
    assert_eq!(
        out["arena"]["input"],
        json!([{"name": "dx", "type": "i8", "min": -127, "max": 127}, {"name": "dy", "type": "i8", "min": -127, "max": 127}])
    );
    assert_eq!(out["tanks"]["kinds"][0][1][6], json!(["state", "enum", 3, "none"]));
    assert_eq!(
        out["tanks"]["input"][3],
        json!({"name": "fire", "type": "bool", "min": 0, "max": 1})
    );
    assert_eq!(
        out["arena snapshot"],
        json!({"type": "snapshot", "tick": 3, "entities": [
            {"id": 1, "kind": 1, "f": [160, 16000]}, {"id": 7, "kind": 0, "f": [8000, 8000, 3]}]})
    );
    assert_eq!(
        out["tanks snapshot"]["entities"][1],
        json!({"id": 38, "kind": 1, "f": [4000, 4000, (-320i32) as u32, 0, 5]}),
        "a signed field is kept as its two's complement bits"
    );
    assert_eq!(
        out["arena delta"],
        json!({"type": "delta", "tick": 1000, "baseGap": 1,
               "spawned": [{"id": 260, "kind": 1, "f": [1600, 80]}],
               "updated": [{"id": 7, "kind": 0, "mask": 3, "values": [80, -3]}, {"id": 9, "kind": 0, "mask": 4, "values": [2]}],
               "removed": [12], "checksum": 0xdead_beef_u32})
    );
    assert_eq!(
        out["tanks delta"]["updated"],
        json!([{"id": 3, "kind": 0, "mask": 0b10_0100, "values": [64, 0]}, {"id": 5, "kind": 0, "mask": 0b100_1000, "values": [75, 1]}])
    );
    assert_eq!(out["idle delta"]["tick"], 70000);
    assert_eq!(out["ack"], json!({"type": "ack", "seq": 300}));
    assert_eq!(
        out["pong"],
        json!({"type": "pong", "nonce": 42, "clientTimeUs": 1_000_000, "serverTick": 250, "serverTimeUs": 1_700_000_000_000_000u64})
    );
    assert_eq!(out["checksum"], 0x8836_2431u32);
    assert_eq!(
        out["encoded"],
        json!({"hello": true, "arena": true, "tanks": true, "ping": true})
    );
    assert_eq!(out["refused"], json!(vec!["refused"; 8]));
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
                const c = tickcastPlay.client, own = c.view(performance.now()).entities.find((e) => e.own);
                const w = innerWidth, h = innerHeight, pad = 24;
                const scale = Math.min((w - 2 * pad) / c.schema.width, (h - 2 * pad) / c.schema.height);
                return [(w - c.schema.width * scale) / 2 + own.x * scale, (h - c.schema.height * scale) / 2 + own.y * scale];
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
            return aim >= 60 && aim <= 68 && (shell || own.f[tanks.index.reloading] === 1);
        })()"#,
    )
    .await;
    assert_eq!(
        page.eval("JSON.stringify(tickcastPlay.client.stats.checksumMismatches)")
            .await,
        0
    );
}

/// The input-to-screen latency of BENCHMARKS.md, with and without prediction, at 0 and 80 ms of
/// added round trip: `cargo test --release --test play -- --ignored --nocapture input_to_screen`.
#[tokio::test]
#[ignore = "a measurement: run it by name"]
async fn input_to_screen_with_and_without_prediction() {
    let Some(binary) = chromium_or_skip() else { return };
    let browser = Browser::launch(&binary, "input-to-screen");
    let mut rows = Vec::new();
    for rtt_ms in [0u64, 80] {
        let server = TestServer::start(tickcast::Config {
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
    println!(
        "| added round trip | prediction | key presses | key to screen p50 | p95 | animation frames p50 | RTT measured by the page |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}
