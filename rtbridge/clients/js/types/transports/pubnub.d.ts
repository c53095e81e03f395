// Types of "rtbridge/transports/pubnub": PubNub over its JS SDK.
import type { PubNubConfig, Transport, TransportHooks } from "../../index.js";

export function pubnub(config: PubNubConfig, hooks: TransportHooks): Transport;
