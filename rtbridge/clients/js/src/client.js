/**
 * The client core: connection state, the channel registry, resume after reconnect.
 *
 * It knows nothing about any vendor: a transport (see `transports/`) owns the connection and
 * calls back through the hooks below. Channels and subscriptions live in `channel.js`; the
 * client and its channels talk only through a `ChannelLink` and the channel `port` (see there).
 * Each channel's messages pass through a `Stream` (`continuity.js`): in offset order, once,
 * holes filled from history — by subscribing again with `since` (self-hosted) or from Django's
 * history endpoint (`config.historyEndpoint`, the hosted transports).
 * @module rtbridge/client
 */
import { backoffDelay } from "./backoff.js";
import { filterChannel, validateChannel } from "./channel-names.js";
import { Channel, port, prefixed } from "./channel.js";
import { Stream } from "./continuity.js";
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
    this._hooks = { state: new Set(), ready: new Set(), error: new Set(), gap: new Set(), resubscribed: new Set(), recovered: new Set() };
    this._everConnected = false;
    this._presetAuth = new Map(); // channel → {socketId, answer}: an auth answer already in hand
    this._streams = new Map(); // channel name → its Stream
    this._ids = new Set(); // every socket id this client had: history marks our own messages with one
    // An event for a channel this client does not hold (any more) is dropped.
    const to = (handle) => (name, ...args) => {
      const channel = this._channels.get(name);
      if (channel) handle(channel, ...args);
    };
    const stream = (handle) => to((channel, ...args) => handle(this._streams.get(channel.name), ...args));
    const transport = (this.transport = transportFactory(config, {
      open: (socketId) => this._opened(socketId),
      state: (state) => this._setState(state),
      message: stream((into, event, data, meta = {}) => into.receive({ offset: meta.offset, epoch: meta.epoch, event, data, meta })),
      // A message this socket was excluded from (its own change): only the position moves on.
      skip: stream((into, { offset, epoch }) => typeof offset === "number" && into.receive({ offset, epoch, skip: true })),
      // The server could not prove continuity: the position becomes its top (protocol 2 `gap`).
      gap: stream((into, info = {}) => into.lost("server", typeof info.offset === "number" ? info : null)),
      // The transport may have dropped messages (e.g. PubNub's per-response cap): fill from history.
      missed: stream((into) => into.fill("missed")),
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

  /**
   * Call `fn(channel, info)` when messages on a channel may have been lost for good
   * (`info.recovered` is false; refetch then): a resume or fill that history could not answer.
   */
  onGap(fn) {
    return addHook(this._hooks.gap, fn);
  }

  /**
   * Call `fn(channel, {recovered})` each time a channel is subscribed again after a reconnect;
   * `recovered` says whether every message missed meanwhile was (or is being) delivered.
   */
  onResubscribed(fn) {
    return addHook(this._hooks.resubscribed, fn);
  }

  /** Call `fn(channel, info)` when missed messages were recovered from history (a resume or a hole). */
  onRecovered(fn) {
    return addHook(this._hooks.recovered, fn);
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
      const hosted = !!this.config.historyEndpoint;
      this._streams.set(
        name,
        new Stream({
          deliver: ({ event, data, meta, offset, epoch }) => port.message(channel, event, data, meta ?? { channel: name, offset, epoch }),
          fill: (since) => (hosted ? this._history(name, since) : this._resubscribe(name, since)),
          gap: (info) => this._emit("gap", [name, info], channel),
          recovered: (info) => this._emit("recovered", [name, info], channel),
          // Vendors may deliver out of order: wait that long for a missing offset.
          holdTimeout: this.config.holdTimeout ?? (hosted ? 500 : 0),
        }),
      );
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
  _authorize(channel, socketId = this.socketId()) {
    const preset = this._presetAuth.get(channel);
    this._presetAuth.delete(channel);
    if (preset && preset.socketId === socketId) return Promise.resolve(preset.answer);
    const body = { socket_id: socketId, channel_name: channel };
    return this._post(this.config.authEndpoint ?? "/rtbridge/auth", body, `authorizing ${channel}`, channel);
  }

  /**
   * Return the history endpoint's answer for `channel` after `since` (hosted transports):
   * `{recovered, offset, epoch, messages}`, each message as the `Stream` takes it. Without a
   * position (`since` null) the answer is only the channel's top, to start from.
   */
  _history(channel, since) {
    const body = { channel, since, socket_id: this.socketId() };
    return this._post(this.config.historyEndpoint, body, `reading the history of ${channel}`, channel).then((answer) => ({
      ...answer,
      messages: (answer.messages ?? []).map(({ offset, event, data, exclude }) => ({ offset, event, data, skip: exclude != null && this._ids.has(exclude) })),
    }));
  }

  /** POST to Django; unreachable or failing (not refusing), try again 3 times (reconnect backoff). */
  _post(url, body, what, channel, attempt = 0) {
    return post(this, url, body, what).catch((error) => {
      error.channel = channel;
      if ((error.status === 0 || error.status >= 500) && attempt < 3 && this.state !== "disconnected") {
        const delay = backoffDelay(attempt, this.config.reconnect || {}) + 100;
        return new Promise((resolve) => setTimeout(resolve, delay)).then(() => this._post(url, body, what, channel, attempt + 1));
      }
      throw error;
    });
  }

  /**
   * Subscribe `channel` on the transport (`again`: after a reconnect, resuming from its
   * position) and tell it the outcome. Self-hosted, the subscribe carries `since` and its ack
   * answers; hosted, the history endpoint answers — asked before the first subscribe, so no
   * message falls between the position and the subscription, and after each reconnect.
   */
  _subscribe(channel, again) {
    const { name } = channel;
    const stream = this._streams.get(name);
    const reason = again ? "reconnect" : "start";
    const subscribe = (since) => this._resubscribe(name, since);
    const done = !this.config.historyEndpoint
      ? stream.fill(reason, subscribe)
      : again
        ? subscribe().then(() => stream.fill(reason))
        : stream.fill(reason).then((recovered) => subscribe().then(() => recovered));
    done.then(
      (recovered) => {
        if (this._channels.get(name) !== channel) return; // left meanwhile
        port.subscribed(channel);
        if (again && recovered !== undefined) this._emit("resubscribed", [name, { recovered }], channel);
      },
      (error) => {
        // A request cut by a lost connection is retried after the reconnect.
        if (error?.retry || !this._forget(channel)) return; // refused: never resubscribed
        port.refused(channel, error);
        this._error(error, channel);
      },
    );
  }

  /** Subscribe (again) on the transport; `since`: ask it to replay what came after (self-hosted). */
  _resubscribe(name, since) {
    return new Promise((resolve) => resolve(this.transport.subscribe(name, since ?? undefined)));
  }

  /** Drop `channel` from the registry; return whether it was there. */
  _forget(channel) {
    const { name } = channel;
    if (this._channels.get(name) !== channel) return false;
    this._streams.get(name).close();
    this._streams.delete(name);
    return this._channels.delete(name);
  }

  /** Keep an auth answer for `channel` (bound to this socket id) for the next subscribe. */
  _preauthorize(channel, answer, socketId = this.socketId()) {
    if (answer && socketId) this._presetAuth.set(channel, { socketId, answer });
  }

  _opened(socketId) {
    if (socketId) this._ids.add(socketId);
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
