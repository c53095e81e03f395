/**
 * Shared by the hosted adapters: find the vendor SDK (injected or global) and make socket ids.
 * @module rtbridge/transports/sdk
 */
import { RTBridgeError } from "../client.js";

/**
 * Return the SDK passed as `config[key]`, else `globalThis[key]`, else throw saying how to supply it.
 * @param {object} config
 * @param {string} key e.g. "Pusher"
 * @param {string} howTo the two ways to supply it, for the error message
 */
export function findSdk(config, key, howTo) {
  const sdk = config[key] ?? globalThis[key];
  if (!sdk) {
    throw new RTBridgeError(
      `rtbridge: the ${config.backend} backend needs the ${key} SDK, which was neither passed nor found ` +
        `as globalThis.${key}. ${howTo}`,
      { code: "missing_sdk" },
    );
  }
  return sdk;
}

/** Return a random id for this connection (the hosted services give none the server knows). */
export const randomId = () =>
  globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}`;
