//! Part 4 of `cluster`: Redis killed and started again, empty, under the running nodes; how
//! soon after it listens again each node is back in the directory (its record written anew
//! by its heartbeat, which tries every 250 ms while Redis is away).

use std::io;
use std::time::Duration;

use tokio::time;

use super::Spread;
use super::redis::{RedisConn, RedisProcess};

/// How long Redis stays down each time: long enough for every node to notice.
pub const DOWN: Duration = Duration::from_secs(1);
/// How long a node has to be back before the measurement gives up on it.
const PATIENCE: Duration = Duration::from_secs(10);
/// How often the directory is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(2);

/// Restarts `redis` `times` times; for each restart and each of `nodes`, the time from Redis
/// listening again to the node's record being in it.
pub async fn reregistration(redis: &mut RedisProcess, nodes: &[&str], times: usize) -> io::Result<Spread> {
    let mut samples = Vec::with_capacity(times * nodes.len());
    for _ in 0..times {
        let up = redis.restart(DOWN).await?;
        let mut conn = RedisConn::connect(redis.addr()).await?;
        let mut waiting: Vec<&str> = nodes.to_vec();
        while !waiting.is_empty() {
            if up.elapsed() > PATIENCE {
                return Err(io::Error::other(format!(
                    "{waiting:?} not back in the directory {PATIENCE:?} after Redis restarted"
                )));
            }
            let mut still = Vec::with_capacity(waiting.len());
            for node in waiting {
                if conn.exists(&format!("tickcast:node:{node}")).await? {
                    samples.push(up.elapsed());
                } else {
                    still.push(node);
                }
            }
            waiting = still;
            time::sleep(LOOK_EVERY).await;
        }
        // Let the nodes settle (rooms, streams) before the next outage.
        time::sleep(Duration::from_secs(2)).await;
    }
    Ok(Spread::of(samples))
}
