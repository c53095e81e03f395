// The esbuild options of the classic-script bundle, shared by `npm run build` and the test
// that checks the committed classic/ file is up to date.
export const iifeOptions = {
  entryPoints: [new URL("../src/rtbridge.js", import.meta.url).pathname],
  outfile: new URL("../classic/rtbridge.iife.js", import.meta.url).pathname,
  bundle: true,
  format: "iife",
  globalName: "RTBridge",
  target: ["es2020"],
  minify: true,
  sourcemap: false,
  legalComments: "none",
  banner: { js: "/* rtbridge client (classic script: window.RTBridge). Built from src/ by `npm run build`; do not edit. */" },
};
