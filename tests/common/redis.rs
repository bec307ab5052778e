//! A real `redis-server` for the cluster tests: started on a free loopback port, in a
//! temporary directory, with no persistence; stopped when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    binary: PathBuf,
}

/// The redis-server to test with, or `None` (and the test passes) when there is none and CI
/// does not require one (`TICKCAST_REQUIRE_REDIS`).
fn binary() -> Option<PathBuf> {
    let found = std::env::var_os("TICKCAST_REDIS_SERVER")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/bin/redis-server", "/usr/local/bin/redis-server"].map(PathBuf::from))
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("TICKCAST_REQUIRE_REDIS").is_none(),
            "TICKCAST_REQUIRE_REDIS set but no redis-server"
        );
        eprintln!("skipped: no redis-server found (apt-get install redis-server)");
    }
    found
}

impl RedisServer {
    /// Starts one, or returns `None` when this machine has no redis-server (see [`binary`]).
    pub fn start() -> Option<Self> {
        let binary = binary()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("tickcast-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis");
        let mut redis = Self {
            child: None,
            port,
            dir,
            binary,
        };
        redis.launch();
        Some(redis)
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills it (its data goes with it: there is no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn launch(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(Instant::now() < deadline, "redis-server did not start on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `INFO <section>` reply, as text.
    pub fn info(&self, section: &str) -> String {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port)).expect("redis answers");
        tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        tcp.write_all(format!("INFO {section}\r\n").as_bytes()).unwrap();
        // A bulk string: `$<len>\r\n<bytes>\r\n`.
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = tcp.read(&mut chunk).expect("an INFO reply");
            reply.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&reply);
            if let Some((len, rest)) = text.strip_prefix('$').and_then(|t| t.split_once("\r\n"))
                && rest.len() >= len.parse::<usize>().unwrap() + 2
            {
                return rest.to_owned();
            }
        }
    }

    /// A number from `INFO <section>`: `key:value`, or in `key:a=1,b=2` form `key` then `field`
    /// (`stat("commandstats", "cmdstat_get", "calls")`). 0 when absent.
    pub fn stat(&self, section: &str, key: &str, field: Option<&str>) -> u64 {
        let info = self.info(section);
        let Some(value) = info.lines().find_map(|l| l.strip_prefix(&format!("{key}:"))) else {
            return 0;
        };
        match field {
            None => value.trim().parse().unwrap_or(0),
            Some(field) => value
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        }
    }

    /// Whether it answers PING.
    fn answers(&self) -> bool {
        let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0; 7];
        tcp.write_all(b"PING\r\n").is_ok() && tcp.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
