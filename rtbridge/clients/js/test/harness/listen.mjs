// Receive through an rtbridge transport over the vendor's real JS SDK (for tests/clients).
// node listen.mjs '<client_config() JSON>' '<subscriptions JSON: [[label, filters]]>' <node_modules dir>
// Prints {"ready": true, "socketId"} once every subscription is ready, then one JSON line per
// event ({"channel", "event", "data"}) and {"error"} for errors.
import { createRequire } from "node:module";
import { join } from "node:path";

import { connect } from "../../src/rtbridge.js";

const [configJson, subscriptionsJson, nodeModules] = process.argv.slice(2);
const config = JSON.parse(configJson);
const require = createRequire(join(nodeModules, "noop.js"));
const out = (value) => process.stdout.write(JSON.stringify(value) + "\n");
const sdks = {
  pusher: () => ({ Pusher: require("pusher-js") }),
  pubnub: () => {
    const PubNub = require("pubnub");
    return { PubNub: PubNub.default ?? PubNub };
  },
  firebase: () => ({ firebase: { ...require("firebase/database"), initializeApp: require("firebase/app").initializeApp } }),
};

const rt = connect({ ...config, ...(sdks[config.backend]?.() ?? {}) });
rt.onError((error) => out({ error: error.message, code: error.code ?? null }));
const subscriptions = JSON.parse(subscriptionsJson).map(([label, filters]) =>
  rt.subscribe(label, filters, (event, data, meta) => out({ channel: meta.channel, event, data })),
);
Promise.all(subscriptions.map((subscription) => subscription.ready)).then(
  () => out({ ready: true, socketId: rt.socketId() }),
  (error) => out({ error: error.message, code: error.code ?? null }),
);
process.on("SIGTERM", () => {
  rt.disconnect();
  process.exit(0);
});
