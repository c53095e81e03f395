/**
 * The PubNub adapter over the pubnub JS SDK. The SDK keeps the subscribe loop and reconnects
 * by itself; messages are `{event, data}` objects (plus `exclude`, the sender's socket id,
 * when the publisher set one) on the `encodeForPubnub(channel)` channel.
 * @module rtbridge/transports/pubnub
 */
import { RTBridgeError } from "../client.js";
import { encodeForPubnub } from "../encodings.js";
import { findSdk, randomId } from "./sdk.js";

const DOWN = [
  "PNNetworkDownCategory",
  "PNNetworkIssuesCategory",
  "PNDisconnectedUnexpectedlyCategory",
  "PNConnectionErrorCategory",
  "PNTimeoutCategory",
];
const UP = ["PNConnectedCategory", "PNReconnectedCategory", "PNSubscriptionChangedCategory", "PNNetworkUpCategory"];

/**
 * Create the transport (called by the client with its hooks).
 * @param {{subscribeKey: string, origin?: string, ssl?: boolean, userId?: string,
 *   PubNub?: Function, pubnubOptions?: object}} config
 * @param {object} hooks
 */
export function pubnub(config, hooks) {
  const PubNub = findSdk(
    config,
    "PubNub",
    'Load the PubNub SDK (<script src="https://cdn.pubnub.com/sdk/javascript/pubnub.10.2.0.min.js">) before ' +
      'rtbridge, or pass it: import PubNub from "pubnub"; connect({..., PubNub}).',
  );
  const socketId = config.userId ?? randomId();
  const channels = new Map(); // encoded name → {logical, resolve, reject, ready, done}
  let client = null;
  let online = false;

  function settle(names, error) {
    for (const name of names ?? []) {
      const entry = channels.get(name);
      if (!entry || entry.done) continue;
      entry.done = true;
      if (error) {
        channels.delete(name);
        entry.reject(new RTBridgeError(`rtbridge: PubNub refused ${entry.logical}: ${error}`, { code: 403, reason: error, channel: entry.logical }));
      } else entry.resolve();
    }
  }

  const listener = {
    message({ channel, message, timetoken }) {
      const entry = channels.get(channel);
      if (!entry || !message || typeof message !== "object") return;
      if (message.exclude && message.exclude === socketId) return;
      hooks.message(entry.logical, message.event, message.data, { channel: entry.logical, timetoken });
    },
    status(status) {
      const { category } = status;
      if (category === "PNAccessDeniedCategory" || status.error === "PNAccessDeniedCategory") {
        // The event engine reports a refused handshake without naming channels: fail the waiting ones.
        const names = status.affectedChannels ?? status.errorData?.payload?.channels ?? [...channels.keys()];
        return settle(names, status.errorData?.message ?? "access denied (Access Manager)");
      }
      if (UP.includes(category)) {
        settle(status.subscribedChannels ?? status.affectedChannels);
        if (!online || category === "PNReconnectedCategory") {
          online = true;
          hooks.open(socketId);
        }
      } else if (DOWN.includes(category)) {
        online = false;
        hooks.state("reconnecting");
      }
    },
  };

  return {
    connect() {
      client = new PubNub({
        subscribeKey: config.subscribeKey,
        userId: socketId,
        ...(config.origin && { origin: config.origin }),
        ...(config.ssl !== undefined && { ssl: config.ssl }),
        ...config.pubnubOptions,
      });
      client.addListener(listener);
      // PubNub has no connection before the first subscribe; report ready so channels subscribe.
      queueMicrotask(() => {
        online = true;
        hooks.open(socketId);
      });
    },
    disconnect() {
      client?.removeListener(listener);
      client?.unsubscribeAll();
      client?.stop?.();
      channels.clear();
    },
    socketId: () => socketId,
    subscribe(logical) {
      const name = encodeForPubnub(logical);
      const known = channels.get(name);
      if (known) return known.ready;
      const entry = { logical, done: false };
      entry.ready = new Promise((resolve, reject) => Object.assign(entry, { resolve, reject }));
      channels.set(name, entry);
      client.subscribe({ channels: [name] });
      return entry.ready;
    },
    unsubscribe(logical) {
      const name = encodeForPubnub(logical);
      if (channels.delete(name)) client.unsubscribe({ channels: [name] });
    },
  };
}
