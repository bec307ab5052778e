//! A room's matches: players joining one (or refused by the game), players whose connection
//! dropped kept away and taking their seat back, the end of a match with its results, and the
//! next match, which the same players join again.

use std::sync::Arc;

use crate::feed::Epoch;
use crate::game::{Dispatch, Game, Join, Labels, Refusal};
use crate::protocol::delta::NetWorld;
use crate::protocol::ended::{REFUSED, REPLACED};
use crate::protocol::frames;
use crate::protocol::{EntityId, MatchEnded, PROTOCOL_VERSION, Results, ServerMsg, Welcome};
use crate::room::AfterMatch;
use crate::room::joins::{JoinRequest, NotIn};
use crate::room::roster::{Departed, Joined, Link};
use crate::room::seats;
use crate::room::tick::TickLoop;

impl<G: Game> TickLoop<G> {
    /// A player's join, from its session: into the game (or refused by it), and into the
    /// roster.
    pub(super) fn admit(&mut self, join: JoinRequest) {
        #[cfg(test)]
        super::tick::tests::maybe_crash(&join.name);
        if join.link.out.is_closed() {
            return; // The session gave up while waiting for this tick.
        }
        if let Some(secret) = join.resume {
            let _ = join.reply.send(self.resume(secret, join.link));
            return;
        }
        let joined = Joined {
            name: join.name,
            options: join.options,
        };
        let seated = self
            .seat(join.link, joined)
            .map_err(|(refusal, _)| NotIn::Refused(refusal));
        let _ = join.reply.send(seated);
    }

    /// A player takes its seat back with `secret` on a new connection, `link`: the seat kept
    /// while it was away, or the one its old connection still holds (that connection is
    /// closed with 4002: a half-open socket is the common case on phones). It is welcomed
    /// again (the same entity, a new secret) and gets a keyframe at this tick.
    fn resume(&mut self, secret: seats::Secret, mut link: Link) -> Result<EntityId, NotIn> {
        let Some(id) = self.seats.holder(secret) else {
            self.metrics.resumes_refused.inc();
            return Err(NotIn::NoSeat);
        };
        if let Some(away) = self.seats.take_away(id) {
            link.place = away.place;
            self.welcome(id, &link);
            self.roster.insert_resumed(id, link, away.joined, away.ack);
            self.game.back(id, &mut self.dispatch);
            self.metrics.players_away.dec();
            self.metrics.players.inc();
        } else if let Some(old) = self.roster.link(id) {
            // A session that said goodbye may still be in the roster until this tick's fan-out
            // finds it closed: its seat is gone already.
            if old.out.is_closed() && !old.out.keeps_seat() {
                self.metrics.resumes_refused.inc();
                return Err(NotIn::NoSeat);
            }
            // Its old connection is still in the roster: the new one takes its place over, from
            // rest (the old one's last input was the network's, not the player's).
            self.welcome(id, &link);
            if let Some(old) = self.roster.replace_link(id, link) {
                old.out.refuse(REPLACED, "replaced by a resumed connection");
            }
            self.neutral_input(id);
        } else {
            // A secret is live only while its player is seated: connected or away.
            self.metrics.resumes_refused.inc();
            return Err(NotIn::NoSeat);
        }
        self.metrics.resumes.inc();
        tracing::debug!(id, "player resumed its seat");
        Ok(id)
    }

    /// A player the fan-out found gone: kept away for the grace if its connection dropped
    /// (its input neutral meanwhile, and the game told), else out of the game. Returns whether
    /// it was kept.
    pub(super) fn went_away(&mut self, departed: Departed) -> bool {
        let Departed {
            id,
            dropped,
            mut link,
            joined,
            ack,
        } = departed;
        self.metrics.players.dec();
        if !(dropped && self.seats.keeps() && !self.over) {
            self.seats.forget(id);
            self.game.leave(id, &mut self.dispatch);
            return false;
        }
        self.neutral_input(id);
        self.game.away(id, &mut self.dispatch);
        self.seats.hold(id, joined, link.place.take(), ack, self.tick);
        self.metrics.players_away.inc();
        tracing::debug!(id, "player away: its seat is kept");
        true
    }

    /// Gives player `id` the neutral input: each field at the value of its range nearest 0.
    fn neutral_input(&mut self, id: EntityId) {
        let neutral: Vec<i32> = self.schema.input.iter().map(|f| 0.clamp(f.min, f.max)).collect();
        self.game.input(id, &neutral);
    }

    /// Sends `link`'s player its welcome as `id`, with a new resume token.
    fn welcome(&mut self, id: EntityId, link: &Link) {
        let resume = if self.seats.keeps() {
            seats::token(self.room.as_str(), self.seats.issue(id))
        } else {
            String::new()
        };
        // Made for each join rather than kept: a room holds no copy of its schema of its own.
        let welcome = ServerMsg::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            player_id: id,
            tick_hz: self.tick_hz,
            resume,
            grace_ms: self.grace_ms,
            schema: (*self.schema).clone(),
        });
        // Not a tick's frame: a player joining a new match may have a full queue, and must
        // still learn its new id. If the session is already gone, this tick's fan-out finds it
        // closed and removes it.
        let welcome = frames::binary_frame(welcome.encode(&self.schema));
        let len = welcome.len();
        if link.out.send_own(&welcome).is_ok() {
            self.metrics.websocket.sent(len);
        }
    }

    /// `link`'s player, joined as `joined`, into the game: welcomed and in the roster, or
    /// refused (and not: its link comes back).
    fn seat(&mut self, link: Link, joined: Joined) -> Result<EntityId, (Refusal, Link)> {
        let join = Join {
            name: &joined.name,
            options: &joined.options,
        };
        let id = match self.game.join(&join, &mut self.dispatch) {
            Ok(id) => id,
            Err(refusal) => {
                self.metrics.joins_refused.inc();
                tracing::debug!(name = ?joined.name, reason = refusal.reason(), "join refused");
                return Err((refusal, link));
            }
        };
        self.welcome(id, &link);
        // Peer-supplied strings are logged escaped (`?`): a name cannot forge a log line.
        tracing::debug!(id, name = ?joined.name, "player joined");
        self.roster.insert(id, link, joined);
        self.metrics.players.inc();
        Ok(id)
    }

    /// The game ended its match with `results`, after this tick's frames and events: every
    /// player is told, spectators too, and the room closes or starts the next match.
    pub(super) fn end_match(&mut self, results: Results) {
        self.metrics.matches_ended.inc();
        let ended = ServerMsg::MatchEnded(MatchEnded {
            tick: self.tick,
            results: results.clone(),
        });
        // The events a player that fell behind is owed come first: none is dropped.
        self.roster.pay_owed();
        self.roster.send_own(&frames::binary_frame(ended.encode(&self.schema)));
        self.feed.ended(self.tick, &results);
        self.status.set_results(results);
        match self.after_match {
            AfterMatch::Close => {
                self.status.set_closing();
                self.over = true;
            }
            AfterMatch::Restart => self.next_match(),
        }
    }

    /// A new match: a fresh world of the same game, joined by the same players (each gets a
    /// new welcome and a keyframe; those the game refuses now are closed with its reason), and
    /// spectators start over from a snapshot of it.
    fn next_match(&mut self) {
        self.matches += 1;
        // Each match its own world: the room's seed, moved along by the match number.
        let seed = self.seed.wrapping_add(self.matches.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        self.game = G::new(&self.config, seed);
        self.dispatch = Dispatch::new(self.schema.clone());
        let mut labels = Labels::default();
        self.game.labels(&mut labels);
        self.status.set_labels(labels);
        self.sent = NetWorld::default();
        self.next = NetWorld::default();
        self.heard.clear();
        self.reset_views();
        let mut world = NetWorld::default();
        self.game.entities(&mut world.capture(self.tick, &self.schema));
        let world = Arc::new(world);
        self.spectated = Some(world.clone());
        self.feed.reset(Epoch::random(), world);
        // Players away are not in the new match: their seats (and places) go, and their
        // tokens with them.
        self.metrics.players_away.dec_by(self.seats.clear() as i64);
        for (link, joined) in self.roster.drain() {
            self.metrics.players.dec();
            // Nothing sent for the old match is applied in the new one.
            link.input.clear();
            if let Err((refusal, link)) = self.seat(link, joined) {
                link.out.refuse(REFUSED, refusal.reason());
            }
        }
    }
}
