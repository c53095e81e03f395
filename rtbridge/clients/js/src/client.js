/**
 * The client core: connection state, the channel registry, resubscribe after reconnect.
 *
 * It knows nothing about any vendor: a transport (see `transports/`) owns the connection and
 * calls back through the hooks below, like laravel-echo's connectors. Channels and
 * subscriptions live in `channel.js`.
 * @module rtbridge/client
 */
import { backoffDelay } from "./backoff.js";
import { filterChannel, validateChannel } from "./channel-names.js";
import { Channel } from "./channel.js";
import { RTBridgeError } from "./errors.js";
import { addHook } from "./hooks.js";
import { post } from "./http.js";

// `rtbridge/core` has always exported these; they now live in leaf modules.
export { backoffDelay } from "./backoff.js";
export { RTBridgeError } from "./errors.js";
export { addHook } from "./hooks.js";

/** Return `name` with `prefix`, added when missing (`private("orders")` is `private-orders`). */
export function prefixed(prefix, name) {
  if (typeof name !== "string" || name.startsWith(prefix)) return name;
  if (/^(private|presence)-/.test(name)) {
    throw new RTBridgeError(`rtbridge: ${JSON.stringify(name)} is not a ${prefix} channel; use ${prefix === "private-" ? "join()" : "private()"}.`, { code: "invalid_channel" });
  }
  return prefix + name;
}

/** One connection to one transport, shared by every channel of a page. */
export class Client {
  /**
   * @param {(config: object, hooks: object) => object} transportFactory
   * @param {object} config the backend's `client_config()` plus client options
   */
  constructor(transportFactory, config) {
    this.config = config;
    /** @type {"connecting"|"connected"|"reconnecting"|"disconnected"} */
    this.state = "connecting";
    this._channels = new Map();
    this._hooks = { state: new Set(), ready: new Set(), error: new Set(), gap: new Set(), resubscribed: new Set() };
    this._everConnected = false;
    this._presetAuth = new Map(); // channel → {socketId, answer}: an auth answer already in hand
    const on = (channel) => this._channels.get(channel);
    this.transport = transportFactory(config, {
      open: () => this._opened(),
      state: (state) => this._setState(state),
      message: (channel, event, data, meta) => on(channel)?._dispatch(event, data, meta),
      gap: (channel, info) => on(channel)?._gap(info),
      error: (error) => this._error(error, on(error.channel)),
      authorize: (channel, socketId) => this._authorize(channel, socketId),
      presence: (channel, action, members) => on(channel)?._presence?.(action, members),
      whisper: (channel, event, data, meta) => on(channel)?._whisper(event, data, meta),
      revoked: (channel, error) => on(channel)?._revoked(error),
    });
    this.transport.connect();
  }

  /** Return the id of this connection (pass it as `exclude` when publishing), or null. */
  socketId() {
    return this.transport.socketId() ?? null;
  }

  /**
   * Return headers for your HTTP calls to Django: `X-RTBridge-Socket-Id` lets
   * `rtbridge.middleware.SocketIdMiddleware` keep this tab from getting its own change back.
   * @returns {Record<string, string>}
   */
  headers() {
    const id = this.socketId();
    return id ? { "X-RTBridge-Socket-Id": id } : {};
  }

  /**
   * Call `fn` with the current state now and on every change; return a function that stops it.
   * @param {(state: string) => void} fn
   */
  onState(fn) {
    const off = addHook(this._hooks.state, fn);
    this._call(fn, [this.state]);
    return off;
  }

  /**
   * Call `fn` once the client is first connected (at once if it already is); return a promise too.
   * @param {(client: Client) => void} [fn]
   * @returns {Promise<Client>}
   */
  ready(fn) {
    const promise = this._everConnected
      ? Promise.resolve(this)
      : new Promise((resolve) => this._hooks.ready.add(resolve));
    if (fn) promise.then(() => this._call(fn, [this]));
    return promise;
  }

  /**
   * Subscribe `handler(event, data, meta)` to every event on a channel.
   *
   * With `filters`, `name` is a model label and the channel is the filter channel, e.g.
   * `subscribe("todo.todoitem", {todo_list_id: 1}, fn)` listens on `todo.todoitem;todo_list_id=1`.
   * Throws `InvalidChannelName` at once for a bad name or filter.
   * @returns {import("./channel.js").Subscription}
   */
  subscribe(name, filters, handler) {
    if (typeof filters === "function") [filters, handler] = [undefined, filters];
    const channelName = filters === undefined ? validateChannel(name) : filterChannel(name, filters);
    if (typeof handler !== "function") {
      throw new TypeError(`subscribe(${JSON.stringify(channelName)}) needs a handler function as its last argument.`);
    }
    return this._channel(channelName)._add(handler);
  }

  /**
   * Return the channel `name` (subscribed until `leave`), for `listen(event, fn)`.
   * @param {string} name
   * @returns {Channel}
   */
  channel(name) {
    const channel = this._channel(validateChannel(name));
    channel._explicit = true;
    return channel;
  }

  /**
   * Return the private channel `name` (`private-` is added when missing), subscribed until
   * `leave`. Django's auth endpoint is asked first; a refusal rejects `ready` and reaches
   * `onError` with the endpoint's code (e.g. `forbidden`, `login_required`).
   * @param {string} name
   * @returns {Channel}
   */
  private(name) {
    return this.channel(prefixed("private-", name));
  }

  /** Drop the channel `name` with all its listeners and subscriptions. */
  leave(name) {
    this._channels.get(name)?.leave();
  }

  /** Call `fn(error)` for every handler, server or transport error; return a function that stops it. */
  onError(fn) {
    return addHook(this._hooks.error, fn);
  }

  /** Call `fn(channel, info)` when messages may have been missed on a channel (refetch then). */
  onGap(fn) {
    return addHook(this._hooks.gap, fn);
  }

  /** Call `fn(channel)` each time a channel is subscribed again after a reconnect (refetch then). */
  onResubscribed(fn) {
    return addHook(this._hooks.resubscribed, fn);
  }

  /** Close the connection for good (no reconnect). Subscriptions stay registered but silent. */
  disconnect() {
    this.transport.disconnect();
    this._setState("disconnected");
  }

  // Internals, used by Channel and the transport hooks. ------------------------------------

  _channel(name, Kind) {
    let channel = this._channels.get(name);
    if (!channel) {
      channel = Kind ? new Kind(this, name) : this._newChannel(name);
      this._channels.set(name, channel);
      if (this.state === "connected") channel._subscribe(false);
    }
    return channel;
  }

  _newChannel(name) {
    return new Channel(this, name);
  }

  /**
   * Return the auth endpoint's answer for `channel` (what transports call through
   * `hooks.authorize`): an answer already in hand for this socket (from a router's `subscribe`
   * reply) is used once; otherwise `POST {authEndpoint}` with `{socket_id, channel_name}`.
   */
  _authorize(channel, socketId = this.socketId(), attempt = 0) {
    const preset = this._presetAuth.get(channel);
    this._presetAuth.delete(channel);
    if (preset && preset.socketId === socketId) return Promise.resolve(preset.answer);
    const url = this.config.authEndpoint ?? "/rtbridge/auth";
    return post(this, url, { socket_id: socketId, channel_name: channel }, `authorizing ${channel}`).catch((error) => {
      error.channel = channel;
      // Django unreachable or failing is not a refusal: try again (reconnect backoff), 3 times.
      if ((error.status === 0 || error.status >= 500) && attempt < 3 && this.state !== "disconnected") {
        const delay = backoffDelay(attempt, this.config.reconnect || {}) + 100;
        return new Promise((resolve) => setTimeout(resolve, delay)).then(() => this._authorize(channel, socketId, attempt + 1));
      }
      throw error;
    });
  }

  /** Keep an auth answer for `channel` (bound to this socket id) for the next subscribe. */
  _preauthorize(channel, answer, socketId = this.socketId()) {
    if (answer && socketId) this._presetAuth.set(channel, { socketId, answer });
  }

  _release(channel) {
    if (this._channels.get(channel.name) !== channel) return;
    this._channels.delete(channel.name);
    if (this.state === "connected") {
      Promise.resolve(this.transport.unsubscribe(channel.name)).catch(() => {});
    }
  }

  _opened() {
    const again = this._everConnected;
    this._everConnected = true;
    this._setState("connected");
    for (const channel of this._channels.values()) channel._subscribe(again);
    for (const resolve of this._hooks.ready) resolve(this);
    this._hooks.ready.clear();
  }

  _setState(state) {
    if (state === this.state) return;
    this.state = state;
    this._emit("state", [state]);
  }

  _emit(hook, args) {
    for (const fn of [...this._hooks[hook]]) this._call(fn, args);
  }

  /** Run an application callback; an exception is reported, never allowed to break the socket. */
  _call(fn, args, channel) {
    try {
      fn(...args);
    } catch (cause) {
      const error = new RTBridgeError(`rtbridge: a handler threw: ${cause?.message ?? cause}`, {
        code: "handler_error",
        channel: channel?.name,
        cause,
      });
      console.error(error.message, cause);
      // An onError hook that throws is only logged, so a broken hook cannot loop.
      if (!(args[0] instanceof RTBridgeError)) this._error(error, channel);
    }
  }

  _error(error, channel) {
    const hooks = [...(channel ? channel._hooks.error : []), ...this._hooks.error];
    if (!hooks.length && error.code !== "handler_error") console.error(error);
    for (const fn of hooks) this._call(fn, [error], channel);
  }
}
