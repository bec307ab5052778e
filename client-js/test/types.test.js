// The declarations in types/ against the modules: every value a module exports is declared in
// its .d.ts, and nothing is declared that it does not export (`npm run typecheck` then checks
// the declarations' shapes against examples/typed.ts).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

// The values a declaration file declares (types have no value to compare).
function declared(file) {
  const text = readFileSync(new URL(`../types/${file}`, import.meta.url), "utf8");
  return [...new Set([...text.matchAll(/^export declare (?:const|class|function) (\w+)/gm)].map((m) => m[1]))].sort();
}

for (const name of ["tickcast-wire", "tickcast-world", "tickcast"]) {
  test(`types/${name}.d.ts declares every export of ${name}.js`, async () => {
    const exported = Object.keys(await import(`../${name}.js`)).sort();
    const own = declared(`${name}.d.ts`);
    // tickcast.js re-exports the other two.
    const expected = name === "tickcast" ? [...own, ...declared("tickcast-wire.d.ts"), ...declared("tickcast-world.d.ts")].sort() : own;
    assert.deepEqual(exported, expected);
  });
}

test("package.json's entry points exist", async () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  for (const [, target] of Object.entries(pkg.exports)) {
    for (const file of typeof target === "string" ? [target] : Object.values(target)) {
      assert.doesNotThrow(() => readFileSync(new URL(`../${file}`, import.meta.url)), file);
    }
  }
  // The package's version follows the protocol's: 0.<protocol version>.x.
  const { PROTOCOL_VERSION } = await import("../tickcast.js");
  assert.equal(pkg.version.split(".")[1], String(PROTOCOL_VERSION));
});
