// tickcast-world.js: the world a player holds (PROTOCOL.md: Snapshot, Delta, Private, the
// checksums), and the games' client-side steps for prediction; for tickcast.js, which
// re-exports all of it.
//
//   const world = new World(schema);
//   world.snapshot(msg); world.delta(msg); world.private(msg);   // a DriftError when it does not fit
//   world.checksum(); world.privateChecksum(playerId);            // FNV-1a, as the server's

import { zeroOf } from "./tickcast-wire.js";

const utf8Encoder = new TextEncoder();

/** Drift: the server's word and ours no longer agree; the cure is a reconnect. */
export class DriftError extends Error {}

// FNV-1a, 32-bit, over what PROTOCOL.md's checksums cover: a number as 4 bytes LE, a text as
// its length in bytes (4 bytes LE) then its UTF-8 bytes.
class Fnv {
  constructor() { this.h = 0x811c9dc5; }
  byte(b) { this.h = Math.imul(this.h ^ (b & 0xff), 0x01000193); }
  word(v) { this.byte(v); this.byte(v >>> 8); this.byte(v >>> 16); this.byte(v >>> 24); }
  value(v) {
    if (typeof v !== "string") return this.word(v);
    const bytes = utf8Encoder.encode(v);
    this.word(bytes.length);
    for (const b of bytes) this.byte(b);
  }
  get hash() { return this.h >>> 0; }
}

/** Entities by id, as the server holds them after `tick`: their public fields, and the
 *  private fields of what this player owns. */
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
          case "text": e.f[i] = value; break;
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

  /** Applies a Private (the player's own private fields, after the frame); a `full` one first
   *  resets every private field. Throws `DriftError` for an entity not held, or not as that kind. */
  private(msg) {
    for (const p of msg.entities) {
      const e = this.entities.get(p.id);
      if (!e || e.kind !== p.kind) throw new DriftError(`private fields of entity ${p.id} not held as a ${this.schema.kinds[p.kind].name}`);
    }
    if (msg.full) {
      for (const e of this.entities.values()) {
        const kind = this.schema.kinds[e.kind];
        if (kind.privateMask) kind.fields.forEach((f, i) => { if (f.private) e.f[i] = zeroOf(f); });
      }
    }
    for (const p of msg.entities) {
      const e = this.entities.get(p.id);
      let v = 0;
      this.schema.kinds[p.kind].fields.forEach((_, i) => { if (p.mask & (1 << i)) e.f[i] = p.values[v++]; });
    }
  }

  /** The player that owns entity `e`: its owner field's value, or the entity itself. */
  ownerOf(e) {
    const i = this.schema.kinds[e.kind].role.owner;
    return i === undefined ? e.id : e.f[i];
  }

  ids() { return [...this.entities.keys()].sort((a, b) => a - b); }

  /** The world checksum: FNV-1a over every entity in id order, its public fields only. */
  checksum() {
    const h = new Fnv();
    for (const id of this.ids()) {
      const e = this.entities.get(id);
      h.word(id); h.byte(e.kind);
      this.schema.kinds[e.kind].fields.forEach((f, i) => { if (!f.private) h.value(e.f[i]); });
    }
    return h.hash;
  }

  /** The private checksum of `player`: FNV-1a over the private fields of what it owns. */
  privateChecksum(player) {
    const h = new Fnv();
    for (const id of this.ids()) {
      const e = this.entities.get(id);
      const kind = this.schema.kinds[e.kind];
      if (!kind.privateMask || this.ownerOf(e) !== player) continue;
      h.word(id);
      kind.fields.forEach((f, i) => { if (f.private) h.value(e.f[i]); });
    }
    return h.hash;
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

/** The games' shared rule (src/game/motion.rs, `velocity`): a step per tick, integers only. */
export function velocity(dx, dy, speed, scale, tickHz) {
  dx = Math.max(-127, Math.min(127, dx)); dy = Math.max(-127, Math.min(127, dy));
  const length = Math.max(127, isqrtCeil(dx * dx + dy * dy));
  const perSecond = speed * scale, denominator = length * Math.max(1, tickHz);
  return [Math.trunc((dx * perSecond) / denominator), Math.trunc((dy * perSecond) / denominator)];
}

function advance(at, step, max) { return Math.max(0, Math.min(max, at + step)); }

/** Client-side steps by game name; register your game's with `predictors.set(name, …)`. */
export const predictors = new Map();

// A step along the input's direction (`input[0]`, `input[1]`) at `speed` units/s, clamped to
// the world: how arena's players and tanks move (src/game/motion.rs, `advance`).
function moved(f, input, ctx, speed) {
  const [sx, sy] = velocity(input[0] ?? 0, input[1] ?? 0, speed, ctx.scale, ctx.tickHz);
  const out = f.slice();
  out[ctx.x] = advance(f[ctx.x], sx, ctx.scale * ctx.width);
  out[ctx.y] = advance(f[ctx.y], sy, ctx.scale * ctx.height);
  return out;
}

// arena (src/game/arena.rs): the player moves at 150 units/s along its input, clamped to the
// world. Orbs and scores are the server's business; the position is all prediction needs.
predictors.set("arena", {
  speed: 150,
  step(f, input, ctx) { return moved(f, input, ctx, this.speed); },
});

// tanks (src/game/tanks.rs): the tank moves at 120 units/s along its input (`dx`, `dy`), as
// arena's players do, and its turret turns to the input's `aim` (0..=255 of a turn) in the same
// tick. Health, ammunition, shells and respawns are the server's business.
predictors.set("tanks", {
  speed: 120,
  // The tank kind's `aim` field, and the input's (tanks.rs: `field::AIM`, the input's order).
  aimField: 2,
  aimInput: 2,
  // The fields besides the position the step predicts: checked against the server's too.
  fields: [2],
  step(f, input, ctx) {
    const out = moved(f, input, ctx, this.speed);
    out[this.aimField] = (input[this.aimInput] ?? 0) & 0xff;
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
