// Types of "rtbridge/presence" (src/presence.js).
import type { PresenceChannel } from "../index.js";
import type { Client } from "./core.js";

export { PresenceChannel } from "../index.js";

/** Return the presence channel `name` of `client` (`presence-` added when missing). */
export function join<Info = any>(client: Client, name: string): PresenceChannel<Info>;
