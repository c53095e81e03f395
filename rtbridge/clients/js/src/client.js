/**
 * The client core: connection state, the channel registry, resubscribe after reconnect.
 *
 * It knows nothing about any vendor: a transport (see `transports/`) owns the connection and
 * calls back through the hooks below. Channels and subscriptions live in `channel.js`; the
 * client and its channels talk only through a `ChannelLink` and the channel `port` (see there).
 * @module rtbridge/client
 */
import { backoffDelay } from "./backoff.js";
import { filterChannel, validateChannel } from "./channel-names.js";
import { Channel, port, prefixed } from "./channel.js";
import { RTBridgeError } from "./errors.js";
import { addHook } from "./hooks.js";
import { post } from "./http.js";

// `rtbridge/core` has always exported these; they live in the modules that use them.
export { backoffDelay } from "./backoff.js";
export { prefixed } from "./channel.js";
export { RTBridgeError } from "./errors.js";
export { addHook } from "./hooks.js";

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
    // An event for a channel this client does not hold (any more) is dropped.
    const to = (handle) => (name, ...args) => {
      const channel = this._channels.get(name);
      if (channel) handle(channel, ...args);
    };
    const transport = (this.transport = transportFactory(config, {
      open: () => this._opened(),
      state: (state) => this._setState(state),
      message: to(port.message),
      gap: to((channel, info) => this._emit("gap", [channel.name, info], channel)),
      error: (error) => this._error(error, this._channels.get(error.channel)),
      authorize: (channel, socketId) => this._authorize(channel, socketId),
      presence: to(port.presence),
      whisper: to(port.whisper),
      revoked: to((channel, error) => {
        // The server ended this subscription for good: never resubscribed, the app is told.
        port.revoked(channel);
        this._forget(channel);
        this._error(error, channel);
      }),
    }));
    /** What every channel of this client may ask of it (`ChannelLink` in channel.js). */
    this._link = {
      whisper: (channel, event, data) => {
        const { name } = channel;
        if (!transport.whisper) {
          throw new RTBridgeError(`rtbridge: the ${config.backend} transport cannot send client events.`, { code: "unsupported", channel: name });
        }
        const sent = channel.ready.then(() => transport.whisper(name, event, data)).then(() => {});
        sent.catch((error) => this._error(error, channel));
        return sent;
      },
      release: (channel) => {
        if (this._forget(channel) && this.state === "connected") {
          Promise.resolve(transport.unsubscribe(channel.name)).catch(() => {});
        }
      },
      call: (fn, args, channel) => this._call(fn, args, channel),
    };
    transport.connect();
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
    return port.add(this._channel(channelName), handler);
  }

  /**
   * Return the channel `name` (subscribed until `leave`), for `listen(event, fn)`.
   * @param {string} name
   * @returns {Channel}
   */
  channel(name) {
    const channel = this._channel(validateChannel(name));
    port.keep(channel);
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

  // Internals, used by the transport hooks, the channel link and the feature modules. ----

  /** Return the channel `name`, made (as a `Kind`) and subscribed when there is none yet. */
  _channel(name, Kind = this._channelClass(name)) {
    let channel = this._channels.get(name);
    if (!channel) {
      channel = new Kind(this._link, name);
      this._channels.set(name, channel);
      if (this.state === "connected") this._subscribe(channel, false);
    }
    return channel;
  }

  /** Return the class of a new channel `name` (the full client makes presence channels). */
  _channelClass() {
    return Channel;
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

  /** Subscribe `channel` on the transport (`again`: after a reconnect) and tell it the outcome. */
  _subscribe(channel, again) {
    const { name } = channel;
    new Promise((resolve) => resolve(this.transport.subscribe(name))).then(
      () => {
        if (this._channels.get(name) !== channel) return; // left meanwhile
        port.subscribed(channel);
        if (again) this._emit("resubscribed", [name], channel);
      },
      (error) => {
        // A request cut by a lost connection is retried after the reconnect.
        if (error?.retry || !this._forget(channel)) return; // refused: never resubscribed
        port.refused(channel, error);
        this._error(error, channel);
      },
    );
  }

  /** Drop `channel` from the registry; return whether it was there. */
  _forget(channel) {
    return this._channels.get(channel.name) === channel && this._channels.delete(channel.name);
  }

  /** Keep an auth answer for `channel` (bound to this socket id) for the next subscribe. */
  _preauthorize(channel, answer, socketId = this.socketId()) {
    if (answer && socketId) this._presetAuth.set(channel, { socketId, answer });
  }

  _opened() {
    const again = this._everConnected;
    this._everConnected = true;
    this._setState("connected");
    for (const channel of this._channels.values()) this._subscribe(channel, again);
    for (const resolve of this._hooks.ready) resolve(this);
    this._hooks.ready.clear();
  }

  _setState(state) {
    if (state === this.state) return;
    this.state = state;
    this._emit("state", [state]);
  }

  /** Call the hooks `hook` of `channel` (when given), then the client's; return how many there were. */
  _emit(hook, args, channel) {
    const hooks = [...(channel ? port.hooks(channel, hook) : []), ...this._hooks[hook]];
    for (const fn of hooks) this._call(fn, args, channel);
    return hooks.length;
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
    if (!this._emit("error", [error], channel) && error.code !== "handler_error") console.error(error);
  }
}
