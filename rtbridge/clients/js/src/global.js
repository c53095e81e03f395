/**
 * Load the client and expose it as `window.RTBridge` (what `{% rtbridge_js %}` loads), so
 * classic code can use it once modules have run; module code imports `rtbridge.js` directly
 * and gets the same instance.
 * @module rtbridge/global
 */
import * as RTBridge from "./rtbridge.js";

globalThis.RTBridge ??= RTBridge;
