// Check that every entry of package.json `exports` has types that declare exactly the values the
// module exports at run time (no undeclared export, no declared name that does not exist).
// Run from a project that has rtbridge installed (or from this package, by self-reference):
//   node check-exports.js <path to the typescript package>
// Prints one line per entry and exits 1 on the first mismatch.
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";

const require = createRequire(join(process.cwd(), "package.json"));
const ts = require(process.argv[2] ?? "typescript");
const root = dirname(require.resolve("rtbridge/package.json"));
const { exports } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

// Expand "./transports/*" into one entry per file it matches.
const entries = [];
for (const [subpath, target] of Object.entries(exports)) {
  if (subpath === "./package.json") continue;
  if (typeof target !== "object" || !target.types) throw new Error(`exports["${subpath}"] has no "types" condition`);
  if (!subpath.includes("*")) {
    entries.push({ subpath, types: target.types, code: target.default ?? target.import });
    continue;
  }
  const code = target.default;
  const dir = join(root, dirname(code));
  for (const file of readdirSync(dir).filter((name) => name.endsWith(".js"))) {
    const stem = file.slice(0, -3);
    entries.push({ subpath: subpath.replace("*", stem), types: target.types.replace("*", stem), code: code.replace("*", stem) });
  }
}

let failed = false;
for (const { subpath, types, code } of entries) {
  const typesFile = join(root, types);
  const program = ts.createProgram([typesFile], { strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: [] });
  const source = program.getSourceFile(typesFile);
  if (!source) {
    console.error(`${subpath}: ${types} is missing`);
    failed = true;
    continue;
  }
  const checker = program.getTypeChecker();
  const declared = checker
    .getExportsOfModule(checker.getSymbolAtLocation(source))
    .filter((symbol) => {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      return target.flags & ts.SymbolFlags.Value;
    })
    .map((symbol) => symbol.name)
    .sort();
  let runtime = [];
  if (subpath !== "./iife") {
    // A classic script exports nothing; every other entry is an ES module.
    runtime = Object.keys(await import(pathToFileURL(join(root, code)).href)).sort();
  }
  const undeclared = runtime.filter((name) => !declared.includes(name));
  const phantom = declared.filter((name) => !runtime.includes(name));
  if (undeclared.length || phantom.length) {
    failed = true;
    console.error(
      `${subpath}: ${types} does not match ${code}:` +
        (undeclared.length ? ` exported without a type: ${undeclared.join(", ")};` : "") +
        (phantom.length ? ` typed but not exported: ${phantom.join(", ")};` : ""),
    );
  } else {
    console.log(`${subpath}: ${declared.length} exports typed`);
  }
}
process.exit(failed ? 1 : 0);
