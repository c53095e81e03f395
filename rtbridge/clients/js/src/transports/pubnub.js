/**
 * The PubNub transport over the pubnub JS SDK. The SDK keeps the subscribe loop and reconnects
 * by itself; messages are `{event, data}` objects (plus `exclude`, the sender's socket id,
 * when the publisher set one, and `offset`/`epoch` with history on) on the
 * `encodeForPubnub(channel)` channel. A subscribe loop that fails (an outage) is
 * "reconnecting", not "connected", and is restarted with backoff.
 *
 * Protected channels: the auth endpoint answers `{token}` (an Access Manager v3 token), given
 * to the SDK with `setToken`; with `accessManager` (the backend has a secret key) PubNub wants a
 * token for public channels too, so the first subscribe asks for one (every token reads the
 * public channels). A channel is ready once PubNub answered a subscribe naming it; one PubNub
 * refuses (403) is dropped from the subscription so the others go on. The PubNub user id is
 * stable per device (`pubnub-user.js`); `socketId()` is per page load. Presence: PubNub's own (`-pnpres` events, `hereNow`) with each
 * tab's state `{id, info}` naming its member, so joins and leaves are per user. Whispers are
 * published messages whose event is `client-<event>` (they need `publishKey`).
 * @module rtbridge/transports/pubnub
 */
import { backoffDelay } from "../backoff.js";
import { isProtected } from "../channel-names.js";
import { encodeForPubnub } from "../encodings.js";
import { RTBridgeError } from "../errors.js";
import { pubnubPresence } from "./pubnub-presence.js";
import { pubnubUserId } from "./pubnub-user.js";
import { findSdk, memberOf, randomId } from "./sdk.js";

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
 * @param {{subscribeKey: string, publishKey?: string, origin?: string, ssl?: boolean, userId?: string,
 *   accessManager?: boolean, PubNub?: Function, pubnubOptions?: object}} config `publishKey` is needed
 *   only for whispers
 * @param {object} hooks
 */
export function pubnub(config, hooks) {
  const PubNub = findSdk(
    config,
    "PubNub",
    'Load the PubNub SDK (<script src="https://cdn.pubnub.com/sdk/javascript/pubnub.12.0.3.min.js">) before ' +
      'rtbridge, or pass it: import PubNub from "pubnub"; connect({..., PubNub}).',
  );
  const socketId = randomId(); // this page load's: messages it sent carry it as `exclude`
  const channels = new Map(); // encoded name → {logical, resolve, reject, ready, done, me?, tabs?}
  let userId = null;
  let client = null;
  let online = false;
  let retryTimer;
  let attempt = 0;
  let stopped = false;
  let hasToken = false;
  let firstToken = null; // the pending auth request for the first token (accessManager)

  // PubNub reports tabs (uuids); pubnub-presence.js turns them into members.
  const presence = pubnubPresence({ client: () => client, userId: () => userId, channels, hooks });

  function setToken(answer) {
    // One token per client: the last one set is what PubNub checks (docs/js.md).
    if (answer?.token) {
      client.setToken(answer.token);
      hasToken = true;
    }
  }

  function settle(names, error) {
    for (const name of names ?? []) {
      const entry = channels.get(name.replace(/-pnpres$/, ""));
      if (!entry || entry.done) continue;
      entry.done = true;
      if (error) {
        channels.delete(encodeForPubnub(entry.logical));
        // PubNub refuses a multiplexed subscribe as a whole: without this channel the others go on.
        client.unsubscribe({ channels: [encodeForPubnub(entry.logical)] });
        entry.reject(new RTBridgeError(`rtbridge: PubNub refused ${entry.logical}: ${error}`, { code: 403, reason: error, channel: entry.logical }));
      } else entry.resolve();
    }
  }

  /**
   * A token that expired (Access Manager grants have a TTL) refuses channels we already had:
   * ask the auth endpoint again for those and subscribe again, at most once a minute each.
   */
  function renew(names) {
    const now = Date.now();
    const stale = names
      .map((name) => channels.get(name.replace(/-pnpres$/, "")))
      .filter((entry) => entry?.done && (config.accessManager || isProtected(entry.logical)) && !(now - (entry.renewed ?? 0) < 60000));
    for (const entry of stale) {
      entry.renewed = now;
      hooks.authorize(entry.logical, userId).then(
        (answer) => {
          setToken(answer);
          const name = encodeForPubnub(entry.logical);
          if (channels.get(name) === entry) client.subscribe({ channels: [name], withPresence: !!entry.me });
          // After a 403 the SDK's subscribe loop stays stopped until told to reconnect.
          client.reconnect?.();
        },
        (error) => {
          // Refused now: the channel is over (as a revocation on the rtbridge server).
          channels.delete(encodeForPubnub(entry.logical));
          client.unsubscribe({ channels: [encodeForPubnub(entry.logical)] });
          error.channel = entry.logical;
          hooks.revoked(entry.logical, error);
        },
      );
    }
  }

  const listener = {
    message({ channel, message, timetoken }) {
      const entry = channels.get(channel);
      if (!entry || !message || typeof message !== "object") return;
      if (message.exclude && message.exclude === socketId) return hooks.skip(entry.logical, message); // our own: the position moves on
      const meta = { channel: entry.logical, timetoken, offset: message.offset, epoch: message.epoch };
      const { event } = message;
      if (typeof event === "string" && event.startsWith("client-")) {
        if (isProtected(entry.logical)) hooks.whisper(entry.logical, event.slice(7), message.data, { ...meta, user_id: message.user_id });
      } else {
        hooks.message(entry.logical, event, message.data, meta);
      }
    },
    presence: presence.event,
    status(status) {
      const { category } = status;
      if (category === "PNAccessDeniedCategory" || status.error === "PNAccessDeniedCategory") {
        // PubNub's 403 names the refused channels (errorData.payload.channels); else all of them.
        const names = status.errorData?.payload?.channels ?? status.affectedChannels ?? [...channels.keys()];
        // Channels that worked until now are refused too: the SDK's loop has stopped, so the page
        // is not connected (it misses what is published) until a subscribe succeeds again.
        const working = names.some((name) => channels.get(name.replace(/-pnpres$/, ""))?.done);
        renew(names);
        settle(names, status.errorData?.message ?? "access denied (Access Manager)");
        if (working) down();
        return;
      }
      if (category === "PNRequestMessageCountExceededCategory") {
        // One response held more than the SDK's threshold: PubNub may have dropped the rest.
        for (const entry of channels.values()) if (entry.done) hooks.missed(entry.logical);
        return;
      }
      if (UP.includes(category)) {
        const names = status.subscribedChannels ?? status.affectedChannels ?? [];
        // Back from an outage or a refusal (down()): subscribed channels announce their presence again.
        const again = category === "PNReconnectedCategory" || !online;
        for (const entry of channels.values()) {
          if (entry.me && (again ? entry.done : !entry.done && names.includes(encodeForPubnub(entry.logical)))) presence.announce(entry);
        }
        settle(names);
        clearTimeout(retryTimer);
        attempt = 0;
        if (!online || category === "PNReconnectedCategory") {
          online = true;
          hooks.open(socketId);
        }
      } else if (DOWN.includes(category)) {
        down();
      }
    },
  };

  function down() {
    online = false;
    hooks.state("reconnecting");
    // After a refusal, or once its own retries are spent, the SDK's loop waits to be restarted.
    clearTimeout(retryTimer);
    // At most ~6 s between tries by default (a subscribe is one cheap request, and PubNub's own
    // reconnection manager polls every 3 s); `reconnect: {maxDelay}` changes it.
    retryTimer = setTimeout(restart, backoffDelay(attempt++, { maxDelay: 5000, ...config.reconnect }) + 1000);
  }

  /**
   * Restart the subscribe loop by subscribing to the page's channels again (public API): unlike
   * reconnect(), the SDK then reports PNConnectedCategory when PubNub answers, which is how the
   * page learns it is connected again (and resumes every channel from history).
   */
  function restart() {
    if (stopped || !client) return;
    const plain = [];
    const withPresence = [];
    for (const [name, entry] of channels) if (entry.done) (entry.me ? withPresence : plain).push(name);
    if (plain.length) client.subscribe({ channels: plain });
    if (withPresence.length) client.subscribe({ channels: withPresence, withPresence: true });
    if (!plain.length && !withPresence.length) {
      online = true;
      hooks.open(socketId);
    }
  }

  return {
    connect() {
      pubnubUserId(config).then((id) => {
        if (stopped) return;
        userId = id;
        client = new PubNub({
          subscribeKey: config.subscribeKey,
          ...(config.publishKey && { publishKey: config.publishKey }),
          userId,
          ...(config.origin && { origin: config.origin }),
          ...(config.ssl !== undefined && { ssl: config.ssl }),
          // The subscription manager reports a channel connected once PubNub answered a
          // subscribe naming it; the event engine reports it before the request is sent.
          enableEventEngine: false,
          ...config.pubnubOptions,
        });
        client.addListener(listener);
        // PubNub has no connection before the first subscribe; report ready so channels subscribe.
        online = true;
        hooks.open(socketId);
      });
    },
    disconnect() {
      clearTimeout(retryTimer);
      stopped = true;
      client?.removeListener(listener);
      client?.unsubscribeAll();
      client?.stop?.();
      channels.clear();
    },
    socketId: () => socketId,
    async subscribe(logical) {
      const name = encodeForPubnub(logical);
      if (name.endsWith("-pnpres")) {
        throw new RTBridgeError(`rtbridge: ${logical} ends with -pnpres, which PubNub reserves for presence events; rename it.`, { code: "invalid_channel", channel: logical });
      }
      const known = channels.get(name);
      if (known) return known.ready;
      const entry = { logical, done: false };
      entry.ready = new Promise((resolve, reject) => Object.assign(entry, { resolve, reject }));
      channels.set(name, entry);
      try {
        if (isProtected(logical)) {
          const answer = await hooks.authorize(logical, userId);
          setToken(answer);
          if (logical.startsWith("presence-")) Object.assign(entry, { me: memberOf(answer, userId), tabs: new Map() });
        } else if (config.accessManager && !hasToken) {
          // Every token reads the public channels: ask once for the page's first one.
          await (firstToken ??= hooks.authorize(logical, userId).then(setToken).finally(() => (firstToken = null)));
        }
      } catch (error) {
        channels.delete(name);
        throw error;
      }
      if (channels.get(name) !== entry) return; // unsubscribed meanwhile
      client.subscribe({ channels: [name], withPresence: !!entry.me });
      return entry.ready;
    },
    unsubscribe(logical) {
      const name = encodeForPubnub(logical);
      if (channels.delete(name)) client.unsubscribe({ channels: [name] });
    },
    whisper(logical, event, data) {
      const entry = channels.get(encodeForPubnub(logical));
      if (!config.publishKey) {
        return Promise.reject(new RTBridgeError("rtbridge: PubNub whispers are published by the page, which needs publishKey in the config.", { code: "unsupported", channel: logical }));
      }
      const message = { event: `client-${event}`, data, exclude: socketId, user_id: entry?.me?.id ?? null };
      return client.publish({ channel: encodeForPubnub(logical), message });
    },
  };
}
