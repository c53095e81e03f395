// Receive through the rtbridge JS client (rtbridge/clients/js) with the vendor SDKs from here:
// node listen_rtbridge.mjs '{"config": <backend.client_config()>, "channels": [logical, ...]}'
// Prints {"ready":true,"socketId":...} once every subscription is ready, then one JSON line per event.
import { initializeApp } from "firebase/app";
import * as database from "firebase/database";
import { createRequire } from "node:module";
import { connect } from "../../rtbridge/clients/js/src/rtbridge.js";

const require = createRequire(import.meta.url);
const unwrap = (module) => module.default || module;
const { config, channels } = JSON.parse(process.argv[2]);
const emit = (value) => process.stdout.write(JSON.stringify(value) + "\n");

const client = connect({
  ...config,
  Pusher: unwrap(require("pusher-js")),
  PubNub: unwrap(require("pubnub")),
  firebase: { ...database, initializeApp },
  pubnubOptions: { logLevel: unwrap(require("pubnub")).LogLevel?.None },
});
client.onError((error) => emit({ error: String(error && error.message) }));
const subscriptions = channels.map((name) =>
  client.subscribe(name, (event, data, meta) => emit({ channel: meta?.channel ?? name, event, data })),
);
Promise.all(subscriptions.map((subscription) => subscription.ready)).then(
  () => emit({ ready: true, socketId: client.socketId() }),
  (error) => emit({ error: String(error && error.message) }),
);
process.on("SIGTERM", () => {
  client.disconnect();
  process.exit(0);
});
