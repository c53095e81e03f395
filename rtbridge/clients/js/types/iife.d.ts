// Types of "rtbridge/iife" (classic/rtbridge.iife.js): a classic script that exports nothing
// and sets window.RTBridge to "rtbridge/all"'s API (every transport).
import type * as RTBridgeModule from "./all.js";

declare global {
  var RTBridge: typeof RTBridgeModule;
}

export {};
