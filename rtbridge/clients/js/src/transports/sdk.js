/**
 * Shared by the hosted transports: find the vendor SDK (injected or global) and make socket ids.
 * @module rtbridge/transports/sdk
 */
import { RTBridgeError } from "../errors.js";

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

/**
 * Return the member `{id, info}` an auth answer describes: rtbridge's `channel_data`
 * (`{id, info}`, an object or its JSON) or Pusher's (`{user_id, user_info}` as JSON).
 * @param {any} answer the auth endpoint's answer
 * @param {string} fallbackId used when the answer names no member
 */
export function memberOf(answer, fallbackId) {
  let data = answer?.channel_data;
  if (typeof data === "string") {
    try {
      data = JSON.parse(data);
    } catch {
      data = null;
    }
  }
  const id = data?.id ?? data?.user_id ?? fallbackId;
  return { id: String(id), info: data?.info ?? data?.user_info ?? null };
}
