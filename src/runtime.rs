//! What the server's long-lived tasks run under: the metrics they count into, the tracker
//! shutdown waits on, and the token that ends them. One value, handed to the parts that start
//! tasks of their own (the rooms, the cluster).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

/// The server's metrics, task tracker and shutdown token.
#[derive(Debug, Clone, Default)]
pub(crate) struct Runtime {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) tasks: TaskTracker,
    pub(crate) shutdown: CancellationToken,
}
