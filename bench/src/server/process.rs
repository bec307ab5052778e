//! The server under test as a child process: started on a free loopback port, waited for
//! until it answers, watched (alive? CPU? memory?), and always stopped.
//!
//! Stopping is SIGTERM (the server's graceful shutdown, bounded by its `--shutdown-grace`),
//! then SIGKILL if it is still there after [`STOP_PATIENCE`]. [`ServerProcess`] does this in
//! `Drop` too, so an error, a panic or ctrl-c in the measuring command never leaves a server
//! behind. (ctrl-c in a terminal also reaches the server directly: it is in our process group.)
//! Only a SIGKILL of the measuring command itself can orphan it.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::time::{self, Instant};

use crate::server::scrape::{self, Scrape};

/// How long a started server has to answer `GET /metrics`.
const START_PATIENCE: Duration = Duration::from_secs(15);
/// How long a server has to exit after SIGTERM before it gets SIGKILL.
pub const STOP_PATIENCE: Duration = Duration::from_secs(5);
/// Attempts at starting, each on a fresh port (another process may take the port we picked
/// between our check and the server's bind).
const START_ATTEMPTS: u32 = 3;

/// Why the server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// There is no server binary where we looked.
    #[error("no server binary at {0}: build it with `cargo build --release -p tickcast` (or pass --server-bin)")]
    NoBinary(PathBuf),
    /// Spawning failed.
    #[error("cannot start {bin}: {source}")]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// It exited or never answered.
    #[error("the server did not come up: {why}; its log ends with:\n{log}")]
    NotUp {
        /// What happened.
        why: String,
        /// The last lines it logged.
        log: String,
    },
}

/// A running server process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `bin` on a free loopback port with `args` (everything but `--bind`), logging at
    /// `warn` into a file in the temporary directory, and waits until it serves `/metrics`.
    pub async fn start(bin: &Path, args: &[String]) -> Result<Self, StartError> {
        Self::start_logging(bin, args, "warn").await
    }

    /// [`ServerProcess::start`], logging at `level` (`info` is the server's default level).
    pub async fn start_logging(bin: &Path, args: &[String], level: &str) -> Result<Self, StartError> {
        if !bin.is_file() {
            return Err(StartError::NoBinary(bin.into()));
        }
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(bin, args, level).await {
                Ok(server) => return Ok(server),
                Err(err @ StartError::NotUp { .. }) => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        // The loop ran at least once and only `NotUp` continues it.
        Err(last.expect("at least one attempt"))
    }

    async fn start_once(bin: &Path, args: &[String], level: &str) -> Result<Self, StartError> {
        let spawn_err = |source| StartError::Spawn {
            bin: bin.into(),
            source,
        };
        let addr = free_port().map_err(spawn_err)?;
        let log = std::env::temp_dir().join(format!("tickcast-under-test-{}.log", addr.port()));
        let out = File::create(&log).map_err(spawn_err)?;
        let err = out.try_clone().map_err(spawn_err)?;
        let child = Command::new(bin)
            .arg("--bind")
            .arg(addr.to_string())
            .args(args)
            .env("RUST_LOG", level)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(spawn_err)?;
        let mut server = Self {
            child: Some(child),
            addr,
            log,
        };
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            if let Some(status) = server.exited() {
                return Err(server.not_up(format!("it exited with {status}")));
            }
            if scrape::fetch(addr).await.is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(server.not_up(format!("no answer on {addr} within {START_PATIENCE:?}")));
            }
            time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its player URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// A scrape of its `/metrics`.
    pub async fn metrics(&self) -> io::Result<Scrape> {
        scrape::fetch(self.addr).await
    }

    /// Everything it has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops it (SIGTERM, then SIGKILL after [`STOP_PATIENCE`]) and returns how it exited.
    pub async fn stop(mut self) -> io::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return Err(io::Error::other("already stopped"));
        };
        terminate(&child);
        let deadline = Instant::now() + STOP_PATIENCE;
        loop {
            if let Some(status) = child.try_wait()? {
                if status.success() {
                    let _ = std::fs::remove_file(&self.log);
                }
                return Ok(status);
            }
            if Instant::now() > deadline {
                child.kill()?;
                return child.wait();
            }
            time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn not_up(&mut self, why: String) -> StartError {
        let log = self.log_tail();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        StartError::NotUp { why, log }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        terminate(&child);
        // Blocking here is deliberate: this only runs when a measurement (or a test) ends
        // without stopping its server. As `stop`, it keeps the log of a server that failed.
        let deadline = std::time::Instant::now() + STOP_PATIENCE;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                if status.success() {
                    let _ = std::fs::remove_file(&self.log);
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends SIGTERM, unless the process is already gone.
fn terminate(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The release server binary beside this one (`target/release/tickcast` when client-demo is
/// itself a release build), else `target/release/tickcast` under the current directory.
pub fn default_server_bin() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("tickcast")))
        .filter(|p| p.is_file() && p.to_string_lossy().contains("release"));
    beside.unwrap_or_else(|| PathBuf::from("target/release/tickcast"))
}
