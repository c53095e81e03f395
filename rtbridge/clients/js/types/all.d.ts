// Types of "rtbridge/all" (src/rtbridge.js): the main entry's API with every transport:
// `connect()` knows every backend alias, and `transports` maps each alias to its transport.
import type { TransportFactory } from "../index.js";

export * from "../index.js";

/** The transport of each `RTBRIDGE_BACKEND` alias; `connect()` reads it at each call (add your own). */
export const transports: Record<string, TransportFactory>;
