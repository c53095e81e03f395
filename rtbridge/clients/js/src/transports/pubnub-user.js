/**
 * The PubNub user id of a page. PubNub bills per unique user id a month and counts presence
 * occupants per user id, so the id stays the same for a device across page loads (kept in
 * `localStorage`) but differs between tabs open at once: `<device id>-<slot>`, where the slot
 * is the lowest one no other open tab of this origin holds (a Web Lock, released when the tab
 * goes). Tabs still tell their own messages apart by their socket id (`exclude`), a random
 * id per page load.
 * @module rtbridge/transports/pubnub-user
 */
import { randomId } from "./sdk.js";

const KEY = "rtbridge:pubnub-device";
const SLOTS = 32;

/**
 * Resolve to the page's PubNub user id: `config.userId` when given, else as described above.
 * Without `localStorage` (or when it refuses, e.g. in private mode) a random id per page load;
 * without Web Locks the device id itself, shared by the device's tabs.
 * @param {{userId?: string}} config
 * @param {Storage} [storage]
 * @param {LockManager} [locks]
 * @returns {Promise<string>}
 */
export async function pubnubUserId(config, storage = globalThis.localStorage, locks = globalThis.navigator?.locks) {
  if (config.userId) return config.userId;
  let device = null;
  try {
    device = storage?.getItem(KEY) ?? null;
    if (!device && storage) {
      device = `rtb-${randomId()}`;
      storage.setItem(KEY, device);
    }
  } catch {
    device = null;
  }
  if (!device) return randomId();
  if (typeof locks?.request !== "function") return device;
  for (let slot = 0; slot < SLOTS; slot++) {
    const held = await new Promise((resolve) => {
      locks.request(`${KEY}:${device}:${slot}`, { ifAvailable: true }, (lock) => {
        resolve(Boolean(lock));
        // Hold the slot until the page goes away (the browser then releases the lock).
        return lock ? new Promise(() => {}) : undefined;
      });
    });
    if (held) return `${device}-${slot}`;
  }
  return `${device}-${randomId()}`;
}
