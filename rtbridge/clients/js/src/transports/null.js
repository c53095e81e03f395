/**
 * The null transport: connects to nothing. Used for the `locmem`, `dummy` and `console`
 * backends (which have no client side) and in application tests, where `deliver()` and
 * `gap()` play the server.
 * @module rtbridge/transports/null
 */

let warned = false;

/**
 * Create the transport (called by the client with its hooks).
 * @param {{backend: string, quiet?: boolean}} config
 * @param {object} hooks
 */
export function nullTransport(config, hooks) {
  if (config.backend !== "null" && !config.quiet && !warned) {
    warned = true;
    console.warn(
      `rtbridge: the ${JSON.stringify(config.backend)} backend has no client transport, so this page ` +
        "receives nothing (set RTBRIDGE_BACKEND to local, redis, pusher, pubnub or firebase for live updates).",
    );
  }
  let socketId = null;
  let stopped = false;
  /** Channels the client subscribed to, for assertions in tests. */
  const channels = new Set();
  return {
    channels,
    connect() {
      stopped = false;
      queueMicrotask(() => {
        if (stopped) return;
        socketId = "null.1";
        hooks.open(socketId);
      });
    },
    disconnect() {
      stopped = true;
      socketId = null;
      hooks.state("disconnected");
    },
    socketId: () => socketId,
    subscribe: async (channel) => void channels.add(channel),
    unsubscribe: async (channel) => void channels.delete(channel),
    /** Deliver `event` with `data` on `channel`, as if the server had sent it. */
    deliver(channel, event, data, meta = {}) {
      hooks.message(channel, event, data, { channel, ...meta });
    },
    /** Report a gap on `channel`, as if the server had sent one. */
    gap(channel, info = { reason: "server" }) {
      hooks.gap(channel, info);
    },
    /** Whispers sent by the page, as `[channel, event, data]`. */
    whispers: [],
    whisper(channel, event, data) {
      this.whispers.push([channel, event, data]);
    },
    /** Report presence (`here`/`sync` with a list, `join`/`leave` with one member) on `channel`. */
    presence(channel, action, members) {
      hooks.presence(channel, action, [].concat(members));
    },
    /** Deliver a whisper from another member. */
    deliverWhisper(channel, event, data, meta = {}) {
      hooks.whisper(channel, event, data, { channel, ...meta });
    },
  };
}
