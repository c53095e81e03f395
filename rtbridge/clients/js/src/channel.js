/**
 * Channels and subscriptions: who listens to what, and their ready/gap/resubscribed hooks.
 * @module rtbridge/channel
 */
import { isProtected } from "./channel-names.js";
import { RTBridgeError } from "./errors.js";
import { addHook } from "./hooks.js";

const noop = () => {};

/** One logical channel of a client; `client.channel(name)` returns the same object each time. */
export class Channel {
  /**
   * @param {import("./client.js").Client} client
   * @param {string} name
   */
  constructor(client, name) {
    this.client = client;
    this.name = name;
    /** True once the transport confirmed the subscription. */
    this.subscribed = false;
    this._subscriptions = new Set();
    this._listeners = new Map();
    this._whispers = new Map();
    this._hooks = { gap: new Set(), resubscribed: new Set(), error: new Set() };
    this._explicit = false;
    /** Resolves with the channel once subscribed; rejects with the server's error. */
    this.ready = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    this.ready.catch(noop); // a refusal is also reported through onError
  }

  /**
   * Call `fn(data, meta)` for each `event` on this channel; return the channel (chainable).
   * @param {string} event
   * @param {(data: any, meta: object) => void} fn
   */
  listen(event, fn) {
    if (typeof event !== "string" || !event) throw new TypeError(`listen() needs an event name, got ${JSON.stringify(event)}.`);
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    addHook(set, fn);
    return this;
  }

  /** Remove `fn` (or every listener) for `event`; return the channel. */
  stopListening(event, fn) {
    return unlisten(this._listeners, event, fn, this);
  }

  /**
   * Send a client event ("whisper") to the others on this private or presence channel; it does
   * not pass through Django. Throws at once on a public channel. Resolves once sent (the
   * self-hosted server acknowledges it); a failure also reaches `onError`.
   * @param {string} event 1-64 characters of `A-Z a-z 0-9 _ - .`
   * @param {any} [data] JSON, at most 4 KiB on the self-hosted server
   * @returns {Promise<void>}
   */
  whisper(event, data = {}) {
    const { client, name } = this;
    if (!isProtected(name)) {
      throw new RTBridgeError(
        `rtbridge: whisper() needs a private- or presence- channel; ${JSON.stringify(name)} is public, so anyone ` +
          "could read or forge its client events. Use rt.private(name) or rt.join(name).",
        { code: "not_protected", channel: name },
      );
    }
    if (typeof event !== "string" || !event) throw new TypeError(`whisper() needs an event name, got ${JSON.stringify(event)}.`);
    const { transport } = client;
    if (!transport.whisper) {
      throw new RTBridgeError(`rtbridge: the ${client.config.backend} transport cannot send client events.`, { code: "unsupported", channel: name });
    }
    const sent = this.ready.then(() => transport.whisper(name, event, data)).then(noop);
    sent.catch((error) => client._error(error, this));
    return sent;
  }

  /**
   * Call `fn(data, meta)` for each whisper `event` from the others (`meta.user_id` names the
   * sender where the transport knows it); return the channel.
   * @param {string} event
   * @param {(data: any, meta: object) => void} fn
   */
  listenForWhisper(event, fn) {
    let set = this._whispers.get(event);
    if (!set) this._whispers.set(event, (set = new Set()));
    addHook(set, fn);
    return this;
  }

  /** Remove `fn` (or every listener) for the whisper `event`; return the channel. */
  stopListeningForWhisper(event, fn) {
    return unlisten(this._whispers, event, fn, this);
  }

  /** Call `fn(channel, info)` when messages may have been missed here; return a remover. */
  onGap(fn) {
    return addHook(this._hooks.gap, fn);
  }

  /** Call `fn(channel)` when this channel is subscribed again after a reconnect; return a remover. */
  onResubscribed(fn) {
    return addHook(this._hooks.resubscribed, fn);
  }

  /** Call `fn(error)` for a refused subscription or a throwing handler here; return a remover. */
  onError(fn) {
    return addHook(this._hooks.error, fn);
  }

  /** Stop every listener and subscription of this channel and unsubscribe from the transport. */
  leave() {
    this._subscriptions.clear();
    this._listeners.clear();
    this._whispers.clear();
    this._explicit = false;
    this.client._release(this);
  }

  _add(handler) {
    const subscription = new Subscription(this, handler);
    this._subscriptions.add(subscription);
    return subscription;
  }

  _remove(subscription) {
    if (!this._subscriptions.delete(subscription)) return;
    if (!this._subscriptions.size && !this._listeners.size && !this._whispers.size && !this._explicit) this.client._release(this);
  }

  _live() {
    return this.client._channels.get(this.name) === this;
  }

  _subscribe(again) {
    const { client, name } = this;
    new Promise((resolve) => resolve(client.transport.subscribe(name))).then(
      () => {
        if (!this._live()) return;
        this.subscribed = true;
        this._resolve(this);
        if (again) this._emit("resubscribed", [name]);
      },
      (error) => {
        // A request cut by a lost connection is retried after the reconnect.
        if (error?.retry || !this._live()) return;
        client._channels.delete(name); // refused: never resubscribed
        this._reject(error);
        client._error(error, this);
      },
    );
  }

  _dispatch(event, data, meta) {
    const { client } = this;
    for (const subscription of [...this._subscriptions]) {
      if (this._subscriptions.has(subscription)) client._call(subscription._handler, [event, data, meta], this);
    }
    for (const fn of [...(this._listeners.get(event) ?? [])]) client._call(fn, [data, meta], this);
  }

  _whisper(event, data, meta) {
    for (const fn of [...(this._whispers.get(event) ?? [])]) this.client._call(fn, [data, meta], this);
  }

  _revoked(error) {
    // The server ended this subscription for good: never resubscribed, the app is told.
    this.subscribed = false;
    this.client._channels.delete(this.name);
    this.client._error(error, this);
  }

  _gap(info) {
    this._emit("gap", [this.name, info]);
  }

  _emit(hook, args) {
    for (const fn of [...this._hooks[hook], ...this.client._hooks[hook]]) this.client._call(fn, args, this);
  }
}

function unlisten(map, event, fn, channel) {
  const set = map.get(event);
  if (set && fn) set.delete(fn);
  if (set && (!fn || !set.size)) map.delete(event);
  return channel;
}

/** What `client.subscribe()` returns: one handler on one channel. */
export class Subscription {
  /**
   * @param {Channel} channel
   * @param {(event: string, data: any, meta: object) => void} handler
   */
  constructor(channel, handler) {
    /** The logical channel name, e.g. `todo.todoitem;todo_list_id=1`. */
    this.channel = channel.name;
    this._channel = channel;
    this._handler = handler;
    this._offs = [];
    /** Resolves with this subscription once the server acknowledged it; rejects with its error. */
    this.ready = channel.ready.then(() => this);
    this.ready.catch(noop);
  }

  /** Stop the handler; the channel is unsubscribed when nothing else listens to it. */
  unsubscribe() {
    this._offs.forEach((off) => off());
    this._offs = [];
    this._channel._remove(this);
  }

  /** Call `fn(channel, info)` when messages may have been missed (refetch then); return a remover. */
  onGap(fn) {
    return this._hook("onGap", fn);
  }

  /** Call `fn(channel)` when the channel is subscribed again after a reconnect; return a remover. */
  onResubscribed(fn) {
    return this._hook("onResubscribed", fn);
  }

  /** Call `fn(error)` for a refusal or a throwing handler on this channel; return a remover. */
  onError(fn) {
    return this._hook("onError", fn);
  }

  _hook(method, fn) {
    const off = this._channel[method](fn);
    this._offs.push(off);
    return off;
  }
}
