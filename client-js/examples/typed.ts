// A typed player of a tickcast room, in a page: moves towards the middle of the world, says
// who destroyed whom, and draws every entity. `npm run typecheck` checks it against types/.

import {
  Client,
  DecodeError,
  PROTOCOL_VERSION,
  World,
  decodeServerMsg,
  describeEvent,
  encodeClientMsg,
  messageOf,
  predictors,
  velocity,
  type ClientStatus,
  type CloseInfo,
  type Schema,
  type ViewEntity,
} from "tickcast-client";

const client = new Client({ room: "default", name: "ann", options: { team: 1 }, silenceMs: 5000 });

client.addEventListener("welcome", (ev) => {
  const { playerId, tickHz, schema } = ev.detail;
  console.log(`player ${playerId} of ${schema.game} at ${tickHz} Hz, inputs ${schema.input.map((f) => f.name)}`);
});
client.addEventListener("frame", (ev) => {
  if (ev.detail.type === "delta" && ev.detail.checksum !== null) console.log("checked at", ev.detail.tick);
});
client.addEventListener("event:kill", (ev) => console.log(describeEvent(ev.detail)));
client.addEventListener("event", (ev) => console.log(ev.detail.kind, ev.detail.fields));
client.addEventListener("ended", (ev) => {
  for (const { rank, name, score } of ev.detail.standings) console.log(rank, name, score);
});
client.addEventListener("refused", (ev) => showRefusal(ev.detail));
client.addEventListener("close", (ev) => console.log("closed", ev.detail.code, ev.detail.reason));
client.addEventListener("status", (ev) => setStatus(ev.detail));
client.addEventListener("reconnecting", (ev) => console.log("attempt", ev.detail.attempt));
client.addEventListener("resumed", (ev) => console.log(`back as ${ev.detail.playerId} in ${ev.detail.tookMs} ms`));
client.addEventListener("seatlost", (ev) => console.log("seat lost:", ev.detail.reason));
client.addEventListener("drift", (ev) => console.log("drift:", ev.detail.toUpperCase()));
client.addEventListener("private", (ev) => console.log(ev.detail.entities.length, "private"));
// Any other name is an ordinary event.
client.addEventListener("custom", (ev: Event) => console.log(ev.type));

function showRefusal({ code, reason }: CloseInfo): void {
  console.log(`refused: ${reason} (${code})`);
}

function setStatus(status: ClientStatus): void {
  console.log(status);
}

await client.start();
console.log(client.server, client.room ?? "(by url)", client.status);

// Towards the middle of the world.
function steer(): void {
  const schema: Schema | null = client.schema;
  const own = client.world?.entities.get(client.playerId);
  if (!schema || !own) return;
  const kind = schema.kinds[own.kind];
  const x = kind?.role.x, y = kind?.role.y;
  if (x === undefined || y === undefined) return;
  const dx = (schema.width * schema.scale) / 2 - Number(own.f[x]);
  const dy = (schema.height * schema.scale) / 2 - Number(own.f[y]);
  client.setInput({ dx: Math.sign(dx) * 127, dy: Math.sign(dy) * 127 });
}
setInterval(steer, 100);
client.setInput([0, 0]);

if (client.schema?.messages.some((m) => m.name === "chat")) {
  try {
    client.send("chat", { line: "gg", team: 0 });
  } catch (err) {
    console.log("not sent:", (err as Error).message);
  }
}

function draw(entity: ViewEntity): string {
  // A kind without a position has no x and y: the type says which.
  if (entity.x === null) return `${entity.kind} ${entity.id}`;
  return `${entity.kind} ${entity.id} at ${entity.x.toFixed(1)}, ${entity.y.toFixed(1)}${entity.jumped ? " (jumped)" : ""}`;
}

requestAnimationFrame(function frame(now: number) {
  const view = client.view(now);
  if (view.tick !== null) console.log(view.entities.map(draw).join("\n"));
  const { rtt, checksumsVerified, checksumMismatches } = client.stats;
  console.log(rtt?.toFixed(1), checksumsVerified, checksumMismatches);
  requestAnimationFrame(frame);
});

// The wire and the world, for tools of your own.
const hello = encodeClientMsg({ type: "hello", name: "ann", options: { team: 1 } });
try {
  const msg = decodeServerMsg(hello);
  if (msg.type === "welcome") {
    const world = new World(msg.schema);
    console.log(world.checksum(), messageOf(msg.schema, "chat", { line: "hi" }).values);
    console.log(encodeClientMsg({ type: "input", seq: 1, values: [127, 0] }, msg.schema).length);
  }
} catch (err) {
  if (err instanceof DecodeError) console.log("not a server message:", err.message, PROTOCOL_VERSION);
}

// A game's client-side step, for prediction.
predictors.set("mine", {
  speed: 100,
  step(fields, input, ctx) {
    const [sx, sy] = velocity(input[0] ?? 0, input[1] ?? 0, 100, ctx.scale, ctx.tickHz);
    const out = fields.slice();
    out[ctx.x] = Number(fields[ctx.x]) + sx;
    out[ctx.y] = Number(fields[ctx.y]) + sy;
    return out;
  },
});

window.addEventListener("beforeunload", () => client.stop());
