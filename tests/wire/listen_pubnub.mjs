// Receive with the pubnub JS SDK: node listen_pubnub.mjs '{"subscribeKey","origin","channels":[[logical, encoded]]}'
// Prints {"ready":true,"socketId":<userId>} once connected, then one JSON line per message.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const PubNubModule = require("pubnub");
const PubNub = PubNubModule.default || PubNubModule;
const config = JSON.parse(process.argv[2]);
const emit = (value) => process.stdout.write(JSON.stringify(value) + "\n");
const logical = new Map(config.channels.map(([name, encoded]) => [encoded, name]));
const userId = `listener-${process.pid}`;

const pubnub = new PubNub({
  subscribeKey: config.subscribeKey,
  userId,
  origin: config.origin,
  ssl: false,
  logLevel: PubNub.LogLevel ? PubNub.LogLevel.None : undefined,
});
let ready = false;
pubnub.addListener({
  status(status) {
    if (!ready && status.category === "PNConnectedCategory") {
      ready = true;
      emit({ ready: true, socketId: userId });
    }
  },
  message(envelope) {
    const body = envelope.message || {};
    emit({
      channel: logical.get(envelope.channel) ?? envelope.channel,
      event: body.event,
      data: body.data === undefined ? null : body.data,
      exclude: body.exclude ?? null,
    });
  },
});
pubnub.subscribe({ channels: config.channels.map(([, encoded]) => encoded) });
process.on("SIGTERM", () => { pubnub.unsubscribeAll(); process.exit(0); });
