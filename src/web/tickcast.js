// tickcast.js: the browser client of a tickcast server, as one ES module with no dependencies.
//
//   import { Client } from "/tickcast.js";
//   const client = new Client({ room: "k3Xq9TzA1bWm", name: "ann" });   // or { url }, { matchmake: "tanks" }
//   client.addEventListener("welcome", () => …);
//   client.start();
//   client.setInput({ dx: 127, dy: 0 });                                  // by the schema's input fields
//   requestAnimationFrame(function draw(now) { const view = client.view(now); …; requestAnimationFrame(draw); });
//
// What it does (PROTOCOL.md is the contract it is written from):
// - decodes every message of protocol version 3 by the schema the Welcome carries, refusing
//   what the protocol rules out (non-shortest varints, trailing bytes, unknown kinds, …);
// - keeps the world exactly as the server has it, checks the world checksum once a second and
//   reconnects when it drifted (or when the connection drops);
// - sends inputs with increasing `seq`, pings every second and keeps the round trip and its
//   jitter;
// - interpolation: other entities are drawn a little in the past, between the two ticks around
//   the render time, with a delay that follows the measured jitter of the frames' arrival
//   (about 2 ticks on a steady network); it never extrapolates, and snaps through a teleport;
// - prediction and reconciliation, for games with a client-side step (arena's is below,
//   bit-exact with the server's integer rules): the own entity moves at once; each frame
//   restarts it from the server's position and replays the inputs not yet acknowledged; what
//   a late or early input changes is eased out over a tenth of a second rather than snapped.
//
// Every number the client measures is in `client.stats` (for pages and tests).

export const PROTOCOL_VERSION = 3;

// ---------------------------------------------------------------------------------------------
// Encoding (PROTOCOL.md, "Encoding"): bincode 2's standard configuration.

/** Bytes that break a rule of PROTOCOL.md. */
export class DecodeError extends Error {}

// `ignoreBOM`: a leading U+FEFF is a character of the string, not a mark to drop.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** Reads PROTOCOL.md's types from bytes, refusing every encoding the protocol rules out. */
export class Reader {
  constructor(bytes) {
    this.bytes = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    this.at = 0;
  }
  left() { return this.bytes.length - this.at; }
  fail(why) { throw new DecodeError(`${why} at byte ${this.at}`); }
  u8() {
    if (this.at >= this.bytes.length) this.fail("truncated");
    return this.bytes[this.at++];
  }
  fixed(n) {
    if (this.left() < n) this.fail("truncated");
    let v = 0;
    for (let i = n - 1; i >= 0; i--) v = v * 256 + this.bytes[this.at + i];
    this.at += n;
    return v;
  }
  /** An unsigned varint; numbers past 2^53 (which no field of ours reaches) are refused. */
  varint() {
    const t = this.u8();
    if (t < 251) return t;
    let v;
    if (t === 0xfb) { v = this.fixed(2); if (v < 251) this.fail("varint not in its shortest form"); }
    else if (t === 0xfc) { v = this.fixed(4); if (v < 0x10000) this.fail("varint not in its shortest form"); }
    else if (t === 0xfd) {
      v = this.fixed(8);
      if (v < 0x100000000) this.fail("varint not in its shortest form");
      if (!Number.isSafeInteger(v)) this.fail("integer too large");
    } else this.fail(`varint prefix 0x${t.toString(16)}`);
    return v;
  }
  u32() {
    const v = this.varint();
    if (v > 0xffffffff) this.fail("value does not fit a u32");
    return v;
  }
  u64() { return this.varint(); }
  /** A zigzag i32, as a signed number. */
  i32() { const z = this.u32(); return (z >>> 1) ^ -(z & 1); }
  bool() {
    const b = this.u8();
    if (b > 1) this.fail("bool byte over 1");
    return b === 1;
  }
  string() {
    const n = this.count();
    const bytes = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    try { return utf8.decode(bytes); } catch { this.fail("invalid UTF-8"); }
  }
  /** An element count, refused if the bytes left could not hold that many elements. */
  count() {
    const n = this.varint();
    if (n > this.left()) this.fail(`count ${n} over the ${this.left()} bytes left`);
    return n;
  }
  option(read) {
    return this.bool() ? read() : null;
  }
  end() { if (this.left() !== 0) this.fail(`${this.left()} trailing bytes`); }
}

/** Writes PROTOCOL.md's types. */
export class Writer {
  constructor() { this.out = []; }
  u8(v) { this.out.push(v & 0xff); }
  fixed(v, n) { for (let i = 0; i < n; i++) { this.out.push(v % 256); v = Math.floor(v / 256); } }
  varint(v) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint ${v}`);
    if (v < 251) this.u8(v);
    else if (v < 0x10000) { this.u8(0xfb); this.fixed(v, 2); }
    else if (v < 0x100000000) { this.u8(0xfc); this.fixed(v, 4); }
    else { this.u8(0xfd); this.fixed(v, 8); }
  }
  i32(v) { this.varint(((v << 1) ^ (v >> 31)) >>> 0); }
  bool(b) { this.u8(b ? 1 : 0); }
  string(s) { const b = utf8Encoder.encode(s); this.varint(b.length); for (const x of b) this.out.push(x); }
  bytes() { return new Uint8Array(this.out); }
}

// ---------------------------------------------------------------------------------------------
// The schema (PROTOCOL.md, "The schema").

export const FIELD_TYPES = ["coord", "uint", "int", "flag", "enum"];
export const ROLES = ["none", "x", "y", "score", "label"];
export const INPUT_TYPES = ["i8", "u8", "bool", "i32", "u32"];
const INPUT_RANGES = { i8: [-128, 127], u8: [0, 255], bool: [0, 1], i32: [-2147483648, 2147483647], u32: [0, 2147483647] };
const NAME = /^[a-z0-9_]{1,32}$/;

function readSchema(r) {
  const schema = { game: r.string(), scale: r.u32(), width: r.u32(), height: r.u32(), kinds: [], input: [] };
  const kinds = r.count();
  for (let k = 0; k < kinds; k++) {
    const kind = { name: r.string(), fields: [] };
    const fields = r.count();
    for (let f = 0; f < fields; f++) {
      const name = r.string();
      const tag = r.u32();
      if (tag >= FIELD_TYPES.length) r.fail(`field type ${tag}`);
      const type = FIELD_TYPES[tag];
      const count = type === "enum" ? r.u8() : 0;
      const role = r.u32();
      if (role >= ROLES.length) r.fail(`role ${role}`);
      kind.fields.push({ name, type, count, role: ROLES[role] });
    }
    schema.kinds.push(kind);
  }
  const inputs = r.count();
  for (let i = 0; i < inputs; i++) {
    const name = r.string();
    const tag = r.u32();
    if (tag >= INPUT_TYPES.length) r.fail(`input type ${tag}`);
    schema.input.push({ name, type: INPUT_TYPES[tag], min: r.i32(), max: r.i32() });
  }
  validateSchema(schema);
  return indexSchema(schema);
}

/** Refuses a schema PROTOCOL.md rules out (it is untrusted input). */
export function validateSchema(s) {
  const bad = (why) => { throw new DecodeError(`bad schema: ${why}`); };
  const unique = (names, what) => { if (new Set(names).size !== names.length) bad(`two ${what} with one name`); };
  if (!NAME.test(s.game)) bad(`game name ${JSON.stringify(s.game)}`);
  if (s.scale === 0) bad("scale 0");
  if (s.kinds.length === 0 || s.kinds.length > 16) bad(`${s.kinds.length} kinds`);
  if (s.input.length > 8) bad(`${s.input.length} input fields`);
  unique(s.kinds.map((k) => k.name), "kinds");
  unique(s.input.map((f) => f.name), "input fields");
  for (const kind of s.kinds) {
    if (!NAME.test(kind.name)) bad(`kind name ${JSON.stringify(kind.name)}`);
    if (kind.fields.length > 8) bad(`${kind.fields.length} fields in ${kind.name}`);
    unique(kind.fields.map((f) => f.name), `fields of ${kind.name}`);
    const roles = kind.fields.map((f) => f.role).filter((r) => r !== "none");
    if (new Set(roles).size !== roles.length) bad(`a role twice in ${kind.name}`);
    for (const f of kind.fields) {
      if (!NAME.test(f.name)) bad(`field name ${JSON.stringify(f.name)}`);
      if ((f.role === "x" || f.role === "y") && f.type !== "coord") bad(`${kind.name}.${f.name}: position role on a ${f.type}`);
      if (f.type === "enum" && f.count < 2) bad(`${kind.name}.${f.name}: enum of ${f.count}`);
    }
  }
  for (const f of s.input) {
    if (!NAME.test(f.name)) bad(`input name ${JSON.stringify(f.name)}`);
    const [lo, hi] = INPUT_RANGES[f.type];
    if (f.min > f.max || f.min < lo || f.max > hi) bad(`input ${f.name}: range [${f.min}, ${f.max}] for a ${f.type}`);
  }
}

// Adds what the client looks up per entity: each kind's field index by role and by name.
function indexSchema(s) {
  for (const kind of s.kinds) {
    kind.role = {};
    kind.index = {};
    kind.fields.forEach((f, i) => {
      kind.index[f.name] = i;
      if (f.role !== "none") kind.role[f.role] = i;
    });
    kind.positioned = kind.role.x !== undefined && kind.role.y !== undefined;
    kind.marked = kind.role.score !== undefined || kind.role.label !== undefined;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Messages (PROTOCOL.md, "Client → server" and "Server → client").

// An entity: its id, its kind (an index into the schema's kinds) and its fields, each the u32
// the world holds (a signed field as its two's complement bits, a flag 0 or 1).
function readEntity(r, schema) {
  const id = r.u32();
  if (id === 0) r.fail("entity id 0");
  const kind = r.u32();
  const k = schema.kinds[kind];
  if (!k) r.fail(`entity kind ${kind} not in the schema`);
  const f = new Uint32Array(k.fields.length);
  k.fields.forEach((field, i) => {
    switch (field.type) {
      case "coord": case "uint": f[i] = r.u32(); break;
      case "int": f[i] = r.i32() >>> 0; break;
      case "flag": f[i] = r.bool() ? 1 : 0; break;
      case "enum": f[i] = r.u8(); if (f[i] >= field.count) r.fail(`enum value ${f[i]} of ${field.count}`); break;
    }
  });
  return { id, kind, f };
}

function readEntities(r, schema) {
  const n = r.count();
  const out = [];
  for (let i = 0; i < n; i++) {
    const e = readEntity(r, schema);
    if (out.length && e.id <= out[out.length - 1].id) r.fail("entities not in ascending id order");
    out.push(e);
  }
  return out;
}

// Updates, grouped by kind: each { id, kind, mask, values } with a value per set mask bit
// (a coord's signed step, the new value otherwise; nothing for a flag, which flips).
function readUpdates(r, schema) {
  const updates = [];
  const groups = r.count();
  let lastKind = -1;
  for (let g = 0; g < groups; g++) {
    const kind = r.u32();
    const k = schema.kinds[kind];
    if (!k) r.fail(`update kind ${kind} not in the schema`);
    if (kind <= lastKind) r.fail("update groups not in ascending kind order");
    lastKind = kind;
    const count = r.count();
    if (count === 0) r.fail("an empty update group");
    let id = 0;
    for (let u = 0; u < count; u++) {
      const gap = r.u32();
      if (gap === 0) r.fail("update id gap 0");
      id += gap;
      if (id > 0xffffffff) r.fail("update id past u32");
      const mask = r.u8();
      if (mask === 0 || mask >> k.fields.length) r.fail(`update mask 0x${mask.toString(16)}`);
      const values = [];
      k.fields.forEach((field, i) => {
        if (!(mask & (1 << i))) return;
        switch (field.type) {
          case "coord": case "int": values.push(r.i32()); break;
          case "uint": values.push(r.u32()); break;
          case "flag": values.push(0); break;
          case "enum": { const v = r.u8(); if (v >= field.count) r.fail(`enum value ${v}`); values.push(v); break; }
        }
      });
      updates.push({ id, kind, mask, values });
    }
  }
  return updates;
}

/** Decodes one server message; `schema` is needed for all but the Welcome and Pong. */
export function decodeServerMsg(bytes, schema) {
  const r = new Reader(bytes);
  const tag = r.u32();
  let msg;
  const needSchema = () => { if (!schema) r.fail("a world message before the Welcome"); };
  switch (tag) {
    case 0: msg = { type: "welcome", version: r.u32(), playerId: r.u32(), tickHz: r.u32() };
      if (msg.version !== PROTOCOL_VERSION) r.fail(`protocol version ${msg.version}`);
      msg.schema = readSchema(r); break;
    case 1: needSchema(); msg = { type: "snapshot", tick: r.u64(), entities: readEntities(r, schema) }; break;
    case 2: needSchema(); msg = { type: "delta", tick: r.u64(), baseGap: r.u32(), spawned: readEntities(r, schema),
      updated: readUpdates(r, schema), removed: readRemoved(r), checksum: r.option(() => r.u32()) }; break;
    case 3: msg = { type: "pong", nonce: r.u32(), clientTimeUs: r.u64(), serverTick: r.u64(), serverTimeUs: r.u64() }; break;
    case 4: msg = { type: "ack", seq: r.u32() }; break;
    default: r.fail(`server message tag ${tag}`);
  }
  r.end();
  return msg;
}

function readRemoved(r) {
  const n = r.count();
  const out = [];
  for (let i = 0; i < n; i++) {
    const id = r.u32();
    if (id === 0) r.fail("removed id 0");
    if (out.length && id <= out[out.length - 1]) r.fail("removed ids not ascending");
    out.push(id);
  }
  return out;
}

/** Encodes a client message: `{type: "hello", name, token}`, `{type: "input", seq, values}`
 *  (one number per input field of `schema`, in order) or `{type: "ping", nonce, clientTimeUs}`. */
export function encodeClientMsg(msg, schema) {
  const w = new Writer();
  switch (msg.type) {
    case "hello": w.varint(0); w.varint(msg.version ?? PROTOCOL_VERSION); w.string(msg.name ?? ""); w.string(msg.token ?? ""); break;
    case "input":
      w.varint(1); w.varint(msg.seq);
      schema.input.forEach((field, i) => {
        const v = msg.values[i] ?? 0;
        if (v < field.min || v > field.max || !Number.isInteger(v)) throw new RangeError(`input ${field.name} = ${v} outside [${field.min}, ${field.max}]`);
        switch (field.type) {
          case "i8": case "u8": w.u8(v); break;
          case "bool": w.bool(v); break;
          case "i32": w.i32(v); break;
          case "u32": w.varint(v); break;
        }
      });
      break;
    case "ping": w.varint(2); w.varint(msg.nonce >>> 0); w.varint(msg.clientTimeUs); break;
    default: throw new TypeError(`no client message ${msg.type}`);
  }
  return w.bytes();
}

// ---------------------------------------------------------------------------------------------
// The world (PROTOCOL.md: Snapshot, Delta, World checksum).

/** A refusal from the rooms API (an unknown room, a bad name): reconnecting will not help. */
class Refusal extends Error {}

/** Drift: the server's word and ours no longer agree; the cure is a reconnect. */
export class DriftError extends Error {}

/** Entities by id, as the server holds them after `tick`. */
export class World {
  constructor(schema) { this.schema = schema; this.tick = null; this.entities = new Map(); }

  snapshot(msg) {
    this.entities = new Map(msg.entities.map((e) => [e.id, e]));
    this.tick = msg.tick;
  }

  /** Applies a delta: updates, removals, spawns. Throws `DriftError` when it does not fit. */
  delta(msg) {
    if (this.tick === null || msg.tick - msg.baseGap !== this.tick) throw new DriftError(`delta for base ${msg.tick - msg.baseGap}, holding ${this.tick}`);
    for (const u of msg.updated) {
      const e = this.entities.get(u.id);
      if (!e || e.kind !== u.kind) throw new DriftError(`update of entity ${u.id} not held as a ${this.schema.kinds[u.kind].name}`);
      const fields = this.schema.kinds[u.kind].fields;
      let v = 0;
      for (let i = 0; i < fields.length; i++) {
        if (!(u.mask & (1 << i))) continue;
        const value = u.values[v++];
        switch (fields[i].type) {
          case "coord": {
            const to = (e.f[i] + value) >>> 0;
            const size = { x: this.schema.width, y: this.schema.height }[fields[i].role] ?? Math.max(this.schema.width, this.schema.height);
            if (to > this.schema.scale * size) throw new DriftError(`entity ${u.id} left the world`);
            e.f[i] = to;
            break;
          }
          case "flag": e.f[i] ^= 1; break;
          default: e.f[i] = value >>> 0;
        }
      }
    }
    for (const id of msg.removed) if (!this.entities.delete(id)) throw new DriftError(`removal of entity ${id} not held`);
    for (const e of msg.spawned) {
      if (this.entities.has(e.id)) throw new DriftError(`spawn of entity ${e.id} already held`);
      this.entities.set(e.id, e);
    }
    this.tick = msg.tick;
  }

  /** The world checksum: FNV-1a over every entity in id order. */
  checksum() {
    let h = 0x811c9dc5;
    const byte = (b) => { h = Math.imul(h ^ (b & 0xff), 0x01000193); };
    const word = (v) => { byte(v); byte(v >>> 8); byte(v >>> 16); byte(v >>> 24); };
    for (const id of [...this.entities.keys()].sort((a, b) => a - b)) {
      const e = this.entities.get(id);
      word(id); byte(e.kind);
      for (const v of e.f) word(v);
    }
    return h >>> 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Client-side steps, for prediction: `step(fields, input, ctx)` returns the own entity's fields
// one tick later, exactly as the server's game computes them. A game without one is drawn from
// the server's frames only (interpolated like everything else).

function isqrtCeil(n) {
  let r = Math.floor(Math.sqrt(n));
  while (r * r > n) r--;
  while (r * r < n) r++;
  return r;
}

/** The games' shared rule (src/games/mod.rs, `velocity`): a step per tick, integers only. */
export function velocity(dx, dy, speed, scale, tickHz) {
  dx = Math.max(-127, Math.min(127, dx)); dy = Math.max(-127, Math.min(127, dy));
  const length = Math.max(127, isqrtCeil(dx * dx + dy * dy));
  const perSecond = speed * scale, denominator = length * Math.max(1, tickHz);
  return [Math.trunc((dx * perSecond) / denominator), Math.trunc((dy * perSecond) / denominator)];
}

function advance(at, step, max) { return Math.max(0, Math.min(max, at + step)); }

/** Client-side steps by game name; register your game's with `predictors.set(name, …)`. */
export const predictors = new Map();

// arena (src/games/arena.rs): the player moves at 150 units/s along its input, clamped to the
// world. Orbs and scores are the server's business; the position is all prediction needs.
predictors.set("arena", {
  speed: 150,
  step(f, input, ctx) {
    const [sx, sy] = velocity(input[0] ?? 0, input[1] ?? 0, this.speed, ctx.scale, ctx.tickHz);
    const out = f.slice();
    out[ctx.x] = advance(f[ctx.x], sx, ctx.scale * ctx.width);
    out[ctx.y] = advance(f[ctx.y], sy, ctx.scale * ctx.height);
    return out;
  },
});

// How fast each game's entities may move (world units per second), so that interpolation can
// tell a teleport from a move. A game not listed: anything faster than a fifth of the world per
// tick is a teleport.
export const speedLimits = new Map([
  ["arena", { player: 150, orb: 0 }],
  ["tanks", { tank: 120, shell: 600 }],
]);

// ---------------------------------------------------------------------------------------------
// The connection.

const FRAMES_KEPT = 64;
const PING_EVERY_MS = 1000;
const EASE_MS = 100;

/**
 * A player's connection to a room. Events (an `EventTarget`): `welcome`, `frame` (a snapshot
 * or delta applied), `status` (`detail` the new status: connecting, playing, reconnecting,
 * closed), `close` (`detail` { code, reason }), `drift` (`detail` the reason).
 *
 * Options: `url` (a player WebSocket URL), or `room` (an id: `<server>/rooms/<id>/ws`), or
 * `matchmake` (a game name: `POST <server>/matchmake`); `server` (http(s) origin, default
 * this page's); `name`; `token`; `predict` (default true); `reconnect` (default true).
 */
export class Client extends EventTarget {
  constructor(options = {}) {
    super();
    this.options = { predict: true, reconnect: true, name: "", token: "", ...options };
    this.server = this.options.server ?? (typeof location !== "undefined" ? location.origin : "http://127.0.0.1:8080");
    this.status = "idle";
    this.schema = null; this.world = null; this.playerId = 0; this.tickHz = 30;
    this.stats = {
      rtt: null, rttSmoothed: null, jitter: 0, pings: 0,
      frames: 0, snapshots: 0, checksumsVerified: 0, checksumMismatches: 0,
      predictionChecks: 0, predictionMismatches: 0, predictionMaxError: 0,
      corrections: 0, correctionMax: 0, reconnects: 0, drifts: 0, decodeErrors: 0,
      interpolationDelayMs: 0, lastClose: null,
    };
    this.ws = null;
    this.seq = 0; this.input = []; this.sentInput = null;
    this.pending = []; this.ack = 0; this.ackedInput = [];
    this.frames = []; this.clock = null; this.arrivals = [];
    this.own = null; this.ease = null;
    this.render = null; this.backoff = 500; this.stopped = false;
  }

  /** Connects (resolving the room by matchmaking first when asked). */
  async start() {
    this.stopped = false;
    clearTimeout(this.retry);
    this.setStatus(this.stats.reconnects ? "reconnecting" : "connecting");
    let target;
    try {
      target = await this.resolve();
    } catch (err) {
      // A room that is gone (404) or a refusal is final; a server out of reach is retried.
      if (err instanceof Refusal) return this.closed(4000, err.message);
      return this.onClose(1006, String(err.message || err));
    }
    if (this.stopped) return;
    this.url = target.url; this.token = target.token;
    this.open();
  }

  // Where to connect, worked out again on every (re)connect: a matchmade seat's token expires
  // with its hold, and a room may have moved.
  async resolve() {
    const { url, matchmake, token } = this.options;
    const json = async (res) => {
      const body = await res.json().catch(() => ({}));
      if (res.ok) return body;
      const why = body.error || `HTTP ${res.status}`;
      throw res.status >= 500 || res.status === 429 ? new Error(why) : new Refusal(why);
    };
    if (matchmake) {
      const body = await json(await fetch(`${this.server}/matchmake`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ game: matchmake, name: this.options.name }),
      }));
      this.room = body.room;
      return { url: body.ws, token: body.token || token };
    }
    if (url) return { url, token };
    const id = this.options.room ?? "default";
    const body = await json(await fetch(`${this.server}/rooms/${encodeURIComponent(id)}`));
    this.room = body.id;
    // A room of this node is joined through the address this page reached it by (a proxy, a
    // relay); a room of another node of a cluster, at its owner (README, "Run a cluster").
    const here = new URL(body.page).host === new URL(body.ws).host;
    return { url: here ? `${this.server.replace(/^http/, "ws")}/rooms/${encodeURIComponent(body.id)}/ws` : body.ws, token };
  }

  open() {
    this.welcomed = false;
    if (this.ws) { const old = this.ws; this.ws = null; old.close(1000, "replaced"); }
    const ws = this.ws = new WebSocket(this.url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => ws.send(encodeClientMsg({ type: "hello", name: this.options.name, token: this.token }));
    ws.onmessage = (ev) => { if (ws === this.ws) this.onMessage(new Uint8Array(ev.data), performance.now()); };
    ws.onclose = (ev) => { if (ws === this.ws) this.onClose(ev.code, ev.reason); };
  }

  /** Leaves the room (close 1000) and stops reconnecting. */
  stop() {
    this.stopped = true;
    clearInterval(this.pinger);
    clearTimeout(this.retry); clearTimeout(this.inputTimer);
    if (this.ws) this.ws.close(1000, "bye");
    this.setStatus("closed");
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", { detail: status }));
  }

  closed(code, reason) {
    this.stats.lastClose = { code, reason };
    this.setStatus("closed");
    this.dispatchEvent(new CustomEvent("close", { detail: { code, reason } }));
  }

  onClose(code, reason) {
    clearInterval(this.pinger);
    this.ws = null;
    // Reconnect after a drop (1006), a server restart (1001 shutting down) or a crash (1011),
    // never after a refusal (1008, 1013, 1002 …) or a room closed on purpose.
    const again = this.options.reconnect && !this.stopped && (code === 1006 || code === 1011 || code === 4001
      || (code === 1001 && !reason.startsWith("room closed")));
    if (!again) return this.closed(code, reason);
    this.stats.lastClose = { code, reason };
    this.setStatus("reconnecting");
    clearTimeout(this.retry);
    this.retry = setTimeout(() => { if (!this.stopped) { this.stats.reconnects++; this.start(); } }, this.backoff);
    this.backoff = Math.min(10000, this.backoff * 2);
  }

  /** Drops the connection and comes back with a fresh snapshot. */
  drift(why) {
    this.stats.drifts++;
    this.dispatchEvent(new CustomEvent("drift", { detail: why }));
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(4000, "drifted");
    this.onClose(4001, why);
  }

  onMessage(bytes, now) {
    let msg;
    try { msg = decodeServerMsg(bytes, this.schema); } catch (err) {
      this.stats.decodeErrors++;
      return this.drift(`undecodable message: ${err.message}`);
    }
    switch (msg.type) {
      case "welcome":
        if (this.welcomed) return this.drift("a second Welcome");
        this.welcomed = true;
        return this.onWelcome(msg, now);
      case "snapshot": case "delta": return this.onFrame(msg, now);
      case "ack": return this.onAck(msg.seq, now);
      case "pong": return this.onPong(msg, now);
    }
  }

  onWelcome(msg, now) {
    this.schema = msg.schema; this.playerId = msg.playerId; this.tickHz = msg.tickHz;
    this.period = 1000 / msg.tickHz;
    this.world = new World(msg.schema);
    this.seq = 0; this.pending = []; this.ack = 0; this.sentInput = null;
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
    // An input set before the welcome goes out now.
    if (this.input.some((v) => v !== 0)) this.flushInput(now);
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
      this.stats.predictionChecks++;
      if (error) this.stats.predictionMismatches++;
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
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.schema) return;
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
   * name), x, y (world units; null for a kind without a position), own, fields (by name),
   * jumped (it teleported, or appeared, since the last tick drawn) }, and `tick` (the render
   * tick). Other
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
      kind.fields.forEach((f, i) => { fields[f.name] = f.type === "int" ? e.f[i] | 0 : e.f[i]; });
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
