/**
 * Live collections: a router's filtered list (or one object) loaded and kept current.
 *
 * Race-free start: the router's `subscribe` verb (`include_data: false`) names the channel
 * (and authorizes it for private models), the client subscribes and buffers events, loads the
 * list, then applies what it buffered. Events applied: `created`/`entered` (insert or
 * replace), `updated` (merge the changed fields), `deleted`/`left` (remove), `refetch` (reload
 * that object). Missed events are recovered by the client from history; when they cannot be
 * (`onGap`: `recovered: false`), everything is loaded again the same way.
 * @module rtbridge/live
 */
import { normalizeFilterKey } from "./channel-names.js";
import { call, getList, getSingle, onWrite } from "./data.js";
import { addHook } from "./hooks.js";

const noop = () => {};
const keyOf = (row) => String(row.id);

/**
 * Return a comparator for `order`: a field name (`"id"`, `"-created"`), a function, or none.
 * @param {string|((a: any, b: any) => number)|undefined} order
 */
export function comparator(order) {
  if (typeof order === "function" || order == null) return order ?? null;
  const descending = order.startsWith("-");
  const field = descending ? order.slice(1) : order;
  return (a, b) => {
    const [x, y] = [a[field], b[field]];
    const result = x === y ? 0 : x == null ? -1 : y == null ? 1 : x < y ? -1 : 1;
    return (descending ? -result : result) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  };
}

/** A router's list kept current: `rows()`, `onChange(fn)`, `ready`, `refetch()`, `close()`. */
export class LiveList {
  /**
   * @param {import("./client.js").Client} client
   * @param {string} route
   * @param {object} [filters]
   * @param {{order?: string|Function, pageSize?: number, channel?: string}} [options] `channel`:
   *   follow this channel instead of asking the router's `subscribe` verb for it
   */
  constructor(client, route, filters = {}, options = {}) {
    Object.assign(this, { client, route, filters: { ...filters }, options });
    /** The channel followed (known once `ready`). */
    this.channel = null;
    /** True once the first load has been applied. */
    this.loaded = false;
    this._compare = comparator(options.order);
    this._rows = new Map(); // String(id) → row, in load order
    this._buffer = []; // events received while (re)loading, applied after the load
    this._load = 0; // number of the newest load; an older one that finishes late is dropped
    this._hooks = { change: new Set(), error: new Set() };
    this._offs = [onWrite(client, (...args) => this._own(...args))];
    this.closed = false;
    /** Resolves with this collection once loaded; rejects with the router's error. */
    this.ready = this._start().then(() => this);
    this.ready.catch((error) => this._fail(error));
  }

  /** Return the rows now, sorted by `order` (load order and then arrival without one). */
  rows() {
    const rows = [...this._rows.values()];
    return this._compare ? rows.sort(this._compare) : rows;
  }

  /** Call `fn(rows)` after every change (and at once when loaded); return a remover. */
  onChange(fn) {
    const off = addHook(this._hooks.change, fn);
    if (this.loaded) this.client._call(fn, [this.rows()]);
    return off;
  }

  /** Call `fn(error)` when loading or reloading fails; return a remover. */
  onError(fn) {
    return addHook(this._hooks.error, fn);
  }

  /** Load everything again (events meanwhile are buffered and applied after). */
  refetch() {
    if (this.closed) return Promise.resolve(this);
    const load = ++this._load;
    this._buffer = [];
    const settle = (rows) => {
      if (load !== this._load || this.closed) return false;
      if (rows) this._rows = new Map(rows.map((row) => [keyOf(row), row]));
      const buffered = this._buffer;
      this._buffer = null;
      for (const [event, data] of buffered) this._apply(event, data);
      return true;
    };
    return this._fetch().then(
      (rows) => {
        if (!settle(rows)) return this;
        this.loaded = true;
        this._changed();
        return this;
      },
      (error) => {
        // Keep what we had, with what arrived meanwhile; the next reconnect or gap retries.
        // Never loaded: nothing to show yet, so events stay buffered for the next load.
        if (this.loaded && settle(null)) this._changed();
        throw error;
      },
    );
  }

  /** Stop following the channel; the rows stay as they are. */
  close() {
    this.closed = true;
    this._offs.forEach((off) => off());
    this._subscription?.unsubscribe();
  }

  // Internals -----------------------------------------------------------------------------

  async _start() {
    const { client } = this;
    await client.ready();
    let channel = this.options.channel;
    if (!channel) {
      const socketId = client.socketId();
      const reply = await call(client, this.route, "subscribe", { ...this.filters, include_data: false });
      channel = reply.channels[0];
      // A private model's reply carries the auth answer: subscribing needs no second request.
      client._preauthorize(channel, reply.auth?.[channel], socketId);
    }
    this.channel = channel;
    if (this.closed) return;
    const subscription = (this._subscription = client.subscribe(channel, (event, data) => this._event(event, data)));
    // Only what is lost for good needs a reload; a first load that failed is tried again too.
    subscription.onGap(() => this._reload());
    subscription.onResubscribed((channel, info) => info.recovered && !this.loaded && this._reload());
    await subscription.ready;
    await this.refetch();
  }

  _fetch() {
    const { client, route, filters, options } = this;
    const rows = [];
    const page = (number) =>
      getList(client, route, filters, { page: number, pageSize: options.pageSize }).then(({ data, page: info }) => {
        rows.push(...data);
        return info?.has_next ? page(number + 1) : rows;
      });
    return page(1);
  }

  _reload() {
    this.refetch().catch((error) => this._fail(error));
  }

  _fail(error) {
    if (this.closed) return;
    const hooks = [...this._hooks.error];
    if (!hooks.length) this.client._error(error);
    for (const fn of hooks) this.client._call(fn, [error]);
  }

  _event(event, data) {
    if (this._buffer) return void this._buffer.push([event, data]);
    if (this._apply(event, data)) this._changed();
  }

  /** Apply one event; return whether the rows changed. */
  _apply(event, data) {
    if (data?.id === undefined) return false;
    const key = keyOf(data);
    const row = this._rows.get(key);
    if (event === "created" || event === "entered") {
      this._rows.set(key, data);
    } else if (event === "updated") {
      if (!row) return this._refetchOne(data.id), false; // not loaded yet on our side: load it
      this._rows.set(key, { ...row, ...data });
    } else if (event === "patched") {
      // This client's own update (from the reply): merged where we have the row.
      if (!row) return false;
      this._rows.set(key, { ...row, ...data });
    } else if (event === "deleted" || event === "left") {
      return this._rows.delete(key);
    } else if (event === "refetch") {
      // The object was too big to publish; `data.event` says what happened to it.
      if (data.event === "deleted" || data.event === "left") return this._rows.delete(key);
      this._refetchOne(data.id);
      return false;
    } else {
      return false;
    }
    return true;
  }

  _refetchOne(id) {
    const load = this._load;
    getSingle(this.client, this.route, { id }).then(
      (row) => load === this._load && this._event("created", row),
      (error) => {
        if (load !== this._load) return;
        if (error.status === 404) this._event("deleted", { id });
        else this._fail(error);
      },
    );
  }

  /** A create/update/delete made by this client: the server will not send it back to us. */
  _own(route, verb, args, data) {
    if (route !== this.route || this.closed) return;
    const id = data?.id ?? args.id;
    if (id === undefined) return;
    // Through _event: while (re)loading it is buffered and applied after the load, like the rest.
    if (verb === "delete") return this._event("deleted", { id });
    const known = this._rows.get(String(id));
    const inside = this._matches({ ...known, ...data });
    if (inside === false) return this._event("left", { id });
    if (inside === undefined) {
      // A filter field the reply does not show: a new row is asked for; an update of a row
      // that is not ours (and changed no filter field) is merged only where we have it.
      return verb === "create" ? this._reload() : this._event("patched", data);
    }
    if (verb === "create" || known) return this._event(verb === "create" ? "created" : "patched", data);
    this._refetchOne(id); // moved into this list: the reply has only the changed fields
  }

  /** Say whether `row` matches the filters: true, false, or undefined when a field is missing. */
  _matches(row) {
    for (const [key, value] of Object.entries(this.filters)) {
      const field = normalizeFilterKey(key);
      if (!(field in row)) return undefined;
      if (String(row[field]) !== String(value)) return false;
    }
    return true;
  }

  _changed() {
    const rows = this.rows();
    for (const fn of [...this._hooks.change]) this.client._call(fn, [rows]);
  }
}

/** One object kept current: `get()`, `onChange(fn(object|null))`, `ready`, `refetch()`, `close()`. */
export class LiveObject extends LiveList {
  /**
   * @param {import("./client.js").Client} client
   * @param {string} route
   * @param {{id: string|number}} lookup
   * @param {{channel?: string}} [options] `channel`: follow this channel instead of asking
   *   the router's `subscribe` verb (with `{id}`) for the object's channel
   */
  constructor(client, route, lookup, options = {}) {
    super(client, route, { id: lookup.id }, options);
    this.id = lookup.id;
  }

  /** Return the object, or null when it is deleted or not loaded. */
  get() {
    return this.rows()[0] ?? null;
  }

  onChange(fn) {
    return super.onChange((rows) => fn(rows[0] ?? null));
  }

  _fetch() {
    return getSingle(this.client, this.route, { id: this.id }).then(
      (row) => [row],
      (error) => {
        if (error.status === 404) return [];
        throw error;
      },
    );
  }

  _matches(row) {
    return keyOf(row) === String(this.id);
  }

  _apply(event, data) {
    return data && String(data.id) === String(this.id) && super._apply(event, data);
  }
}
