// The import graph of src/: no cycle, leaf modules stay leaves, transports and the core import
// only what their layer allows. The graph is read by esbuild's parser (`import ... from`,
// `export ... from`, `import "..."`, `import("...")`), so an `import("./x.js")` type in a JSDoc
// comment or an example in a string is no edge.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { build } from "esbuild";

const SRC = new URL("../src/", import.meta.url).pathname;

/**
 * Return the import graph of the modules under `dir`: `{"a.js": ["b.js", ...]}`, paths relative
 * to `dir`, static and dynamic imports alike; package imports are left out.
 * @param {string} dir
 */
async function importGraph(dir) {
  const files = readdirSync(dir, { recursive: true }).filter((file) => file.endsWith(".js"));
  const { metafile } = await build({
    entryPoints: files,
    absWorkingDir: dir,
    bundle: true,
    packages: "external",
    format: "esm",
    outdir: "out",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const graph = {};
  for (const [file, { imports }] of Object.entries(metafile.inputs)) {
    graph[file] = [...new Set(imports.filter((edge) => !edge.external).map((edge) => edge.path))].sort();
  }
  return graph;
}

/**
 * Return the first import cycle of `graph` as `["a.js", "b.js", "a.js"]`, or null.
 * @param {Record<string, string[]>} graph
 */
function findCycle(graph) {
  const done = new Set();
  const path = []; // the modules being walked, outermost first
  const walk = (file) => {
    if (path.includes(file)) return [...path.slice(path.indexOf(file)), file];
    if (done.has(file)) return null;
    path.push(file);
    for (const next of graph[file] ?? []) {
      const cycle = walk(next);
      if (cycle) return cycle;
    }
    path.pop();
    done.add(file);
    return null;
  };
  for (const file of Object.keys(graph).sort()) {
    const cycle = walk(file);
    if (cycle) return cycle;
  }
  return null;
}

test("findCycle names a cycle, a self-import, and finds none in a diamond", () => {
  assert.deepEqual(findCycle({ "a.js": ["b.js"], "b.js": ["c.js"], "c.js": ["a.js"] }), ["a.js", "b.js", "c.js", "a.js"]);
  assert.deepEqual(findCycle({ "top.js": ["a.js"], "a.js": ["a.js"] }), ["a.js", "a.js"]);
  assert.deepEqual(findCycle({ "x.js": ["y.js"], "y.js": ["z.js"], "z.js": ["y.js"] }), ["y.js", "z.js", "y.js"]);
  assert.equal(findCycle({ "a.js": ["b.js", "c.js"], "b.js": ["d.js"], "c.js": ["d.js"], "d.js": [] }), null);
});

test("importGraph reads export-from, import-from and import() edges, not comments or strings", async () => {
  const dir = mkdtempSync(join(tmpdir(), "rtbridge-import-graph-"));
  try {
    writeFileSync(join(dir, "a.js"), 'export { b } from "./b.js";\n');
    writeFileSync(
      join(dir, "b.js"),
      'import { c } from "./c.js";\n/** @type {import("./missing.js").T} */\n' +
        "export const b = [c, 'import x from \"./missing.js\"'];\n",
    );
    writeFileSync(join(dir, "c.js"), 'import "pkg";\nexport const c = () => import("./a.js");\n');
    const graph = await importGraph(dir);
    assert.deepEqual(graph, { "a.js": ["b.js"], "b.js": ["c.js"], "c.js": ["a.js"] });
    assert.deepEqual(findCycle(graph), ["a.js", "b.js", "c.js", "a.js"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("src/ has no import cycle", async () => {
  const cycle = findCycle(await importGraph(SRC));
  assert.equal(cycle, null, `import cycle in src/: ${cycle?.join(" → ")}`);
});

test("leaf modules import nothing; every other module imports only from the layers below it", async () => {
  const graph = await importGraph(SRC);
  const leaves = ["backoff.js", "channel-names.js", "continuity.js", "errors.js", "hooks.js"];
  const transports = Object.keys(graph).filter((file) => file.startsWith("transports/"));
  // [modules, what they may import besides the leaves, what they are]
  const layers = [
    [leaves, null, "a leaf"],
    [["channel.js", "config.js", "encodings.js", "http.js"], [], "just above the leaves"],
    [transports, ["encodings.js", ...transports], "a transport (the client calls it through hooks; it never imports the client)"],
    [["client.js"], ["channel.js", "http.js"], "the core (no feature module, no transport)"],
    [["presence.js", "data.js", "live.js"], ["channel.js", "http.js", "data.js"], "a feature module (it is handed the client)"],
  ];
  for (const [files, allowed, what] of layers) {
    for (const file of files) {
      assert.ok(graph[file], `${file} is in src/`);
      const wrong = graph[file].filter((imported) => allowed === null || !(leaves.includes(imported) || allowed.includes(imported)));
      assert.deepEqual(wrong, [], `${file} is ${what} but imports ${wrong.join(", ")}`);
    }
  }
});

test("connect.js imports no transport; the main entry only the self-hosted and null ones", async () => {
  // What keeps `import { connect } from "rtbridge"` free of the hosted transports (and their
  // code) in an app's bundle: a bundler can drop a module only if nothing imports it.
  const graph = await importGraph(SRC);
  const transportsOf = (file) => graph[file].filter((imported) => imported.startsWith("transports/"));
  assert.deepEqual(transportsOf("connect.js"), []);
  assert.deepEqual(transportsOf("index.js"), ["transports/null.js", "transports/selfhosted.js"]);
  assert.ok(graph["rtbridge.js"].includes("index.js"), "rtbridge/all re-exports the main entry");
});
