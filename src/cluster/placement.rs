//! Placement: a new room goes to the least-loaded live node that takes rooms (this one
//! included), asked through Redis; and the other asks one node makes of another's rooms:
//! hold a place, close.

use tokio::time::Instant;

use super::directory::{self, NodeRecord, RoomRecord};
use super::requests::{Answer, Ask, AskError};
use super::{Cluster, Placed, Refusal, instant_of};
use crate::access::budgets::HoldClaim;
use crate::protocol::unix_micros;
use crate::room::{Opener, Settings};

impl Cluster {
    /// Opens a room with `settings` for `opener` on the least-loaded live node that takes rooms
    /// (this one included), holding a place in it for `hold` if given; returns the room and
    /// until when the place is held. A node that does not answer in time is passed over for
    /// the next one, once.
    pub(crate) async fn place(
        &self,
        settings: Settings,
        hold: Option<(&str, HoldClaim)>,
        opener: Opener,
    ) -> Result<(Placed, Option<Instant>), Refusal> {
        let nodes = directory::live_nodes(&self.store).await.map_err(Refusal::unavailable)?;
        // This node's own load is the freshest there is.
        let mut nodes: Vec<NodeRecord> = nodes.into_iter().filter(|n| n.id != self.node).collect();
        nodes.push(self.record());
        let now_ms = unix_micros() / 1000;
        let mut tries = 0;
        loop {
            let Some(target) = directory::least_loaded(&nodes, now_ms).cloned() else {
                return Err(Refusal::new(
                    503,
                    "no node of the cluster can take a room now: try again later",
                ));
            };
            if target.id == self.node {
                let room = self.rooms.create(settings, None, opener)?;
                let until = hold.and_then(|(name, claim)| room.places().hold(name, Instant::now(), Some(claim)).ok());
                self.adopt(&room).await;
                return Ok((Placed::Here(room), until));
            }
            let ask = Ask::Create {
                settings: settings.clone(),
                hold: hold.as_ref().map(|(name, _)| (*name).to_owned()),
                by: opener.by,
                key: opener.key.clone(),
            };
            match self.ask(&target.id, ask).await {
                Ok(Answer::Done {
                    room: Some(record),
                    held_until_ms,
                }) => {
                    if let Some(budget) = opener.budget {
                        self.lock_placed().insert(record.summary.id.clone(), budget);
                    }
                    return Ok((Placed::There(record), held_until_ms.map(instant_of)));
                }
                Ok(Answer::Done { room: None, .. }) => {
                    return Err(Refusal::new(502, "the other node answered without its room"));
                }
                Ok(Answer::Refused { status, message }) => return Err(Refusal::new(status, message)),
                // Killed since its last heartbeat, perhaps: the next node, once.
                Err(AskError::NoAnswer(..)) if tries == 0 => {
                    tries += 1;
                    nodes.retain(|n| n.id != target.id);
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Holds a place for `name` in another node's room; returns the room and until when the
    /// place is held, `Ok(None)` if it has none free.
    pub(crate) async fn hold(&self, record: &RoomRecord, name: &str) -> Result<Option<(RoomRecord, Instant)>, Refusal> {
        let ask = Ask::Hold {
            room: record.summary.id.clone(),
            name: name.into(),
        };
        match self.ask(&record.node, ask).await? {
            Answer::Done {
                room: Some(room),
                held_until_ms: Some(until),
            } => Ok(Some((*room, instant_of(until)))),
            Answer::Done { .. } => Err(Refusal::new(502, "the other node answered without its room")),
            Answer::Refused { status: 409, .. } => Ok(None),
            Answer::Refused { status, message } => Err(Refusal::new(status, message)),
        }
    }

    /// Closes another node's room, for the admin or the bearer of `key` (the owner checks it).
    pub(crate) async fn close(&self, record: &RoomRecord, admin: bool, key: &str) -> Result<(), Refusal> {
        let ask = Ask::Close {
            room: record.summary.id.clone(),
            admin,
            key: key.to_owned(),
        };
        match self.ask(&record.node, ask).await? {
            Answer::Done { .. } => Ok(()),
            Answer::Refused { status, message } => Err(Refusal::new(status, message)),
        }
    }

    async fn ask(&self, node: &str, ask: Ask) -> Result<Answer, AskError> {
        let answer = self.asker.ask(node, ask).await;
        if matches!(answer, Err(AskError::NoAnswer(..))) {
            self.metrics.cluster_requests_unanswered.inc();
        }
        answer
    }
}
