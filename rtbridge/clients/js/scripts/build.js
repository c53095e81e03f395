// Build classic/rtbridge.iife.js: the classic-script bundle that sets window.RTBridge.
// Run with `npm run build`; the output is committed so Django users need no Node.
import { build } from "esbuild";

import { iifeOptions } from "./build-options.js";

await build(iifeOptions);
console.log("wrote classic/rtbridge.iife.js");
