// The browser builds Django serves: one minified file per transport (what {% rtbridge_js %}
// loads for the configured backend), the full client, and bundles.json, which maps each
// client_config()["backend"] alias to its files. Shared by `npm run build` and the checks
// that the committed files are current (`node scripts/build.js --check`).
import { readdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { build } from "esbuild";

import { iifeOptions } from "./build-options.js";

const here = dirname(fileURLToPath(import.meta.url));
export const SRC = join(here, "..", "src");
const TRANSPORTS = join(SRC, "transports");
/** Where Django's AppDirectoriesFinder finds them: rtbridge/static/rtbridge/. */
export const STATIC_DIR = join(here, "..", "..", "..", "static", "rtbridge");
/** The static path prefix of every file below ({% static 'rtbridge/...' %}). */
const PREFIX = "rtbridge";
const BANNER = "Built from rtbridge/clients/js/src by `npm run build`; do not edit.";

const common = {
  bundle: true,
  target: ["es2020"],
  minify: true,
  sourcemap: false,
  legalComments: "none",
  write: false,
  metafile: true,
  logLevel: "silent",
};

// The module form also sets window.RTBridge (as src/global.js does), so classic code on a page
// with a module script tag finds the client too.
const moduleEntry = {
  contents: 'import "./global.js";\nexport * from "./rtbridge.js";\n',
  resolveDir: SRC,
  sourcefile: "rtbridge-entry.js",
};

/** Map each transport factory of src/rtbridge.js's `transports` to its module's file name. */
async function transportModules() {
  const { transports } = await import(pathToFileURL(join(SRC, "rtbridge.js")).href);
  const fileOf = new Map();
  for (const file of readdirSync(TRANSPORTS).filter((name) => name.endsWith(".js")).sort()) {
    const module = await import(pathToFileURL(join(TRANSPORTS, file)).href);
    for (const value of Object.values(module)) if (typeof value === "function") fileOf.set(value, file);
  }
  const aliases = new Map(); // file → the backend aliases it serves
  for (const [alias, factory] of Object.entries(transports)) {
    const file = fileOf.get(factory);
    if (!file) throw new Error(`transports.${alias} is not exported by any module in src/transports/`);
    aliases.set(file, [...(aliases.get(file) ?? []), alias]);
  }
  return aliases;
}

/**
 * An esbuild plugin that swaps every transport module but `keep` for a stub whose factory
 * throws a clear error, so `connect()` and the `transports` table stay as in src/ (same code,
 * same aliases) while the bundle carries one transport. Only imports from outside
 * src/transports/ are swapped: the kept transport's own helpers (sdk.js, ...) stay.
 */
function oneTransport(keep, factories) {
  return {
    name: "rtbridge-one-transport",
    setup(build) {
      build.onResolve({ filter: /transports\/[\w-]+\.js$/ }, (args) => {
        const target = join(args.resolveDir, args.path);
        if (dirname(target) !== TRANSPORTS || dirname(args.importer) === TRANSPORTS) return undefined;
        if (basename(target) === keep || !factories.has(basename(target))) return undefined;
        return { path: basename(target), namespace: "rtbridge-absent-transport" };
      });
      build.onLoad({ filter: /.*/, namespace: "rtbridge-absent-transport" }, async ({ path }) => {
        const module = await import(pathToFileURL(join(TRANSPORTS, path)).href);
        const name = path.replace(/\.js$/, "");
        const lines = [
          `import { RTBridgeError } from ${JSON.stringify(join(SRC, "client.js"))};`,
          "const absent = () => {",
          `  throw new RTBridgeError("rtbridge: this build of the client has only the ${keep.replace(/\.js$/, "")} ` +
            `transport, not ${name}. {% rtbridge_js %} picks the build from RTBRIDGE_BACKEND; for another ` +
            `backend load {% static 'rtbridge/rtbridge.js' %} (every transport) or use the npm package.", ` +
            '{ code: "missing_transport" });',
          "};",
          ...Object.keys(module).map((exported) => `export const ${exported} = absent;`),
        ];
        return { contents: lines.join("\n"), resolveDir: TRANSPORTS, loader: "js" };
      });
    },
  };
}

/** Fail when a one-transport build still holds another transport (src/ changed how it imports them). */
function assertOnly(result, keep, factories, outfile) {
  const inputs = Object.keys(result.metafile.inputs).map((input) => basename(input));
  const others = [...factories.keys()].filter((file) => file !== keep && inputs.includes(file));
  if (others.length) {
    throw new Error(`${outfile} should hold only transports/${keep} but also holds ${others.join(", ")}`);
  }
}

/**
 * Build every browser file in memory; resolve with `{files: [{path, text}], backends}`, where
 * `path` is absolute and `backends` maps each alias to its transport's name.
 */
export async function buildAll() {
  const factories = await transportModules();
  const files = [];
  const manifest = { all: { module: `${PREFIX}/rtbridge.js`, classic: `${PREFIX}/rtbridge.iife.js` }, backends: {} };

  const emit = async (options, outfile, keep) => {
    const plugins = keep ? [oneTransport(keep, factories)] : [];
    const result = await build({ ...common, ...options, plugins, outfile: join(STATIC_DIR, outfile) });
    if (keep) assertOnly(result, keep, factories, outfile);
    files.push({ path: join(STATIC_DIR, outfile), text: result.outputFiles[0].text });
  };
  const what = (keep) => (keep ? `${keep.replace(/\.js$/, "")} transport only` : "every transport");
  const variants = [[null, "rtbridge"], ...[...factories.keys()].map((file) => [file, `rtbridge.${file.replace(/\.js$/, "")}`])];
  for (const [keep, stem] of variants) {
    await emit(
      { stdin: moduleEntry, format: "esm", banner: { js: `/* rtbridge client, ES module (${what(keep)}; sets window.RTBridge). ${BANNER} */` } },
      `${stem}.js`,
      keep,
    );
    await emit(
      {
        entryPoints: [join(SRC, "rtbridge.js")],
        format: "iife",
        globalName: "RTBridge",
        banner: { js: `/* rtbridge client, classic script (${what(keep)}; window.RTBridge). ${BANNER} */` },
      },
      `${stem}.iife.js`,
      keep,
    );
    if (keep) {
      for (const alias of factories.get(keep)) {
        manifest.backends[alias] = { module: `${PREFIX}/${stem}.js`, classic: `${PREFIX}/${stem}.iife.js` };
      }
    }
  }
  manifest.backends = Object.fromEntries(Object.entries(manifest.backends).sort());
  files.push({ path: join(STATIC_DIR, "bundles.json"), text: `${JSON.stringify(manifest, null, 2)}\n` });

  // The npm package's classic build (unpkg, "rtbridge/iife"), as test/classic-build.test.js checks it.
  const classic = await build({ ...iifeOptions, write: false });
  files.push({ path: iifeOptions.outfile, text: classic.outputFiles[0].text });
  return { files, manifest };
}
