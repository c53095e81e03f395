// Receive with the pubnub JS SDK: node listen_pubnub.mjs '{"subscribeKey","origin","channels":[[logical, encoded]]}'
// Optional: "legacy": true runs the SDK without its event engine (the subscription manager
// that reports PNRequestMessageCountExceededCategory), "statuses": true prints {"status": category}.
// Prints {"ready":true,"socketId":<userId>} once connected, then one JSON line per message
// ({channel, event, data, exclude}, plus offset and epoch when the message has them).
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
  ...(config.legacy && { enableEventEngine: false }),
});
let ready = false;
pubnub.addListener({
  status(status) {
    if (!ready && status.category === "PNConnectedCategory") {
      ready = true;
      emit({ ready: true, socketId: userId });
    } else if (config.statuses && ready) {
      emit({ status: status.category });
    }
  },
  message(envelope) {
    const body = envelope.message || {};
    emit({
      channel: logical.get(envelope.channel) ?? envelope.channel,
      event: body.event,
      data: body.data === undefined ? null : body.data,
      exclude: body.exclude ?? null,
      // The position rtbridge's history store gave the message (absent with history off).
      ...(body.offset !== undefined && { offset: body.offset, epoch: body.epoch }),
    });
  },
});
pubnub.subscribe({ channels: config.channels.map(([, encoded]) => encoded) });
process.on("SIGTERM", () => { pubnub.unsubscribeAll(); process.exit(0); });
