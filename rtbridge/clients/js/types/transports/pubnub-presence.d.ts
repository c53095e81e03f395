// Types of "rtbridge/transports/pubnub-presence": the PubNub transport's presence bookkeeping.
import type { TransportHooks } from "../../index.js";

export function pubnubPresence(options: {
  client: () => any;
  socketId: string;
  channels: Map<string, any>;
  hooks: TransportHooks;
}): { announce(entry: any): void; event(presenceEvent: any): void };
