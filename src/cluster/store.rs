//! Redis, as the cluster uses it: one shared connection that reconnects by itself, dedicated
//! connections for the blocking reads, and a time limit on every operation.
//!
//! Every failure and timeout is counted (`tickcast_cluster_redis_errors_total`) and returned;
//! nothing here retries on its own, so each caller decides what a failure means (a heartbeat
//! tries again next second, a request gets 503, a stream reader backs off).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline};

use crate::metrics::Metrics;

/// The longest any single Redis operation may take.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a Redis operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// Redis answered with an error, or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No answer within [`OP_TIMEOUT`].
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// The cluster's Redis.
#[derive(Clone)]
pub(crate) struct Store {
    client: redis::Client,
    shared: ConnectionManager,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to the Redis at `url` and checks that it answers.
    pub(crate) async fn connect(url: &str, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            // Reconnecting costs a connection attempt: a few a second is cheap, and the node is
            // back soon after Redis is.
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_millis(250));
        let shared = within(ConnectionManager::new_with_config(client.clone(), config)).await??;
        let store = Self {
            client,
            shared,
            metrics,
        };
        let _: String = store.query(&redis::cmd("PING")).await?;
        Ok(store)
    }

    /// Runs `cmd` on the shared connection.
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        let mut con = self.shared.clone();
        self.counted(within(cmd.query_async(&mut con)).await)
    }

    /// Runs `pipe` (one round trip) on the shared connection.
    pub(crate) async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, StoreError> {
        let mut con = self.shared.clone();
        self.counted(within(pipe.query_async(&mut con)).await)
    }

    /// A connection of its own, for blocking reads (which would stall every other user of the
    /// shared one). Its commands time out after `block` plus [`OP_TIMEOUT`].
    pub(crate) async fn dedicated(&self, block: Duration) -> Result<Dedicated, StoreError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(block + OP_TIMEOUT));
        let con = self.counted(within(self.client.get_multiplexed_async_connection_with_config(&config)).await)?;
        Ok(Dedicated {
            con,
            limit: block + OP_TIMEOUT,
            metrics: self.metrics.clone(),
        })
    }

    fn counted<T>(&self, result: Result<Result<T, redis::RedisError>, StoreError>) -> Result<T, StoreError> {
        let result = result.and_then(|r| r.map_err(StoreError::from));
        if result.is_err() {
            self.metrics.cluster_errors.inc();
        }
        result
    }
}

/// A dedicated connection (see [`Store::dedicated`]).
pub(crate) struct Dedicated {
    con: MultiplexedConnection,
    limit: Duration,
    metrics: Arc<Metrics>,
}

impl Dedicated {
    /// Runs `cmd`, which may block on the server for the connection's `block`.
    pub(crate) async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, StoreError> {
        let result = match tokio::time::timeout(self.limit, cmd.query_async(&mut self.con)).await {
            Err(_) => Err(StoreError::Timeout(self.limit)),
            Ok(result) => result.map_err(StoreError::from),
        };
        if result.is_err() {
            self.metrics.cluster_errors.inc();
        }
        result
    }
}

/// `f`, or a timeout error after [`OP_TIMEOUT`].
async fn within<T>(f: impl Future<Output = T>) -> Result<T, StoreError> {
    tokio::time::timeout(OP_TIMEOUT, f)
        .await
        .map_err(|_| StoreError::Timeout(OP_TIMEOUT))
}
