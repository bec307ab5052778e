//! A `redis-server` of our own for the cluster measurements, and what it says of itself.
//!
//! [`RedisProcess`] starts one on a free loopback port (its data in a temporary directory, no
//! persistence) and kills it when dropped, so no measurement leaves one behind; it can be
//! restarted on the same port, empty, as after a crash. [`RedisConn`] reads `INFO` and checks
//! keys over one connection kept open for the whole measurement: a connection per reading
//! would itself show up in the counters it reads (`connected_clients`,
//! `total_connections_received`).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{self, Instant};

use crate::server::process::free_port;

/// How long Redis has to listen after it is started.
const START_PATIENCE: Duration = Duration::from_secs(10);
/// How long one `INFO` (or `EXISTS`) may take.
const INFO_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest `INFO` answer read (a full one is a few KiB).
const MAX_INFO: usize = 1 << 20;

/// A redis-server of our own, killed when dropped.
#[derive(Debug)]
pub struct RedisProcess {
    child: Child,
    bin: PathBuf,
    addr: SocketAddr,
    dir: PathBuf,
}

impl RedisProcess {
    /// Starts `bin` on a free loopback port and waits until it listens. A missing binary is
    /// an error of kind [`io::ErrorKind::NotFound`], so a caller can skip what needs it.
    pub async fn start(bin: &Path) -> io::Result<Self> {
        let addr = free_port()?;
        let dir = std::env::temp_dir().join(format!("tickcast-redis-{}", addr.port()));
        std::fs::create_dir_all(&dir)?;
        let child = spawn(bin, addr, &dir).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
        })?;
        let redis = Self {
            child,
            bin: bin.to_owned(),
            addr,
            dir,
        };
        redis.listening().await?;
        Ok(redis)
    }

    /// Kills it (SIGKILL: no goodbye to its clients), waits `down`, then starts it again on
    /// the same port, empty. Returns when it listens again.
    pub async fn restart(&mut self, down: Duration) -> io::Result<Instant> {
        self.child.kill()?;
        self.child.wait()?;
        time::sleep(down).await;
        self.child = spawn(&self.bin, self.addr, &self.dir)?;
        self.listening().await?;
        Ok(Instant::now())
    }

    /// Waits until it accepts connections.
    async fn listening(&self) -> io::Result<()> {
        let deadline = Instant::now() + START_PATIENCE;
        while TcpStream::connect(self.addr).await.is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!("redis-server not listening on {}", self.addr)));
            }
            time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its URL for `--redis`.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts `bin` on `addr`, its files in `dir`, persisting nothing.
fn spawn(bin: &Path, addr: SocketAddr, dir: &Path) -> io::Result<Child> {
    Command::new(bin)
        .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{}: {e} (apt-get install redis-server)", bin.display()),
            )
        })
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A number `INFO` reports: its section, its field, and for a `cmdstat_*` line the key within
/// it (`calls`).
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    /// `INFO <section>`.
    pub section: &'static str,
    /// The line's field.
    pub field: &'static str,
    /// The key within the value (`calls=12,usec=40,...`), if it has several.
    pub key: Option<&'static str>,
}

impl Stat {
    /// Clients connected now (this reader included).
    pub const CLIENTS: Stat = Stat {
        section: "clients",
        field: "connected_clients",
        key: None,
    };
    /// Connections accepted since Redis started.
    pub const CONNECTIONS: Stat = Stat {
        section: "stats",
        field: "total_connections_received",
        key: None,
    };
    /// `GET` commands run since Redis started.
    pub const GETS: Stat = Stat {
        section: "commandstats",
        field: "cmdstat_get",
        key: Some("calls"),
    };
}

/// One connection to Redis that reads `INFO` and checks keys.
#[derive(Debug)]
pub struct RedisConn {
    stream: BufReader<TcpStream>,
}

impl RedisConn {
    /// Connects to the Redis at `addr`.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        Ok(Self {
            stream: BufReader::new(tcp),
        })
    }

    /// `INFO <section>` as `field` -> value (`connected_clients` -> `3`; for `commandstats`,
    /// `cmdstat_get` -> `calls=5,usec=...`).
    pub async fn info(&mut self, section: &str) -> io::Result<BTreeMap<String, String>> {
        time::timeout(INFO_TIMEOUT, self.info_now(section))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no INFO answer within 5 s"))?
    }

    /// `stat` now; 0 when `INFO` has no line for it (a command never called).
    pub async fn number(&mut self, stat: Stat) -> io::Result<u64> {
        let Stat { section, field, key } = stat;
        let info = self.info(section).await?;
        let Some(value) = info.get(field) else { return Ok(0) };
        let value = match key {
            Some(key) => value
                .split(',')
                .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_default(),
            None => value.as_str(),
        };
        value
            .trim()
            .parse()
            .map_err(|_| io::Error::other(format!("INFO {section}: {field} is {value:?}")))
    }

    /// Whether `key` exists now.
    pub async fn exists(&mut self, key: &str) -> io::Result<bool> {
        time::timeout(INFO_TIMEOUT, async {
            // Keys are sent as one inline argument: ours hold no spaces or line ends.
            let stream = self.stream.get_mut();
            stream.write_all(format!("EXISTS {key}\r\n").as_bytes()).await?;
            // The answer is an integer: `:<n>\r\n`.
            let mut line = String::new();
            (&mut self.stream).take(64).read_line(&mut line).await?;
            match line.trim_end() {
                ":0" => Ok(false),
                ":1" => Ok(true),
                other => Err(io::Error::other(format!("EXISTS answered {other:?}"))),
            }
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no EXISTS answer within 5 s"))?
    }

    async fn info_now(&mut self, section: &str) -> io::Result<BTreeMap<String, String>> {
        let stream = self.stream.get_mut();
        stream.write_all(format!("INFO {section}\r\n").as_bytes()).await?;
        // The answer is a bulk string: `$<length>\r\n<text>\r\n`.
        let mut line = String::new();
        (&mut self.stream).take(64).read_line(&mut line).await?;
        let length: usize = line
            .strip_prefix('$')
            .and_then(|n| n.trim().parse().ok())
            .filter(|n| *n <= MAX_INFO)
            .ok_or_else(|| io::Error::other(format!("INFO answered {:?}", line.trim())))?;
        let mut text = vec![0; length + 2];
        self.stream.read_exact(&mut text).await?;
        Ok(String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn info_fields_are_read_as_numbers_over_one_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answers = [
            "# Clients\r\nconnected_clients:3\r\nblocked_clients:0\r\n",
            "# Commandstats\r\ncmdstat_get:calls=12,usec=40,usec_per_call=3.33\r\n",
        ];
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tcp = BufReader::new(tcp);
            for text in answers {
                let mut command = String::new();
                tcp.read_line(&mut command).await.unwrap();
                assert!(command.starts_with("INFO "), "{command:?}");
                let reply = format!("${}\r\n{text}\r\n", text.len());
                tcp.get_mut().write_all(reply.as_bytes()).await.unwrap();
            }
        });
        let mut info = RedisConn::connect(addr).await.unwrap();
        assert_eq!(info.number(Stat::CLIENTS).await.unwrap(), 3);
        assert_eq!(info.number(Stat::GETS).await.unwrap(), 12);
        server.await.unwrap();
    }
}
