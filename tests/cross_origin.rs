//! The README's snippet on another site, in a real browser (headless Chromium, see
//! `common/browser.rs`): a page served by a second, tiny HTTP server (another port, so another
//! origin) imports the client from the game server (`import { Client } from
//! "http://<server>/tickcast.js"`) and starts a `Client` with no `server` option. With the
//! page's origin in the game server's `--allowed-origins` it plays there (the module's own
//! origin is its default server): welcomed, deltas, checksums verified, by room and by
//! matchmaking (a JSON `POST`, so a CORS preflight). Without it the page is refused, and says
//! why (403, its origin), instead of reconnecting for ever.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query};
use axum::response::Html;
use axum::routing::get;
use common::TestServer;
use common::browser::{Browser, Page, chromium_or_skip};
use serde::Deserialize;
use serde_json::{Value, json};
use tickcast::Config;
use tickcast::metrics::CloseReason;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Long enough for the client to have reconnected twice over, had it not stopped (its backoff
/// starts at half a second).
const WOULD_HAVE_RETRIED: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_page_on_an_allowed_origin_plays_with_the_module_imported_from_the_server() {
    let Some(binary) = chromium_or_skip() else { return };
    let site = Site::start().await;
    let game = TestServer::start(Config {
        allowed_origins: vec![site.origin()],
        ..Config::defaults()
    })
    .await;
    let browser = Browser::launch(&binary, "cross-origin-allowed");

    // By room: the rooms API's lookup (CORS), then the player socket (the origin policy).
    let mut page = Page::open(&browser, &site.page(game.addr, "room=default&name=far")).await;
    let seen = until(&mut page, "welcomed, 30 deltas and a checksum", |s| {
        s["refused"].is_null()
            && s["welcomes"] == 1
            && s["deltas"].as_u64() >= Some(30)
            && s["checks"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(seen["server"], format!("http://{}", game.addr), "{seen}");
    assert_eq!(seen["game"], "arena", "{seen}");
    assert_eq!(seen["statuses"], json!(["connecting", "playing"]), "{seen}");
    assert_eq!(seen["shown"], "playing", "{seen}");
    assert_eq!(
        (seen["mismatches"].as_u64(), seen["reconnects"].as_u64()),
        (Some(0), Some(0)),
        "{seen}"
    );

    // By matchmaking: a JSON POST from another origin, which the browser preflights.
    let mut page = Page::open(&browser, &site.page(game.addr, "matchmake=tanks&name=match")).await;
    let seen = until(&mut page, "welcomed by matchmaking, with deltas", |s| {
        s["refused"].is_null() && s["welcomes"] == 1 && s["deltas"].as_u64() >= Some(10)
    })
    .await;
    assert_eq!(seen["game"], "tanks", "{seen}");
    assert_eq!(seen["statuses"], json!(["connecting", "playing"]), "{seen}");
    assert_eq!(game.metrics.closes(CloseReason::Origin), 0);
}

#[tokio::test]
async fn a_page_on_another_origin_shows_it_is_refused_and_does_not_reconnect() {
    let Some(binary) = chromium_or_skip() else { return };
    let site = Site::start().await;
    let game = TestServer::start(Config::defaults()).await;
    let browser = Browser::launch(&binary, "cross-origin-refused");
    let reason = format!("origin {} is not allowed", site.origin());

    // The rooms API's answer carries no CORS header for this origin, so the page cannot read
    // it; the client asks the player URL (readable by any page), which says why. And
    // matchmaking, whose preflight the server refuses, the same way.
    for (query, name) in [
        ("room=default&name=far", "room"),
        ("matchmake=arena&name=far", "matchmake"),
    ] {
        let mut page = Page::open(&browser, &site.page(game.addr, query)).await;
        let seen = until(&mut page, &format!("{name}: refused"), |s| !s["refused"].is_null()).await;
        assert_eq!(
            seen["refused"],
            json!({ "code": 403, "reason": reason }),
            "{name}: {seen}"
        );
        assert_eq!(seen["shown"], format!("refused: {reason} (403)"), "{name}: {seen}");
        tokio::time::sleep(WOULD_HAVE_RETRIED).await; // nothing to await: the absence of retries
        let later = until(&mut page, "its state", |_| true).await;
        assert_eq!(later["statuses"], json!(["connecting", "refused"]), "{name}: {later}");
        assert_eq!(
            (later["welcomes"].as_u64(), later["reconnects"].as_u64()),
            (Some(0), Some(0)),
            "{name}: {later}"
        );
    }
}

/// Another site: a page per game server address, `/play/{addr}?room=…|matchmake=…&name=…`,
/// which does what README's "Play in the browser" shows and keeps what its client said in
/// `window.seen` (and its status, or refusal, in the page's text).
struct Site {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Site {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/play/{game}", get(page));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the site serves");
        });
        Self { addr, task }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn page(&self, game: SocketAddr, query: &str) -> String {
        format!("http://{}/play/{game}?{query}", self.addr)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Deserialize)]
struct Where {
    room: Option<String>,
    matchmake: Option<String>,
    name: String,
}

/// The page: README's snippet, the client's options from the query (as JSON literals).
async fn page(Path(game): Path<SocketAddr>, Query(at): Query<Where>) -> Html<String> {
    let place = match (at.room, at.matchmake) {
        (_, Some(game)) => json!({ "matchmake": game }),
        (room, None) => json!({ "room": room.unwrap_or_else(|| "default".into()) }),
    };
    Html(format!(
        r#"<!doctype html>
<meta charset="utf-8">
<title>another site</title>
<p id="status">loading</p>
<script type="module">
import {{ Client }} from "http://{game}/tickcast.js";
const client = new Client({{ name: {name}, ...{place} }});
const seen = {{ server: client.server, statuses: [], welcomes: 0, deltas: 0, game: null, refused: null }};
window.seen = seen; window.client = client;
const show = (text) => {{ document.getElementById("status").textContent = text; }};
client.addEventListener("status", (ev) => {{ seen.statuses.push(ev.detail); show(ev.detail); }});
client.addEventListener("welcome", (ev) => {{ seen.welcomes++; seen.game = ev.detail.schema.game; }});
client.addEventListener("frame", (ev) => {{ if (ev.detail.type === "delta") seen.deltas++; }});
client.addEventListener("refused", (ev) => {{ seen.refused = ev.detail; show(`refused: ${{ev.detail.reason}} (${{ev.detail.code}})`); }});
await client.start();
</script>
"#,
        name = json!(at.name),
    ))
}

/// What the page's client said, and what the page shows.
const SEEN: &str = r#"JSON.stringify(window.seen && { ...window.seen, shown: document.getElementById("status").textContent,
    checks: client.stats.checksumsVerified, mismatches: client.stats.checksumMismatches,
    reconnects: client.stats.reconnects })"#;

async fn until(page: &mut Page, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    page.eval_until(SEEN, what, |s| !s.is_null() && done(s)).await
}
