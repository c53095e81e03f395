/**
 * rtbridge (the npm package's main entry): one subscribe API over the self-hosted rtbridge
 * server, Pusher, PubNub and Firebase. `connect()` reads the page's `{% rtbridge_config %}`;
 * it knows the self-hosted and null transports, and takes a hosted one as
 * `connect({transport})` (`import { pusher } from "rtbridge/transports/pusher"`), so a bundle
 * carries only the transports it uses. `rtbridge/all` knows every transport.
 * @module rtbridge
 */
import { makeConnect } from "./connect.js";
import { nullTransport } from "./transports/null.js";
import { selfhosted } from "./transports/selfhosted.js";

export { CONFIG_ELEMENT_ID, Client, readConfig } from "./connect.js";
export { backoffDelay } from "./backoff.js";
export { RTBridgeError } from "./errors.js";
export { fetchConfig } from "./config.js";
export { Channel, Subscription } from "./channel.js";
export { PresenceChannel } from "./presence.js";
export { LiveList, LiveObject, comparator } from "./live.js";
export { csrfToken } from "./http.js";
export {
  InvalidChannelName,
  filterChannel,
  isProtected,
  normalizeFilterKey,
  objectChannel,
  validateChannel,
} from "./channel-names.js";
export { encodeForFirebase, encodeForPubnub, encodeForPusher } from "./encodings.js";

/**
 * Connect to the active backend and return the client (see `makeConnect`). Self-hosted
 * (`local`, `redis`, `selfhosted`) and null (`locmem`, `dummy`, `console`, `null`) backends
 * work as they are; a hosted one needs its transport: `connect({..., transport: pusher})`.
 */
export const connect = /* @__PURE__ */ makeConnect(
  {
    local: selfhosted,
    redis: selfhosted,
    selfhosted,
    locmem: nullTransport,
    dummy: nullTransport,
    console: nullTransport,
    null: nullTransport,
  },
  'the main entry "rtbridge"',
);
