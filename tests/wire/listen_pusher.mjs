// Receive with pusher-js: node listen_pusher.mjs '{"key","wsHost","wsPort","channels":[[logical, encoded]]}'
// Prints {"ready":true,"socketId":...} once subscribed, then one JSON line per event.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const PusherModule = require("pusher-js");
const Pusher = PusherModule.default || PusherModule;
const config = JSON.parse(process.argv[2]);
const emit = (value) => process.stdout.write(JSON.stringify(value) + "\n");

const pusher = new Pusher(config.key, {
  cluster: "mt1",
  wsHost: config.wsHost,
  wsPort: config.wsPort,
  forceTLS: false,
  enabledTransports: ["ws"],
  disableStats: true,
});
let pending = config.channels.length;
for (const [logical, encoded] of config.channels) {
  const channel = pusher.subscribe(encoded);
  channel.bind("pusher:subscription_succeeded", () => {
    pending -= 1;
    if (pending === 0) emit({ ready: true, socketId: pusher.connection.socket_id });
  });
  channel.bind("pusher:subscription_error", (error) => emit({ error: String(error && error.error) }));
  channel.bind_global((event, data) => {
    if (!event.startsWith("pusher:")) emit({ channel: logical, event, data });
  });
}
process.on("SIGTERM", () => { pusher.disconnect(); process.exit(0); });
