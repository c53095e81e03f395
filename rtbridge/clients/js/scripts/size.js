// Print the min+gzip size of the core with the self-hosted transport (private channels and
// whispers included), of the same with presence, data calls and live collections, of an app's
// `connect()` from the main entry ("rtbridge": self-hosted and null transports) and from
// "rtbridge/all" (every transport), and of the full client. Budget: core + selfhosted <= 7 KB (7168 bytes) min+gzip; exits 1 when over. (It was
// 6 KB until continuity — positions, resume and hole fills — added about 1.1 KB.)
import { build } from "esbuild";
import { gzipSync } from "node:zlib";

const src = new URL("../src/", import.meta.url).pathname;
const BUDGET = 7 * 1024;

async function measure(label, contents) {
  const result = await build({
    stdin: { contents, resolveDir: src, sourcefile: `${label}.js` },
    bundle: true,
    format: "esm",
    minify: true,
    target: ["es2020"],
    write: false,
    legalComments: "none",
  });
  const code = result.outputFiles[0].contents;
  const gzip = gzipSync(code, { level: 9 }).length;
  return { label, minified: code.length, gzip };
}

const rows = [
  await measure(
    "core + selfhosted",
    'export { Client } from "./client.js"; export { selfhosted } from "./transports/selfhosted.js";' +
      'export { filterChannel, objectChannel } from "./channel-names.js";',
  ),
  await measure(
    "+ presence, data, live",
    'export { Client } from "./client.js"; export { selfhosted } from "./transports/selfhosted.js";' +
      'export { filterChannel, objectChannel } from "./channel-names.js"; export { join } from "./presence.js";' +
      'export * from "./data.js"; export { LiveList, LiveObject } from "./live.js";',
  ),
  await measure(
    'connect() of "rtbridge" (self-hosted + null)',
    'import { connect } from "./index.js"; export const rt = connect({ backend: "local" });',
  ),
  await measure(
    'connect() of "rtbridge/all"',
    'import { connect } from "./rtbridge.js"; export const rt = connect({ backend: "local" });',
  ),
  await measure("full client (all transports)", 'export * from "./rtbridge.js";'),
];
console.log("bundle                                        min bytes   min+gzip bytes");
for (const { label, minified, gzip } of rows) {
  console.log(`${label.padEnd(46)}${String(minified).padStart(9)}   ${String(gzip).padStart(14)}`);
}
const core = rows[0].gzip;
console.log(`core + selfhosted: ${(core / 1024).toFixed(2)} KB min+gzip (budget ${BUDGET / 1024} KB)`);
if (core > BUDGET) {
  console.error(`over budget by ${core - BUDGET} bytes`);
  process.exit(1);
}
