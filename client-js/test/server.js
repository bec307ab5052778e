// What the tests share: a real tickcast server (the binary `TICKCAST_BIN` names, on a free
// loopback port), and waiting, bounded, for what a client says.
//
// `cargo test --test client_js` runs these tests with the binary it built; by hand:
//   cargo build && TICKCAST_BIN=../target/debug/tickcast npm test

import { spawn } from "node:child_process";
import { createServer } from "node:net";

const BIN = process.env.TICKCAST_BIN;

/** The reason the tests that need a server are skipped, or false when they are not. */
export const noServer = BIN
  ? false
  : "TICKCAST_BIN is not set: it names the tickcast binary the tests start (cargo test --test client_js sets it)";

// Servers still running when this process exits, whatever ends it.
const running = new Set();
process.on("exit", () => { for (const child of running) child.kill("SIGKILL"); });

/**
 * Starts a server with `args` on a free loopback port (`--bind 127.0.0.1:0`: the address is
 * read from the line it logs at start), or at `bind`, and resolves when it listens: `{ http,
 * ws, log(), stop() }`.
 */
export async function startServer(args = [], { bind = "127.0.0.1:0" } = {}) {
  const child = spawn(BIN, ["--bind", bind, "--seed", "7", ...args], {
    env: { ...process.env, NO_COLOR: "1", RUST_LOG: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  // Kept read to the end (a full pipe would stall the server), the last 64 KiB of it kept.
  let log = "";
  const addr = await new Promise((resolve, reject) => {
    const fail = (why) => { clearTimeout(timer); child.kill("SIGKILL"); reject(new Error(`${why}; it said:\n${log}`)); };
    const timer = setTimeout(() => fail("the server did not say where it listens within 10 s"), 10_000);
    const read = (chunk) => {
      log = (log + chunk).slice(-65536);
      // "tickcast listening: rooms at http://127.0.0.1:PORT/ , …" (colours, if any, stripped).
      const listening = log.replace(/\x1b\[[0-9;]*m/g, "").match(/tickcast listening: rooms at http:\/\/([^/\s]+)\//);
      if (listening) { clearTimeout(timer); resolve(listening[1]); }
    };
    child.stdout.setEncoding("utf8").on("data", read);
    child.stderr.setEncoding("utf8").on("data", read);
    child.once("error", (err) => fail(`${BIN} did not start: ${err.message}`));
    child.once("exit", (code, signal) => fail(`the server exited (${code ?? signal}) before it listened`));
  });
  child.removeAllListeners("exit");
  child.removeAllListeners("error");
  const exited = new Promise((resolve) => child.once("exit", resolve));
  return {
    http: `http://${addr}`,
    ws: `ws://${addr}`,
    log: () => log,
    /** SIGTERM (its graceful shutdown), then SIGKILL if it is not gone within 5 s. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
      running.delete(child);
    },
  };
}

/** A loopback port nothing listens on (it did a moment ago): for a server that is not up yet. */
export async function freePort() {
  const probe = createServer();
  await new Promise((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Resolves with the `detail` of the next `type` event of `target`, or rejects after `ms`. */
export function next(target, type, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      target.removeEventListener(type, on);
      reject(new Error(`no ${type} event within ${ms} ms${target.stats ? `: ${describe(target)}` : ""}`));
    }, ms);
    const on = (ev) => { clearTimeout(timer); target.removeEventListener(type, on); resolve(ev.detail); };
    target.addEventListener(type, on);
  });
}

/** Resolves once `done()` holds after one of `client`'s frames (or at once), or rejects after
 *  `ms` saying `what`. */
export function untilFrame(client, what, done, ms = 5000) {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!done()) return false;
      clearTimeout(timer);
      client.removeEventListener("frame", check);
      resolve();
      return true;
    };
    const timer = setTimeout(() => {
      client.removeEventListener("frame", check);
      reject(new Error(`never ${what} within ${ms} ms: ${describe(client)}`));
    }, ms);
    if (!check()) client.addEventListener("frame", check);
  });
}

/** Resolves after `ms`: for an absence (no retry), which nothing can be awaited for. */
export const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A client's state, for a failure's message. */
export function describe(client) {
  return JSON.stringify({ status: client.status, refusal: client.refusal, playerId: client.playerId, stats: client.stats });
}

/** Answers `method path` of the rooms API with `body` (JSON) as `{ status, body }`. */
export async function api(server, method, path, body) {
  const res = await fetch(`${server.http}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}
