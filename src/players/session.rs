//! One player's WebSocket connection, from upgrade to close.
//!
//! A single task per player: it reads the player's frames, answers pings on the spot, writes
//! the frames the tick loop queues for it, and closes the socket with a code and a reason when
//! anything goes wrong. Nothing a client sends reaches the world except through the player's
//! [`InputSlot`], so a misbehaving client only ever closes its own connection.
//!
//! Before its hello a connection holds no player place: only its TCP connection (under
//! `--max-connections`) and one deadline, counted from the upgrade and never re-armed. Every
//! frame it sends, before the hello as after, is charged to the same rate limit. A player
//! plays in one room; when the room ends (closed, idle, crashed, or the server stopping) the
//! session closes with the ending's code.
//!
//! A hello with a resume token takes a seat back instead of joining ([`crate::room::seats`]):
//! it takes no new place (the seat has one) and needs no join token (the resume token is the
//! proof). A session that ends without a goodbye (the peer vanished, went silent, or took
//! nothing for too long) tells the room to keep its player's seat.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::close_code;
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use tokio::sync::oneshot;
use tokio::time::{self, Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth;
use crate::http::ConnectionPlace;
use crate::metrics::CloseReason;
use crate::players::close::{Close, check_hello, check_input, check_message, decode, read_error, refused};
use crate::players::limits::{MessageRates, RateLimit, STRIKES_TO_CLOSE, Verdict};
use crate::players::socket::{PlayerSocket, ReadError};
use crate::protocol::ended::{Ended, REFUSED};
use crate::protocol::frames::{self, Frame};
use crate::protocol::{ClientMsg, Hello, MAX_NAME_LEN, Message, Options, Pong, ServerMsg, Text, unix_micros};
use crate::room::Room;
use crate::room::joins::{JoinRequest, NotIn};
use crate::room::outbox::{Inbox, Next, Outbound, outbox};
use crate::room::places::Place;
use crate::room::roster::{InputSlot, Link};
use crate::room::seats::{self, Secret};
use crate::state::AppState;

/// Runs a player connection to `room`, once `upgrade` completes (it was answered at
/// `upgraded`), until it closes. `connection` holds its place under `--max-connections` until
/// then.
///
/// Not an `async fn`: one would keep its arguments in the future beside the session built
/// from them, and this future is most of what an idle player costs.
pub(crate) fn run(
    upgrade: OnUpgrade,
    peer: SocketAddr,
    state: Arc<AppState>,
    room: Arc<Room>,
    upgraded: Instant,
    connection: ConnectionPlace,
) -> impl Future<Output = ()> {
    let span = tracing::debug_span!("player", room = %room.id(), peer = %peer, id = tracing::field::Empty);
    // A task is as large as its largest state for as long as it lives. The upgrade, the hello
    // and the join (and the close of a session that never joined) are over in a moment, so
    // they are boxed for their while, with everything they take; what the task keeps is the
    // session and what its play awaits.
    let opening = Box::pin(async move {
        let socket = match PlayerSocket::open(upgrade).await {
            Ok(socket) => socket,
            Err(err) => {
                tracing::debug!(%peer, %err, "upgrade failed");
                return None;
            }
        };
        let now = Instant::now();
        let hello_by = upgraded + state.config.hello_timeout;
        let mut session = Session {
            socket,
            allowance: RateLimit::for_tick_rate(room.settings().tick_hz, now),
            messages: MessageRates::new(room.schema().messages.iter().map(|m| m.per_second), now),
            room,
            last_heard: now,
            state,
            last_seq: None,
            #[cfg(test)]
            name: String::new(),
            outbox: None,
            _connection: connection,
        };
        match session.start(hello_by).await {
            Ok(input) => Some((session, input)),
            Err(close) => {
                session.finish(close).await;
                None
            }
        }
    });
    async move {
        let Some((mut session, input)) = opening.await else {
            return;
        };
        let close = match session.play(input).await {
            Ok(never) => match never {},
            Err(close) => close,
        };
        session.finish(close).await;
    }
    .instrument(span)
}

/// What is left to do about a frame once charged ([`Session::charge`]).
enum Charged {
    /// Nothing: it was a control frame answered, a fragment, or dropped.
    Nothing,
    /// A binary message to handle.
    Message(Bytes),
    /// A ping before the hello, to answer on the socket.
    Pong,
}

struct Session {
    socket: PlayerSocket,
    state: Arc<AppState>,
    room: Arc<Room>,
    /// Every frame the peer sends is charged here, from the upgrade on.
    allowance: RateLimit,
    /// And each game message to its kind's allowance.
    messages: MessageRates,
    last_heard: Instant,
    /// The highest move `seq` seen; lower or equal ones are stale and ignored.
    last_seq: Option<u32>,
    /// The name from the hello, once accepted: only the tests' injected failure reads it (an
    /// idle player should not keep a copy nobody reads).
    #[cfg(test)]
    name: String,
    /// Once joined: what the tick loop could not write to the socket directly, the way out
    /// for the session's own frames (which must not cut into a frame the tick loop wrote),
    /// and the tick loop's word when the player is kicked or the room is gone.
    outbox: Option<Inbox>,
    _connection: ConnectionPlace,
}

impl Session {
    /// Takes the hello, due by `hello_by` (the one deadline, counted from the upgrade), then
    /// joins the room (or takes a seat back): the player's input slot.
    async fn start(&mut self, hello_by: Instant) -> Result<Arc<InputSlot>, Close> {
        let stop = self.room.stopping().clone();
        let mut hello = tokio::select! {
            _ = stop.cancelled() => return Err(self.room_ended()),
            hello = self.hello(hello_by) => hello?,
        };
        // A room whose match ended for good takes nobody while its last frames go out.
        if !self.room.is_open() && self.room.ended().is_none() {
            return Err(Close::new(CloseReason::MatchOver, close_code::NORMAL, "match over"));
        }
        if !hello.resume.is_empty() {
            let secret = self.resumable(&hello.resume)?;
            return self.join(hello.name, Options::none(), Some(secret), None, &stop).await;
        }
        let options = Options::checked(&self.room.schema().options, std::mem::take(&mut hello.options))
            .map_err(|why| Close::new(CloseReason::Policy, close_code::POLICY, why))?;
        // The place is taken only now, by a valid hello: sockets still waiting for theirs
        // are bounded by the connection cap and their deadline, not by the player cap.
        let Some(place) = self.room.places().take(&hello.name, Instant::now()) else {
            return Err(Close::new(CloseReason::Full, close_code::AGAIN, "server full"));
        };
        self.join(hello.name, options, None, Some(place), &stop).await
    }

    /// The secret of a hello's resume token, if it is one for this room (whether a seat is
    /// kept for it is the tick loop's to say).
    fn resumable(&self, token: &str) -> Result<Secret, Close> {
        let refused = |why: &str| {
            self.state.metrics.resumes_refused.inc();
            Err(Close::resume_refused(why))
        };
        let Some((room, secret)) = seats::parse_token(token) else {
            return refused("resume token malformed");
        };
        if room != self.room.id().as_str() {
            return refused("resume token is for another room");
        }
        if self.room.settings().reconnect_grace_ms == 0 {
            return refused("this room keeps no seats (its reconnect grace is 0)");
        }
        Ok(secret)
    }

    /// The close for a room whose tick loop has stopped: its supervisor ends the room at once
    /// (with the reason: closed, idle, crashed), so wait for that.
    async fn ended_room(&self) -> Close {
        self.room.stopping().cancelled().await;
        self.room_ended()
    }

    /// The close for a room that has ended (or is ending: its token is cancelled).
    fn room_ended(&self) -> Close {
        let ended = self.room.ended().unwrap_or(Ended::Shutdown);
        let (code, text) = ended.close();
        let reason = match ended {
            Ended::Shutdown => CloseReason::Shutdown,
            Ended::MatchOver => CloseReason::MatchOver,
            Ended::Closed | Ended::Idle | Ended::Crashed => CloseReason::RoomEnded,
        };
        Close::new(reason, code, text)
    }

    /// Joins a player whose hello was accepted (with its `place`), or takes back the seat of
    /// `resume`: its input slot, once the tick loop has it.
    async fn join(
        &mut self,
        name: String,
        options: Options,
        resume: Option<Secret>,
        place: Option<Place>,
        stop: &CancellationToken,
    ) -> Result<Arc<InputSlot>, Close> {
        let input = Arc::new(InputSlot::default());
        let (out, frames) = outbox(self.state.config.player_queue as usize, Some(self.socket.writer()));
        self.outbox = Some(frames);
        let (reply, joined) = oneshot::channel();
        let link = Link {
            input: input.clone(),
            out,
            place,
        };
        let join = JoinRequest {
            // Checked by `check_hello`: at most 32 bytes, no control characters.
            name: Text::lossy(&name, MAX_NAME_LEN),
            options,
            resume,
            link,
            reply,
        };
        // If the tick loop has stopped, the room is ending: its token is cancelled below.
        self.room.joins().push(join);
        let id = tokio::select! {
            _ = stop.cancelled() => return Err(self.room_ended()),
            id = joined => match id {
                Ok(Ok(id)) => id,
                Ok(Err(NotIn::Refused(refusal))) => return Err(refused(refusal.reason())),
                Ok(Err(NotIn::NoSeat)) => {
                    return Err(Close::resume_refused("resume token unknown: expired, already used, or never given"));
                }
                Err(_) => return Err(self.ended_room().await),
            },
        };
        tracing::Span::current().record("id", id);
        self.state.metrics.joins.inc();
        #[cfg(test)]
        {
            self.name = name;
        }
        Ok(input)
    }

    /// Plays a joined player until it ends.
    ///
    /// What this awaits while the player is idle is all its future holds: the rest is done
    /// without awaiting (the session's own frames go through the outbox), or boxed for its
    /// while (a write the tick loop left, when the socket was full).
    async fn play(&mut self, input: Arc<InputSlot>) -> Result<Infallible, Close> {
        // The hello has been read: a player that only watches holds no read buffer from now on
        // (one that plays takes a small one at its first input, and gives it back when a
        // heartbeat's answer finds it empty).
        self.socket.release_buffer();
        // Not a local: it would be kept beside the wait.
        let every = |state: &AppState| (state.config.idle_timeout / 3).max(Duration::from_millis(100));
        // A sleep reset after each beat (an interval that delays missed ticks), held in this
        // future rather than in an allocation of its own.
        let heartbeat = time::sleep(every(&self.state));
        tokio::pin!(heartbeat);
        // The room reaches a joined session only through its outbox: a frame to write, a kick,
        // or its end (the tick loop stops when the room's token is cancelled, and drops its
        // end). One lock a wake-up, where watching the room's token and a kick token cost
        // two locks each, the room's shared by all its players.
        loop {
            // What the room has for it, taken out of the wait before anything is awaited for
            // it (boxed): this future's size is the task's for as long as the player stays,
            // and a value held across an await takes room in it beside the wait.
            let left = tokio::select! {
                biased;
                next = self.outbox.as_mut().expect("joined").next() => match next {
                    // What the tick loop could not write at once (the socket would have
                    // blocked): written below, with the write timeout. (Counted in
                    // `/metrics` when queued.)
                    Next::Frame(outbound) => Some(outbound),
                    Next::Kicked => return Err(Close::too_slow("outbound queue stayed full")),
                    Next::Refused(REFUSED, reason) => return Err(refused(&reason)),
                    Next::Refused(code, reason) => return Err(Close::new(CloseReason::Replaced, code, reason)),
                    // The tick loop has stopped: the room is ending (or has crashed).
                    Next::RoomGone => None,
                },
                () = heartbeat.as_mut() => {
                    heartbeat.as_mut().reset(Instant::now() + every(&self.state));
                    let idle = self.state.config.idle_timeout;
                    if self.last_heard.elapsed() >= idle {
                        return Err(Close::new(CloseReason::Idle, close_code::POLICY, format!("nothing received for {idle:?}")));
                    }
                    // Answered by any WebSocket client's stack: proves the path is alive, and
                    // measures the round trip without the client's cooperation.
                    let sent_at = unix_micros().to_le_bytes();
                    self.send_own(frames::ping_frame(&sent_at));
                    continue;
                }
                read = self.socket.recv() => {
                    if let Charged::Message(bytes) = self.charge(read)? {
                        self.handle(bytes, &input)?;
                    }
                    continue;
                }
            };
            // Moved whole into the boxed future, so that nothing of it is kept beside the wait.
            Box::pin(self.take_left(left)).await?;
        }
    }

    /// What the room had for the session: a frame the tick loop could not write at once, to
    /// write now; or, `None`, the room is gone, and the session closes.
    async fn take_left(&mut self, left: Option<Outbound>) -> Result<(), Close> {
        match left {
            Some(outbound) => self.write_left(outbound).await,
            None => Err(self.ended_room().await),
        }
    }

    /// Waits for the hello, until the deadline counted from the upgrade, and checks it.
    async fn hello(&mut self, deadline: Instant) -> Result<Hello, Close> {
        let first = timeout_at(deadline, async {
            loop {
                let read = self.socket.recv().await;
                match self.charge(read)? {
                    Charged::Message(bytes) => return Ok(bytes),
                    Charged::Nothing => {}
                    // Before the hello the socket is the session's alone. Boxed: rare, and
                    // this future's size is the task's for as long as the player stays.
                    Charged::Pong => Box::pin(self.write(None, Bytes::new())).await?,
                }
            }
        })
        .await
        .map_err(|_| {
            let limit = self.state.config.hello_timeout;
            Close::new(
                CloseReason::Handshake,
                close_code::POLICY,
                format!("no hello within {limit:?}"),
            )
        })??;
        self.state.metrics.websocket.received(first.len());
        let hello = match decode(&self.state, &self.room, &first)? {
            ClientMsg::Hello(hello) => hello,
            _ => {
                return Err(Close::new(
                    CloseReason::Handshake,
                    close_code::PROTOCOL,
                    "expected hello as the first message",
                ));
            }
        };
        check_hello(&hello)?;
        // A resume's proof is its resume token, checked by the room.
        if let Some(secret) = self
            .state
            .config
            .auth_secret
            .as_ref()
            .filter(|_| hello.resume.is_empty())
        {
            let now = unix_micros() / 1_000_000;
            auth::verify(
                secret.as_bytes(),
                self.room.id().as_str(),
                &hello.name,
                &hello.token,
                now,
            )
            .map_err(|err| Close::new(CloseReason::Auth, close_code::POLICY, err.to_string()))?;
        }
        Ok(hello)
    }

    /// Charges one frame to the rate limit and acts on it; returns what is left to do.
    fn charge(&mut self, read: Result<Frame, ReadError>) -> Result<Charged, Close> {
        let frame = read.map_err(|err| read_error(&self.state, err))?;
        self.last_heard = Instant::now();
        // Every frame counts, control frames and fragments too: each costs a parse, a ping
        // also a write.
        match self.allowance.check(self.last_heard) {
            Verdict::Allow => {}
            // A game message is never lost: it is charged, and its kind's own rate bounds it.
            Verdict::Drop if matches!(&frame, Frame::Binary(b) if ClientMsg::is_message(b)) => {}
            Verdict::Drop => {
                self.state.metrics.rate_limited.inc();
                return Ok(Charged::Nothing);
            }
            Verdict::Abuse => {
                return Err(Close::new(
                    CloseReason::Flood,
                    close_code::POLICY,
                    format!("flooding: over twice the message allowance in {STRIKES_TO_CLOSE} consecutive seconds"),
                ));
            }
        }
        match frame {
            Frame::Binary(bytes) => Ok(Charged::Message(bytes)),
            Frame::Text => Err(Close::new(
                CloseReason::TextFrame,
                close_code::UNSUPPORTED,
                "text frames are not accepted: send binary bincode messages",
            )),
            Frame::Fragment => Ok(Charged::Nothing),
            // Answered now, not with the next tick: the peer is measuring.
            Frame::Ping(_) => match &self.outbox {
                Some(outbox) => {
                    if let Some(payload) = self.socket.take_pong() {
                        outbox.send_pong(frames::pong_frame(payload));
                    }
                    Ok(Charged::Nothing)
                }
                None => Ok(Charged::Pong),
            },
            Frame::Pong(payload) => {
                self.probed(&payload);
                // The answer to our heartbeat, and often all an idle player sends: it need
                // not keep a read buffer until the next (one is taken again when needed).
                self.socket.release_buffer();
                Ok(Charged::Nothing)
            }
            Frame::Close(code) => Err(Close::echo(code)),
        }
    }

    /// Records the round trip of one of our heartbeat pings.
    fn probed(&self, payload: &[u8]) {
        if let Ok(sent_at) = <[u8; 8]>::try_from(payload) {
            let rtt_us = unix_micros().saturating_sub(u64::from_le_bytes(sent_at));
            self.state.metrics.probe_rtt.observe(rtt_us as f64 / 1e6);
        }
    }

    /// Acts on one binary message from a joined player.
    fn handle(&mut self, bytes: Bytes, input: &InputSlot) -> Result<(), Close> {
        #[cfg(test)]
        tests::maybe_fail(&self.name);
        let metrics = self.state.metrics.clone();
        metrics.websocket.received(bytes.len());
        match decode(&self.state, &self.room, &bytes)? {
            ClientMsg::Input(i) => {
                check_input(&self.room.schema().input, i.values.get())?;
                if self.last_seq.is_some_and(|last| i.seq <= last) {
                    metrics.inputs_dropped.inc(); // stale: reordered or replayed
                } else {
                    self.last_seq = Some(i.seq);
                    if input.put(i) {
                        metrics.inputs_dropped.inc(); // superseded before a tick took it
                    }
                }
                Ok(())
            }
            ClientMsg::Ping(ping) => {
                // Answered here and now, not at the next tick: RTT must not include tick phase.
                let pong = ServerMsg::Pong(Pong {
                    nonce: ping.nonce,
                    client_time_us: ping.client_time_us,
                    server_tick: self.room.tick(),
                    server_time_us: unix_micros(),
                })
                .encode(self.room.schema());
                let pong = frames::binary_frame(pong);
                metrics.websocket.sent(pong.len());
                self.send_own(pong);
                Ok(())
            }
            ClientMsg::Message(message) => self.said(message, input),
            ClientMsg::Hello(_) => Err(Close::new(CloseReason::Policy, close_code::POLICY, "hello sent twice")),
        }
    }

    /// A game message from the player: within its kind's rate and its parameters' bounds, it
    /// waits in the input slot for the next tick.
    fn said(&mut self, message: Message, input: &InputSlot) -> Result<(), Close> {
        let schema = self.room.schema();
        check_message(schema, &message)?;
        let kind = &schema.messages[usize::from(message.kind)];
        if !self.messages.take(message.kind, Instant::now()) {
            return Err(Close::new(
                CloseReason::Flood,
                close_code::POLICY,
                format!("flooding: message {} over its {} a second", kind.name, kind.per_second),
            ));
        }
        if !input.say(message) {
            return Err(Close::new(
                CloseReason::Flood,
                close_code::POLICY,
                "flooding: too many messages waiting for the next tick",
            ));
        }
        Ok(())
    }

    /// Writes what the tick loop could not: a tick's ack, frame and what follows it.
    async fn write_left(&mut self, Outbound { ack, frame, after }: Outbound) -> Result<(), Close> {
        let ack = ack.map(|seq| {
            let mut bytes = [0u8; frames::ACK_FRAME_MAX];
            let len = frames::ack_frame(seq, &mut bytes);
            Bytes::copy_from_slice(&bytes[..len])
        });
        self.write(ack, frame).await?;
        if let Some(after) = after {
            self.write(None, after).await?;
        }
        Ok(())
    }

    /// Writes `frame` after `lead` (a tick's ack and frame leave in one syscall), and after
    /// whatever is owed (a pong). A socket that takes nothing for `--write-timeout`, or a kick
    /// from the tick loop while this write is stuck, makes the player too slow; the frames
    /// stay owed whole, so the close frame that follows is well formed.
    async fn write(&mut self, lead: Option<Bytes>, frame: Bytes) -> Result<(), Close> {
        let limit = self.state.config.write_timeout;
        let (socket, outbox) = (&mut self.socket, &self.outbox);
        let kicked = async {
            match outbox {
                Some(outbox) => outbox.kicked().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            written = timeout(limit, socket.send(lead, frame)) => match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(Close::gone()),
                Err(_) => Err(Close::too_slow(format!("nothing written for {limit:?}"))),
            },
            () = kicked => Err(Close::too_slow("outbound queue stayed full")),
        }
    }

    /// Sends a frame of the session's own once joined: through the outbox, as the tick loop
    /// writes to the socket too.
    fn send_own(&self, frame: Bytes) {
        // Only a joined session (whose outbox is set) sends frames of its own.
        self.outbox.as_ref().expect("joined").send(frame);
    }

    /// Sends the close frame (unless the peer is gone) and counts the close.
    async fn finish(&mut self, close: Close) {
        self.state.metrics.close(close.reason);
        // From here on the tick loop writes nothing; the rest of a frame it began is finished
        // before the close frame. A dropped connection's seat is kept for its player.
        let dropped = close.dropped();
        let rest = self.outbox.as_mut().and_then(|outbox| outbox.close(dropped));
        let Some((code, text)) = close.frame else {
            return tracing::debug!("player left");
        };
        tracing::debug!(reason = ?close.reason, code, text, "closing player");
        let frame = if code == 0 {
            frames::empty_close_frame()
        } else {
            frames::close_frame(code, &text)
        };
        // Best effort, and briefly: the rest of an interrupted frame, then the close. A peer
        // too slow to take them is simply dropped.
        let socket = &mut self.socket;
        let closing = async {
            if let Some(rest) = rest {
                socket.send(None, rest).await?;
            }
            socket.send(None, frame).await
        };
        // Boxed, as it is awaited once: the session's future need not hold room for it.
        let _ = Box::pin(timeout(Duration::from_millis(500), closing)).await;
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    use crate::client::{Client, ClientError, Received};
    use crate::{Config, Server};

    /// A player by this name makes its session task panic on its first message after joining
    /// (test builds only).
    const PANIC_NAME: &str = "inject-a-panic";

    pub(super) fn maybe_fail(name: &str) {
        assert!(name != PANIC_NAME, "injected session failure");
    }

    #[tokio::test]
    async fn a_panicking_session_takes_down_only_its_own_player() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::new(
            listener,
            Config {
                seed: Some(1),
                ..Config::defaults()
            },
        );
        let url = format!("ws://{}/ws", server.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(server.run(shutdown.clone()));

        let mut ann = Client::connect(&url, "ann").await.unwrap();
        let mut doomed = Client::connect(&url, PANIC_NAME).await.unwrap();
        let doomed_id = doomed.player_id();
        doomed.send_ping(1).await.unwrap(); // its session panics on this
        // ann sees the doomed player come and go, and the ticks keep coming.
        let mut seen = false;
        let mut gone_at = None;
        while gone_at.is_none_or(|t| ann.world().unwrap().tick() < t + 5) {
            match ann.recv().await.unwrap() {
                Received::Snapshot { .. } | Received::Delta { .. } => {
                    let present = ann.world().unwrap().get(doomed_id).is_some();
                    seen |= present;
                    if seen && !present && gone_at.is_none() {
                        gone_at = Some(ann.world().unwrap().tick());
                    }
                }
                _ => {}
            }
        }
        drop(doomed);
        // A newcomer still joins.
        let newcomer = Client::connect(&url, "late").await;
        assert!(
            newcomer.is_ok(),
            "{:?}",
            newcomer.err().map(|e: ClientError| e.to_string())
        );
        shutdown.cancel();
        running.await.unwrap().unwrap();
    }
}
