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
    /// The player's outbound queue stayed full too long.
    TooSlow,
    /// The player was silent for too long or a write timed out.
    Timeout,
    /// The server was at capacity.
    Full,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: Transport,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: CloseReason,
}

/// Message and byte counters for one transport.
#[derive(Debug, Clone, Default)]
pub struct TrafficCounters {
    /// Messages (frames, events or responses) sent.
    pub messages_sent: Counter,
    /// Payload bytes sent.
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
    /// Ticks run.
    pub ticks: Counter,
    /// Ticks whose work took longer than the tick period.
    pub tick_overruns: Counter,
    /// Time spent on each tick's work, in seconds.
    pub tick_work: Histogram,
    /// Connected players.
    pub players: Gauge,
    /// Move commands applied by the tick loop.
    pub inputs_applied: Counter,
    /// Move commands ignored: stale sequence numbers, or overwritten before a tick.
    pub inputs_dropped: Counter,
    /// Messages that failed to decode.
    pub decode_errors: Counter,
    /// Deltas not queued because a player's outbound queue was full.
    pub deltas_dropped: Counter,
    /// Keyframes sent to players that fell behind.
    pub resync_keyframes: Counter,
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
    closes: Family<ReasonLabel, Counter>,
}

impl Metrics {
    /// A fresh set of metrics with its own registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tickcast");
        let ticks = Counter::default();
        let tick_overruns = Counter::default();
        // 50 µs .. ~400 ms: a tick budget is 4-1000 ms.
        let tick_work = Histogram::new(exponential_buckets(50e-6, 2.0, 14));
        let players = Gauge::default();
        let inputs_applied = Counter::default();
        let inputs_dropped = Counter::default();
        let decode_errors = Counter::default();
        let deltas_dropped = Counter::default();
        let resync_keyframes = Counter::default();
        let closes = Family::<ReasonLabel, Counter>::default();
        let spectators = Family::<TransportLabel, Gauge>::default();
        let spectators_sse = spectators.get_or_create_owned(&TransportLabel {
            transport: Transport::Sse,
        });
        let spectators_longpoll = spectators.get_or_create_owned(&TransportLabel {
            transport: Transport::Longpoll,
        });
        let spectator_resyncs = Counter::default();
        registry.register("ticks", "Ticks run", ticks.clone());
        registry.register(
            "tick_overruns",
            "Ticks whose work exceeded the tick period",
            tick_overruns.clone(),
        );
        registry.register("tick_work_seconds", "Work time of each tick", tick_work.clone());
        registry.register("players", "Connected players", players.clone());
        registry.register("inputs_applied", "Move commands applied", inputs_applied.clone());
        registry.register(
            "inputs_dropped",
            "Move commands ignored (stale or superseded)",
            inputs_dropped.clone(),
        );
        registry.register(
            "decode_errors",
            "Client messages that failed to decode",
            decode_errors.clone(),
        );
        registry.register(
            "deltas_dropped",
            "Deltas not queued to a full player queue",
            deltas_dropped.clone(),
        );
        registry.register(
            "resync_keyframes",
            "Keyframes sent to players that fell behind",
            resync_keyframes.clone(),
        );
        registry.register(
            "closes",
            "Connections closed or refused by the server, by reason",
            closes.clone(),
        );

        let traffic = Traffic::default();
        let websocket = traffic.for_transport(Transport::Websocket);
        let sse = traffic.for_transport(Transport::Sse);
        let longpoll = traffic.for_transport(Transport::Longpoll);
        let poll = traffic.for_transport(Transport::Poll);
        traffic.register(&mut registry);
        Self {
            registry,
            ticks,
            tick_overruns,
            tick_work,
            players,
            inputs_applied,
            inputs_dropped,
            decode_errors,
            deltas_dropped,
            resync_keyframes,
            spectators_sse,
            spectators_longpoll,
            spectator_resyncs,
            websocket,
            sse,
            longpoll,
            poll,
            closes,
        }
    }

    /// Counts a connection closed or refused for `reason`.
    pub fn close(&self, reason: CloseReason) {
        self.closes.get_or_create(&ReasonLabel { reason }).inc();
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
        registry.register("bytes_sent", "Payload bytes sent, by transport", self.bytes_sent);
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
