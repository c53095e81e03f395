// Small stand-ins for pusher-js, the PubNub SDK and Firebase's modular SDK (database and auth).

export class FakePusher {
  static last;
  constructor(key, options) {
    Object.assign(this, { key, options, channels: new Map(), unsubscribed: [], disconnected: false });
    this.stateHandlers = [];
    this.messageHandlers = [];
    this.connection = {
      socket_id: null,
      bind: (name, fn) => (name === "state_change" ? this.stateHandlers : name === "message" ? this.messageHandlers : []).push(fn),
    };
    FakePusher.last = this;
  }
  /** Deliver a raw event as pusher-js does: the connection's message first, then the channel's emit. */
  message({ event, channel, data, user_id }) {
    this.messageHandlers.forEach((fn) => fn({ event, channel, data, ...(user_id && { user_id }) }));
    this.channels.get(channel)?.emit(event, data);
  }
  setState(current, socketId) {
    if (socketId) this.connection.socket_id = socketId;
    this.stateHandlers.forEach((fn) => fn({ previous: "x", current }));
  }
  subscribe(name) {
    if (!this.channels.has(name)) {
      const handlers = new Map();
      const globals = [];
      const pusher = this;
      this.channels.set(name, {
        subscribed: false,
        triggered: [],
        trigger(event, data) {
          this.triggered.push([event, data]);
          return this.subscribed;
        },
        bind: (event, fn) => handlers.set(event, [...(handlers.get(event) ?? []), fn]),
        bind_global: (fn) => globals.push(fn),
        unbind_all: () => {
          handlers.clear();
          globals.length = 0;
        },
        emit(event, data) {
          (handlers.get(event) ?? []).forEach((fn) => fn(data));
          globals.forEach((fn) => fn(event, data));
        },
      });
    }
    const channel = this.channels.get(name);
    if (/^(private|presence)-/.test(name)) {
      // As pusher-js does: ask channelAuthorization at once; a refusal becomes subscription_error.
      channel.auth = new Promise((resolve) =>
        this.options.channelAuthorization.customHandler({ socketId: this.connection.socket_id, channelName: name }, (error, data) => {
          if (error) channel.emit("pusher:subscription_error", { type: "AuthError", error: error.message });
          resolve({ error, data });
        }),
      );
    }
    return channel;
  }
  unsubscribe(name) {
    this.unsubscribed.push(name);
  }
  disconnect() {
    this.disconnected = true;
  }
}

export class FakePubNub {
  static last;
  constructor(config) {
    Object.assign(this, { config, listeners: [], subscribed: [], unsubscribed: [], tokens: [], states: [], published: [] });
    this.subscribeCalls = [];
    /** hereNow answers: channel → [{uuid, state}] */
    this.occupants = {};
    FakePubNub.last = this;
  }
  setToken(token) {
    this.tokens.push(token);
  }
  async setState({ channels, state }) {
    this.states.push([channels, state]);
    return { state };
  }
  async hereNow({ channels }) {
    return { channels: Object.fromEntries(channels.map((name) => [name, { occupants: this.occupants[name] ?? [] }])) };
  }
  async publish(request) {
    this.published.push(request);
    return { timetoken: "1" };
  }
  presence(event) {
    this.listeners.forEach((listener) => listener.presence?.(event));
  }
  addListener(listener) {
    this.listeners.push(listener);
  }
  removeListener(listener) {
    this.listeners = this.listeners.filter((item) => item !== listener);
  }
  subscribe(request) {
    this.subscribeCalls.push(request);
    this.subscribed.push(...request.channels);
  }
  unsubscribe({ channels }) {
    this.unsubscribed.push(...channels);
  }
  unsubscribeAll() {}
  status(status) {
    this.listeners.forEach((listener) => listener.status(status));
  }
  message(message) {
    this.listeners.forEach((listener) => listener.message(message));
  }
}

export function fakeFirebase() {
  const calls = [];
  const values = new Map(); // path → callback
  const children = new Map(); // path → {callback, cancel, since}
  const sdk = {
    calls,
    initializeApp: (options, name) => (calls.push(["initializeApp", options, name]), { name }),
    getDatabase: (app, url) => (calls.push(["getDatabase", app.name, url]), { db: true }),
    connectDatabaseEmulator: (db, host, port) => calls.push(["emulator", host, port]),
    ref: (db, path) => ({ path }),
    orderByKey: () => ({ orderByKey: true }),
    startAfter: (value) => ({ startAfter: value }),
    query: (ref, ...constraints) => ({ path: ref.path, constraints }),
    onValue(ref, callback) {
      values.set(ref.path, callback);
      return () => values.delete(ref.path);
    },
    onChildAdded(query, callback, cancel) {
      children.set(query.path, { callback, cancel, since: query.constraints[1].startAfter });
      return () => children.delete(query.path);
    },
    goOffline: () => calls.push(["goOffline"]),
    // Writes, presence and auth.
    writes: [],
    serverTimestamp: () => ({ ".sv": "timestamp" }),
    set: async (ref, value) => sdk.writes.push(["set", ref.path, value]),
    push: async (ref, value) => sdk.writes.push(["push", ref.path, value]),
    remove: async (ref) => sdk.writes.push(["remove", ref.path]),
    onDisconnect: (ref) => ({
      remove: async () => sdk.writes.push(["onDisconnect.remove", ref.path]),
      cancel: async () => sdk.writes.push(["onDisconnect.cancel", ref.path]),
    }),
    getAuth: (app) => ({ auth: app?.name ?? null }),
    signInWithCustomToken: async (auth, token) => calls.push(["signIn", auth.auth, token]),
    setValue: (path, value) => values.get(path)?.({ val: () => value }),
    add: (path, key, value) => children.get(path)?.callback({ key, val: () => value }),
    children,
  };
  return sdk;
}
