/**
 * Presence channels: who is on a channel, per user (not per tab), on every transport.
 *
 * Transports report members through `hooks.presence(channel, action, entries)`: `here` (the
 * full list, once per (re)subscribe), `sync` (the full list again; differences become joins
 * and leaves), `join` and `leave`. An entry is `{id, info, key?}`; `key` names one connection
 * of the member (a tab) where the transport sees connections, not users (PubNub, Firebase).
 * @module rtbridge/presence
 */
import { validateChannel } from "./channel-names.js";
import { Channel, port, prefixed } from "./channel.js";
import { RTBridgeError } from "./errors.js";
import { addHook } from "./hooks.js";

/** A presence channel: `here`, `joining`, `leaving`, `members()`, plus everything a `Channel` has. */
export class PresenceChannel extends Channel {
  /**
   * @param {import("./channel.js").ChannelLink} link
   * @param {string} name
   */
  constructor(link, name) {
    super(link, name);
    this._members = new Map(); // member id → {member: {id, info}, keys: Set<connection key>}
    this._known = false; // the member list of the current subscription has arrived
    Object.assign(this._hooks, { here: new Set(), joining: new Set(), leaving: new Set() });
  }

  /**
   * Call `fn(members)` with the full member list (this user included) once per (re)subscribe;
   * at once when the list is already known. Returns the channel.
   * @param {(members: {id: string, info: any}[]) => void} fn
   */
  here(fn) {
    addHook(this._hooks.here, fn);
    if (this._known) this._link.call(fn, [this.members()], this);
    return this;
  }

  /** Call `fn(member)` when a user arrives (their first tab); return the channel. */
  joining(fn) {
    addHook(this._hooks.joining, fn);
    return this;
  }

  /** Call `fn(member)` when a user is gone (their last tab); return the channel. */
  leaving(fn) {
    addHook(this._hooks.leaving, fn);
    return this;
  }

  /** Return the members now on the channel: `[{id, info}]`, one per user. */
  members() {
    return [...this._members.values()].map((entry) => entry.member);
  }

  leave() {
    this._members.clear();
    this._known = false;
    super.leave();
  }

  _presence(action, entries = []) {
    const before = this._members;
    if (action === "here" || action === "sync") {
      this._members = new Map();
      for (const entry of entries) this._addMember(entry);
      if (action === "here" || !this._known) {
        this._known = true;
        return this._tell("here", this.members());
      }
      for (const [id, { member }] of before) if (!this._members.has(id)) this._tell("leaving", member);
      for (const [id, { member }] of this._members) if (!before.has(id)) this._tell("joining", member);
      return;
    }
    for (const entry of entries) {
      const id = String(entry.id);
      const known = this._members.get(id);
      if (action === "join") {
        this._addMember(entry);
        if (!known) this._tell("joining", this._members.get(id).member);
      } else if (action === "leave" && known) {
        // Without a connection key the transport speaks per user already: the user is gone.
        known.keys.delete(entry.key ?? "");
        if (entry.key === undefined || !known.keys.size) {
          this._members.delete(id);
          this._tell("leaving", known.member);
        }
      }
    }
  }

  _addMember({ id, info = null, key = "" }) {
    id = String(id);
    const known = this._members.get(id);
    if (known) {
      known.keys.add(key);
      known.member = { id, info };
    } else {
      this._members.set(id, { member: { id, info }, keys: new Set([key]) });
    }
  }

  _tell(hook, value) {
    for (const fn of [...this._hooks[hook]]) this._link.call(fn, [value], this);
  }
}

/**
 * Return the presence channel `name` of `client` (`presence-` is added when missing),
 * subscribed until `leave()`. The full client's `rt.join(name)` calls this.
 * @param {import("./client.js").Client} client
 * @param {string} name
 * @returns {PresenceChannel}
 */
export function join(client, name) {
  name = validateChannel(prefixed("presence-", name));
  const channel = client._channel(name, PresenceChannel);
  if (!(channel instanceof PresenceChannel)) {
    throw new RTBridgeError(
      `rtbridge: ${name} is already in use as a plain channel (subscribe() or channel() came first); call join() before them.`,
      { code: "invalid_channel", channel: name },
    );
  }
  port.keep(channel);
  return channel;
}
