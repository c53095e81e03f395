// One presence member through an rtbridge transport over the vendor's real JS SDK (for tests/clients).
// node member.mjs '<config JSON>' '<presence channel>' <node_modules dir>
// Prints JSON lines: {"ready": true, "socketId"}, {"here": [members]}, {"joining": member},
// {"leaving": member}, {"whisper": {event, data, user_id}}, {"error", "code", "status"} (a
// rejected promise), {"reported": {...}} (what onError got); reads
// commands on stdin: {"cmd": "whisper", "event", "data"}, {"cmd": "private", "channel"} (answers
// {"private": "ok"} or an error line), {"cmd": "leave"} (answers {"left": true}).
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { connect } from "../../src/rtbridge.js";

const [configJson, channelName, nodeModules] = process.argv.slice(2);
const config = JSON.parse(configJson);
const require = createRequire(join(nodeModules, "noop.js"));
const out = (value) => process.stdout.write(JSON.stringify(value) + "\n");
const failure = (error) => ({ error: error.message, code: error.code ?? null, status: error.status ?? null });

const rt = connect({ ...config, Pusher: require("pusher-js") });
rt.onError((error) => out({ reported: failure(error) }));
const room = rt
  .join(channelName)
  .here((members) => out({ here: members }))
  .joining((member) => out({ joining: member }))
  .leaving((member) => out({ leaving: member }))
  .listenForWhisper("typing", (data, meta) => out({ whisper: { event: "typing", data, user_id: meta.user_id ?? null } }));
room.ready.then(
  () => out({ ready: true, socketId: rt.socketId() }),
  (error) => out(failure(error)),
);

createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if (command.cmd === "whisper") {
    room.whisper(command.event, command.data).then(() => out({ whispered: true }), (error) => out(failure(error)));
  } else if (command.cmd === "private") {
    rt.private(command.channel).ready.then(() => out({ private: "ok" }), (error) => out(failure(error)));
  } else if (command.cmd === "leave") {
    room.leave();
    out({ left: true });
  }
});
process.on("SIGTERM", () => {
  rt.disconnect();
  process.exit(0);
});
