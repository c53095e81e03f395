// Types of "rtbridge/transports/pusher": Pusher and Soketi over pusher-js.
import type { PusherConfig, Transport, TransportHooks } from "../../index.js";

export function pusher(config: PusherConfig, hooks: TransportHooks): Transport;
