//! The node's heartbeat: every [`REFRESH`] (or at once, when a room opens or ends) it writes
//! its record and its rooms' to the directory, and sweeps the nodes that died; while Redis is
//! away it tries every 250 ms, so it is back in the directory soon after Redis is.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::directory::{self, EXPIRY, REFRESH, keys};
use super::store::{Store, StoreError};
use super::{Cluster, replica};
use crate::room::{Room, RoomId};

impl Cluster {
    /// Puts a room of this node in the directory and starts copying its spectator events to
    /// its stream (once; the heartbeat retries a room whose first registration failed).
    pub(crate) async fn adopt(&self, room: &Arc<Room>) {
        if !room.feed().is_replicated() {
            let keep = self.tuning.spectator_ring(room.settings().tick_hz) + 64;
            let writer = replica::start(
                self.store.clone(),
                self.node.clone(),
                room.id().to_string(),
                room.feed(),
                room.settings().tick_hz,
                keep,
                self.metrics.clone(),
            );
            self.tasks.spawn(writer);
        }
        let mut pipe = redis::pipe();
        pipe.cmd("SADD")
            .arg(keys::node_rooms(&self.node))
            .arg(room.id().as_str())
            .ignore();
        self.set_room(&mut pipe, room);
        let _ = self.store.pipe::<()>(&pipe).await;
        self.beat.notify_one();
    }

    /// Adds "SET room:{id} <record> PX <expiry>" to `pipe`.
    fn set_room(&self, pipe: &mut redis::Pipeline, room: &Room) {
        let json = serde_json::to_string(&self.room_record(room)).expect("records serialize");
        pipe.cmd("SET")
            .arg(keys::room(room.id().as_str()))
            .arg(json)
            .arg("PX")
            .arg(EXPIRY.as_millis() as u64)
            .ignore();
    }

    /// Refreshes this node's records (and its rooms'), then sweeps nodes that died.
    pub(super) async fn heartbeat(&self) -> Result<(), StoreError> {
        let rooms = self.rooms.all();
        for room in rooms.iter().filter(|r| !r.feed().is_replicated()) {
            // Opened while Redis was away, or by a path that did not adopt it.
            self.adopt(room).await;
        }
        let record = serde_json::to_string(&self.record()).expect("records serialize");
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(keys::node(&self.node))
            .arg(record)
            .arg("PX")
            .arg(EXPIRY.as_millis() as u64)
            .ignore()
            .cmd("SADD")
            .arg(keys::NODES)
            .arg(&self.node)
            .ignore();
        for room in &rooms {
            self.set_room(&mut pipe, room);
            pipe.cmd("SADD")
                .arg(keys::node_rooms(&self.node))
                .arg(room.id().as_str())
                .ignore();
        }
        self.store.pipe::<()>(&pipe).await?;
        self.sweep().await
    }

    /// Every [`REFRESH`] (or at once when woken), until the server stops.
    /// While Redis is away, it tries every [`RETRY`] instead, so the node registers again
    /// within a fraction of a second of Redis coming back.
    pub(super) async fn heartbeats(self: Arc<Self>) {
        const RETRY: Duration = Duration::from_millis(250);
        let mut every = tokio::time::interval(REFRESH);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = every.tick(), if !failing => {}
                () = tokio::time::sleep(RETRY), if failing => {}
                () = self.beat.notified() => {}
                () = self.shutdown.cancelled() => return,
            }
            let beat = self.heartbeat().await;
            if beat.is_ok() {
                self.forget_placed_elsewhere().await;
            }
            match (beat, failing) {
                (Err(err), false) => {
                    failing = true;
                    tracing::warn!(%err, "cluster heartbeat failed: this node's rooms carry on, and it re-registers when Redis is back");
                }
                (Ok(()), true) => {
                    failing = false;
                    tracing::info!(node = %self.node, "cluster heartbeat restored");
                }
                _ => {}
            }
        }
    }

    /// Gives back the budgets of anonymous rooms this node placed on others once those rooms
    /// have left the directory.
    async fn forget_placed_elsewhere(&self) {
        let placed: Vec<RoomId> = self.lock_placed().keys().cloned().collect();
        if placed.is_empty() {
            return;
        }
        let keys: Vec<String> = placed.iter().map(|id| keys::room(id.as_str())).collect();
        let Ok(records) = self
            .store
            .query::<Vec<Option<String>>>(redis::cmd("MGET").arg(&keys))
            .await
        else {
            return;
        };
        let mut budgets = self.lock_placed();
        for (id, record) in placed.iter().zip(records) {
            if record.is_none() {
                budgets.remove(id);
            }
        }
    }

    /// Ends the streams of dead nodes' rooms and forgets those nodes (one node per dead node
    /// does it, under a lock).
    async fn sweep(&self) -> Result<(), StoreError> {
        let ids: Vec<String> = self.store.query(redis::cmd("SMEMBERS").arg(keys::NODES)).await?;
        let records = directory::node_records(&self.store, &ids).await?;
        for (dead, _) in ids
            .iter()
            .zip(&records)
            .filter(|(id, r)| r.is_none() && **id != self.node)
        {
            let locked: Option<String> = self
                .store
                .query(
                    redis::cmd("SET")
                        .arg(keys::sweep(dead))
                        .arg(&self.node)
                        .arg("NX")
                        .arg("PX")
                        .arg(10_000),
                )
                .await?;
            if locked.is_none() {
                continue;
            }
            let rooms: Vec<String> = self
                .store
                .query(redis::cmd("SMEMBERS").arg(keys::node_rooms(dead)))
                .await?;
            let mut pipe = redis::pipe();
            for room in &rooms {
                // Followers end their spectators' streams with this.
                pipe.cmd("XADD")
                    .arg(keys::events(room))
                    .arg("*")
                    .arg("k")
                    .arg("c")
                    .arg("n")
                    .arg("closed")
                    .arg("j")
                    .arg(r#"{"reason":"room lost: its node stopped"}"#)
                    .ignore();
            }
            pipe.cmd("DEL")
                .arg(keys::node_rooms(dead))
                .ignore()
                .cmd("SREM")
                .arg(keys::NODES)
                .arg(dead)
                .ignore();
            self.store.pipe::<()>(&pipe).await?;
            tracing::warn!(node = %dead, rooms = rooms.len(), "a node of the cluster died: its rooms are gone");
        }
        Ok(())
    }
}

/// A room of `node` ended: it leaves the directory (its stream already has its last entry).
pub(crate) async fn forget_room(store: &Store, node: &str, room: &str) {
    let mut pipe = redis::pipe();
    pipe.cmd("DEL")
        .arg(keys::room(room))
        .ignore()
        .cmd("SREM")
        .arg(keys::node_rooms(node))
        .arg(room)
        .ignore();
    // If this fails the record expires by itself.
    let _ = store.pipe::<()>(&pipe).await;
}
