// One page of the rtbridge JS client over a vendor's real SDK, its HTTP calls answered by Python.
// node member_hosted.mjs '<{"config": client_config(), "authEmulator"?: "http://host:port"}>'
// The client's fetch() prints {"fetch": {"id", "url", "body"}} and waits for the answer on stdin
// ({"id", "status", "body"}), so a test can answer through Django's test client as a logged-in
// user. Other stdin commands: {"cmd": "join", "channel"}, {"cmd": "private", "channel"},
// {"cmd": "channel", "channel"} (a public one),
// {"cmd": "whisper", "channel", "event", "data"}, {"cmd": "leave", "channel"},
// {"cmd": "clock", "minutes"} (Firebase: move the page's clock on, then ask the Auth SDK for its
// ID token, which it refreshes when the clock says it is due), {"cmd": "exit"}. Output lines: {"ready", "channel", "socketId"}, {"refused", "channel", "code",
// "status"}, {"here"|"joining"|"leaving", "channel", ...}, {"message", "channel", "event",
// "data"}, {"whisper", "channel", "event", "data"}, {"error"}.
import { getApps, initializeApp } from "firebase/app";
import * as auth from "firebase/auth";
import * as database from "firebase/database";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { connect } from "../../rtbridge/clients/js/src/rtbridge.js";

const require = createRequire(import.meta.url);
const unwrap = (module) => module.default || module;
const PubNub = unwrap(require("pubnub"));
const { config } = JSON.parse(process.argv[2]);
const out = (value) => process.stdout.write(JSON.stringify(value) + "\n");

const pending = new Map();
let nextId = 1;
function fetch(url, options) {
  const id = nextId++;
  out({ fetch: { id, url, body: JSON.parse(options.body), headers: options.headers } });
  return new Promise((resolve) => pending.set(id, resolve));
}

const sdks = { Pusher: unwrap(require("pusher-js")), PubNub, pubnubOptions: { logLevel: PubNub.LogLevel?.None } };
// Firebase as docs/js.md sets it up: the client makes the app from client_config() itself.
if (config.backend === "firebase") sdks.firebase = { ...database, ...auth, initializeApp };
const rt = connect({ ...config, ...sdks, fetch });
rt.onError((error) => out({ error: String(error?.message ?? error), code: error?.code ?? null }));

const rooms = new Map();
const refused = (channel) => (error) => out({ refused: true, channel, code: error?.code ?? null, status: error?.status ?? null, message: String(error?.message ?? error) });

createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if ("status" in command) {
    const resolve = pending.get(command.id);
    pending.delete(command.id);
    const text = JSON.stringify(command.body);
    return resolve?.({ status: command.status, ok: command.status < 400, text: async () => text, json: async () => command.body });
  }
  const { cmd, channel } = command;
  if (cmd === "join") {
    const room = rt
      .join(channel)
      .here((members) => out({ here: members.map(({ id, info }) => ({ id, info })), channel }))
      .joining((member) => out({ joining: { id: member.id, info: member.info }, channel }))
      .leaving((member) => out({ leaving: { id: member.id, info: member.info ?? null }, channel }))
      .listenForWhisper("typing", (data, meta) => out({ whisper: "typing", data, user_id: meta?.user_id ?? null, channel }));
    rooms.set(channel, room);
    room.ready.then(() => out({ ready: true, channel, socketId: rt.socketId() }), refused(channel));
  } else if (cmd === "channel") {
    const room = rt.channel(channel).listen("updated", (data) => out({ message: "updated", data, channel }));
    rooms.set(channel, room);
    room.ready.then(() => out({ ready: true, channel, socketId: rt.socketId() }), refused(channel));
  } else if (cmd === "private") {
    const room = rt.private(channel).listen("updated", (data) => out({ message: "updated", data, channel }));
    rooms.set(channel, room);
    room.ready.then(() => out({ ready: true, channel, socketId: rt.socketId() }), refused(channel));
  } else if (cmd === "whisper") {
    rooms.get(channel).whisper(command.event, command.data).then(() => out({ whispered: true, channel }), refused(channel));
  } else if (cmd === "leave") {
    rooms.get(channel)?.leave?.() ?? rooms.get(channel)?.unsubscribe?.();
    out({ left: true, channel });
  } else if (cmd === "clock") {
    const now = Date.now;
    const shift = command.minutes * 60000;
    Date.now = () => now() + shift;
    const user = getApps().map((app) => auth.getAuth(app).currentUser).find(Boolean);
    user.getIdToken().then(
      (token) => out({ clock: command.minutes, refreshed: JSON.parse(Buffer.from(token.split(".")[1], "base64url")).iat }),
      (error) => out({ clock: command.minutes, error: String(error?.message ?? error) }),
    );
  } else if (cmd === "exit") {
    rt.disconnect();
    setTimeout(() => process.exit(0), 200);
  }
});
process.on("SIGTERM", () => {
  rt.disconnect();
  process.exit(0);
});
