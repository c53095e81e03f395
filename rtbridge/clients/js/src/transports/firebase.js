/**
 * The Firebase Realtime Database adapter over the modular SDK (v9+, e.g. v12).
 *
 * The Python backend writes each message as `{event, data, ts, exclude}` under
 * `/<root>/<encodeForFirebase(channel)>/<push id>`; a subscription gets the messages written
 * from the moment it was made. Push ids start with the publishing Django process's clock and
 * `ts` is the database's, so the query starts `clockSkew` ms early (default 10 s, for a
 * Django clock behind the database's) and `ts` decides exactly.
 * @module rtbridge/transports/firebase
 */
import { RTBridgeError } from "../client.js";
import { encodeForFirebase } from "../encodings.js";
import { findSdk, randomId } from "./sdk.js";

const PUSH_CHARS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/** Return the 8-character push-id prefix of time `ms`: every key pushed at `ms` or later sorts after it. */
export function pushIdPrefix(ms) {
  let prefix = "";
  for (let i = 0; i < 8; i++) {
    prefix = PUSH_CHARS.charAt(ms % 64) + prefix;
    ms = Math.floor(ms / 64);
  }
  return prefix;
}

/**
 * Create the transport (called by the client with its hooks).
 * @param {{databaseURL: string, root?: string, emulatorHost?: string, clockSkew?: number, firebase?: object}} config
 *   `firebase` holds the modular SDK's database functions (`getDatabase, ref, query, orderByKey,
 *   startAfter, onChildAdded, onValue`, optionally `connectDatabaseEmulator`) and `app` (an
 *   initialized FirebaseApp) or `initializeApp`.
 * @param {object} hooks
 */
export function firebase(config, hooks) {
  const sdk = findSdk(
    config,
    "firebase",
    'Pass the modular SDK: import {initializeApp} from "firebase/app"; import * as database from ' +
      '"firebase/database"; connect({..., firebase: {...database, initializeApp}}) (or {...database, app}).',
  );
  for (const name of ["getDatabase", "ref", "query", "orderByKey", "startAfter", "onChildAdded", "onValue"]) {
    if (typeof sdk[name] !== "function") {
      throw new RTBridgeError(
        `rtbridge: config.firebase.${name} is missing; pass every function of "firebase/database": ` +
          "connect({..., firebase: {...database, app}}).",
        { code: "missing_sdk" },
      );
    }
  }
  const root = config.root ?? "rtbridge";
  const socketId = randomId();
  const listeners = new Map(); // logical name → unsubscribe function
  let db = null;
  let offset = 0; // server clock minus ours, from .info/serverTimeOffset
  let everConnected = false;
  const stops = [];

  function database() {
    const app = sdk.app ?? sdk.initializeApp?.({ databaseURL: config.databaseURL }, `rtbridge-${socketId}`);
    const instance = sdk.database ?? sdk.getDatabase(app, config.databaseURL);
    if (config.emulatorHost && !sdk.database && sdk.connectDatabaseEmulator) {
      const [host, port] = config.emulatorHost.split(":");
      sdk.connectDatabaseEmulator(instance, host, Number(port));
    }
    return instance;
  }

  return {
    connect() {
      db ??= database();
      stops.push(
        sdk.onValue(sdk.ref(db, ".info/serverTimeOffset"), (snapshot) => (offset = Number(snapshot.val()) || 0)),
        sdk.onValue(sdk.ref(db, ".info/connected"), (snapshot) => {
          if (snapshot.val() === true) {
            everConnected = true;
            hooks.open(socketId);
          } else {
            hooks.state(everConnected ? "reconnecting" : "connecting");
          }
        }),
      );
    },
    disconnect() {
      stops.splice(0).forEach((stop) => stop?.());
      for (const stop of listeners.values()) stop?.();
      listeners.clear();
      if (sdk.goOffline && db) sdk.goOffline(db);
    },
    socketId: () => socketId,
    subscribe(logical) {
      // The SDK keeps a listener through reconnects (and replays what it missed), so an
      // existing one is kept as it is.
      if (listeners.has(logical)) return;
      const path = `${root}/${encodeForFirebase(logical)}`;
      const since = Date.now() + offset; // the database's clock
      const start = pushIdPrefix(since - (config.clockSkew ?? 10000));
      const stop = sdk.onChildAdded(
        sdk.query(sdk.ref(db, path), sdk.orderByKey(), sdk.startAfter(start)),
        (snapshot) => {
          const value = snapshot.val();
          if (!value || typeof value !== "object" || (value.exclude && value.exclude === socketId)) return;
          if (typeof value.ts === "number" && value.ts < since) return; // written before we subscribed
          hooks.message(logical, value.event, value.data, { channel: logical, key: snapshot.key, ts: value.ts });
        },
        (error) => {
          listeners.delete(logical);
          hooks.error(
            new RTBridgeError(`rtbridge: Firebase refused ${logical}: ${error?.message ?? error}`, {
              code: error?.code ?? "permission_denied",
              reason: String(error?.message ?? error),
              channel: logical,
            }),
          );
        },
      );
      listeners.set(logical, stop);
    },
    unsubscribe(logical) {
      listeners.get(logical)?.();
      listeners.delete(logical);
    },
  };
}
