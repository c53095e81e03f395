/**
 * rtbridge: one subscribe API over the self-hosted rtbridge server, Pusher, PubNub and
 * Firebase. `connect()` reads the page's `{% rtbridge_config %}` and picks the transport.
 * @module rtbridge
 */
import { Client as CoreClient } from "./client.js";
import { fetchConfig } from "./config.js";
import * as data from "./data.js";
import { RTBridgeError } from "./errors.js";
import { LiveList, LiveObject } from "./live.js";
import { PresenceChannel, join } from "./presence.js";
import { firebase } from "./transports/firebase.js";
import { nullTransport } from "./transports/null.js";
import { pubnub } from "./transports/pubnub.js";
import { pusher } from "./transports/pusher.js";
import { selfhosted } from "./transports/selfhosted.js";

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
 * The client with everything: the core (connection, channels, private channels) plus presence
 * (`join`), data calls (`getList`, `getSingle`, `create`, `update`, `delete`, `call`) and live
 * collections (`liveList`, `liveObject`). `connect()` returns one. The pieces are separate
 * modules, so a bundle of `rtbridge/core` alone stays small.
 */
export class Client extends CoreClient {
  /**
   * Return the presence channel `name` (`presence-` is added when missing): `here`,
   * `joining`, `leaving`, `members()`, `whisper`, `listenForWhisper`, `leave()`.
   * @param {string} name
   * @returns {PresenceChannel}
   */
  join(name) {
    return join(this, name);
  }

  /** Load one page of a router's list: resolves with `{data, page}`. */
  getList(route, filters, options) {
    return data.getList(this, route, filters, options);
  }

  /** Load one object, e.g. `getSingle("todo-item", {id: 5})`. */
  getSingle(route, args) {
    return data.getSingle(this, route, args);
  }

  /** Create an object; resolves with it as saved. */
  create(route, values) {
    return data.create(this, route, values);
  }

  /** Update an object (`{id, ...fields}`); resolves with `id` + the changed fields. */
  update(route, values) {
    return data.update(this, route, values);
  }

  /** Delete an object (`{id}`); resolves with `{id}`. */
  delete(route, args) {
    return data.remove(this, route, args);
  }

  /** Call any verb (custom ones included); resolves with the whole reply body (`{data, ...}`). */
  call(route, verb, args) {
    return data.call(this, route, verb, args);
  }

  /** SwampDragon's name: `callRouter(verb, route, args)` (promise, no callbacks). */
  callRouter(verb, route, args) {
    return data.call(this, route, verb, args);
  }

  /** SwampDragon's name: `getPagedList(route, filters, page)`. */
  getPagedList(route, filters, page) {
    return data.getList(this, route, filters, { page });
  }

  /**
   * Keep a router's filtered list current: `liveList("todo-item", {todo_list_id: 1}, {order: "id"})`.
   * @returns {LiveList}
   */
  liveList(route, filters, options) {
    return new LiveList(this, route, filters, options);
  }

  /**
   * Keep one object current: `liveObject("todo-item", {id: 5})`.
   * @returns {LiveObject}
   */
  liveObject(route, lookup, options) {
    return new LiveObject(this, route, lookup, options);
  }

  _channelClass(name) {
    return name.startsWith("presence-") ? PresenceChannel : super._channelClass(name);
  }
}

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
 * page's `{% rtbridge_config %}` is read and `config` is merged over it. With
 * `config.configUrl` (pages Django does not render), the config is fetched from Django's
 * `/rtbridge/config` first and a promise of the client is returned (see `fetchConfig`).
 * @param {object} [config]
 * @returns {Client|Promise<Client>}
 */
export function connect(config = {}) {
  if (config.configUrl) {
    const { configUrl, ...options } = config;
    return fetchConfig(configUrl, options).then((fetched) => connect({ ...fetched, ...options }));
  }
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
