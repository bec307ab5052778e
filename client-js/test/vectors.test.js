// PROTOCOL.md's test vectors: every server message decodes to what the document says, every
// client message encodes to its bytes exactly, the world checksum of the arena snapshot is the
// document's, and what the protocol rules out is refused. No server needed.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import * as tc from "../tickcast.js";

// The vectors block of PROTOCOL.md, `name: hex` per line, by name.
const doc = readFileSync(new URL("../../PROTOCOL.md", import.meta.url), "utf8");
const block = doc.split("## Test vectors")[1].split("```\n")[1];
const vectors = new Map(block.trim().split("\n").map((line) => {
  const at = line.indexOf(": ");
  return [line.slice(0, at), line.slice(at + 2).trim()];
}));
const bytes = (name) => Uint8Array.from(vectors.get(name).split(" "), (h) => parseInt(h, 16));
const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");

// Every vector, and the schema it is read with (`null`: none needed).
const arena = tc.decodeServerMsg(bytes("arena welcome"));
const tanks = tc.decodeServerMsg(bytes("tanks welcome"));
const SERVER = {
  "arena welcome": null, "tanks welcome": null,
  "arena snapshot": arena.schema, "tanks snapshot": tanks.schema,
  "arena delta": arena.schema, "tanks delta": tanks.schema, "idle delta": arena.schema,
  "ack": null, "pong": null, "tanks events": tanks.schema, "tanks private": tanks.schema, "match ended": null,
};
// Every client vector, as this client writes the message the document names.
const CLIENT = {
  "hello": [{ type: "hello", name: "ann", token: "" }],
  "hello resuming": [{ type: "hello", resume: "default.00112233445566778899aabbccddeeff" }],
  "hello with options": [{ type: "hello", name: "ann", token: "", options: { team: 1 } }],
  "arena input": [{ type: "input", seq: 5, values: [127, -127] }, arena.schema],
  "tanks input": [{ type: "input", seq: 6, values: [0, 127, 64, 1] }, tanks.schema],
  "ping": [{ type: "ping", nonce: 42, clientTimeUs: 1000000 }],
  "tanks message": [tc.messageOf(tanks.schema, "chat", { line: "gg", team: 1 }), tanks.schema],
};

test("every vector of PROTOCOL.md is one this test knows", () => {
  assert.deepEqual([...vectors.keys()].sort(), [...Object.keys(SERVER), ...Object.keys(CLIENT)].sort());
});

test("every client vector is encoded byte for byte", () => {
  for (const [name, [msg, schema]] of Object.entries(CLIENT)) {
    assert.equal(hex(tc.encodeClientMsg(msg, schema)), vectors.get(name), name);
  }
});

test("every server vector decodes, to what the document says", () => {
  const decoded = Object.fromEntries(Object.entries(SERVER).map(([name, schema]) => [name, tc.decodeServerMsg(bytes(name), schema)]));

  assert.equal(arena.version, tc.PROTOCOL_VERSION);
  assert.deepEqual([arena.playerId, arena.tickHz, arena.resume, arena.graceMs], [7, 30, "default.00112233445566778899aabbccddeeff", 15000]);
  assert.deepEqual([tanks.playerId, tanks.resume, tanks.graceMs], [3, "", 0]);
  const fields = (s) => s.kinds.map((k) => [k.name, k.fields.map((f) => [f.name, f.type, f.count, f.role, f.private])]);
  assert.deepEqual(fields(arena.schema), [
    ["player", [["x", "coord", 0, "x", false], ["y", "coord", 0, "y", false], ["score", "uint", 0, "score", false], ["name", "text", 32, "name", false]]],
    ["orb", [["x", "coord", 0, "x", false], ["y", "coord", 0, "y", false]]],
  ]);
  assert.deepEqual(arena.schema.input, [{ name: "dx", type: "i8", min: -127, max: 127 }, { name: "dy", type: "i8", min: -127, max: 127 }]);
  assert.deepEqual([arena.schema.game, arena.schema.scale, arena.schema.width, arena.schema.height], ["arena", 16, 1000, 1000]);
  assert.deepEqual(fields(tanks.schema)[0][1].slice(5), [["team", "enum", 2, "none", false], ["name", "text", 32, "name", false], ["ammo", "uint", 0, "none", true]]);
  assert.deepEqual(tanks.schema.messages, [{ name: "chat", perSecond: 2, params: [{ name: "line", type: "text", max: 100 }, { name: "team", type: "int", min: 0, max: 1 }] }]);
  assert.deepEqual(tanks.schema.events.map((e) => [e.name, e.public, e.params.length]), [["hit", true, 2], ["kill", true, 4], ["chat", true, 4]]);
  assert.deepEqual(tanks.schema.options, [{ name: "team", type: "int", min: 0, max: 1 }]);
  assert.deepEqual(tanks.schema.roomOptions.map((p) => p.name), ["mode", "kills", "team_size"]);

  assert.deepEqual(decoded["arena snapshot"], { type: "snapshot", tick: 3, entities: [
    { id: 1, kind: 1, f: [160, 16000] }, { id: 7, kind: 0, f: [8000, 8000, 3, "ann"] }] });
  // A name is a string; the private ammo is not in a snapshot (0 until a Private); a signed
  // field is kept as its two's complement bits.
  assert.deepEqual(decoded["tanks snapshot"].entities, [
    { id: 3, kind: 0, f: [8000, 8000, 0, 100, 2, 1, "ann", 0] },
    { id: 38, kind: 1, f: [4000, 4000, -320 >>> 0, 0, 5] },
  ]);
  assert.deepEqual(decoded["arena delta"], { type: "delta", tick: 1000, baseGap: 1,
    spawned: [{ id: 260, kind: 1, f: [1600, 80] }],
    updated: [{ id: 7, kind: 0, mask: 3, values: [80, -3] }, { id: 9, kind: 0, mask: 4, values: [2] }],
    removed: [12], checksum: 0xdeadbeef });
  assert.deepEqual(decoded["tanks delta"], { type: "delta", tick: 31, baseGap: 1,
    spawned: [{ id: 40, kind: 1, f: [8000, 8320, 0, 320, 3] }],
    updated: [{ id: 3, kind: 0, mask: 0b100, values: [64] }, { id: 5, kind: 0, mask: 0b1001000, values: [75, "bob"] }],
    removed: [38], checksum: null });
  assert.deepEqual(decoded["idle delta"], { type: "delta", tick: 70000, baseGap: 1, spawned: [], updated: [], removed: [], checksum: null });
  assert.deepEqual(decoded.ack, { type: "ack", seq: 300 });
  assert.deepEqual(decoded.pong, { type: "pong", nonce: 42, clientTimeUs: 1_000_000, serverTick: 250, serverTimeUs: 1_700_000_000_000_000 });
  assert.deepEqual(decoded["tanks events"], { type: "events", tick: 31, events: [
    { kind: 1, values: [5, 3, "bob", "ann"] }, { kind: 2, values: [3, "ann", "gg", 0] }] });
  assert.deepEqual(decoded["tanks private"], { type: "private", tick: 31, full: false,
    entities: [{ id: 3, kind: 0, mask: 0b10000000, values: [4] }], checksum: 0x01020304 });
  assert.deepEqual(decoded["match ended"], { type: "matchEnded", tick: 600, summary: "red wins 20 to 13", standings: [
    { player: 3, name: "ann", rank: 1, score: 20 }, { player: 5, name: "bob", rank: 2, score: 13 }] });

  // The events as a page words them.
  const words = decoded["tanks events"].events.map((e) => {
    const kind = tanks.schema.events[e.kind];
    return tc.describeEvent({ kind: kind.name, fields: Object.fromEntries(kind.params.map((p, i) => [p.name, e.values[i]])) });
  });
  assert.deepEqual(words, ["ann destroyed bob", "ann: gg"]);
});

test("the worlds the vectors build have the document's checksums", () => {
  // PROTOCOL.md, "World checksum".
  const world = new tc.World(arena.schema);
  world.snapshot(tc.decodeServerMsg(bytes("arena snapshot"), arena.schema));
  assert.equal(world.checksum(), 0x2a6cef51);
  assert.equal(new tc.World(arena.schema).checksum(), 0x811c9dc5, "the empty world");
  // The private ammunition lands on the tank it names, in its owner's checksum only.
  const held = new tc.World(tanks.schema);
  held.snapshot(tc.decodeServerMsg(bytes("tanks snapshot"), tanks.schema));
  const before = held.checksum();
  held.private(tc.decodeServerMsg(bytes("tanks private"), tanks.schema));
  assert.deepEqual(held.entities.get(3).f, [8000, 8000, 0, 100, 2, 1, "ann", 4]);
  assert.equal(held.checksum(), before);
  assert.notEqual(held.privateChecksum(3), 0x811c9dc5);
  assert.equal(held.privateChecksum(5), 0x811c9dc5);
  // A delta on a base the world does not hold (999, holding 3) is drift.
  assert.throws(() => world.delta(tc.decodeServerMsg(bytes("arena delta"), arena.schema)), tc.DriftError);
});

test("what the protocol rules out is refused, on the way in and before anything goes out", () => {
  for (const [what, hexBytes, schema] of [
    ["a varint not in its shortest form", "04 fb 05 00"],
    ["a trailing byte", "04 05 00"],
    ["a 128-bit varint prefix", "04 fe"],
    ["a truncated entity", "01 03 01 07 00 fb 40 1f", arena.schema],
    ["a kind the schema lacks", "01 03 01 07 02 00 00", arena.schema],
    ["entity id 0", "01 03 01 00 01 00 00", arena.schema],
    ["an update mask of 0", "02 02 01 00 01 00 01 07 00 00 00", arena.schema],
    ["an Option byte of 2", "02 02 01 00 00 00 02", arena.schema],
    ["a name with a control character", "01 03 01 07 00 00 00 00 01 0a", arena.schema],
    ["a name that is not UTF-8", "01 03 01 07 00 00 00 00 01 ff", arena.schema],
    ["a private field in an update", "02 1f 01 00 01 00 01 03 80 04 00 00", tanks.schema],
    ["Events with no event", "05 1f 00", tanks.schema],
    ["a world message before the Welcome", vectors.get("arena snapshot")],
    ["a Welcome of version 4", vectors.get("arena welcome").replace(/^00 05/, "00 04")],
  ]) {
    const b = Uint8Array.from(hexBytes.split(" "), (h) => parseInt(h, 16));
    assert.throws(() => tc.decodeServerMsg(b, schema), tc.DecodeError, what);
  }
  assert.throws(() => tc.messageOf(tanks.schema, "shout", {}), RangeError);
  assert.throws(() => tc.messageOf(tanks.schema, "chat", { team: 2 }), RangeError);
  assert.throws(() => tc.messageOf(tanks.schema, "chat", { line: "x".repeat(101) }), RangeError);
  assert.throws(() => tc.messageOf(tanks.schema, "chat", { team: "1" }), TypeError);
  assert.throws(() => tc.encodeClientMsg({ type: "input", seq: 1, values: [128, 0] }, arena.schema), RangeError);
  assert.throws(() => tc.encodeClientMsg({ type: "hello", name: "ann", options: { "Bad-Name": 1 } }), RangeError);
});
