// Refusals a Node client reads: a room that does not exist (by id through the rooms API, and
// by player URL, which the client asks about once its socket failed), a full room, a join
// option the game lacks, a missing join token: each is the `refused` event with the server's
// code and reason, then `close` with the same, and the client does not try again. And a hello
// of another protocol version, which the server closes with 1002.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { Client, encodeClientMsg } from "../tickcast.js";
import { api, describe as state, next, noServer, pause, startServer } from "./server.js";

// Long enough for the client to have reconnected had it not stopped (its backoff starts at
// half a second).
const WOULD_HAVE_RETRIED_MS = 800;

describe("refusals", { skip: noServer, timeout: 30_000 }, () => {
  let server;
  let guarded; // a server that requires join tokens
  const clients = [];
  before(async () => {
    [server, guarded] = await Promise.all([startServer(), startServer(["--auth-secret", "s3cret"])]);
  });
  after(async () => {
    for (const c of clients) c.stop();
    await Promise.all([server?.stop(), guarded?.stop()]);
  });

  // A client of `on` with `options`, started: resolves with its refusal, its events and what it
  // did after.
  async function refused(on, options) {
    const c = new Client({ server: on.http, name: "nope", ...options });
    clients.push(c);
    const events = [];
    for (const type of ["refused", "close", "welcome", "reconnecting"]) c.addEventListener(type, (ev) => events.push([type, ev.detail]));
    const refusal = next(c, "refused");
    c.start();
    const detail = await refusal;
    await pause(WOULD_HAVE_RETRIED_MS);
    assert.equal(c.status, "refused", state(c));
    assert.equal(c.stats.reconnects, 0, state(c));
    assert.deepEqual(c.refusal, detail);
    assert.deepEqual(events, [["refused", detail], ["close", detail]]);
    return detail;
  }

  test("a room that does not exist: 404, by id and by player URL", async () => {
    assert.deepEqual(await refused(server, { room: "nope" }), { code: 404, reason: 'no room "nope"' });
    assert.deepEqual(await refused(server, { url: `${server.ws}/rooms/nope/ws` }), { code: 404, reason: "no room nope: see GET /rooms" });
  });

  test("a full room: 1013, and its player plays on", async () => {
    const created = await api(server, "POST", "/rooms", { game: "arena", max_players: 1 });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const first = new Client({ server: server.http, room: created.body.id, name: "first" });
    clients.push(first);
    const welcomed = next(first, "welcome");
    first.start();
    await welcomed;
    assert.deepEqual(await refused(server, { room: created.body.id, name: "second" }), { code: 1013, reason: "server full" });
    assert.equal(first.status, "playing");
  });

  test("a join option the game does not have: 1008 with the game's options", async () => {
    const { code, reason } = await refused(server, { options: { colour: 1 } });
    assert.equal(code, 1008);
    assert.match(reason, /^unknown option "colour"/);
  });

  test("no join token where the server requires one: 1008", async () => {
    assert.deepEqual(await refused(guarded, {}), { code: 1008, reason: "a join token is required" });
    const { code, reason } = await refused(guarded, { token: "v2.1800000000.00" });
    assert.deepEqual([code, reason], [1008, "malformed join token"]);
  });

  test("a hello of protocol version 4 is closed with 1002 and why", async () => {
    const ws = new WebSocket(`${server.ws}/ws`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => ws.send(encodeClientMsg({ type: "hello", version: 4, name: "old" }));
    const closed = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("not closed within 5 s")), 5000);
      ws.onclose = (ev) => { clearTimeout(timer); resolve({ code: ev.code, reason: ev.reason }); };
    });
    assert.deepEqual(closed, { code: 1002, reason: "protocol version 4 not supported: this server speaks 5" });
  });
});
