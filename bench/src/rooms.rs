//! `rooms`: what a room costs when nobody plays in it, and whether rooms that end give back
//! everything they held.
//!
//! The run, against one fresh release server (no default room, an admin secret, loopback):
//! 1. **Empty rooms**: create N rooms through the API, wait, and read the server's RSS and CPU
//!    time: (RSS after - RSS before) / N is what an empty room holds, and the CPU over the
//!    following seconds is what empty rooms cost while they wait (a room without players
//!    does not tick).
//! 2. **Churn**: close them, then create and close M rooms one after the other, reading RSS
//!    every tenth of the way: the RSS must come back to a plateau, not grow with M.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tickcast::client::rooms_api::{self, ApiError, NewRoom};
use tokio::time::{self, Instant};

use crate::server::process::{ServerProcess, StartError};
use crate::server::procinfo;

/// The admin secret of the server this command starts (it listens on loopback only).
const ADMIN: &str = "rooms-harness";

/// What `rooms` does.
#[derive(Debug, Clone)]
pub struct RoomsConfig {
    /// The server binary.
    pub server_bin: PathBuf,
    /// Empty rooms to create at once.
    pub empty: usize,
    /// Rooms to create and close, one after the other.
    pub churn: usize,
    /// How long the empty rooms are watched for CPU.
    pub idle_window: Duration,
}

/// Why `rooms` could not run.
#[derive(Debug, thiserror::Error)]
pub enum RoomsError {
    /// The server would not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// An API call failed.
    #[error("rooms API: {0}")]
    Api(#[from] ApiError),
    /// Reading /proc failed.
    #[error("reading the server's /proc: {0}")]
    Proc(#[from] io::Error),
}

/// What `rooms` measured.
#[derive(Debug, Clone, Serialize)]
pub struct RoomsReport {
    /// Empty rooms created.
    pub empty: usize,
    /// RSS before and with them, KiB.
    pub rss_before_kib: u64,
    /// RSS with the empty rooms open, KiB.
    pub rss_empty_kib: u64,
    /// (with - before) / rooms, KiB.
    pub kib_per_empty_room: f64,
    /// Server CPU seconds per second while the empty rooms waited.
    pub idle_cpu_per_sec: f64,
    /// Rooms created and closed in the churn.
    pub churned: usize,
    /// RSS every tenth of the churn, KiB (the first before it).
    pub churn_rss_kib: Vec<u64>,
    /// Churn time per room created and closed, milliseconds.
    pub ms_per_churned_room: f64,
    /// RSS growth over the second half of the churn, percent.
    pub churn_growth_second_half_pct: f64,
}

/// Runs both parts; `log` gets a line per stage.
pub async fn run(config: &RoomsConfig, mut log: impl FnMut(&str)) -> Result<RoomsReport, RoomsError> {
    let args = [
        "--no-default-room".into(),
        format!("--admin-secret={ADMIN}"),
        format!("--max-rooms={}", config.empty.max(1)),
        "--room-idle=10m".into(),
    ];
    let server = ServerProcess::start(&config.server_bin, &args).await?;
    let (pid, base) = (server.pid(), format!("http://{}", server.addr()));
    let room = NewRoom {
        game: "arena".into(),
        ..NewRoom::default()
    };
    time::sleep(Duration::from_secs(1)).await;
    let rss_before = procinfo::memory(pid)?.rss_kib;

    log(&format!("creating {} empty rooms", config.empty));
    let mut ids = Vec::with_capacity(config.empty);
    for _ in 0..config.empty {
        ids.push(rooms_api::create_room(&base, &room, Some(ADMIN)).await?.room.summary.id);
    }
    time::sleep(Duration::from_secs(2)).await;
    let rss_empty = procinfo::memory(pid)?.rss_kib;
    log(&format!("watching them for {:?}", config.idle_window));
    let (cpu0, t0) = (procinfo::cpu_time(pid)?, Instant::now());
    time::sleep(config.idle_window).await;
    let idle_cpu = (procinfo::cpu_time(pid)?.saturating_sub(cpu0)).as_secs_f64() / t0.elapsed().as_secs_f64();
    for id in &ids {
        rooms_api::close_room(&base, id.as_str(), ADMIN).await?;
    }

    log(&format!("creating and closing {} rooms", config.churn));
    let tenth = (config.churn / 10).max(1);
    let mut churn_rss = vec![procinfo::memory(pid)?.rss_kib];
    let started = Instant::now();
    for n in 1..=config.churn {
        let created = rooms_api::create_room(&base, &room, Some(ADMIN)).await?;
        rooms_api::close_room(&base, created.room.summary.id.as_str(), ADMIN).await?;
        if n % tenth == 0 {
            churn_rss.push(procinfo::memory(pid)?.rss_kib);
            log(&format!("  {n} rooms: RSS {} KiB", churn_rss.last().unwrap_or(&0)));
        }
    }
    let churn_secs = started.elapsed().as_secs_f64();
    let _ = server.stop().await;
    let half = churn_rss[churn_rss.len() / 2] as f64;
    let last = *churn_rss.last().unwrap_or(&0) as f64;
    Ok(RoomsReport {
        empty: config.empty,
        rss_before_kib: rss_before,
        rss_empty_kib: rss_empty,
        kib_per_empty_room: rss_empty.saturating_sub(rss_before) as f64 / config.empty.max(1) as f64,
        idle_cpu_per_sec: idle_cpu,
        churned: config.churn,
        churn_rss_kib: churn_rss,
        ms_per_churned_room: churn_secs * 1e3 / config.churn.max(1) as f64,
        churn_growth_second_half_pct: if half > 0.0 { (last - half) / half * 100.0 } else { 0.0 },
    })
}

impl std::fmt::Display for RoomsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "empty rooms   {} rooms: RSS {:.1} -> {:.1} MiB, {:.1} KiB per room; server CPU {:.4} s/s while they waited",
            self.empty,
            self.rss_before_kib as f64 / 1024.0,
            self.rss_empty_kib as f64 / 1024.0,
            self.kib_per_empty_room,
            self.idle_cpu_per_sec
        )?;
        let series: Vec<String> = self
            .churn_rss_kib
            .iter()
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect();
        writeln!(
            f,
            "churn         {} rooms created and closed, {:.2} ms each; RSS MiB every tenth: {}",
            self.churned,
            self.ms_per_churned_room,
            series.join(" ")
        )?;
        writeln!(
            f,
            "              RSS grew {:+.1} % over the second half",
            self.churn_growth_second_half_pct
        )
    }
}
