// Playing from Node against a real server: two players join the default room (by its id through
// the rooms API, and by the player URL), one moves and both see it move, every checksum
// matching and the prediction exact; a player matchmade into a tanks room chats and hears it;
// a player whose server is not up yet keeps trying, and plays once it is.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { Client } from "../tickcast.js";
import { api, freePort, describe as state, next, noServer, startServer, untilFrame } from "./server.js";

test("a Client plays on the server it was imported from, or with no such server a local one", () => {
  // Imported from a file, in Node: no page, no server it came from.
  assert.equal(new Client().server, "http://127.0.0.1:8080");
  assert.equal(new Client({ server: "https://game.example" }).server, "https://game.example");
});

describe("playing", { skip: noServer, timeout: 30_000 }, () => {
  let server;
  const clients = [];
  const client = (options) => {
    const c = new Client({ server: server.http, ...options });
    clients.push(c);
    return c;
  };
  before(async () => { server = await startServer(); });
  after(async () => {
    for (const c of clients) c.stop();
    await server?.stop();
  });

  test("two players in the default room: one moves, both see it, every checksum matches", async () => {
    const ann = client({ room: "default", name: "ann" });
    const bob = client({ url: `${server.ws}/ws`, name: "bob" });
    const welcomed = [next(ann, "welcome"), next(bob, "welcome")];
    ann.start(); bob.start();
    const [annWelcome, bobWelcome] = await Promise.all(welcomed);
    assert.equal(annWelcome.schema.game, "arena");
    assert.notEqual(annWelcome.playerId, bobWelcome.playerId);
    assert.equal(ann.room, "default");
    assert.equal(ann.status, "playing");

    // Each sees the other.
    const id = ann.playerId;
    await untilFrame(ann, "held its own entity", () => ann.world.entities.has(id));
    await untilFrame(bob, "held ann's entity", () => bob.world.entities.has(id));
    const { scale, width } = ann.schema;
    const x = (c) => c.world.entities.get(id).f[0];
    const start = x(bob);
    // Away from the nearer wall, 150 units a second: 60 units is under half a second.
    const dir = start > (scale * width) / 2 ? -1 : 1;
    ann.setInput({ dx: dir * 127, dy: 0 });
    const moved = (c) => (x(c) - start) * dir >= 60 * scale;
    await untilFrame(bob, "seen ann move", () => moved(bob));
    await untilFrame(ann, "moved", () => moved(ann));
    // And about once a second a checksum to check the world against.
    for (const c of [ann, bob]) await untilFrame(c, "checked a checksum", () => c.stats.checksumsVerified >= 1, 5000);

    for (const c of [ann, bob]) {
      const s = c.stats;
      assert.deepEqual([s.checksumMismatches, s.drifts, s.decodeErrors, s.reconnects], [0, 0, 0, 0], state(c));
      assert.ok(s.frames > 10 && s.snapshots === 1, state(c));
    }
    // The server acknowledged the input, and arena's client-side step is bit-exact with its.
    assert.ok(ann.ack >= 1, state(ann));
    assert.ok(ann.stats.predictionChecks > 0 && ann.stats.predictionMismatches === 0, state(ann));
    // What a page would draw: the own entity, where the world has it (world units), and bob.
    const view = ann.view();
    const own = view.entities.find((e) => e.own);
    assert.equal(own.id, id);
    assert.ok(Math.abs(own.x - x(ann) / scale) < 20, JSON.stringify(own));
    assert.ok(view.entities.some((e) => e.id === bob.playerId && e.kind === "player" && e.fields.name === "bob"));

    // A goodbye: bob sees ann's entity go.
    ann.stop();
    assert.equal(ann.status, "closed");
    await untilFrame(bob, "seen ann leave", () => !bob.world.entities.has(id));
  });

  test("matchmade into a tanks room, a player chats and hears it, its private fields checked", async () => {
    const cat = client({ matchmake: "tanks", name: "cat", options: { team: 1 } });
    const welcomed = next(cat, "welcome");
    cat.start();
    const { schema, playerId } = await welcomed;
    assert.equal(schema.game, "tanks");
    assert.match(cat.room, /^[A-Za-z0-9]{12}$/);
    await untilFrame(cat, "held its tank", () => cat.world.entities.has(playerId));
    assert.equal(cat.world.entities.get(playerId).f[schema.kinds[0].index.team], 1, "joined with its option");

    const heard = next(cat, "event:chat");
    cat.send("chat", { line: "gg" });
    const chat = await heard;
    assert.deepEqual([chat.kind, chat.fields.line, chat.fields.name, chat.fields.from], ["chat", "gg", "cat", playerId]);
    // A kind the game lacks is refused, nothing sent.
    assert.throws(() => cat.send("shout", {}), RangeError);

    await untilFrame(cat, "checked both checksums",
      () => cat.stats.checksumsVerified >= 1 && cat.stats.privateChecksumsVerified >= 1, 5000);
    const s = cat.stats;
    assert.deepEqual([s.checksumMismatches, s.privateChecksumMismatches, s.drifts, s.decodeErrors], [0, 0, 0, 0], state(cat));

    // The rooms API sees the player in the room matchmaking gave it.
    const room = await api(server, "GET", `/rooms/${cat.room}`);
    assert.equal(room.status, 200);
    assert.deepEqual([room.body.game, room.body.players], ["tanks", 1]);
  });
});

test("a server out of reach is tried again until it is up, then played on", { skip: noServer, timeout: 20_000 }, async () => {
  const port = await freePort();
  const c = new Client({ url: `ws://127.0.0.1:${port}/ws`, server: `http://127.0.0.1:${port}`, name: "early" });
  let server;
  try {
    const retrying = next(c, "status").then(() => next(c, "status"));
    c.start();
    assert.equal(await retrying, "reconnecting");
    assert.equal(c.refusal, null);
    server = await startServer([], { bind: `127.0.0.1:${port}` });
    const welcome = await next(c, "welcome", 10_000);
    assert.equal(welcome.schema.game, "arena");
    assert.ok(c.stats.reconnects >= 1, state(c));
  } finally {
    c.stop();
    await server?.stop();
  }
});
