/**
 * The Pusher adapter over pusher-js (also for Pusher-compatible servers such as Soketi).
 * pusher-js keeps the connection and resubscribes by itself; this maps its states and
 * events onto the rtbridge client.
 * @module rtbridge/transports/pusher
 */
import { RTBridgeError } from "../client.js";
import { encodeForPusher } from "../encodings.js";
import { findSdk } from "./sdk.js";

const STATES = { connecting: "connecting", unavailable: "reconnecting", failed: "disconnected", disconnected: "disconnected" };

/**
 * Create the transport (called by the client with its hooks).
 * @param {{key: string, cluster?: string, wsHost?: string, wsPort?: number, forceTLS?: boolean,
 *   Pusher?: Function, pusherOptions?: object}} config
 * @param {object} hooks
 */
export function pusher(config, hooks) {
  const Pusher = findSdk(
    config,
    "Pusher",
    'Load pusher-js (<script src="https://js.pusher.com/8.4/pusher.min.js">) before rtbridge, ' +
      'or pass it: import Pusher from "pusher-js"; connect({..., Pusher}).',
  );
  const options = { cluster: config.cluster ?? "mt1", ...config.pusherOptions };
  if (config.wsHost) {
    Object.assign(options, {
      wsHost: config.wsHost,
      wsPort: config.wsPort,
      wssPort: config.wsPort,
      forceTLS: config.forceTLS ?? false,
      enabledTransports: ["ws", "wss"],
      disableStats: true,
    });
  } else if (config.forceTLS !== undefined) {
    options.forceTLS = config.forceTLS;
  }
  let client = null;
  let everConnected = false;
  const channels = new Map(); // encoded name → {logical, channel, ready}

  function stateChange({ current }) {
    if (current === "connected") {
      everConnected = true;
      return hooks.open(client.connection.socket_id);
    }
    const state = STATES[current];
    if (state) hooks.state(state === "connecting" && everConnected ? "reconnecting" : state);
  }

  return {
    connect() {
      client = new Pusher(config.key, options);
      client.connection.bind("state_change", stateChange);
    },
    disconnect() {
      client?.disconnect();
    },
    socketId: () => client?.connection.socket_id ?? null,
    subscribe(logical) {
      const name = encodeForPusher(logical);
      const known = channels.get(name);
      if (known) return known.channel.subscribed ? Promise.resolve() : known.ready;
      const channel = client.subscribe(name);
      const entry = { logical, channel };
      entry.ready = new Promise((resolve, reject) => {
        channel.bind("pusher:subscription_succeeded", () => resolve());
        channel.bind("pusher:subscription_error", (error) => {
          const status = error?.status;
          reject(
            new RTBridgeError(`rtbridge: Pusher refused ${logical}: ${status ?? ""} ${error?.error ?? error?.type ?? ""}`.trim(), {
              code: status || "subscription_error",
              reason: String(error?.error ?? error?.type ?? ""),
              channel: logical,
            }),
          );
        });
      });
      channel.bind_global((event, data) => {
        // pusher:* and pusher_internal:* are the protocol's own events, not the app's.
        if (!/^pusher(_internal)?:/.test(event)) hooks.message(logical, event, data, { channel: logical });
      });
      channels.set(name, entry);
      return entry.ready;
    },
    unsubscribe(logical) {
      const name = encodeForPusher(logical);
      const entry = channels.get(name);
      if (!entry) return;
      channels.delete(name);
      // pusher-js may hand the same Channel object back to a later subscribe (while a
      // subscription is pending), so drop our bindings or they would fire twice.
      entry.channel.unbind_all?.();
      client.unsubscribe(name);
    },
  };
}
