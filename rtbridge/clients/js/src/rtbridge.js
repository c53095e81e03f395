/**
 * rtbridge: one subscribe API over the self-hosted rtbridge server, Pusher, PubNub and
 * Firebase. `connect()` reads the page's `{% rtbridge_config %}` and picks the transport.
 * @module rtbridge
 */
import { Client, RTBridgeError } from "./client.js";
import { firebase } from "./transports/firebase.js";
import { nullTransport } from "./transports/null.js";
import { pubnub } from "./transports/pubnub.js";
import { pusher } from "./transports/pusher.js";
import { selfhosted } from "./transports/selfhosted.js";

export { Client, RTBridgeError, backoffDelay } from "./client.js";
export { Channel, Subscription } from "./channel.js";
export {
  InvalidChannelName,
  filterChannel,
  isProtected,
  normalizeFilterKey,
  objectChannel,
  validateChannel,
} from "./channel-names.js";
export { encodeForFirebase, encodeForPubnub, encodeForPusher } from "./encodings.js";

/** The transport for each `RTBRIDGE_BACKEND` alias (`client_config().backend`). */
export const transports = {
  local: selfhosted,
  redis: selfhosted,
  selfhosted,
  pusher,
  pubnub,
  firebase,
  locmem: nullTransport,
  dummy: nullTransport,
  console: nullTransport,
  null: nullTransport,
};

/** The id of the `<script type="application/json">` that `{% rtbridge_config %}` renders. */
export const CONFIG_ELEMENT_ID = "rtbridge-config";

/**
 * Read the config `{% rtbridge_config %}` put on the page.
 * @param {string} [elementId]
 * @returns {object}
 */
export function readConfig(elementId = CONFIG_ELEMENT_ID) {
  const element = globalThis.document?.getElementById(elementId);
  if (!element) {
    throw new RTBridgeError(
      `rtbridge: no #${elementId} element on this page; add {% load rtbridge %}{% rtbridge_config %} ` +
        'to the template, or pass the config: connect({backend: "local", url: "ws://..."}).',
    );
  }
  return JSON.parse(element.textContent);
}

/**
 * Connect to the active backend and return the client.
 *
 * `config` is the backend's `client_config()` plus client options (`reconnect`, and the
 * vendor SDK: `Pusher`, `PubNub`, `firebase`, `WebSocket`). Without `config.backend`, the
 * page's `{% rtbridge_config %}` is read and `config` is merged over it.
 * @param {object} [config]
 * @returns {Client}
 */
export function connect(config = {}) {
  const merged = config.backend ? config : { ...readConfig(config.configElementId), ...config };
  const factory = Object.hasOwn(transports, merged.backend) ? transports[merged.backend] : null;
  if (!factory) {
    throw new RTBridgeError(
      `rtbridge: unknown backend ${JSON.stringify(merged.backend)}; known backends are ` +
        `${Object.keys(transports).join(", ")}. Check RTBRIDGE_BACKEND or the config passed to connect().`,
      { code: "unknown_backend" },
    );
  }
  return new Client(factory, merged);
}
