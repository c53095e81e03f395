/**
 * Channels and subscriptions: who listens to what, and their ready/gap/resubscribed/recovered hooks.
 *
 * A channel and its client never touch each other's members: the client gives each channel a
 * `ChannelLink` (what a channel may ask of its client), and drives a channel only through
 * `port` (what a client may do to a channel).
 * @module rtbridge/channel
 */
import { isProtected } from "./channel-names.js";
import { RTBridgeError } from "./errors.js";
import { addHook } from "./hooks.js";

/**
 * What a channel may ask of its client (`client.js` makes one per client).
 * @typedef {object} ChannelLink
 * @property {(channel: Channel, event: string, data: any) => Promise<void>} whisper send a client
 *   event once `channel` is ready (a failure also reaches onError); throws at once when the
 *   transport cannot
 * @property {(channel: Channel) => void} release nothing listens any more: drop `channel` and
 *   unsubscribe it on the transport
 * @property {(fn: Function, args: any[], channel?: Channel) => void} call run an application
 *   callback; a throw is reported, never raised
 */

const noop = () => {};

/** Return `name` with `prefix`, added when missing (`private("orders")` is `private-orders`). */
export function prefixed(prefix, name) {
  if (typeof name !== "string" || name.startsWith(prefix)) return name;
  if (isProtected(name)) {
    throw new RTBridgeError(`rtbridge: ${JSON.stringify(name)} is not a ${prefix} channel; use ${prefix === "private-" ? "join()" : "private()"}.`, { code: "invalid_channel" });
  }
  return prefix + name;
}

/**
 * What a client may do to its channels: hand on the transport's answers and events, and
 * register handlers. The client reaches a channel through these alone.
 */
export const port = {
  /** The transport confirmed the subscription. */
  subscribed(channel) {
    channel.subscribed = true;
    channel._resolve(channel);
  },

  /** The transport refused the subscription: `ready` rejects. */
  refused(channel, error) {
    channel._reject(error);
  },

  /** The server ended the subscription for good. */
  revoked(channel) {
    channel.subscribed = false;
  },

  /** Deliver a message to the subscriptions and the listeners of `event`. */
  message(channel, event, data, meta) {
    const { _link: link, _subscriptions: subscriptions } = channel;
    for (const subscription of [...subscriptions]) {
      if (subscriptions.has(subscription)) link.call(subscription._handler, [event, data, meta], channel);
    }
    for (const fn of [...(channel._listeners.get(event) ?? [])]) link.call(fn, [data, meta], channel);
  },

  /** Deliver a whisper from another member to the listeners of `event`. */
  whisper(channel, event, data, meta) {
    for (const fn of [...(channel._whispers.get(event) ?? [])]) channel._link.call(fn, [data, meta], channel);
  },

  /** Report presence (`here`, `sync`, `join`, `leave`); only a `PresenceChannel` keeps members. */
  presence(channel, action, entries) {
    channel._presence(action, entries);
  },

  /** Return the channel's own hooks `hook` (`gap`, `resubscribed`, `recovered`, `error`; the client's come after). */
  hooks: (channel, hook) => channel._hooks[hook],

  /** Add `handler` for every event (`client.subscribe`); return its subscription. */
  add(channel, handler) {
    const subscription = new Subscription(channel, handler);
    channel._subscriptions.add(subscription);
    return subscription;
  },

  /** Keep the channel until `leave()`, listeners or not (`client.channel`, `join`). */
  keep(channel) {
    channel._explicit = true;
  },
};

/** One logical channel of a client; `client.channel(name)` returns the same object each time. */
export class Channel {
  /**
   * @param {ChannelLink} link
   * @param {string} name
   */
  constructor(link, name) {
    this._link = link;
    this.name = name;
    /** True once the transport confirmed the subscription. */
    this.subscribed = false;
    this._subscriptions = new Set();
    this._listeners = new Map();
    this._whispers = new Map();
    this._hooks = { gap: new Set(), resubscribed: new Set(), recovered: new Set(), error: new Set() };
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
    const { name } = this;
    if (!isProtected(name)) {
      throw new RTBridgeError(
        `rtbridge: whisper() needs a private- or presence- channel; ${JSON.stringify(name)} is public, so anyone ` +
          "could read or forge its client events. Use rt.private(name) or rt.join(name).",
        { code: "not_protected", channel: name },
      );
    }
    if (typeof event !== "string" || !event) throw new TypeError(`whisper() needs an event name, got ${JSON.stringify(event)}.`);
    return this._link.whisper(this, event, data);
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

  /** Call `fn(channel, info)` when messages here may have been lost (`info.recovered` false); return a remover. */
  onGap(fn) {
    return addHook(this._hooks.gap, fn);
  }

  /** Call `fn(channel, {recovered})` when this channel is subscribed again after a reconnect; return a remover. */
  onResubscribed(fn) {
    return addHook(this._hooks.resubscribed, fn);
  }

  /** Call `fn(channel, info)` when messages missed here were recovered from history; return a remover. */
  onRecovered(fn) {
    return addHook(this._hooks.recovered, fn);
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
    this._link.release(this);
  }

  _remove(subscription) {
    if (!this._subscriptions.delete(subscription)) return;
    if (!this._subscriptions.size && !this._listeners.size && !this._whispers.size && !this._explicit) this._link.release(this);
  }

  _presence() {} // a plain channel has no members; PresenceChannel keeps them
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

  /** Call `fn(channel, info)` when messages may have been lost (refetch then); return a remover. */
  onGap(fn) {
    return this._hook("onGap", fn);
  }

  /** Call `fn(channel, {recovered})` when the channel is subscribed again after a reconnect; return a remover. */
  onResubscribed(fn) {
    return this._hook("onResubscribed", fn);
  }

  /** Call `fn(channel, info)` when missed messages were recovered from history; return a remover. */
  onRecovered(fn) {
    return this._hook("onRecovered", fn);
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
