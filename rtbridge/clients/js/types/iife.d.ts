// Types of "rtbridge/iife" (classic/rtbridge.iife.js): a classic script that exports nothing
// and sets window.RTBridge to the main entry's API.
import type * as RTBridgeModule from "../index.js";

declare global {
  var RTBridge: typeof RTBridgeModule;
}

export {};
