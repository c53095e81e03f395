/**
 * The full client (`Client`: the core plus presence, data calls and live collections), the
 * page config, and `makeConnect(table)`: a `connect()` over a table of transports. Imports no
 * transport, so each entry (`rtbridge`, `rtbridge/all`) bundles only the transports its table
 * names, plus any the app passes as `connect({transport})`.
 * @module rtbridge/connect
 */
import { Client as CoreClient } from "./client.js";
import { fetchConfig } from "./config.js";
import * as data from "./data.js";
import { RTBridgeError } from "./errors.js";
import { LiveList, LiveObject } from "./live.js";
import { PresenceChannel, join } from "./presence.js";

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

/** The hosted backends an entry may leave out: each one's transport is `<name>` of "rtbridge/transports/<name>". */
const HOSTED = ["pusher", "pubnub", "firebase"];

/**
 * Return the transport factory for `config`: `config.transport` when given, else
 * `table[config.backend]`; throw a `RTBridgeError` naming the fix when neither has one.
 * @param {Record<string, Function>} table
 * @param {{backend?: string, transport?: Function}} config
 * @param {string} entry the module whose `connect()` this is, for the message
 */
function transportFor(table, config, entry) {
  if (config.transport !== undefined) {
    if (typeof config.transport !== "function") {
      throw new RTBridgeError(
        `rtbridge: connect({transport}) takes a transport factory (e.g. import { pusher } from ` +
          `"rtbridge/transports/pusher"), not ${config.transport === null ? "null" : typeof config.transport}.`,
        { code: "invalid_transport" },
      );
    }
    return config.transport;
  }
  if (Object.hasOwn(table, config.backend)) return table[config.backend];
  const hosted = config.backend;
  if (HOSTED.includes(hosted)) {
    throw new RTBridgeError(
      `rtbridge: the ${hosted} backend needs its transport, which ${entry} leaves out so that ` +
        "bundles carry only the transports they use. Pass it: " +
        `import { ${hosted} } from "rtbridge/transports/${hosted}"; connect({..., transport: ${hosted}}); ` +
        'or import { connect } from "rtbridge/all" (every transport).',
      { code: "missing_transport" },
    );
  }
  throw new RTBridgeError(
    `rtbridge: unknown backend ${JSON.stringify(config.backend)}; known backends are ` +
      `${[...new Set([...Object.keys(table), ...HOSTED])].join(", ")}. Check RTBRIDGE_BACKEND or the ` +
      "config passed to connect() (a transport of your own: connect({..., transport: factory})).",
    { code: "unknown_backend" },
  );
}

/**
 * Return a `connect(config)` over `table` (backend alias → transport factory; read at each
 * call, so aliases added later count).
 *
 * `connect(config)` connects to the active backend and returns the client. `config` is the
 * backend's `client_config()` plus client options (`reconnect`, the vendor SDK: `Pusher`,
 * `PubNub`, `firebase`, `WebSocket`, and `transport`: a transport factory, used instead of
 * the table). Without `config.backend`, the page's `{% rtbridge_config %}` is read and
 * `config` is merged over it. With `config.configUrl` (pages Django does not render), the
 * config is fetched from Django's `/rtbridge/config` first and a promise of the client is
 * returned (see `fetchConfig`).
 * @param {Record<string, Function>} table
 * @param {string} [entry] the module whose `connect()` this is, named in errors
 * @returns {(config?: object) => Client|Promise<Client>}
 */
export function makeConnect(table, entry = "this entry") {
  return function connect(config = {}) {
    if (config.configUrl) {
      const { configUrl, ...options } = config;
      return fetchConfig(configUrl, options).then((fetched) => connect({ ...fetched, ...options }));
    }
    const merged = config.backend ? config : { ...readConfig(config.configElementId), ...config };
    const { transport, ...clientConfig } = merged;
    return new Client(transportFor(table, merged, entry), clientConfig);
  };
}
