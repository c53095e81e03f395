/**
 * The Pusher transport over pusher-js (also for Pusher-compatible servers such as Soketi).
 * pusher-js keeps the connection and resubscribes by itself; this maps its states and
 * events onto the rtbridge client. Private and presence channels are authorized through the
 * client's auth request (pusher-js's `channelAuthorization.customHandler`), so the CSRF and
 * socket-id headers, the error codes and a router's ready auth answer work as on every
 * transport; presence is Pusher's own (per user); whispers are `client-` events, at most 10 a
 * second per connection (Pusher's rate). With `signIn` each connection signs in as its Django
 * user (`pusher.signin()`, answered by the auth endpoint), so the server can end a user's
 * connections (`rtbridge.revoke`); after that the page connects again and Django decides anew.
 * With history on (`config.historyEndpoint`), an event's data is `{data, offset, epoch}`.
 * @module rtbridge/transports/pusher
 */
import { encodeForPusher } from "../encodings.js";
import { RTBridgeError } from "../errors.js";
import { findSdk } from "./sdk.js";

const memberFrom = (member) => ({ id: String(member.id), info: member.info ?? null });

/** Pusher relays at most 10 client events per second per connection (Pusher docs, Client events). */
export const WHISPERS_PER_SECOND = 10;
/** The public name the sign-in request names: the auth endpoint answers it with the user's sign-in. */
const SIGN_IN_CHANNEL = "rtbridge-user";
const RESERVED = /^(private-|presence-)?cache-|^private-encrypted-/;

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
    'Load pusher-js (<script src="https://js.pusher.com/8.6.0/pusher.min.js">) before rtbridge, ' +
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
    ...(config.signIn && {
      userAuthentication: {
        customHandler({ socketId }, callback) {
          hooks.authorize(SIGN_IN_CHANNEL, socketId).then(
            (answer) => (answer?.auth ? callback(null, answer) : callback(new Error("anonymous: no sign-in"), null)),
            (error) => callback(error, null),
          );
        },
      },
    }),
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
  let terminated = false; // the server ended this user's connections (revoke)
  const whispered = []; // times of the last whispers, for Pusher's rate

  function stateChange({ current }) {
    if (current === "connected") {
      everConnected = true;
      if (config.signIn) client.signin();
      return hooks.open(client.connection.socket_id);
    }
    if (current === "disconnected" && terminated) {
      // pusher-js does not reconnect after 4009; do, so Django decides each channel again.
      terminated = false;
      hooks.state("reconnecting");
      return setTimeout(() => client.connect(), 1000);
    }
    const state = STATES[current];
    if (state) hooks.state(state === "connecting" && everConnected ? "reconnecting" : state);
  }

  return {
    connect() {
      client = new Pusher(config.key, options);
      client.connection.bind("state_change", stateChange);
      client.connection.bind("error", (error) => {
        // 4009 after a sign-in succeeded: the app ended this user's connections (a refused
        // sign-in is 4009 too, before any user_data: not worth a reconnect loop).
        if (error?.data?.code === 4009 && client.user?.user_data) terminated = true;
      });
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
      if (RESERVED.test(name)) {
        return Promise.reject(new RTBridgeError(`rtbridge: ${logical} starts with a prefix Pusher reserves (cache-, private-encrypted-); rename it.`, { code: "invalid_channel", channel: logical }));
      }
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
          entry.done = true;
          resolve();
        });
        channel.bind("pusher:subscription_error", (error) => {
          const status = error?.status;
          const refused = authErrors.get(name);
          authErrors.delete(name);
          const failure =
            refused ??
            new RTBridgeError(`rtbridge: Pusher refused ${logical}: ${status ?? ""} ${error?.error ?? error?.type ?? ""}`.trim(), {
              code: status || "subscription_error",
              reason: String(error?.error ?? error?.type ?? ""),
              channel: logical,
            });
          if (!entry.done) return reject(failure);
          // Refused when pusher-js subscribed again after a reconnect (e.g. after revoke():
          // Django's rule says no now): the subscription is over, as a revocation on the
          // rtbridge server, and the app is told.
          if (channels.get(name) === entry) channels.delete(name);
          client.unsubscribe(name);
          failure.channel = logical;
          hooks.revoked(logical, failure);
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
      const now = Date.now();
      while (whispered.length && now - whispered[0] >= 1000) whispered.shift();
      if (whispered.length >= WHISPERS_PER_SECOND) {
        return Promise.reject(
          new RTBridgeError(`rtbridge: Pusher relays at most ${WHISPERS_PER_SECOND} whispers a second per connection; this one on ${logical} was not sent. Send fewer (e.g. throttle typing events).`, { code: "rate_limited", channel: logical }),
        );
      }
      if (entry?.channel.trigger(`client-${event}`, data)) {
        whispered.push(now);
        return Promise.resolve();
      }
      return Promise.reject(new RTBridgeError(`rtbridge: Pusher did not send the whisper on ${logical} (not subscribed).`, { code: "not_subscribed", channel: logical }));
    },
  };
}
