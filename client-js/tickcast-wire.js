// tickcast-wire.js: the bytes of protocol version 5 (PROTOCOL.md is the contract), for
// tickcast.js, which re-exports all of it: the encoding, the schema a Welcome carries, and
// every message read or written by that schema. No state, no dependencies.
//
//   decodeServerMsg(bytes, schema)  -> { type: "welcome" | "snapshot" | "delta" | "pong" | "ack"
//                                        | "events" | "private" | "matchEnded", … }
//   encodeClientMsg(msg, schema)    -> Uint8Array, msg one of { type: "hello", name, token, resume, options },
//                                      { type: "input", seq, values }, { type: "ping", nonce, clientTimeUs },
//                                      { type: "message", kind, values }
//   messageOf(schema, name, fields) -> { type: "message", kind, values }, checked
//
// Decoding refuses what the protocol rules out (non-shortest varints, trailing bytes, unknown
// kinds, texts over their limit, private fields outside a Private, …) with a DecodeError;
// encoding refuses values the server would close the connection for with a RangeError or a
// TypeError, before anything is sent.
//
// An entity is { id, kind (an index into the schema's kinds), f (its fields in schema order: a
// number as the u32 the world holds, a signed one as its two's complement bits, a flag 0 or 1,
// a text as a string; a private field 0 or "" until a Private sets it) }.

export const PROTOCOL_VERSION = 5;

// ---------------------------------------------------------------------------------------------
// Encoding (PROTOCOL.md, "Encoding"): bincode 2's standard configuration.

/** Bytes that break a rule of PROTOCOL.md. */
export class DecodeError extends Error {}

// `ignoreBOM`: a leading U+FEFF is a character of the string, not a mark to drop.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();
// Unicode category Cc, which no text may hold.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const MAX_TEXT = 255;
// The longest resume token (a Welcome's, a Hello's): the server's are 65 bytes at most (a room
// id of up to 32, a dot, 32 hex digits).
export const MAX_RESUME = 96;
const I32 = [-2147483648, 2147483647];

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
  string(max = Infinity) {
    const n = this.count();
    if (n > max) this.fail(`a string of ${n} bytes over its ${max}`);
    const bytes = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    try { return utf8.decode(bytes); } catch { this.fail("invalid UTF-8"); }
  }
  /** A text: a string of at most `max` bytes with no control character. */
  text(max) {
    const s = this.string(max);
    if (CONTROL.test(s)) this.fail("a text with control characters");
    return s;
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

export const FIELD_TYPES = ["coord", "uint", "int", "flag", "enum", "text"];
export const ROLES = ["none", "x", "y", "score", "label", "name", "owner"];
export const INPUT_TYPES = ["i8", "u8", "bool", "i32", "u32"];
const INPUT_RANGES = { i8: [-128, 127], u8: [0, 255], bool: [0, 1], i32: I32, u32: [0, 2147483647] };
const NAME = /^[a-z0-9_]{1,32}$/;

// `list` read as a count then `read()` per element.
function readList(r, read) {
  const n = r.count();
  const out = [];
  for (let i = 0; i < n; i++) out.push(read());
  return out;
}

// A parameter: { name, type: "int", min, max } or { name, type: "text", max }.
function readParam(r) {
  const name = r.string();
  const tag = r.u32();
  if (tag === 0) return { name, type: "int", min: r.i32(), max: r.i32() };
  if (tag === 1) return { name, type: "text", max: r.u8() };
  r.fail(`parameter type ${tag}`);
}

function readSchema(r) {
  const schema = { game: r.string(), scale: r.u32(), width: r.u32(), height: r.u32() };
  schema.kinds = readList(r, () => ({
    name: r.string(),
    fields: readList(r, () => {
      const name = r.string();
      const tag = r.u32();
      if (tag >= FIELD_TYPES.length) r.fail(`field type ${tag}`);
      const type = FIELD_TYPES[tag];
      // `count`: an enum's values, or a text's most bytes.
      const count = type === "enum" || type === "text" ? r.u8() : 0;
      const role = r.u32();
      if (role >= ROLES.length) r.fail(`role ${role}`);
      return { name, type, count, role: ROLES[role], private: r.bool() };
    }),
  }));
  schema.input = readList(r, () => {
    const name = r.string();
    const tag = r.u32();
    if (tag >= INPUT_TYPES.length) r.fail(`input type ${tag}`);
    return { name, type: INPUT_TYPES[tag], min: r.i32(), max: r.i32() };
  });
  const params = () => readList(r, () => readParam(r));
  schema.messages = readList(r, () => ({ name: r.string(), params: params(), perSecond: r.u32() }));
  schema.events = readList(r, () => ({ name: r.string(), params: params(), public: r.bool() }));
  schema.options = params();
  schema.roomOptions = params();
  validateSchema(schema);
  return indexSchema(schema);
}

/** Refuses a schema PROTOCOL.md rules out (it is untrusted input). */
export function validateSchema(s) {
  const bad = (why) => { throw new DecodeError(`bad schema: ${why}`); };
  const named = (list, what) => {
    for (const x of list) if (!NAME.test(x.name)) bad(`${what} name ${JSON.stringify(x.name)}`);
    if (new Set(list.map((x) => x.name)).size !== list.length) bad(`two ${what}s with one name`);
  };
  const params = (list, what) => {
    if (list.length > 8) bad(`${list.length} parameters of ${what}`);
    named(list, `parameter of ${what}`);
    for (const p of list) {
      if (p.type === "int" && p.min > p.max) bad(`${what}.${p.name}: range [${p.min}, ${p.max}]`);
      if (p.type === "text" && p.max === 0) bad(`${what}.${p.name}: a text of 0 bytes`);
    }
  };
  if (!NAME.test(s.game)) bad(`game name ${JSON.stringify(s.game)}`);
  if (s.scale === 0) bad("scale 0");
  if (s.kinds.length === 0 || s.kinds.length > 16) bad(`${s.kinds.length} kinds`);
  if (s.input.length > 8) bad(`${s.input.length} input fields`);
  if (s.messages.length > 32) bad(`${s.messages.length} message kinds`);
  if (s.events.length > 64) bad(`${s.events.length} event kinds`);
  named(s.kinds, "kind");
  named(s.input, "input field");
  named(s.messages, "message kind");
  named(s.events, "event kind");
  for (const kind of s.kinds) {
    if (kind.fields.length > 8) bad(`${kind.fields.length} fields in ${kind.name}`);
    named(kind.fields, `field of ${kind.name}`);
    const roles = kind.fields.map((f) => f.role).filter((r) => r !== "none");
    if (new Set(roles).size !== roles.length) bad(`a role twice in ${kind.name}`);
    for (const f of kind.fields) {
      const at = `${kind.name}.${f.name}`;
      if ((f.role === "x" || f.role === "y") && f.type !== "coord") bad(`${at}: position role on a ${f.type}`);
      if (f.role === "name" && f.type !== "text") bad(`${at}: name role on a ${f.type}`);
      if (f.role === "owner" && f.type !== "uint") bad(`${at}: owner role on a ${f.type}`);
      if (f.private && !["none", "score", "label"].includes(f.role)) bad(`${at}: a private ${f.role}`);
      if (f.type === "enum" && f.count < 2) bad(`${at}: enum of ${f.count}`);
      if (f.type === "text" && f.count === 0) bad(`${at}: a text of 0 bytes`);
    }
  }
  for (const f of s.input) {
    const [lo, hi] = INPUT_RANGES[f.type];
    if (f.min > f.max || f.min < lo || f.max > hi) bad(`input ${f.name}: range [${f.min}, ${f.max}] for a ${f.type}`);
  }
  for (const m of s.messages) {
    params(m.params, `message ${m.name}`);
    if (m.perSecond < 1 || m.perSecond > 1000) bad(`message ${m.name}: ${m.perSecond} a second`);
  }
  for (const e of s.events) params(e.params, `event ${e.name}`);
  params(s.options, "the options");
  params(s.roomOptions, "the room options");
}

// Adds what the client looks up per entity: each kind's field index by role and by name, which
// of its fields are private (`privateMask`, bit i for field i), and its owner field.
function indexSchema(s) {
  for (const kind of s.kinds) {
    kind.role = {};
    kind.index = {};
    kind.privateMask = 0;
    kind.fields.forEach((f, i) => {
      kind.index[f.name] = i;
      if (f.role !== "none") kind.role[f.role] = i;
      if (f.private) kind.privateMask |= 1 << i;
    });
    kind.positioned = kind.role.x !== undefined && kind.role.y !== undefined;
    kind.marked = kind.role.score !== undefined || kind.role.label !== undefined;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Values: fields, parameters (PROTOCOL.md, "Server → client").

/** A field's value as a full entity (or a Private) carries it. */
function readFull(r, field) {
  switch (field.type) {
    case "coord": case "uint": return r.u32();
    case "int": return r.i32() >>> 0;
    case "flag": return r.bool() ? 1 : 0;
    case "enum": return readEnum(r, field.count);
    case "text": return r.text(field.count);
  }
}

function readEnum(r, count) {
  const v = r.u8();
  if (v >= count) r.fail(`enum value ${v} of ${count}`);
  return v;
}

/** The zero of a field: what it reads as before anything set it. */
export function zeroOf(field) { return field.type === "text" ? "" : 0; }

// One value per parameter: an int within its range, a text within its limit.
function readValues(r, params) {
  return params.map((p) => {
    if (p.type === "text") return r.text(p.max);
    const v = r.i32();
    if (v < p.min || v > p.max) r.fail(`${p.name} = ${v} outside [${p.min}, ${p.max}]`);
    return v;
  });
}

/** Checks `value` against parameter `p`; throws a TypeError or RangeError naming `what`. */
function checkValue(p, value, what) {
  if (p.type === "int") {
    if (!Number.isInteger(value)) throw new TypeError(`${what} must be a whole number, not ${JSON.stringify(value)}`);
    if (value < p.min || value > p.max) throw new RangeError(`${what} = ${value} is outside [${p.min}, ${p.max}]`);
  } else checkText(value, p.max, what);
}

function checkText(value, max, what) {
  if (typeof value !== "string") throw new TypeError(`${what} must be a text, not ${JSON.stringify(value)}`);
  const n = utf8Encoder.encode(value).length;
  if (n > max) throw new RangeError(`${what} is ${n} bytes, over its ${max}`);
  if (CONTROL.test(value)) throw new RangeError(`${what} holds a control character`);
}

// ---------------------------------------------------------------------------------------------
// Server messages.

function readEntity(r, schema) {
  const id = r.u32();
  if (id === 0) r.fail("entity id 0");
  const kind = r.u32();
  const k = schema.kinds[kind];
  if (!k) r.fail(`entity kind ${kind} not in the schema`);
  // A private field is not in a full entity: it reads as its zero until a Private sets it.
  const f = k.fields.map((field) => (field.private ? zeroOf(field) : readFull(r, field)));
  return { id, kind, f };
}

function readEntities(r, schema) {
  const out = [];
  for (const e of readList(r, () => readEntity(r, schema))) {
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
      if (mask === 0 || mask >> k.fields.length || mask & k.privateMask) r.fail(`update mask 0x${mask.toString(16)}`);
      const values = [];
      k.fields.forEach((field, i) => {
        if (!(mask & (1 << i))) return;
        switch (field.type) {
          case "coord": case "int": values.push(r.i32()); break;
          case "uint": values.push(r.u32()); break;
          case "flag": values.push(0); break;
          case "enum": values.push(readEnum(r, field.count)); break;
          case "text": values.push(r.text(field.count)); break;
        }
      });
      updates.push({ id, kind, mask, values });
    }
  }
  return updates;
}

function readRemoved(r) {
  const out = [];
  for (const id of readList(r, () => r.u32())) {
    if (id === 0) r.fail("removed id 0");
    if (out.length && id <= out[out.length - 1]) r.fail("removed ids not ascending");
    out.push(id);
  }
  return out;
}

// A Private's entities: each { id, kind, mask (bit i: field i of the kind, a private one,
// follows), values (one per set bit, in field order, whole) }.
function readPrivate(r, schema) {
  const out = [];
  for (let n = r.count(); n > 0; n--) {
    const id = r.u32();
    if (id === 0 || (out.length && id <= out[out.length - 1].id)) r.fail("private entities not in ascending id order");
    const kind = r.u32();
    const k = schema.kinds[kind];
    if (!k) r.fail(`private entity kind ${kind} not in the schema`);
    const mask = r.u8();
    if (mask === 0 || mask & ~k.privateMask) r.fail(`private mask 0x${mask.toString(16)}`);
    const values = [];
    k.fields.forEach((field, i) => { if (mask & (1 << i)) values.push(readFull(r, field)); });
    out.push({ id, kind, mask, values });
  }
  return out;
}

// A tick's events: each { kind (an index into the schema's events), values (one per parameter) }.
function readEvents(r, schema) {
  const events = readList(r, () => {
    const kind = r.u32();
    const k = schema.events[kind];
    if (!k) r.fail(`event kind ${kind} not in the schema`);
    return { kind, values: readValues(r, k.params) };
  });
  if (events.length === 0) r.fail("an Events message with no event");
  return events;
}

function readStanding(r) {
  return { player: r.u32(), name: r.text(MAX_TEXT), rank: r.u32(), score: r.i32() };
}

/** Decodes one server message; `schema` is needed for all but the Welcome, Pong, Ack and
 *  MatchEnded. */
export function decodeServerMsg(bytes, schema) {
  const r = new Reader(bytes);
  const tag = r.u32();
  let msg;
  const needSchema = () => { if (!schema) r.fail("a world message before the Welcome"); };
  switch (tag) {
    // `resume`: the token that takes this seat back after a dropped connection (empty when the
    // room keeps no seats); `graceMs`: how long the seat is kept after a drop.
    case 0: msg = { type: "welcome", version: r.u32(), playerId: r.u32(), tickHz: r.u32() };
      if (msg.version !== PROTOCOL_VERSION) r.fail(`protocol version ${msg.version}`);
      msg.resume = r.string(MAX_RESUME); msg.graceMs = r.u32();
      msg.schema = readSchema(r); break;
    case 1: needSchema(); msg = { type: "snapshot", tick: r.u64(), entities: readEntities(r, schema) }; break;
    case 2: needSchema(); msg = { type: "delta", tick: r.u64(), baseGap: r.u32(), spawned: readEntities(r, schema),
      updated: readUpdates(r, schema), removed: readRemoved(r), checksum: r.option(() => r.u32()) }; break;
    case 3: msg = { type: "pong", nonce: r.u32(), clientTimeUs: r.u64(), serverTick: r.u64(), serverTimeUs: r.u64() }; break;
    case 4: msg = { type: "ack", seq: r.u32() }; break;
    case 5: needSchema(); msg = { type: "events", tick: r.u64(), events: readEvents(r, schema) }; break;
    case 6: needSchema(); msg = { type: "private", tick: r.u64(), full: r.bool(), entities: readPrivate(r, schema),
      checksum: r.option(() => r.u32()) }; break;
    case 7: msg = { type: "matchEnded", tick: r.u64(), summary: r.text(MAX_TEXT), standings: readList(r, () => readStanding(r)) }; break;
    default: r.fail(`server message tag ${tag}`);
  }
  r.end();
  return msg;
}

// ---------------------------------------------------------------------------------------------
// Client messages.

/** A message of the kind named `name` with its parameters by name (a missing one is 0 or ""),
 *  checked against the schema: an unknown kind or parameter, a value of the wrong type, out of
 *  its range or over its limit throws. */
export function messageOf(schema, name, fields = {}) {
  const kind = schema.messages.findIndex((m) => m.name === name);
  if (kind < 0) throw new RangeError(`${schema.game} has no message ${JSON.stringify(name)}`);
  const { params } = schema.messages[kind];
  for (const key of Object.keys(fields)) {
    if (!params.some((p) => p.name === key)) throw new RangeError(`message ${name} has no parameter ${JSON.stringify(key)}`);
  }
  const values = params.map((p) => fields[p.name] ?? zeroOf(p));
  const msg = { type: "message", kind, values };
  checkMessage(msg, schema);
  return msg;
}

function checkMessage(msg, schema) {
  const kind = schema.messages[msg.kind];
  if (!kind) throw new RangeError(`no message kind ${msg.kind} in ${schema.game}`);
  kind.params.forEach((p, i) => checkValue(p, msg.values[i], `message ${kind.name} ${p.name}`));
}

// A hello's options, { name: value } (a number is an int, a string a text), as the name/value
// list the wire carries: the hello comes before the schema, so only the types are checked here.
function helloOptions(options) {
  const list = Object.entries(options ?? {});
  if (list.length > 8) throw new RangeError(`${list.length} options: at most 8`);
  for (const [name, value] of list) {
    if (!NAME.test(name)) throw new RangeError(`option name ${JSON.stringify(name)}`);
    if (typeof value === "string") checkText(value, MAX_TEXT, `option ${name}`);
    else checkValue({ type: "int", min: I32[0], max: I32[1] }, value, `option ${name}`);
  }
  return list;
}

/** Encodes a client message: `{type: "hello", name, token, resume, options}` (options by name;
 *  `resume` the token of the last Welcome to take that seat back, empty or absent to join),
 *  `{type: "input", seq, values}` (one number per input field of `schema`, in order),
 *  `{type: "ping", nonce, clientTimeUs}` or `{type: "message", kind, values}` (kind an index
 *  into the schema's messages, a value per parameter; see `messageOf`). */
export function encodeClientMsg(msg, schema) {
  const w = new Writer();
  switch (msg.type) {
    case "hello": {
      const options = helloOptions(msg.options);
      const resume = msg.resume ?? "";
      if (typeof resume !== "string" || utf8Encoder.encode(resume).length > MAX_RESUME) throw new RangeError(`resume token over ${MAX_RESUME} bytes`);
      w.varint(0); w.varint(msg.version ?? PROTOCOL_VERSION); w.string(msg.name ?? ""); w.string(msg.token ?? "");
      w.string(resume);
      w.varint(options.length);
      for (const [name, value] of options) {
        w.string(name);
        if (typeof value === "string") { w.varint(1); w.string(value); } else { w.varint(0); w.i32(value); }
      }
      break;
    }
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
    case "message":
      checkMessage(msg, schema);
      w.varint(3); w.varint(msg.kind);
      schema.messages[msg.kind].params.forEach((p, i) => (p.type === "int" ? w.i32(msg.values[i]) : w.string(msg.values[i])));
      break;
    default: throw new TypeError(`no client message ${msg.type}`);
  }
  return w.bytes();
}
