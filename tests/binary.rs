//! The shipped binary: it prints where to connect and stops cleanly on SIGTERM.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{until_snapshot, within};
use tickcast::client::{Client, ClientError};

#[tokio::test]
async fn the_binary_logs_its_urls_and_closes_players_with_1001_on_sigterm() {
    let child = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["--bind", "127.0.0.1:0", "--tick-hz", "20"])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tickcast");
    let mut child = KillOnDrop(Some(child));
    let stdout = child.get().stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("ws://"))
        .expect("a line with the URL");
    let start = line.find("ws://").unwrap();
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',')
        .collect();
    assert!(url.ends_with("/ws"), "{line}");
    assert!(line.contains("rooms at http://127.0.0.1:"), "{line}");
    assert!(line.contains("/rooms/default/"), "the default room's page: {line}");

    let mut player = within(Client::connect(&url, "sig"))
        .await
        .expect("connect to the binary");
    until_snapshot(&mut player).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.get().id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let err = loop {
        if let Err(err) = within(player.recv()).await {
            break err;
        }
    };
    assert!(matches!(err, ClientError::Closed { code: 1001, .. }), "{err}");
    let mut child = child.0.take().unwrap();
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status {exit}");
    // Drain the rest so the pipe does not hold the child; the last line says it stopped.
    assert!(lines.map_while(Result::ok).any(|l| l.contains("stopped")));
}

/// The server process, killed if the test fails before it stops it.
struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    fn get(&mut self) -> &mut std::process::Child {
        self.0.as_mut().unwrap()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
