// tickcast.js: the client of a tickcast server, for browsers and Node (20 and up; 20 and 21
// with --experimental-websocket), as ES modules with no dependencies: this one (the
// connection), ./tickcast-wire.js (the bytes) and ./tickcast-world.js (the world, prediction's
// steps), whose exports it re-exports. Every server serves them (`/tickcast.js`, to any page);
// they are also the npm package `tickcast-client` (client-js/README.md; its types in types/).
//
//   import { Client } from "http://127.0.0.1:8080/tickcast.js";  // plays on that server, from any page
//   const client = new Client({ room: "k3Xq9TzA1bWm", name: "ann", options: { team: 1 } });  // or { url }, { matchmake: "tanks" }
//   client.addEventListener("welcome", () => …);
//   client.addEventListener("event:kill", (ev) => console.log(ev.detail.fields.by_name));
//   client.addEventListener("ended", (ev) => console.log(ev.detail.summary));
//   client.start();
//   client.setInput({ dx: 127, dy: 0 });                                  // by the schema's input fields
//   client.send("chat", { line: "gg" });                                  // a message, by the schema's messages
//   requestAnimationFrame(function draw(now) { const view = client.view(now); …; requestAnimationFrame(draw); });
//
// Events of a `Client` (an EventTarget; every `detail` is plain data):
// - `welcome`: `detail` the Welcome ({ playerId, tickHz, schema }); again when the room starts
//   its next match (a new player id, a fresh world; `client.match` counts them from 1);
// - `frame`: a snapshot or delta applied (`detail` the message); `private`: the player's
//   private fields applied (`detail` the message);
// - `event`, and `event:<kind>` for each event kind of the schema: something the game told this
//   player, `detail` { tick, kind (its name), fields (its parameters by name) };
// - `ended`: the match is over, `detail` { tick, summary, standings: [{ player, name, rank,
//   score }] } (also kept as `client.results`); then the room closes (1000) or a `welcome`;
// - `refused`: the server will not have this player, and trying again would not change that:
//   the client stops. `detail` { code, reason } (kept as `client.refusal`), `code` the HTTP
//   status of a refused request (403 a page of a foreign origin, 404 no such room, 421 a room
//   on another node joined by `url`; the rooms API's and matchmaking's refusals) or the close
//   code of a refused hello or player (1008 a missing or bad join token, or a message breaking
//   the rules, 1013 the room is full, 1001 it is closing, 1002 and 1003 the protocol's, 4000
//   the game's). A browser hides why an upgrade was refused (its socket closes 1006, no
//   reason), so when a connection ends before its Welcome the client asks the server at the
//   same URL without the upgrade (`GET …/ws?name=&token=`: `{ admitted, code, reason }`)
//   before it reconnects;
// - `reconnecting`: the connection dropped and the client is taking its seat back (below),
//   `detail` { attempt } (1, 2, …) at each attempt; `resumed`: it has, `detail` { attempts,
//   tookMs (from the drop noticed to the new Welcome), playerId (the same entity) }: the world
//   is replaced by the snapshot that follows, the input `seq` goes on; `seatlost`: the seat is
//   gone (the server refused the resume token, close 4001, or the grace ran out), `detail`
//   { code, reason }: the client joins again afresh, as a new player;
// - `status` (`detail` connecting, playing, reconnecting, refused or closed), `close` (`detail`
//   { code, reason }, whenever the client stops for good: a refusal's code and reason as in
//   `refused`, 1000 the match is over and the room closed, 4002 another connection took the
//   seat over, …), `drift` (`detail` the reason).
//
// What it does (PROTOCOL.md is the contract it is written from):
// - decodes every message of protocol version 5 by the schema the Welcome carries, refusing
//   what the protocol rules out (non-shortest varints, trailing bytes, unknown kinds, …);
// - keeps the world exactly as the server has it (public fields, and the private fields of
//   what the player owns), checks the world checksum and the private checksum whenever they
//   come (about once a second) and comes back with a fresh snapshot when it drifted (or when
//   the connection drops);
// - takes its seat back when the connection drops: every Welcome carries a resume token (empty
//   when the room keeps no seats) and how long the server keeps the seat after a drop
//   (`graceMs`). A connection that closes without a close frame (1006, 1005), that drifted, or
//   from which nothing arrived for `silenceMs` (3 s by default; a frame comes every tick and a
//   pong every second) is taken for dropped, and the client connects again to the same URL
//   with a Hello carrying the token of its last Welcome, after waits of 100 ms doubling up to
//   2 s (each drawn between half and all of it), until the grace after the drop is over. The
//   server welcomes it again as the same entity (with a new token: each works once), then
//   sends a snapshot. A resume it refuses (close 4001), or a grace run out, loses the seat
//   (`seatlost`), and the client joins afresh. A silent socket is never closed by the client
//   while its seat is kept: a close frame is a goodbye, which gives the seat up at once (see
//   `dropped`). `client.stop()` is a goodbye;
// - sends inputs with increasing `seq`, messages checked against the schema (a kind it lacks,
//   a value out of range or over its limit, or more than the kind's rate throws), pings every
//   second and keeps the round trip and its jitter;
// - interpolation: other entities are drawn a little in the past, between the two ticks around
//   the render time, with a delay that follows the measured jitter of the frames' arrival
//   (about 2 ticks on a steady network); it never extrapolates, and snaps through a teleport;
// - prediction and reconciliation, for games with a client-side step (arena's and tanks', in
//   tickcast-world.js, bit-exact with the server's integer rules): the own entity moves at once;
//   each frame restarts it from the server's position and replays the inputs not yet
//   acknowledged; what a late or early input changes is eased out over a tenth of a second.
//
// Every number the client measures is in `client.stats` (for pages and tests). For pages,
// `describeEvent(detail, nameOf)` words an event as a line for people (a kill feed).

import { decodeServerMsg, encodeClientMsg, messageOf } from "./tickcast-wire.js";
import { DriftError, World, predictors, speedLimits } from "./tickcast-world.js";

export * from "./tickcast-wire.js";
export * from "./tickcast-world.js";

// ---------------------------------------------------------------------------------------------
// The connection.

const FRAMES_KEPT = 64;
const PING_EVERY_MS = 1000;
const EASE_MS = 100;
// This client's own close code: it drops a connection that drifted or went silent, and comes
// back (only when it has no seat to resume: see `dropped`).
const COMING_BACK = 4100;
// The server's close code of a resume token it does not take: the seat is gone, join afresh.
// (Its 4002 closes the old connection of a player that resumed on a new one: this client has
// detached that socket's handlers by then, and never hears it; on the connection in use it
// means another took the seat over, and the client stops.)
const RESUME_REFUSED = 4001;
// How long nothing may arrive on a connection before it is taken for dropped, by default.
const SILENCE_MS = 3000;
// How often the silence is checked.
const WATCH_MS = 250;
// The resume's backoff: the first wait, doubled after each attempt up to the last.
const RESUME_FIRST_MS = 100;
const RESUME_MAX_MS = 2000;
// The close codes of a refusal (a bad hello or join token, a full room, a message that broke
// the rules, the game's 4000): reconnecting will not help.
const REFUSALS = new Set([1002, 1003, 1008, 1013, 4000]);
// How long a socket's `close` may lag behind its `error` before it is taken for closed.
const CLOSE_AFTER_ERROR_MS = 250;
// How long the server is given to say whether a player would be let in.
const ADMISSION_MS = 5000;

/** A refusal from the rooms API (an unknown room, a bad name): reconnecting will not help. */
class Refusal extends Error {
  constructor(code, reason) { super(reason); this.code = code; }
}

// The server a Client plays on when its options name none: the one this module was imported
// from (`import { Client } from "https://game.example/tickcast.js"` on any site's page plays on
// game.example), else this page's (the module bundled or copied into a site: a `file:` or
// bundler's URL), else a local server's (Node, with the module from a file).
const defaultServer = (() => {
  try {
    const here = new URL(import.meta.url);
    if (here.protocol === "http:" || here.protocol === "https:") return here.origin;
  } catch { /* not a URL a server could have served */ }
  if (typeof location !== "undefined" && /^https?:$/.test(location.protocol)) return location.origin;
  return "http://127.0.0.1:8080";
})();

// Whether a connection that ended with `code` comes back: a drop (1006), a server restart
// (1001 shutting down), a crash (1011) or a drift; not a room closed on purpose or a match over.
const transient = (code, reason) => code === 1006 || code === 1011 || code === COMING_BACK
  || (code === 1001 && !reason.startsWith("room closed"));
// Whether a welcomed connection that ended with `code` dropped, rather than being closed by the
// server: no close frame (1006), or one without a code (1005). Its seat is kept.
const withoutCloseFrame = (code) => code === 1006 || code === 1005;
// Whether a resume attempt that ended with `code` is tried again: it never reached the server,
// or was cut on the way (the server's word on the seat is a 4001, on anything else a refusal).
const resumeAgain = (code) => code === 1006 || code === 1005 || code === 1011 || code === COMING_BACK;

/**
 * A player's connection to a room; its events are in the module's header.
 *
 * Options: `url` (a player WebSocket URL), or `room` (an id: `<server>/rooms/<id>/ws`), or
 * `matchmake` (a game name: `POST <server>/matchmake`); `server` (its http(s) origin, and
 * path prefix if any; by default the origin this module was imported from, see
 * `defaultServer`); `name`; `token`; `options` (the join options the hello carries, by name: a
 * number or a string each, as the game's schema names them; matchmaking is asked with them);
 * `predict` (default true); `reconnect` (default true); `resume` (default true: take the seat
 * back after a dropped connection; false: join afresh); `silenceMs` (default 3000: how long
 * nothing may arrive before the connection is taken for dropped; 0 never).
 */
export class Client extends EventTarget {
  constructor(options = {}) {
    super();
    this.options = { predict: true, reconnect: true, resume: true, silenceMs: SILENCE_MS, name: "", token: "", options: {}, ...options };
    this.server = this.options.server ?? defaultServer;
    this.status = "idle";
    this.schema = null; this.world = null; this.playerId = 0; this.tickHz = 30;
    this.match = 0; this.results = null; this.ended = false; this.allowances = [];
    this.stats = {
      rtt: null, rttSmoothed: null, jitter: 0, pings: 0,
      frames: 0, snapshots: 0, checksumsVerified: 0, checksumMismatches: 0,
      privateChecksumsVerified: 0, privateChecksumMismatches: 0, events: 0, messages: 0,
      predictionChecks: 0, predictionMismatches: 0, predictionMaxError: 0,
      corrections: 0, correctionMax: 0, reconnects: 0, drifts: 0, decodeErrors: 0,
      interpolationDelayMs: 0, lastClose: null,
      // Connections taken for dropped by their silence; seats taken back, the attempts made
      // (each `reconnecting`), seats lost (each `seatlost`).
      silences: 0, resumes: 0, resumeAttempts: 0, seatsLost: 0,
    };
    this.ws = null;
    this.seq = 0; this.input = []; this.sentInput = null;
    this.pending = []; this.ack = 0; this.ackedInput = [];
    this.frames = []; this.clock = null; this.arrivals = [];
    this.own = null; this.ease = null;
    this.render = null; this.backoff = 500; this.stopped = false;
    this.refusal = null; this.attempt = 0;
    // The seat: the resume token of the last Welcome ("" when the room keeps none), how long it
    // is kept after a drop; while taking it back, `resuming` { noticed, deadline, attempts,
    // delay, code, reason }; sockets left open, detached, until the server has replaced them.
    this.resumeToken = ""; this.graceMs = 0; this.resuming = null; this.abandoned = [];
    this.heardAt = 0; this.watchdog = null;
  }

  /** Connects (resolving the room by matchmaking first when asked). */
  async start() {
    this.stopped = false; this.refusal = null; this.resuming = null;
    const attempt = ++this.attempt;
    clearTimeout(this.retry);
    this.setStatus(this.stats.reconnects ? "reconnecting" : "connecting");
    let target;
    try {
      target = await this.resolve();
    } catch (err) {
      if (attempt !== this.attempt) return;
      // A room that is gone (404) or a refusal is final; a server out of reach is retried,
      // unless it says this page would be refused anyway: asked at the room's player URL, or
      // for matchmaking (whose room is not known yet) at the default room's, which says at
      // least whether this page's origin may play here (a browser hides why a cross-origin
      // request failed: the preflight's 403 reads as a network error).
      if (err instanceof Refusal) return this.refused(err.code, err.message);
      const why = String(err.message || err);
      if (this.options.matchmake) return this.admit(1006, why, `${this.server}/ws`, "");
      const id = encodeURIComponent(this.options.room ?? "default");
      return this.admit(1006, why, `${this.server}/rooms/${id}/ws`, this.options.token);
    }
    if (this.stopped || attempt !== this.attempt) return;
    this.url = target.url; this.token = target.token; this.joinOptions = target.options;
    this.open();
    this.watch();
  }

  // Where to connect, worked out again on every (re)connect: a matchmade seat's token expires
  // with its hold, and a room may have moved.
  async resolve() {
    const { url, matchmake, token, options } = this.options;
    const json = async (res) => {
      const body = await res.json().catch(() => ({}));
      if (res.ok) return body;
      const why = body.error || `HTTP ${res.status}`;
      throw res.status >= 500 || res.status === 429 ? new Error(why) : new Refusal(res.status, why);
    };
    if (matchmake) {
      const body = await json(await fetch(`${this.server}/matchmake`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ game: matchmake, name: this.options.name, options }),
      }));
      this.room = body.room;
      return { url: body.ws, token: body.token || token, options: body.options ?? options };
    }
    if (url) return { url, token, options };
    const id = this.options.room ?? "default";
    const body = await json(await fetch(`${this.server}/rooms/${encodeURIComponent(id)}`));
    this.room = body.id;
    // A room of this node is joined through the address this page reached it by (a proxy, a
    // relay); a room of another node of a cluster, at its owner (README, "Run a cluster").
    const here = new URL(body.page).host === new URL(body.ws).host;
    return { url: here ? `${this.server.replace(/^http/, "ws")}/rooms/${encodeURIComponent(body.id)}/ws` : body.ws, token, options };
  }

  // A connection to `this.url`: a join, or with `resume` (a Welcome's resume token) the seat
  // that token names taken back. A resume's hello carries nothing else: the seat has its name
  // and options, and the token is its proof (no join token).
  open(resume = "") {
    this.welcomed = false; this.ended = false;
    if (this.ws) { const old = this.ws; this.ws = null; detach(old); old.close(1000, "replaced"); }
    const ws = this.ws = new WebSocket(this.url);
    ws.binaryType = "arraybuffer";
    const hello = encodeClientMsg(resume
      ? { type: "hello", resume }
      : { type: "hello", name: this.options.name, token: this.token, options: this.joinOptions });
    this.heardAt = performance.now();
    ws.onopen = () => ws.send(hello);
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      this.heardAt = performance.now();
      this.onMessage(new Uint8Array(ev.data), this.heardAt);
    };
    let closed = false;
    ws.onclose = (ev) => { closed = true; if (ws === this.ws) this.onClose(ev.code, ev.reason); };
    // Node 20's WebSocket fires `error` and never `close` for a connection it could not open (a
    // refused upgrade, a server out of reach), and stays CONNECTING: a socket whose error no
    // `close` follows soon is taken for closed (1006), as a browser's would be.
    ws.onerror = () => setTimeout(() => {
      if (closed || ws !== this.ws || ws.readyState === WebSocket.OPEN) return;
      closed = true;
      detach(ws);
      this.onClose(1006, "");
    }, CLOSE_AFTER_ERROR_MS);
  }

  /** Leaves the room (close 1000: a goodbye, the seat given up) and stops reconnecting. */
  stop() {
    this.stopped = true;
    clearInterval(this.pinger);
    clearTimeout(this.retry); clearTimeout(this.inputTimer);
    this.unwatch();
    this.resuming = null;
    if (this.ws) this.ws.close(1000, "bye");
    this.closeAbandoned();
    this.setStatus("closed");
  }

  // The watchdog: a welcomed connection from which nothing arrived for `silenceMs` is taken for
  // dropped (a half-open socket, as when a phone leaves its Wi-Fi, never closes by itself), and
  // a resume attempt that brought no Welcome in that time is given up. A check that comes late
  // itself (the page was busy, or hidden and its timers held back) says nothing about the
  // network: the count starts again from it.
  watch() {
    if (this.watchdog) return;
    this.watchedAt = performance.now();
    this.watchdog = setInterval(() => this.checkSilence(performance.now()), WATCH_MS);
  }

  unwatch() { clearInterval(this.watchdog); this.watchdog = null; }

  checkSilence(now) {
    const late = now - this.watchedAt > Math.max(1500, this.options.silenceMs / 2);
    this.watchedAt = now;
    if (!this.ws || this.stopped || !(this.options.silenceMs > 0)) return;
    if (late) { this.heardAt = Math.max(this.heardAt, now); return; }
    const silent = now - this.heardAt;
    if (silent < this.options.silenceMs) return;
    if (this.welcomed) {
      this.stats.silences++;
      return this.dropped(1006, `nothing heard for ${Math.round(silent)} ms`);
    }
    if (this.resuming) this.abandonAttempt();
  }

  // The welcomed connection is lost while its socket may still look open: it went silent, or
  // drifted. With a seat to take back, the socket must NOT be closed: in a browser `ws.close()`
  // always sends a close frame (there is no way to drop a WebSocket without one), and the
  // server takes a close frame for a goodbye: it gives the seat up at once, and the resume
  // that follows is refused. So the socket is left as it is, its handlers detached (nothing it
  // still says reaches this client: not the 4002 the server closes it with once the resume has
  // taken the seat over), and kept referenced until then (a WebSocket collected while open is
  // closed with a close frame); the resume starts at once. Without a seat there is nothing to
  // keep: the socket is closed and the client joins again.
  dropped(code, reason) {
    const ws = this.ws;
    if (this.canResume()) {
      if (ws) { detach(ws); this.abandoned.push(ws); }
      return this.beginResume(code, reason);
    }
    this.ws = null;
    if (ws) { detach(ws); ws.close(COMING_BACK, "coming back"); }
    this.onClose(COMING_BACK, reason);
  }

  canResume() {
    return Boolean(this.resumeToken) && this.welcomed && this.options.resume && this.options.reconnect && !this.stopped;
  }

  // The welcomed connection dropped, and the room keeps its seat: take it back on a new one.
  beginResume(code, reason) {
    const now = performance.now();
    this.ws = null; this.welcomed = false;
    this.attempt++; // whatever was under way for the old connection is over
    clearInterval(this.pinger); clearTimeout(this.retry);
    clearTimeout(this.inputTimer); this.inputTimer = null;
    this.resuming = { noticed: now, deadline: now + this.graceMs, attempts: 0, delay: RESUME_FIRST_MS, code, reason };
    this.stats.lastClose = { code, reason };
    this.setStatus("reconnecting");
    this.nextResume();
  }

  // The next attempt, after a wait drawn between half and all of the backoff (100 ms, doubled
  // after each attempt up to 2 s), so that players dropped together do not all come back at
  // once.
  nextResume() {
    const r = this.resuming;
    const wait = r.delay * (0.5 + Math.random() / 2);
    r.delay = Math.min(RESUME_MAX_MS, r.delay * 2);
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.tryResume(), wait);
  }

  tryResume() {
    const r = this.resuming;
    if (!r || this.stopped) return;
    // Past the grace the server has given the seat up: no attempt would find it.
    if (performance.now() >= r.deadline) return this.seatLost(r.code, this.graceOver());
    r.attempts++;
    this.stats.resumeAttempts++;
    this.dispatchEvent(new CustomEvent("reconnecting", { detail: { attempt: r.attempts } }));
    this.open(this.resumeToken);
  }

  graceOver() {
    const { reason } = this.resuming;
    return `the seat's ${this.graceMs} ms grace ran out${reason ? ` (dropped: ${reason})` : ""}`;
  }

  // A resume attempt that brought no Welcome within the silence limit: given up, and the next
  // made. A socket still connecting has sent nothing and is closed; one that sent its hello is
  // left open, detached (closing it would be the goodbye of a seat it may just have taken).
  abandonAttempt() {
    const ws = this.ws;
    this.ws = null;
    detach(ws);
    if (ws.readyState === WebSocket.CONNECTING) ws.close(); else this.abandoned.push(ws);
    this.nextResume();
  }

  // The new Welcome of a resumed seat: the same entity, a new token. The world stays until the
  // snapshot that follows replaces it; the input `seq` goes on (the server takes only a `seq`
  // above the last it applied); the message allowances go on. What was drawn from the old
  // connection's frames (the clock, the interpolation, the prediction's base) starts over, and
  // the inputs in flight were lost with it. The input in force goes out again, even a neutral
  // one: the server has applied a neutral input since the drop if it noticed it, but the last
  // input of the old connection if that still looked open to it (a half-open socket, replaced).
  onResumed(msg, now) {
    const r = this.resuming;
    this.resuming = null;
    this.resumeToken = msg.resume; this.graceMs = msg.graceMs;
    this.schema = msg.schema; this.tickHz = msg.tickHz; this.period = 1000 / msg.tickHz;
    this.pending = []; this.sentInput = null; this.sentAt = null;
    this.ackedInput = msg.schema.input.map(() => 0);
    this.input = this.inputOf(this.wanted ?? {});
    this.frames = []; this.clock = null; this.arrivals = []; this.own = null; this.ease = null; this.render = null;
    this.backoff = 500;
    this.stats.resumes++;
    // The server has replaced the old connections by now (or found them gone): closing them
    // costs the seat nothing.
    this.closeAbandoned();
    this.setStatus("playing");
    this.dispatchEvent(new CustomEvent("resumed", { detail: { attempts: r.attempts, tookMs: now - r.noticed, playerId: this.playerId } }));
    this.ping(now);
    clearInterval(this.pinger);
    this.pinger = setInterval(() => this.ping(performance.now()), PING_EVERY_MS);
    this.flushInput(now);
  }

  // The seat is gone: the server refused the resume token (4001), the grace ran out, or the
  // server went away meanwhile. Said (`seatlost`), and the player joins again afresh, as after
  // any other dropped connection.
  seatLost(code, reason) {
    this.resuming = null; this.resumeToken = "";
    this.stats.seatsLost++;
    this.closeAbandoned();
    this.dispatchEvent(new CustomEvent("seatlost", { detail: { code, reason } }));
    this.again(code, reason);
  }

  closeAbandoned() {
    for (const ws of this.abandoned.splice(0)) ws.close(1000, "gone");
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", { detail: status }));
  }

  closed(code, reason) {
    this.unwatch();
    this.stats.lastClose = { code, reason };
    this.setStatus("closed");
    this.dispatchEvent(new CustomEvent("close", { detail: { code, reason } }));
  }

  // The player will not be let in: no more reconnecting.
  refused(code, reason) {
    clearTimeout(this.retry);
    this.unwatch();
    this.refusal = { code, reason };
    this.stats.lastClose = { code, reason };
    this.setStatus("refused");
    this.dispatchEvent(new CustomEvent("refused", { detail: { code, reason } }));
    this.dispatchEvent(new CustomEvent("close", { detail: { code, reason } }));
  }

  // `unwelcomed`: the connection ended before its Welcome.
  onClose(code, reason, unwelcomed = !this.welcomed) {
    clearInterval(this.pinger);
    // A welcomed connection that dropped, its seat kept: taken back.
    if (!unwelcomed && withoutCloseFrame(code) && this.canResume()) return this.beginResume(code, reason);
    this.ws = null;
    // A resume attempt: tried again while it did not reach the server (until the grace is
    // over); a refused token (4001), or a server that went away meanwhile, is a seat lost, and
    // the player joins afresh; a refusal (a room closing) is one.
    if (this.resuming && !this.stopped) {
      const r = this.resuming;
      if (resumeAgain(code)) {
        r.code = code; r.reason = reason || r.reason;
        if (performance.now() < r.deadline) return this.nextResume();
        return this.seatLost(code, this.graceOver());
      }
      if (code === RESUME_REFUSED || transient(code, reason)) return this.seatLost(code, reason);
      this.resuming = null;
    }
    // The connection is over, and its seat with it.
    this.welcomed = false; this.resumeToken = "";
    // Never reconnect after a refusal (1008, 1013, 1002, the game's 4000 …; a room closing
    // before the player was in), a room closed on purpose or a match over (1000).
    if (!this.stopped && (REFUSALS.has(code) || (unwelcomed && code === 1001 && reason.startsWith("room closed")))) {
      return this.refused(code, reason);
    }
    if (this.stopped || !transient(code, reason)) return this.closed(code, reason);
    // A socket that failed before its Welcome may have been refused where the browser hides it.
    if (unwelcomed && this.url) return this.admit(code, reason, this.url.replace(/^ws/, "http"), this.token);
    this.again(code, reason);
  }

  // Asks the server whether this player would be let in at `url` (a player URL, http(s)): a
  // refusal it names is final; a yes, an answer that waiting may change (a 5xx, a room to
  // resolve again) or no answer at all (the server out of reach), and the connection is retried.
  async admit(code, reason, url, token) {
    const attempt = this.attempt;
    let answer = null;
    try {
      const ask = new URL(url, typeof location !== "undefined" ? location.href : undefined);
      ask.searchParams.set("name", this.options.name ?? "");
      ask.searchParams.set("token", token ?? "");
      const signal = typeof AbortSignal.timeout === "function" ? AbortSignal.timeout(ADMISSION_MS) : undefined;
      const res = await fetch(ask, { cache: "no-store", signal });
      if (res.ok) answer = await res.json();
    } catch { /* out of reach, or not a server of ours: retried */ }
    // Stopped, or started again, while asking.
    if (this.stopped || attempt !== this.attempt) return;
    if (answer && answer.admitted === false && this.final(answer.code)) {
      return this.refused(answer.code, String(answer.reason ?? ""));
    }
    this.again(code, reason);
  }

  // Whether an admission's refusal `code` is final: a foreign origin always; a full or closing
  // room, a bad token or an unknown room unless matchmaking finds another room; a room on
  // another node only for a `url` (a room is looked up again, and found there); never a 5xx or
  // a 429 (the server is busy, or its cluster's directory away).
  final(code) {
    if (typeof code !== "number" || code >= 500 || code === 429) return false;
    if (code === 403) return true;
    if (this.options.matchmake) return false;
    return code !== 421 || Boolean(this.options.url);
  }

  again(code, reason) {
    if (!this.options.reconnect || this.stopped) return this.closed(code, reason);
    this.stats.lastClose = { code, reason };
    this.setStatus("reconnecting");
    clearTimeout(this.retry);
    this.retry = setTimeout(() => { if (!this.stopped) { this.stats.reconnects++; this.start(); } }, this.backoff);
    this.backoff = Math.min(10000, this.backoff * 2);
  }

  /** Drops the connection and comes back with a fresh snapshot: to its seat, when it has
   *  one (a resume), or as a new player. */
  drift(why) {
    this.stats.drifts++;
    this.dispatchEvent(new CustomEvent("drift", { detail: why }));
    if (this.welcomed) return this.dropped(COMING_BACK, why);
    const ws = this.ws;
    this.ws = null;
    if (ws) { detach(ws); ws.close(COMING_BACK, "drifted"); }
    this.onClose(COMING_BACK, why);
  }

  onMessage(bytes, now) {
    let msg;
    try { msg = decodeServerMsg(bytes, this.schema); } catch (err) {
      this.stats.decodeErrors++;
      return this.drift(`undecodable message: ${err.message}`);
    }
    switch (msg.type) {
      case "welcome": {
        // A second Welcome only starts the next match, after the last one ended.
        if (this.welcomed && !this.ended) return this.drift("a second Welcome while the match goes on");
        const nextMatch = this.welcomed;
        this.welcomed = true; this.ended = false;
        if (this.resuming) {
          if (msg.playerId === this.playerId) return this.onResumed(msg, now);
          // Not the seat it held (never, from a server of ours): a new player, from scratch.
          this.resuming = null;
          this.dispatchEvent(new CustomEvent("seatlost", { detail: { code: 0, reason: `welcomed as ${msg.playerId}, not ${this.playerId}` } }));
        }
        return this.onWelcome(msg, now, nextMatch);
      }
      case "snapshot": case "delta": return this.onFrame(msg, now);
      case "private": return this.onPrivate(msg);
      case "events": return this.onEvents(msg);
      case "matchEnded": return this.onMatchEnded(msg);
      case "ack": return this.onAck(msg.seq, now);
      case "pong": return this.onPong(msg, now);
    }
  }

  // The first Welcome of a connection, or the next match's on the same one: a fresh world and
  // a new player id either way. The connection's input `seq` goes on across matches (the
  // server ignores one not above the last it saw), and the input in force is sent again.
  onWelcome(msg, now, nextMatch) {
    this.schema = msg.schema; this.playerId = msg.playerId; this.tickHz = msg.tickHz;
    this.resumeToken = msg.resume; this.graceMs = msg.graceMs;
    this.closeAbandoned();
    this.period = 1000 / msg.tickHz;
    this.world = new World(msg.schema);
    this.match = nextMatch ? this.match + 1 : Math.max(1, this.match);
    if (!nextMatch) { this.seq = 0; this.allowances = msg.schema.messages.map((m) => ({ tokens: allowance(m), at: now })); }
    this.pending = []; this.ack = 0; this.sentInput = null;
    this.ackedInput = msg.schema.input.map(() => 0);
    this.input = this.inputOf(this.wanted ?? {});
    this.sentAt = null; clearTimeout(this.inputTimer); this.inputTimer = null;
    this.frames = []; this.clock = null; this.arrivals = []; this.own = null; this.ease = null; this.render = null;
    this.predictor = this.options.predict ? predictors.get(msg.schema.game) : undefined;
    this.limits = speedLimits.get(msg.schema.game);
    this.backoff = 500;
    this.setStatus("playing");
    this.dispatchEvent(new CustomEvent("welcome", { detail: msg }));
    this.ping(now);
    clearInterval(this.pinger);
    this.pinger = setInterval(() => this.ping(performance.now()), PING_EVERY_MS);
    // The input in force (set before the welcome, or in the last match) goes out now.
    if (this.input.some((v) => v !== 0)) this.flushInput(now);
  }

  // The player's private fields, after the frame: applied, and checked when the checksum of
  // what it holds comes with them.
  onPrivate(msg) {
    try { this.world.private(msg); } catch (err) {
      if (err instanceof DriftError) return this.drift(err.message);
      throw err;
    }
    if (msg.checksum !== null) {
      if (this.world.privateChecksum(this.playerId) === msg.checksum) this.stats.privateChecksumsVerified++;
      else { this.stats.privateChecksumMismatches++; return this.drift(`private checksum mismatch at tick ${msg.tick}`); }
    }
    this.dispatchEvent(new CustomEvent("private", { detail: msg }));
  }

  // Each event as `event` and `event:<kind>`, its parameters by name.
  onEvents(msg) {
    for (const e of msg.events) {
      const kind = this.schema.events[e.kind];
      const fields = Object.fromEntries(kind.params.map((p, i) => [p.name, e.values[i]]));
      const detail = { tick: msg.tick, kind: kind.name, fields };
      this.stats.events++;
      this.dispatchEvent(new CustomEvent("event", { detail }));
      this.dispatchEvent(new CustomEvent(`event:${kind.name}`, { detail }));
    }
  }

  onMatchEnded(msg) {
    this.ended = true;
    this.results = { tick: msg.tick, summary: msg.summary, standings: msg.standings };
    this.dispatchEvent(new CustomEvent("ended", { detail: this.results }));
  }

  /**
   * Sends a message of the kind named `kind` (one of the schema's messages), its parameters by
   * name in `fields` (a missing one is 0 or ""). Throws, sending nothing, for a kind or a
   * parameter the schema lacks, a value of the wrong type, out of its range or over its limit,
   * a message over the kind's rate (the server would close the connection for each), or when
   * not connected.
   */
  send(kind, fields = {}, now = performance.now()) {
    if (!this.schema || !this.welcomed || !this.ws || this.ws.readyState !== WebSocket.OPEN) throw new Error(`not connected: ${this.status}`);
    const msg = messageOf(this.schema, kind, fields);
    const rate = this.schema.messages[msg.kind];
    const left = this.allowances[msg.kind];
    // The server's allowance (PROTOCOL.md, `per_second`: in bursts of up to a second's worth)
    // less one message, kept for the network's jitter between here and there.
    left.tokens = Math.min(allowance(rate), left.tokens + ((now - left.at) / 1000) * rate.perSecond);
    left.at = now;
    if (left.tokens < 1) throw new RangeError(`message ${kind}: over its ${rate.perSecond} a second`);
    left.tokens -= 1;
    this.ws.send(encodeClientMsg(msg, this.schema));
    this.stats.messages++;
  }

  ping(now) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(encodeClientMsg({ type: "ping", nonce: ++this.stats.pings, clientTimeUs: Math.round(now * 1000) }));
  }

  onPong(msg, now) {
    const rtt = now - msg.clientTimeUs / 1000;
    if (rtt < 0) return;
    // RFC 3550's interarrival jitter, on the round trip.
    if (this.stats.rtt !== null) this.stats.jitter += (Math.abs(rtt - this.stats.rtt) - this.stats.jitter) / 16;
    this.stats.rtt = rtt;
    this.stats.rttSmoothed = this.stats.rttSmoothed === null ? rtt : 0.875 * this.stats.rttSmoothed + 0.125 * rtt;
  }

  // The input `seq` was applied in the tick whose frame comes next: from now on it, not our
  // guess of its tick, is what the prediction replays (and the difference is eased out).
  onAck(seq, now) {
    const before = this.predictor && this.own ? this.predictOwn(now) : null;
    this.ack = seq;
    const acked = this.pending.find((p) => p.seq === seq);
    if (acked) this.ackedInput = acked.values;
    this.pending = this.pending.filter((p) => p.seq > seq);
    if (before) this.reconcile(before, this.predictOwn(now), now);
  }

  onFrame(msg, now) {
    const before = this.world.tick;
    const ownBefore = this.world.entities.get(this.playerId);
    const ownFieldsBefore = ownBefore ? ownBefore.f.slice() : null;
    try {
      if (msg.type === "snapshot") { this.world.snapshot(msg); this.stats.snapshots++; } else this.world.delta(msg);
    } catch (err) {
      if (err instanceof DriftError) return this.drift(err.message);
      throw err;
    }
    this.stats.frames++;
    if (msg.type === "delta" && msg.checksum !== null) {
      if (this.world.checksum() === msg.checksum) this.stats.checksumsVerified++;
      else { this.stats.checksumMismatches++; return this.drift(`checksum mismatch at tick ${msg.tick}`); }
    }
    const own = this.world.entities.get(this.playerId);
    // Prediction error: the step the client would take for this tick, from the last tick and
    // the input the server says it applied (the ack before this frame), against the server's.
    if (this.predictor && own && ownFieldsBefore && before === msg.tick - 1) {
      const k = this.ownKind();
      const predicted = this.predictor.step(ownFieldsBefore, this.ackedInput, k);
      const error = Math.max(Math.abs(predicted[k.x] - own.f[k.x]), Math.abs(predicted[k.y] - own.f[k.y]));
      // And the other fields the step says it predicts (tanks' aim): equal, or a mismatch.
      const othersOff = (this.predictor.fields ?? []).some((i) => predicted[i] !== own.f[i]);
      this.stats.predictionChecks++;
      if (error || othersOff) this.stats.predictionMismatches++;
      this.stats.predictionMaxError = Math.max(this.stats.predictionMaxError, error);
    }
    const drawn = this.predictor && this.own && own ? this.predictOwn(now) : null;
    this.recordFrame(msg, now);
    this.own = own ? { tick: msg.tick, f: own.f.slice() } : null;
    if (drawn) this.reconcile(drawn, this.predictOwn(now), now);
    this.dispatchEvent(new CustomEvent("frame", { detail: msg }));
  }

  ownKind() {
    const own = this.world.entities.get(this.playerId);
    const kind = this.schema.kinds[own ? own.kind : 0];
    return { x: kind.role.x, y: kind.role.y, scale: this.schema.scale, width: this.schema.width, height: this.schema.height, tickHz: this.tickHz };
  }

  // Keeps each frame's positions for interpolation, and the arrival times the clock and the
  // interpolation delay are worked out from.
  recordFrame(msg, now) {
    const positions = new Map();
    const teleports = new Set();
    const prev = this.frames[this.frames.length - 1];
    const gap = prev ? msg.tick - prev.tick : 1;
    for (const e of this.world.entities.values()) {
      const k = this.schema.kinds[e.kind];
      if (!k.positioned) continue;
      const x = e.f[k.role.x] / this.schema.scale, y = e.f[k.role.y] / this.schema.scale;
      positions.set(e.id, [x, y, e.kind]);
      const was = prev && prev.positions.get(e.id);
      if (was && Math.hypot(x - was[0], y - was[1]) > this.maxMove(k.name, gap)) teleports.add(e.id);
    }
    this.frames.push({ tick: msg.tick, positions, teleports });
    if (this.frames.length > FRAMES_KEPT) this.frames.shift();
    // The clock: local time = base + tick × period, base the earliest arrival (the least
    // delayed frame) of the last two seconds; the spread above it is the jitter to wait out.
    const offset = now - msg.tick * this.period;
    this.arrivals.push({ at: now, offset });
    while (this.arrivals.length && this.arrivals[0].at < now - 2000) this.arrivals.shift();
    // The spread is the latest arrival's: a delay that covers every frame of the last two
    // seconds, so the render time never runs past the newest frame (no extrapolation, and no
    // catching up faster than an entity moves). A frame held up once raises it for two
    // seconds, and the render clock follows at most 10 % faster or slower than real time.
    let base = Infinity, late = -Infinity;
    for (const a of this.arrivals) { base = Math.min(base, a.offset); late = Math.max(late, a.offset); }
    this.clock = { base, spread: late - base };
  }

  maxMove(kindName, gap) {
    const speed = this.limits ? this.limits[kindName] : undefined;
    const perTick = speed === undefined ? this.schema.width / 5 : speed / this.tickHz;
    return perTick * gap * 1.01 + 1 / this.schema.scale;
  }

  /** Sets the input (an object by field name, or an array in schema order) and sends it if
   *  it changed. Values are clamped to each field's range. */
  setInput(values, now = performance.now()) {
    this.wanted = values;
    if (!this.schema) return; // read by the schema once the Welcome comes
    this.input = this.inputOf(values);
    this.flushInput(now);
  }

  // An input as the schema orders it, each value clamped to its field's range.
  inputOf(values) {
    return this.schema.input.map((f, i) => {
      const v = Array.isArray(values) ? values[i] : values?.[f.name];
      const n = typeof v === "boolean" ? Number(v) : Math.round(Number(v ?? 0));
      return Math.max(f.min, Math.min(f.max, Number.isFinite(n) ? n : 0));
    });
  }

  // Sends the input if it changed since the last sent, at most twice a tick (the server's
  // allowance): a change within half a tick of the last send goes out when the half tick is
  // up, as whatever the input is by then.
  flushInput(now) {
    // Not before the Welcome (a reconnecting client's schema is the last connection's): the
    // input in force goes out with it.
    if (!this.ws || !this.welcomed || this.ws.readyState !== WebSocket.OPEN || !this.schema) return;
    if (this.sentInput && this.sentInput.every((v, i) => v === this.input[i])) return;
    const wait = (this.sentAt ?? -Infinity) + this.period / 2 - now;
    if (wait > 0) {
      if (!this.inputTimer) this.inputTimer = setTimeout(() => { this.inputTimer = null; this.flushInput(performance.now()); }, wait);
      return;
    }
    this.sentAt = now;
    const seq = ++this.seq;
    const values = this.input.slice();
    this.ws.send(encodeClientMsg({ type: "input", seq, values }, this.schema));
    this.sentInput = values;
    // The tick the server should apply it in: it arrives half a round trip from now, when the
    // server is half a round trip past the newest tick we have seen arrive.
    this.pending.push({ seq, values, tick: Math.floor(this.serverTick(now) + (this.stats.rttSmoothed ?? 0) / this.period) + 1 });
    if (this.pending.length > 256) this.pending.shift();
  }

  /** The newest tick the server has sent by `now`, as a continuous number. */
  serverTick(now) {
    if (!this.clock) return this.world && this.world.tick !== null ? this.world.tick : 0;
    return (now - this.clock.base) / this.period;
  }

  // The own entity's fields at the present (the tick an input sent now will be applied in):
  // the server's latest, then one step per tick since, each with the input the client believes
  // the server will apply in it.
  predictOwn(now) {
    const k = this.ownKind();
    const present = this.serverTick(now) + (this.stats.rttSmoothed ?? 0) / this.period;
    let f = this.own.f;
    const inputAt = (t) => {
      let input = this.ackedInput;
      for (const p of this.pending) if (p.tick <= t) input = p.values;
      return input;
    };
    const whole = Math.floor(present);
    for (let t = this.own.tick + 1; t <= Math.min(whole, this.own.tick + 64); t++) f = this.predictor.step(f, inputAt(t), k);
    // Between ticks, part of the next tick's step: the input just given shows at once.
    const next = this.predictor.step(f, inputAt(whole + 1), k);
    const frac = Math.max(0, Math.min(1, present - whole));
    return [(f[k.x] + (next[k.x] - f[k.x]) * frac) / this.schema.scale, (f[k.y] + (next[k.y] - f[k.y]) * frac) / this.schema.scale];
  }

  // The render clock: `delay` behind the newest tick, advancing with local time and nudged
  // (never jumped) towards its target.
  renderTick(now) {
    const c = this.clock;
    const delayMs = 2 * this.period + 1.5 * c.spread;
    const target = (now - c.base - delayMs) / this.period;
    if (!this.render) this.render = { tick: target, at: now, delayMs };
    const r = this.render;
    let tick = r.tick + (now - r.at) / this.period;
    const off = target - tick;
    // Up to 10 % faster or slower than real time, never backwards; only a clock a second off
    // (a page that was hidden, a stalled network) is set at once.
    if (Math.abs(off) > this.tickHz) tick = Math.max(target, r.tick);
    else tick += Math.max(-0.1, Math.min(0.1, off)) * ((now - r.at) / this.period);
    r.tick = tick; r.at = now; r.delayMs = delayMs;
    this.stats.interpolationDelayMs = (this.serverTick(now) - tick) * this.period;
    return tick;
  }

  /**
   * What to draw at `now` (a `requestAnimationFrame` time): `entities`, each { id, kind (its
   * name), x, y (world units; null for a kind without a position), own, fields (by name: a
   * number, a text a string; private ones only on what this player owns), jumped (it
   * teleported, or appeared, since the last tick drawn) }, and `tick` (the render tick). Other
   * entities are interpolated; the own one is predicted when the game has a client-side step.
   */
  view(now = performance.now()) {
    if (!this.world || !this.clock || !this.frames.length) return { entities: [], tick: null };
    const tick = this.renderTick(now);
    let a = this.frames[0], b = null;
    for (const f of this.frames) {
      if (f.tick <= tick) a = f; else { b = f; break; }
    }
    const t = b && tick >= a.tick ? (tick - a.tick) / (b.tick - a.tick) : 0;
    const out = [];
    for (const e of this.world.entities.values()) {
      const kind = this.schema.kinds[e.kind];
      const fields = {};
      const owned = this.world.ownerOf(e) === this.playerId;
      kind.fields.forEach((f, i) => {
        if (!f.private || owned) fields[f.name] = f.type === "int" ? e.f[i] | 0 : e.f[i];
      });
      const own = e.id === this.playerId;
      let x, y, jumped = false;
      if (!kind.positioned) { out.push({ id: e.id, kind: kind.name, own, fields, x: null, y: null }); continue; }
      if (own && this.predictor && this.own) {
        [x, y] = this.predictOwn(now);
        [x, y] = this.eased(x, y, now);
      } else if (own && !this.options.predict) {
        // Without prediction the own entity is drawn where the newest frame has it.
        x = e.f[kind.role.x] / this.schema.scale; y = e.f[kind.role.y] / this.schema.scale;
      } else {
        const pa = a.positions.get(e.id), pb = b && b.positions.get(e.id);
        if (!pa) {
          // Not there yet at the render time: shown once the render time reaches its frame.
          if (tick < (this.firstSeen(e.id) ?? -Infinity)) continue;
          const last = this.latestPosition(e.id);
          if (!last) continue;
          [x, y] = last;
          jumped = true;
        } else if (pb && tick >= a.tick && !b.teleports.has(e.id)) {
          x = pa[0] + (pb[0] - pa[0]) * t; y = pa[1] + (pb[1] - pa[1]) * t;
        } else {
          [x, y] = pa;
        }
        jumped ||= a.teleports.has(e.id);
      }
      out.push({ id: e.id, kind: kind.name, own, fields, x, y, jumped });
    }
    return { entities: out, tick };
  }

  firstSeen(id) { for (const f of this.frames) if (f.positions.has(id)) return f.tick; return null; }
  latestPosition(id) {
    for (let i = this.frames.length - 1; i >= 0; i--) { const p = this.frames[i].positions.get(id); if (p) return p; }
    return null;
  }

  // Reconciliation without a snap: when a frame moves the predicted present (an input applied
  // a tick earlier or later than guessed, a collision the step does not know), the difference
  // is eased out over EASE_MS; a move larger than a teleport is not.
  reconcile(before, after, now) {
    const dx = before[0] - after[0], dy = before[1] - after[1];
    if (dx === 0 && dy === 0) return;
    this.stats.corrections++;
    const size = Math.hypot(dx, dy);
    this.stats.correctionMax = Math.max(this.stats.correctionMax, size);
    const [lx, ly] = this.easeLeft(now);
    this.ease = size > this.maxMove(this.schema.kinds[this.world.entities.get(this.playerId).kind].name, 8)
      ? null
      : { dx: dx + lx, dy: dy + ly, at: now };
  }

  easeLeft(now) {
    if (!this.ease) return [0, 0];
    const left = Math.max(0, 1 - (now - this.ease.at) / EASE_MS);
    return [this.ease.dx * left, this.ease.dy * left];
  }

  eased(x, y, now) {
    const [dx, dy] = this.easeLeft(now);
    return [x + dx, y + dy];
  }
}

/**
 * A line for people about a game's event `{ kind, fields }` (a Client's `event` detail, or a
 * spectator's `event` data less its tick): a `kill` with `victim` and `by` as "ann destroyed
 * bob", a `chat` with a `line` as "ann: gg", any other as its kind and parameters. `nameOf(id)`
 * names an entity id when the event carries no name for it.
 */
export function describeEvent({ kind, fields }, nameOf = () => "") {
  const who = (name, id) => name || nameOf(id) || `P${id}`;
  if (kind === "kill" && "victim" in fields && "by" in fields) {
    return `${who(fields.by_name, fields.by)} destroyed ${who(fields.victim_name, fields.victim)}`;
  }
  if (kind === "chat" && typeof fields.line === "string") {
    return `${who(fields.name, fields.from)}${fields.team ? " (team)" : ""}: ${fields.line}`;
  }
  return [kind, ...Object.entries(fields).map(([name, value]) => `${name} ${value}`)].join(" · ");
}

// Takes every handler off `ws`: nothing it says any more reaches the client.
function detach(ws) {
  ws.onopen = null; ws.onmessage = null; ws.onclose = null; ws.onerror = null;
}

// The burst of messages of `kind` this client allows itself: the server's, a second's worth,
// less one (at least one).
function allowance(kind) { return Math.max(1, kind.perSecond - 1); }
