//! The JavaScript client's own tests (`client-js/test/`, Node's test runner) against this build's
//! server binary: PROTOCOL.md's vectors, the declarations in `client-js/types/` against the
//! modules' exports, playing from Node (moves seen, checksums verified, matchmaking, a server
//! not up yet), and refusals read as the `refused` event; then, when `npm install` has brought
//! TypeScript into `client-js/node_modules`, the type check of `client-js/examples/`.
//!
//! Needs Node 20 or later (`apt-get install nodejs npm`; `.ci/run` installs them). Without it
//! the test says so and passes, unless `TICKCAST_REQUIRE_NODE` is set, as CI sets it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Far more than the tests take (about 10 s); only reached when something hangs.
const PATIENCE: Duration = Duration::from_secs(120);

#[test]
fn the_javascript_client_passes_its_node_tests_against_this_server() {
    let Some(node) = node_or_skip() else { return };
    let dir = client_js();
    // Node 20's runner searches directories given to it, later ones take globs: the files
    // themselves suit both.
    let mut files: Vec<String> = std::fs::read_dir(dir.join("test"))
        .expect("client-js/test")
        .map(|entry| entry.expect("a test file").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".test.js"))
        .map(|name| format!("test/{name}"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "the tests in client-js/test: {files:?}");
    let mut command = Command::new(&node);
    command
        .args(["--test", "--experimental-websocket"])
        .args(&files)
        .current_dir(&dir)
        .env("TICKCAST_BIN", env!("CARGO_BIN_EXE_tickcast"));
    let output = run(command, "node --test");
    let report = text(&output);
    assert!(output.status.success(), "node --test failed:\n{report}");
    // Every test ran: none was skipped for want of the server.
    assert!(report.contains("\n# fail 0"), "{report}");
    assert!(!report.contains("# SKIP"), "a test skipped:\n{report}");
    eprintln!("{}", summary(&report));
}

#[test]
fn the_typescript_declarations_check_against_the_typed_example() {
    let Some(node) = node_or_skip() else { return };
    let dir = client_js();
    let tsc = dir.join("node_modules/typescript/bin/tsc");
    if !tsc.exists() {
        eprintln!("skipped: no TypeScript in client-js/node_modules (run `npm install` in client-js/)");
        return;
    }
    let mut command = Command::new(&node);
    command
        .arg(&tsc)
        .args(["--noEmit", "-p", "examples/"])
        .current_dir(&dir);
    let output = run(command, "tsc");
    assert!(
        output.status.success(),
        "tsc --noEmit -p examples/ failed:\n{}",
        text(&output)
    );
}

fn client_js() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("client-js")
}

/// Node, if it is installed and recent enough (20: `--experimental-websocket`); else `None`
/// (and the test passes) unless CI requires it.
fn node_or_skip() -> Option<PathBuf> {
    let required = std::env::var_os("TICKCAST_REQUIRE_NODE").is_some();
    let version = Command::new("node").arg("--version").output();
    let major = version
        .as_ref()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout);
            text.trim()
                .trim_start_matches('v')
                .split('.')
                .next()?
                .parse::<u32>()
                .ok()
        });
    match major {
        Some(major) if major >= 20 => Some(PathBuf::from("node")),
        found => {
            let why = match found {
                Some(major) => format!("node {major} is too old: the client needs 20 or later"),
                None => "no node found (apt-get install nodejs npm)".to_owned(),
            };
            assert!(!required, "TICKCAST_REQUIRE_NODE set but {why}");
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// Runs `command` to its end, its output captured, killing it past [`PATIENCE`].
fn run(mut command: Command, what: &str) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{what} did not start: {err}"));
    // Both pipes read on threads of their own: a full pipe would stall the child.
    let stdout = drain(&mut child, true);
    let stderr = drain(&mut child, false);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            let (out, err) = (stdout.join().unwrap(), stderr.join().unwrap());
            panic!(
                "{what} still running after {PATIENCE:?}, killed:\n{}{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        // std cannot wait for a child with a deadline: polled.
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn drain(child: &mut Child, stdout: bool) -> std::thread::JoinHandle<Vec<u8>> {
    let mut pipe: Box<dyn Read + Send> = match stdout {
        true => Box::new(child.stdout.take().expect("piped stdout")),
        false => Box::new(child.stderr.take().expect("piped stderr")),
    };
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The runner's closing counts (`# tests 18`, `# pass 18`, …).
fn summary(report: &str) -> String {
    report
        .lines()
        .filter(|l| l.starts_with("# ") && l.split_whitespace().count() == 3)
        .collect::<Vec<_>>()
        .join(", ")
}
