// The committed classic-script bundle is current and exposes window.RTBridge.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { test } from "node:test";
import vm from "node:vm";

import { build } from "esbuild";

import { iifeOptions } from "../scripts/build-options.js";

const committed = readFileSync(iifeOptions.outfile, "utf8");

test("classic/rtbridge.iife.js matches the source (run `npm run build` after editing src/)", async () => {
  const result = await build({ ...iifeOptions, write: false });
  assert.equal(committed, result.outputFiles[0].text);
});

test("the classic script sets window.RTBridge with the whole API", async () => {
  const window = { console, queueMicrotask, setTimeout, clearTimeout, TextEncoder, btoa };
  window.window = window;
  vm.runInNewContext(committed, window);
  const { RTBridge } = window;
  for (const name of ["connect", "filterChannel", "objectChannel", "RTBridgeError", "transports", "readConfig", "PresenceChannel", "LiveList", "LiveObject"]) {
    assert.ok(RTBridge[name], name);
  }
  assert.equal(RTBridge.filterChannel("todo.todoitem", { todo_list__id: 1 }), "todo.todoitem;todo_list_id=1");
  const rt = RTBridge.connect({ backend: "null" });
  await rt.ready();
  assert.equal(rt.state, "connected");
  assert.ok(rt.join("room") instanceof RTBridge.PresenceChannel);
  for (const method of ["private", "getList", "getSingle", "create", "update", "delete", "call", "liveList", "liveObject"]) {
    assert.equal(typeof rt[method], "function", method);
  }
  rt.disconnect();
});

test("core + selfhosted stays within 7 KB min+gzip", async () => {
  const result = await build({
    stdin: {
      contents: 'export { Client } from "./client.js"; export { selfhosted } from "./transports/selfhosted.js";',
      resolveDir: new URL("../src/", import.meta.url).pathname,
    },
    bundle: true,
    format: "esm",
    minify: true,
    write: false,
  });
  const size = gzipSync(result.outputFiles[0].contents, { level: 9 }).length;
  assert.ok(size <= 7 * 1024, `${size} bytes`);
});
