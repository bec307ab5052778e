//! GET /metrics: Prometheus text from a running server, reflecting what happened.

mod common;

use common::{TestServer, until_snapshot, until_tick};

fn value(text: &str, series: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(series))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn metrics_report_players_traffic_and_refusals() {
    let server = TestServer::at(30).await;
    let mut player = server.player("m").await;
    until_snapshot(&mut player).await;
    player.send_move(10, 0).await.unwrap();
    let tick = player.world().unwrap().tick();
    until_tick(&mut player, tick + 5).await;
    let http = reqwest::Client::new();
    // A refused upgrade from a foreign page, to see a close reason counted.
    let refused = http
        .get(server.http_url("/ws"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let res = http.get(server.http_url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = res.text().await.unwrap();
    assert_eq!(value(&text, "tickcast_players "), 1.0);
    assert!(value(&text, "tickcast_ticks_total ") >= 5.0);
    assert!(value(&text, "tickcast_tick_work_seconds_count ") >= 5.0);
    assert_eq!(value(&text, "tickcast_inputs_applied_total "), 1.0);
    assert!(value(&text, "tickcast_messages_sent_total{transport=\"Websocket\"} ") >= 7.0);
    assert!(value(&text, "tickcast_bytes_received_total{transport=\"Websocket\"} ") > 0.0);
    assert_eq!(value(&text, "tickcast_closes_total{reason=\"Origin\"} "), 1.0);
    assert!(text.trim_end().ends_with("# EOF"));
}
