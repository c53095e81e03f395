/**
 * The Firebase Realtime Database transport over the modular SDK (v9+, e.g. v12).
 *
 * The Python backend writes each message as `{event, data, ts, exclude, offset?, epoch?}` under
 * `/<root>/<encodeForFirebase(channel)>/<push id>`; a subscription gets the messages written
 * from the moment it was made. Push ids start with the publishing Django process's clock and
 * `ts` is the database's, so the query starts `clockSkew` ms early (default 10 s, for a
 * Django clock behind the database's) and `ts` decides exactly.
 *
 * Protected channels: the auth endpoint answers `{token}` (a custom token whose claims the
 * generated database rules check), used with `signInWithCustomToken` (pass the `firebase/auth`
 * functions too). Presence: each tab writes `{id, info}` at
 * `<root>/presence/<channel>/<member id>/<socket id>` with `onDisconnect().remove()`; a member
 * is present while any of its tabs is. Whispers are pushed into the channel's path with the
 * event `client-<event>`.
 * @module rtbridge/transports/firebase
 */
import { isProtected } from "../channel-names.js";
import { encodeForFirebase } from "../encodings.js";
import { RTBridgeError } from "../errors.js";
import { findSdk, memberOf, randomId } from "./sdk.js";

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
 * @param {{databaseURL: string, root?: string, apiKey?: string, projectId?: string, emulatorHost?: string,
 *   authEmulatorHost?: string, clockSkew?: number, firebase?: object}} config `apiKey`/`projectId` (from the
 *   backend's `api_key`/`project_id`) build the app `initializeApp` makes; signing in needs the API key
 *   `firebase` holds the modular SDK's database functions (`getDatabase, ref, query, orderByKey,
 *   startAfter, onChildAdded, onValue`, optionally `connectDatabaseEmulator`; for presence and
 *   whispers also `set, push, remove, onDisconnect, serverTimestamp`) and `app` (an initialized
 *   FirebaseApp) or `initializeApp`; for protected channels `getAuth, signInWithCustomToken`
 *   from "firebase/auth".
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
  const present = new Map(); // logical presence channel → {me, mine (ref), stop}
  let app = null;
  let db = null;
  let offset = 0; // server clock minus ours, from .info/serverTimeOffset
  let everConnected = false;
  const stops = [];

  /** Return `sdk[name]` for a feature, or throw saying which functions to pass. */
  function need(names, feature, from) {
    for (const name of names) {
      if (typeof sdk[name] !== "function") {
        throw new RTBridgeError(
          `rtbridge: ${feature} on Firebase needs config.firebase.${name}; pass the functions of "${from}" too: ` +
            `connect({..., firebase: {...database, ...auth, app}}).`,
          { code: "missing_sdk" },
        );
      }
    }
  }

  /** Return the app's Auth instance, pointed at the Auth emulator once when the config names one. */
  function signIn() {
    const instance = sdk.getAuth(app ?? undefined);
    if (config.authEmulatorHost && sdk.connectAuthEmulator && !instance.emulatorConfig) {
      sdk.connectAuthEmulator(instance, `http://${config.authEmulatorHost}`, { disableWarnings: true });
    }
    return instance;
  }

  // A member id as a database key (no . $ # [ ] /).
  const memberKey = (id) => String(id).replace(/[.$#[\]/%]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
  const presencePath = (logical) => `${root}/presence/${encodeForFirebase(logical)}`;

  function announce(entry) {
    // Register the removal first: if this tab vanishes right after, the server still cleans up.
    return Promise.resolve(sdk.onDisconnect(entry.mine).remove()).then(() =>
      sdk.set(entry.mine, { id: entry.me.id, info: entry.me.info, ts: sdk.serverTimestamp() }),
    );
  }

  function database() {
    const settings = { databaseURL: config.databaseURL, ...(config.apiKey && { apiKey: config.apiKey }), ...(config.projectId && { projectId: config.projectId }) };
    app = sdk.app ?? sdk.initializeApp?.(settings, `rtbridge-${socketId}`);
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
            // onDisconnect ran when the link dropped: write this tab's presence again.
            // The next member list is this subscription's `here` again.
            for (const entry of present.values()) {
              entry.first = everConnected;
              announce(entry).catch(() => {});
            }
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
      for (const logical of [...present.keys()]) this.unsubscribe(logical);
      if (sdk.goOffline && db) sdk.goOffline(db);
    },
    socketId: () => socketId,
    async subscribe(logical) {
      // The SDK keeps a listener through reconnects (and replays what it missed), so an
      // existing one is kept as it is.
      if (listeners.has(logical)) return;
      let answer = null;
      if (isProtected(logical)) {
        answer = await hooks.authorize(logical, socketId);
        if (answer?.token) {
          need(["getAuth", "signInWithCustomToken"], "Signing in for a protected channel", "firebase/auth");
          if (!sdk.app && !config.apiKey) {
            // getAuth() would throw auth/invalid-api-key: say which setting is missing instead.
            throw new RTBridgeError(
              `rtbridge: signing in to Firebase for ${logical} needs the project's Web API key; set RTBRIDGE_OPTIONS["api_key"] ` +
                '(Firebase console, Project settings) or pass an initialized app: connect({..., firebase: {...database, ...auth, app}}).',
              { code: "missing_api_key", channel: logical },
            );
          }
          try {
            await sdk.signInWithCustomToken(signIn(), answer.token);
          } catch (cause) {
            throw new RTBridgeError(`rtbridge: Firebase refused the token for ${logical}: ${cause?.message ?? cause}`, { code: cause?.code ?? "auth_failed", channel: logical, cause });
          }
        }
        if (listeners.has(logical)) return;
      }
      if (logical.startsWith("presence-")) follow(logical, memberOf(answer, socketId));
      const path = `${root}/${encodeForFirebase(logical)}`;
      const since = Date.now() + offset; // the database's clock
      const start = pushIdPrefix(since - (config.clockSkew ?? 10000));
      const stop = sdk.onChildAdded(
        sdk.query(sdk.ref(db, path), sdk.orderByKey(), sdk.startAfter(start)),
        (snapshot) => {
          const value = snapshot.val();
          if (!value || typeof value !== "object") return;
          if (value.exclude && value.exclude === socketId) return hooks.skip(logical, value); // our own: the position moves on
          if (typeof value.ts === "number" && value.ts < since) return; // written before we subscribed
          const meta = { channel: logical, key: snapshot.key, ts: value.ts, offset: value.offset, epoch: value.epoch };
          if (typeof value.event === "string" && value.event.startsWith("client-")) {
            if (isProtected(logical)) hooks.whisper(logical, value.event.slice(7), value.data, { ...meta, user_id: value.user_id });
          } else {
            hooks.message(logical, value.event, value.data, meta);
          }
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
      const entry = present.get(logical);
      if (entry) {
        present.delete(logical);
        entry.stop?.();
        Promise.resolve(sdk.onDisconnect(entry.mine).cancel())
          .then(() => sdk.remove(entry.mine))
          .catch(() => {});
      }
    },
    whisper(logical, event, data) {
      need(["push", "serverTimestamp"], "Whispering", "firebase/database");
      const message = { event: `client-${event}`, data, ts: sdk.serverTimestamp(), exclude: socketId, user_id: present.get(logical)?.me.id ?? null };
      return Promise.resolve(sdk.push(sdk.ref(db, `${root}/${encodeForFirebase(logical)}`), message)).then(() => undefined);
    },
  };

  function follow(logical, me) {
    need(["set", "remove", "onDisconnect", "serverTimestamp"], "Presence", "firebase/database");
    const path = presencePath(logical);
    const entry = { me, mine: sdk.ref(db, `${path}/${memberKey(me.id)}/${socketId}`), first: true };
    present.set(logical, entry);
    announce(entry).then(
      () => (entry.written = true),
      (error) =>
        hooks.error(new RTBridgeError(`rtbridge: Firebase refused this tab's presence on ${logical}: ${error?.message ?? error}`, { code: error?.code ?? "permission_denied", channel: logical })),
    );
    entry.stop = sdk.onValue(sdk.ref(db, path), (snapshot) => {
      const list = [];
      for (const [, tabs] of Object.entries(snapshot.val() ?? {})) {
        for (const [key, value] of Object.entries(tabs ?? {})) if (value?.id != null) list.push({ id: String(value.id), info: value.info ?? null, key });
      }
      // The listener can fire before this tab's own entry is written: count it in already,
      // so `here` includes this page and it never "joins" itself a moment later.
      if (!entry.written && !list.some((member) => member.key === socketId)) {
        list.push({ id: String(me.id), info: me.info ?? null, key: socketId });
      }
      hooks.presence(logical, entry.first ? "here" : "sync", list);
      entry.first = false;
    });
  }
}
