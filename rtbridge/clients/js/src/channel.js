/**
 * Channels and subscriptions: who listens to what, and their ready/gap/resubscribed hooks.
 * @module rtbridge/channel
 */
import { addHook } from "./client.js";

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
    const set = this._listeners.get(event);
    if (set && fn) set.delete(fn);
    if (set && (!fn || !set.size)) this._listeners.delete(event);
    return this;
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
    if (!this._subscriptions.size && !this._listeners.size && !this._explicit) this.client._release(this);
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

  _gap(info) {
    this._emit("gap", [this.name, info]);
  }

  _emit(hook, args) {
    for (const fn of [...this._hooks[hook], ...this.client._hooks[hook]]) this.client._call(fn, args, this);
  }
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
