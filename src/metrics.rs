//! Counters and histograms, exported at `GET /metrics` in the Prometheus text format.
//!
//! Every server has its own registry (tests run several servers in one process). Labelled
//! children used on hot paths are resolved once here and kept as plain handles, so counting a
//! message is one atomic add, not a lock and a map lookup.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::protocol::ended::Ended;

/// How a client follows the game.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Transport {
    /// A player on a WebSocket.
    Websocket,
    /// A spectator on Server-Sent Events.
    Sse,
    /// A spectator long-polling.
    Longpoll,
    /// A spectator polling the current state.
    Poll,
}

/// Why a connection was closed by the server or refused.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum CloseReason {
    /// The peer closed or vanished.
    PeerGone,
    /// The server is shutting down.
    Shutdown,
    /// The player's room ended (closed, idle, crashed).
    RoomEnded,
    /// A message failed to decode.
    Malformed,
    /// A text frame where only binary is accepted.
    TextFrame,
    /// A message or frame over the size limit.
    TooBig,
    /// The hello was missing, late or of another protocol version.
    Handshake,
    /// A message broke the rules (bad values, flooding).
    Policy,
    /// The player did not keep up: its outbound queue stayed full, or its socket took
    /// nothing for the write timeout.
    TooSlow,
    /// A frame broke RFC 6455: bad framing, or invalid UTF-8 in text or a close reason.
    Framing,
    /// The server was at capacity.
    Full,
    /// Nothing arrived from the player for the idle timeout.
    Idle,
    /// The player sent far more than its allowance, for seconds on end.
    Flood,
    /// A web page from an origin not allowed (HTTP 403 before the upgrade).
    Origin,
    /// A missing, invalid or expired join token.
    Auth,
    /// The game refused the join (close 4000).
    Refused,
    /// The player's match ended and its room closed (close 1000).
    MatchOver,
    /// A resume token the room did not take (close 4001).
    ResumeRefused,
    /// A resumed connection took the player's seat over (close 4002).
    Replaced,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: Transport,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: CloseReason,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndedLabel {
    reason: Ended,
}

/// Message and byte counters for one transport.
#[derive(Debug, Clone, Default)]
pub struct TrafficCounters {
    /// Messages (frames, events or responses) sent.
    pub messages_sent: Counter,
    /// Bytes sent as the transport frames them: WebSocket frames with their headers, SSE
    /// events with their field names, response bodies.
    pub bytes_sent: Counter,
    /// Messages received.
    pub messages_received: Counter,
    /// Payload bytes received.
    pub bytes_received: Counter,
}

impl TrafficCounters {
    /// Counts one message sent.
    pub fn sent(&self, bytes: usize) {
        self.messages_sent.inc();
        self.bytes_sent.inc_by(bytes as u64);
    }

    /// Counts `messages` sent, `bytes` in all.
    pub fn sent_many(&self, messages: u64, bytes: u64) {
        self.messages_sent.inc_by(messages);
        self.bytes_sent.inc_by(bytes);
    }

    /// Counts one message received.
    pub fn received(&self, bytes: usize) {
        self.messages_received.inc();
        self.bytes_received.inc_by(bytes as u64);
    }
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Rooms open.
    pub rooms: Gauge,
    /// Rooms opened since the start.
    pub rooms_created: Counter,
    /// Times the room list (`GET /rooms`) was built: at most once a second, however many ask.
    pub room_list_builds: Counter,
    /// Ticks run, in all rooms.
    pub ticks: Counter,
    /// Ticks that took longer than the tick period, start to end (their own work, the
    /// fan-out, and what other tasks ran while a big room's tick yielded), and ticks that did
    /// not run because one before them was that late (a room never catches up in a burst).
    pub tick_overruns: Counter,
    /// Time the tick loop spent on each tick's own work, in seconds: joins, departures and
    /// inputs, its step, diff and encode, and what follows the fan-out (the spectator event);
    /// not the fan-out, nor the time others ran while a big room's tick yielded.
    pub tick_work: Histogram,
    /// Wall time of each tick's fan-out (writing its frame to every player), in seconds:
    /// the tick loop's own writes or the parts split over the workers, with what else ran
    /// while they yielded.
    pub fan_out: Histogram,
    /// Connected players.
    pub players: Gauge,
    /// Players whose hello was accepted and who joined.
    pub joins: Counter,
    /// Move commands applied by the tick loop.
    pub inputs_applied: Counter,
    /// Move commands ignored: stale sequence numbers, or overwritten before a tick.
    pub inputs_dropped: Counter,
    /// Players' messages handed to their game.
    pub messages_applied: Counter,
    /// Joins the game refused (closed 4000).
    pub joins_refused: Counter,
    /// Events the games told, counted once per event however many are told it.
    pub events_told: Counter,
    /// Events a game told that did not fit its schema (refused, not sent).
    pub events_refused: Counter,
    /// Public events not kept for spectators: over the most a spectator event carries.
    pub spectator_events_dropped: Counter,
    /// Spectator events not rendered because nobody could read them (see `feed`).
    pub spectator_events_unwatched: Counter,
    /// Matches that ended with results.
    pub matches_ended: Counter,
    /// Messages that failed to decode.
    pub decode_errors: Counter,
    /// Messages dropped for going over a player's rate allowance.
    pub rate_limited: Counter,
    /// Round trips of the server's own WebSocket pings to players, in seconds.
    pub probe_rtt: Histogram,
    /// Deltas not queued because a player's outbound queue was full.
    pub deltas_dropped: Counter,
    /// Keyframes sent to players that fell behind.
    pub resync_keyframes: Counter,
    /// Players whose connection dropped and whose seat is kept for them.
    pub players_away: Gauge,
    /// Seats taken back with a resume token.
    pub resumes: Counter,
    /// Resume tokens refused (another room's, expired, used, or a room that keeps no seats).
    pub resumes_refused: Counter,
    /// Seats kept for a player who did not come back within the grace: it left the game.
    pub seats_expired: Counter,
    /// In rooms with a view radius: distinct views in the last tick, over all such rooms.
    pub views: Gauge,
    /// In rooms with a view radius: frames encoded for views (shared deltas, a crossing
    /// player's own delta, keyframes).
    pub view_frames_encoded: Counter,
    /// Frames waiting in all players' outbound queues, before this tick's were added.
    pub outbound_queued: Gauge,
    /// The fullest player outbound queue, before this tick's frame.
    pub outbound_queue_max: Gauge,
    /// Spectators following the SSE feed.
    pub spectators_sse: Gauge,
    /// Spectators waiting in a long-poll.
    pub spectators_longpoll: Gauge,
    /// Snapshots sent to spectators that fell behind the resume ring.
    pub spectator_resyncs: Counter,
    /// Player traffic.
    pub websocket: TrafficCounters,
    /// Spectator traffic over Server-Sent Events.
    pub sse: TrafficCounters,
    /// Spectator traffic over long-polling.
    pub longpoll: TrafficCounters,
    /// Spectator traffic over plain polling.
    pub poll: TrafficCounters,
    /// Cluster: Redis operations that failed or timed out.
    pub cluster_errors: Counter,
    /// Cluster: spectator events not copied to their room's stream (its queue was full, or
    /// Redis failed); the stream's next keyframe covers them.
    pub cluster_events_dropped: Counter,
    /// Cluster: spectator events and keyframes written to rooms' streams.
    pub cluster_events_written: Counter,
    /// Cluster: rooms of other nodes this node follows for its spectators.
    pub cluster_mirrors: Gauge,
    /// Cluster: times a followed room's stream had a gap and its feed restarted from a
    /// keyframe.
    pub cluster_mirror_resyncs: Counter,
    /// Cluster: requests to other nodes (create, hold, close) that got no answer in time.
    pub cluster_requests_unanswered: Counter,
    closes: Family<ReasonLabel, Counter>,
    rooms_closed: Family<EndedLabel, Counter>,
}

impl Metrics {
    /// A fresh set of metrics with its own registry.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("tickcast");
        let closes = Family::<ReasonLabel, Counter>::default();
        r.register(
            "closes",
            "Connections closed or refused by the server, by reason",
            closes.clone(),
        );
        let rooms_closed = Family::<EndedLabel, Counter>::default();
        r.register("rooms_closed", "Rooms ended, by reason", rooms_closed.clone());
        let spectators = Family::<TransportLabel, Gauge>::default();
        r.register("spectators", "Connected spectators, by transport", spectators.clone());
        let traffic = Traffic::default();
        let mut metrics = Self {
            rooms: gauge(&mut r, "rooms", "Rooms open"),
            rooms_created: counter(&mut r, "rooms_created", "Rooms opened"),
            room_list_builds: counter(
                &mut r,
                "room_list_builds",
                "Times the room list was built for GET /rooms (at most once a second)",
            ),
            ticks: counter(&mut r, "ticks", "Ticks run, in all rooms"),
            tick_overruns: counter(
                &mut r,
                "tick_overruns",
                "Ticks that took longer than the tick period, and ticks skipped after a late one",
            ),
            // 50 µs .. ~400 ms: a tick budget is 4-1000 ms.
            tick_work: histogram(&mut r, "tick_work_seconds", "Work time of each tick", 14),
            fan_out: histogram(
                &mut r,
                "fan_out_seconds",
                "Time of each tick's fan-out to its players",
                14,
            ),
            players: gauge(&mut r, "players", "Connected players"),
            joins: counter(&mut r, "joins", "Players who joined"),
            inputs_applied: counter(&mut r, "inputs_applied", "Move commands applied"),
            inputs_dropped: counter(&mut r, "inputs_dropped", "Move commands ignored (stale or superseded)"),
            messages_applied: counter(&mut r, "messages_applied", "Players' messages handed to their game"),
            joins_refused: counter(&mut r, "joins_refused", "Joins the game refused"),
            events_told: counter(&mut r, "events_told", "Events told by the games"),
            events_refused: counter(
                &mut r,
                "events_refused",
                "Events a game told that did not fit its schema",
            ),
            spectator_events_dropped: counter(
                &mut r,
                "spectator_events_dropped",
                "Public events not kept for spectators (too many between two spectator events)",
            ),
            spectator_events_unwatched: counter(
                &mut r,
                "spectator_events_unwatched",
                "Spectator events not rendered: no spectator connected, none read the feed within its history",
            ),
            matches_ended: counter(&mut r, "matches_ended", "Matches that ended with results"),
            decode_errors: counter(&mut r, "decode_errors", "Client messages that failed to decode"),
            rate_limited: counter(
                &mut r,
                "rate_limited",
                "Client messages dropped over the rate allowance",
            ),
            // 50 µs .. ~1.6 s.
            probe_rtt: histogram(&mut r, "probe_rtt_seconds", "Round trip of server pings to players", 16),
            deltas_dropped: counter(&mut r, "deltas_dropped", "Deltas not queued to a full player queue"),
            resync_keyframes: counter(&mut r, "resync_keyframes", "Keyframes sent to players that fell behind"),
            players_away: gauge(
                &mut r,
                "players_away",
                "Players whose connection dropped, their seat kept",
            ),
            resumes: counter(&mut r, "resumes", "Seats taken back with a resume token"),
            resumes_refused: counter(&mut r, "resumes_refused", "Resume tokens refused"),
            seats_expired: counter(&mut r, "seats_expired", "Seats whose grace ended without their player"),
            views: gauge(
                &mut r,
                "views",
                "Distinct player views in the last tick (rooms with a view radius)",
            ),
            view_frames_encoded: counter(
                &mut r,
                "view_frames_encoded",
                "Frames encoded for player views (rooms with a view radius)",
            ),
            outbound_queued: gauge(&mut r, "outbound_queued_frames", "Frames waiting in all player queues"),
            outbound_queue_max: gauge(
                &mut r,
                "outbound_queue_max",
                "Frames waiting in the fullest player queue",
            ),
            spectators_sse: spectators.get_or_create_owned(&TransportLabel {
                transport: Transport::Sse,
            }),
            spectators_longpoll: spectators.get_or_create_owned(&TransportLabel {
                transport: Transport::Longpoll,
            }),
            spectator_resyncs: counter(
                &mut r,
                "spectator_resyncs",
                "Snapshots sent to spectators that fell behind",
            ),
            websocket: traffic.for_transport(Transport::Websocket),
            sse: traffic.for_transport(Transport::Sse),
            longpoll: traffic.for_transport(Transport::Longpoll),
            poll: traffic.for_transport(Transport::Poll),
            cluster_errors: counter(
                &mut r,
                "cluster_redis_errors",
                "Redis operations that failed or timed out",
            ),
            cluster_events_dropped: counter(
                &mut r,
                "cluster_events_dropped",
                "Spectator events not copied to their room's Redis stream",
            ),
            cluster_events_written: counter(
                &mut r,
                "cluster_events_written",
                "Spectator events and keyframes written to Redis streams",
            ),
            cluster_mirrors: gauge(
                &mut r,
                "cluster_mirrors",
                "Rooms of other nodes followed for spectators",
            ),
            cluster_mirror_resyncs: counter(
                &mut r,
                "cluster_mirror_resyncs",
                "Gaps in a followed room's stream, healed from a keyframe",
            ),
            cluster_requests_unanswered: counter(
                &mut r,
                "cluster_requests_unanswered",
                "Requests to other nodes that got no answer in time",
            ),
            closes,
            rooms_closed,
            registry: r,
        };
        traffic.register(&mut metrics.registry);
        metrics
    }

    /// Counts a connection closed or refused for `reason`.
    pub fn close(&self, reason: CloseReason) {
        self.closes.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts a room ended for `reason`.
    pub fn room_closed(&self, reason: Ended) {
        self.rooms_closed.get_or_create(&EndedLabel { reason }).inc();
    }

    /// How many rooms ended for `reason` so far.
    pub fn rooms_closed(&self, reason: Ended) -> u64 {
        self.rooms_closed.get_or_create(&EndedLabel { reason }).get()
    }

    /// How many connections were closed for `reason` so far.
    pub fn closes(&self, reason: CloseReason) -> u64 {
        self.closes.get_or_create(&ReasonLabel { reason }).get()
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("encode metrics");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter(registry: &mut Registry, name: &str, help: &str) -> Counter {
    let metric = Counter::default();
    registry.register(name, help, metric.clone());
    metric
}

fn gauge(registry: &mut Registry, name: &str, help: &str) -> Gauge {
    let metric = Gauge::default();
    registry.register(name, help, metric.clone());
    metric
}

/// A histogram with `buckets` exponential buckets from 50 µs, doubling.
fn histogram(registry: &mut Registry, name: &str, help: &str, buckets: u16) -> Histogram {
    let metric = Histogram::new(exponential_buckets(50e-6, 2.0, buckets));
    registry.register(name, help, metric.clone());
    metric
}

/// The per-transport traffic families, registered once.
#[derive(Default)]
struct Traffic {
    messages_sent: Family<TransportLabel, Counter>,
    bytes_sent: Family<TransportLabel, Counter>,
    messages_received: Family<TransportLabel, Counter>,
    bytes_received: Family<TransportLabel, Counter>,
}

impl Traffic {
    fn for_transport(&self, transport: Transport) -> TrafficCounters {
        let label = TransportLabel { transport };
        TrafficCounters {
            messages_sent: self.messages_sent.get_or_create_owned(&label),
            bytes_sent: self.bytes_sent.get_or_create_owned(&label),
            messages_received: self.messages_received.get_or_create_owned(&label),
            bytes_received: self.bytes_received.get_or_create_owned(&label),
        }
    }

    fn register(self, registry: &mut Registry) {
        registry.register("messages_sent", "Messages sent, by transport", self.messages_sent);
        registry.register(
            "bytes_sent",
            "Bytes sent as each transport frames them (WebSocket frames with their headers, SSE events with their field names, response bodies), by transport",
            self.bytes_sent,
        );
        registry.register(
            "messages_received",
            "Messages received, by transport",
            self.messages_received,
        );
        registry.register(
            "bytes_received",
            "Payload bytes received, by transport",
            self.bytes_received,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported() {
        let m = Metrics::new();
        m.close(CloseReason::Full);
        m.room_closed(Ended::Idle);
        m.spectators_sse.inc();
        m.sse.sent(10);
        let text = m.encode();
        for name in [
            "tickcast_rooms ",
            "tickcast_rooms_created_total",
            "tickcast_rooms_closed_total{reason=\"Idle\"} 1",
            "tickcast_ticks_total",
            "tickcast_tick_overruns_total",
            "tickcast_tick_work_seconds_bucket",
            "tickcast_players",
            "tickcast_joins_total",
            "tickcast_inputs_applied_total",
            "tickcast_inputs_dropped_total",
            "tickcast_decode_errors_total",
            "tickcast_rate_limited_total",
            "tickcast_probe_rtt_seconds_bucket",
            "tickcast_deltas_dropped_total",
            "tickcast_resync_keyframes_total",
            "tickcast_outbound_queued_frames",
            "tickcast_outbound_queue_max",
            "tickcast_spectator_resyncs_total",
            "tickcast_closes_total{reason=\"Full\"} 1",
            "tickcast_spectators{transport=\"Sse\"} 1",
            "tickcast_bytes_sent_total{transport=\"Sse\"} 10",
            "tickcast_messages_sent_total{transport=\"Websocket\"} 0",
        ] {
            assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
        }
    }
}
