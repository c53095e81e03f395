// Build the browser files from src/: rtbridge/static/rtbridge/ (what Django serves: one file per
// transport and the full client, see scripts/bundles.js) and classic/rtbridge.iife.js (npm).
// `npm run build` writes them (they are committed, so Django users need no Node);
// `node scripts/build.js --check` exits 1 naming every committed file that differs from src/.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, relative } from "node:path";

import { buildAll } from "./bundles.js";

const check = process.argv.includes("--check");
const { files } = await buildAll();
const repo = new URL("../../../../", import.meta.url).pathname;
const stale = [];
for (const { path, text } of files) {
  let committed = null;
  try {
    committed = readFileSync(path, "utf8");
  } catch {
    // missing: stale
  }
  if (committed === text) continue;
  stale.push(relative(repo, path));
  if (!check) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
}
if (check) {
  if (stale.length) {
    console.error(
      `stale: ${stale.join(", ")} differ from rtbridge/clients/js/src; ` +
        "run `make js-build` (or `cd rtbridge/clients/js && npm run build`) and commit the result.",
    );
    process.exit(1);
  }
  console.log(`${files.length} built files match src/`);
} else {
  console.log(stale.length ? `wrote ${stale.join(", ")}` : `${files.length} built files already current`);
}
