/**
 * The Pusher transport over pusher-js (also for Pusher-compatible servers such as Soketi).
 * pusher-js keeps the connection and resubscribes by itself; this maps its states and
 * events onto the rtbridge client. Private and presence channels are authorized through the
 * client's auth request (pusher-js's `channelAuthorization.customHandler`), so the CSRF and
 * socket-id headers, the error codes and a router's ready auth answer work as on every
 * transport; presence is Pusher's own (per user); whispers are `client-` events. With history
 * on (`config.historyEndpoint`), an event's data is `{data, offset, epoch}`.
 * @module rtbridge/transports/pusher
 */
import { encodeForPusher } from "../encodings.js";
import { RTBridgeError } from "../errors.js";
import { findSdk } from "./sdk.js";

const memberFrom = (member) => ({ id: String(member.id), info: member.info ?? null });

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
  const channels = new Map(); // encoded name → {logical, channel, ready}
  const authErrors = new Map(); // encoded name → the auth request's error, for subscription_error
  const options = {
    cluster: config.cluster ?? "mt1",
    channelAuthorization: {
      customHandler({ socketId, channelName }, callback) {
        hooks.authorize(channels.get(channelName)?.logical ?? channelName, socketId).then(
          (answer) => callback(null, answer),
          (error) => {
            authErrors.set(channelName, error);
            callback(error, null);
          },
        );
      },
    },
    ...config.pusherOptions,
  };
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
      client.connection.bind("message", (message) => {
        const entry = channels.get(message?.channel);
        if (entry && message.event?.startsWith("client-")) {
          const meta = { channel: entry.logical, user_id: message.user_id == null ? undefined : String(message.user_id) };
          hooks.whisper(entry.logical, message.event.slice(7), message.data, meta);
        }
      });
    },
    disconnect() {
      client?.disconnect();
    },
    socketId: () => client?.connection.socket_id ?? null,
    subscribe(logical) {
      const name = encodeForPusher(logical);
      const known = channels.get(name);
      if (known) return known.channel.subscribed ? Promise.resolve() : known.ready;
      const entry = { logical };
      channels.set(name, entry); // before subscribe: pusher-js may ask for auth at once
      const channel = (entry.channel = client.subscribe(name));
      entry.ready = new Promise((resolve, reject) => {
        channel.bind("pusher:subscription_succeeded", (members) => {
          // Presence: pusher-js's Members (one entry per user, this user included).
          if (members?.each) {
            const list = [];
            members.each((member) => list.push(memberFrom(member)));
            hooks.presence(logical, "here", list);
          }
          resolve();
        });
        channel.bind("pusher:subscription_error", (error) => {
          const status = error?.status;
          const refused = authErrors.get(name);
          authErrors.delete(name);
          reject(
            refused ??
              new RTBridgeError(`rtbridge: Pusher refused ${logical}: ${status ?? ""} ${error?.error ?? error?.type ?? ""}`.trim(), {
                code: status || "subscription_error",
                reason: String(error?.error ?? error?.type ?? ""),
                channel: logical,
              }),
          );
        });
      });
      channel.bind("pusher:member_added", (member) => hooks.presence(logical, "join", [memberFrom(member)]));
      channel.bind("pusher:member_removed", (member) => hooks.presence(logical, "leave", [memberFrom(member)]));
      channel.bind_global((event, data) => {
        // pusher:* and pusher_internal:* are the protocol's own events, not the app's.
        // client- events (whispers) come through the connection's messages, which carry user_id.
        if (/^(pusher(_internal)?:|client-)/.test(event)) return;
        // With history on, Django sends {data, offset, epoch}: the position travels with the data.
        const positioned = config.historyEndpoint && typeof data?.offset === "number" && typeof data.epoch === "string";
        const meta = { channel: logical, ...(positioned && { offset: data.offset, epoch: data.epoch }) };
        hooks.message(logical, event, positioned ? data.data : data, meta);
      });
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
    whisper(logical, event, data) {
      // Pusher relays client events to the channel's other members (not back to the sender).
      const entry = channels.get(encodeForPusher(logical));
      if (entry?.channel.trigger(`client-${event}`, data)) return Promise.resolve();
      return Promise.reject(new RTBridgeError(`rtbridge: Pusher did not send the whisper on ${logical} (not subscribed).`, { code: "not_subscribed", channel: logical }));
    },
  };
}
