// Types of "rtbridge/transports/firebase": the Realtime Database over the modular SDK.
import type { FirebaseConfig, Transport, TransportHooks } from "../../index.js";

export function firebase(config: FirebaseConfig, hooks: TransportHooks): Transport;
/** The 8-character push-id prefix of time `ms`: every key pushed at `ms` or later sorts after it. */
export function pushIdPrefix(ms: number): string;
