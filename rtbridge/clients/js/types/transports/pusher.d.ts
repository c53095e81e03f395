// Types of "rtbridge/transports/pusher": Pusher and Soketi over pusher-js.
import type { PusherConfig, Transport, TransportHooks } from "../../index.js";

export function pusher(config: PusherConfig, hooks: TransportHooks): Transport;

/** Client events (whispers) a page may send per second: Pusher's limit; more are refused. */
export const WHISPERS_PER_SECOND: number;
