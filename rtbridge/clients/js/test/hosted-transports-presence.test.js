// Protected channels, presence and whispers through the hosted transports (SDK stand-ins).
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { connect } from "../src/rtbridge.js";
import { fakeFetch, tick, until } from "./helpers/fakes.js";
import { FakePubNub, FakePusher, fakeFirebase } from "./helpers/sdks.js";

const clients = [];
afterEach(() => clients.splice(0).forEach((rt) => rt.disconnect()));
const track = (rt) => (clients.push(rt), rt);

const ann = { id: "1", info: { name: "Ann" } };
const bob = { id: "2", info: { name: "Bob" } };

/** Record here/joining/leaving of a presence channel as a list of lines. */
function watch(room) {
  const seen = [];
  room
    .here((members) => seen.push(`here ${members.map((m) => m.info?.name ?? m.id).join(",")}`))
    .joining((member) => seen.push(`joining ${member.info?.name ?? member.id}`))
    .leaving((member) => seen.push(`leaving ${member.info?.name ?? member.id}`));
  return seen;
}

// Pusher -------------------------------------------------------------------------------------

test("pusher: channelAuthorization asks the auth endpoint (CSRF, socket id) and hands pusher-js the answer", async () => {
  const answer = { auth: "app-key:signature", channel_data: JSON.stringify({ user_id: "1", user_info: { name: "Ann" } }) };
  const fetch = fakeFetch(() => ({ body: answer }));
  const rt = track(connect({ backend: "pusher", key: "app-key", Pusher: FakePusher, fetch, csrfToken: "tok" }));
  const pusher = FakePusher.last;
  pusher.setState("connected", "123.456");
  const room = rt.join("todo.todoitem.7");
  await tick();
  const channel = pusher.channels.get("presence-todo.todoitem.7");
  const { error, data } = await channel.auth;
  assert.equal(error, null);
  assert.deepEqual(data, answer, "pusher-js gets the endpoint's answer as it is");
  assert.deepEqual(fetch.calls[0].body, { socket_id: "123.456", channel_name: "presence-todo.todoitem.7" });
  assert.equal(fetch.calls[0].headers["X-CSRFToken"], "tok");
  assert.equal(fetch.calls[0].headers["X-RTBridge-Socket-Id"], "123.456");
  room.leave();
});

test("pusher: a refused auth request rejects ready with the endpoint's code, not pusher-js's AuthError", async () => {
  const fetch = fakeFetch(() => ({ status: 403, body: { error: { code: "login_required", message: "Log in first." } } }));
  const rt = track(connect({ backend: "pusher", key: "k", Pusher: FakePusher, fetch }));
  FakePusher.last.setState("connected", "1.2");
  rt.onError(() => {});
  const channel = rt.private("orders");
  await assert.rejects(channel.ready, (error) => error.status === 403 && error.code === "login_required" && error.channel === "private-orders");
});

test("pusher: presence from Pusher's members and member events; whispers are client- events", async () => {
  const fetch = fakeFetch(() => ({ body: { auth: "k:s", channel_data: "{}" } }));
  const rt = track(connect({ backend: "pusher", key: "k", Pusher: FakePusher, fetch }));
  const pusher = FakePusher.last;
  pusher.setState("connected", "1.2");
  const room = rt.join("room");
  const seen = watch(room);
  const heard = [];
  room.listenForWhisper("typing", (data, meta) => heard.push([data, meta.user_id]));
  const events = [];
  room.listen("updated", (data) => events.push(data));
  await tick();
  const channel = pusher.channels.get("presence-room");
  await channel.auth;
  const members = {
    each(fn) {
      fn({ id: 1, info: ann.info });
      fn({ id: 2, info: bob.info });
    },
  };
  channel.subscribed = true;
  channel.emit("pusher:subscription_succeeded", members);
  await room.ready;
  channel.emit("pusher:member_added", { id: "3", info: { name: "Cat" } });
  channel.emit("pusher:member_removed", { id: "2", info: bob.info });
  pusher.message({ event: "client-typing", channel: "presence-room", data: { field: "text" }, user_id: "3" });
  pusher.message({ event: "updated", channel: "presence-room", data: { id: 1 } });
  assert.deepEqual(seen, ["here Ann,Bob", "joining Cat", "leaving Bob"]);
  assert.deepEqual(heard, [[{ field: "text" }, "3"]]);
  assert.deepEqual(events, [{ id: 1 }], "client- events are not app events");
  await room.whisper("typing", { field: "done" });
  assert.deepEqual(channel.triggered, [["client-typing", { field: "done" }]]);
});

// PubNub -------------------------------------------------------------------------------------

test("pubnub: presence per user from uuids + state; here from hereNow; whispers published as client- events", async () => {
  const fetch = fakeFetch(() => ({ body: { token: "pam-token", channel_data: ann } }));
  const rt = track(connect({ backend: "pubnub", subscribeKey: "sub", publishKey: "pub", userId: "tab-a", PubNub: FakePubNub, fetch }));
  await rt.ready(); // the client is made once the user id is known
  const pubnub = FakePubNub.last;
  assert.equal(pubnub.config.publishKey, "pub");
  await rt.ready();
  const name = "presence-todo~todoitem~7";
  pubnub.occupants[name] = [
    { uuid: "tab-a", state: null }, // this tab: its state may not be there yet
    { uuid: "tab-b1", state: { id: "2", info: bob.info } },
  ];
  const room = rt.join("todo.todoitem.7");
  const seen = watch(room);
  const heard = [];
  room.listenForWhisper("typing", (data, meta) => heard.push([data, meta.user_id]));
  await until(() => pubnub.subscribeCalls.length === 1);
  assert.deepEqual(pubnub.tokens, ["pam-token"]);
  assert.deepEqual(pubnub.subscribeCalls[0], { channels: [name], withPresence: true });
  pubnub.status({ category: "PNConnectedCategory", subscribedChannels: [name, `${name}-pnpres`] });
  await room.ready;
  await until(() => seen.length === 1);
  assert.deepEqual(pubnub.states, [[[name], { id: "1", info: ann.info }]], "this tab's state names its member");
  assert.deepEqual(seen, ["here Ann,Bob"]);
  const presence = (action, uuid, state) => pubnub.presence({ action, channel: name, uuid, state });
  presence("join", "tab-b2"); // Bob's second tab, before its state: nothing yet
  presence("state-change", "tab-b2", { id: "2", info: bob.info }); // still Bob: no join
  presence("join", "tab-c", { id: "3", info: { name: "Cat" } });
  presence("leave", "tab-b1"); // one of Bob's tabs
  presence("timeout", "tab-b2"); // the last one
  presence("join", "tab-a", { id: "1", info: ann.info }); // this tab: ignored
  assert.deepEqual(seen, ["here Ann,Bob", "joining Cat", "leaving Bob"]);
  assert.deepEqual(room.members().map((m) => m.id), ["1", "3"]);

  pubnub.message({ channel: name, message: { event: "client-typing", data: { field: "text" }, user_id: "3", exclude: "tab-c" } });
  pubnub.message({ channel: name, message: { event: "client-typing", data: { mine: true }, user_id: "1", exclude: rt.socketId() } });
  assert.deepEqual(heard, [[{ field: "text" }, "3"]], "own whispers are dropped");
  await room.whisper("typing", { field: "done" });
  assert.deepEqual(pubnub.published, [
    { channel: name, message: { event: "client-typing", data: { field: "done" }, exclude: rt.socketId(), user_id: "1" } },
  ]);
});

test("pubnub: many members (interval events) refresh the list; differences become joins and leaves", async () => {
  const fetch = fakeFetch(() => ({ body: { token: "t", channel_data: ann } }));
  const rt = track(connect({ backend: "pubnub", subscribeKey: "sub", userId: "tab-a", PubNub: FakePubNub, fetch }));
  await rt.ready(); // the client is made once the user id is known
  const pubnub = FakePubNub.last;
  await rt.ready();
  const room = rt.join("room");
  const seen = watch(room);
  await until(() => pubnub.subscribeCalls.length === 1);
  pubnub.status({ category: "PNConnectedCategory", subscribedChannels: ["presence-room"] });
  await until(() => seen.length === 1);
  pubnub.occupants["presence-room"] = [{ uuid: "tab-b", state: { id: "2", info: bob.info } }];
  pubnub.presence({ action: "interval", channel: "presence-room", join: ["tab-b"] });
  await until(() => seen.length === 2);
  assert.deepEqual(seen, ["here Ann", "joining Bob"]);
  // Whispering needs the publish key.
  rt.onError(() => {});
  await assert.rejects(room.whisper("typing"), (error) => error.code === "unsupported" && /needs publishKey/.test(error.message));
});

// Firebase -----------------------------------------------------------------------------------

test("firebase: a protected channel signs in with the custom token before listening", async () => {
  const firebase = fakeFirebase();
  const fetch = fakeFetch(() => ({ body: { token: "custom-token" } }));
  const rt = track(connect({ backend: "firebase", databaseURL: "https://x.firebaseio.com", apiKey: "k", firebase, fetch }));
  firebase.setValue(".info/connected", true);
  const channel = rt.private("todo.todolist.1");
  await channel.ready;
  assert.deepEqual(firebase.calls.find((call) => call[0] === "signIn"), ["signIn", firebase.calls[0][2], "custom-token"]);
  assert.ok(firebase.children.has("rtbridge/private-todo~todolist~1"));
});

test("firebase: without the auth functions the error says what to pass", async () => {
  const firebase = fakeFirebase();
  delete firebase.signInWithCustomToken;
  const fetch = fakeFetch(() => ({ body: { token: "custom-token" } }));
  const rt = track(connect({ backend: "firebase", databaseURL: "https://x.firebaseio.com", apiKey: "k", firebase, fetch }));
  firebase.setValue(".info/connected", true);
  rt.onError(() => {});
  await assert.rejects(rt.private("x").ready, /needs config\.firebase\.signInWithCustomToken; pass the functions of "firebase\/auth" too/);
});

test("firebase: presence under <root>/presence/<channel>/<member>/<tab> with onDisconnect; per-user joins; whispers pushed", async () => {
  const firebase = fakeFirebase();
  const fetch = fakeFetch(() => ({ body: { token: "custom-token", channel_data: { id: "a.b/1", info: ann.info } } }));
  const rt = track(connect({ backend: "firebase", databaseURL: "https://x.firebaseio.com", apiKey: "k", firebase, fetch }));
  firebase.setValue(".info/connected", true);
  const room = rt.join("todo.todoitem.7");
  const seen = watch(room);
  const heard = [];
  room.listenForWhisper("typing", (data, meta) => heard.push([data, meta.user_id]));
  await room.ready;
  const me = rt.socketId();
  const path = "rtbridge/presence/presence-todo~todoitem~7";
  const mine = `${path}/a%2Eb%2F1/${me}`;
  assert.deepEqual(firebase.writes.slice(0, 2), [
    ["onDisconnect.remove", mine],
    ["set", mine, { id: "a.b/1", info: ann.info, ts: { ".sv": "timestamp" } }],
  ]);
  const tree = (members) => members;
  firebase.setValue(path, tree({ "a%2Eb%2F1": { [me]: { id: "a.b/1", info: ann.info } }, u2: { t1: { id: "2", info: bob.info } } }));
  firebase.setValue(path, tree({ "a%2Eb%2F1": { [me]: { id: "a.b/1", info: ann.info } }, u2: { t1: { id: "2", info: bob.info }, t2: { id: "2", info: bob.info } } }));
  firebase.setValue(path, tree({ "a%2Eb%2F1": { [me]: { id: "a.b/1", info: ann.info } }, u2: { t2: { id: "2", info: bob.info } } }));
  firebase.setValue(path, tree({ "a%2Eb%2F1": { [me]: { id: "a.b/1", info: ann.info } } }));
  assert.deepEqual(seen, ["here Ann,Bob", "leaving Bob"], "Bob's second tab is no join; his last tab's leave is");

  const channelPath = "rtbridge/presence-todo~todoitem~7";
  firebase.add(channelPath, "-k1", { event: "client-typing", data: { field: "text" }, ts: Date.now() + 1000, user_id: "2", exclude: "other" });
  assert.deepEqual(heard, [[{ field: "text" }, "2"]]);
  await room.whisper("typing", { field: "done" });
  assert.deepEqual(firebase.writes.at(-1), [
    "push",
    channelPath,
    { event: "client-typing", data: { field: "done" }, ts: { ".sv": "timestamp" }, exclude: me, user_id: "a.b/1" },
  ]);

  // After a reconnect this tab is written again and `here` comes again.
  firebase.setValue(".info/connected", false);
  firebase.setValue(".info/connected", true);
  await tick();
  assert.deepEqual(firebase.writes.slice(-2).map((write) => write[0]), ["onDisconnect.remove", "set"]);
  firebase.setValue(path, tree({ "a%2Eb%2F1": { [me]: { id: "a.b/1", info: ann.info } } }));
  assert.equal(seen.at(-1), "here Ann");

  room.leave();
  await tick();
  assert.deepEqual(firebase.writes.slice(-2), [["onDisconnect.cancel", mine], ["remove", mine]]);
});

test("pubnub: an expired token on channels we had is renewed from the auth endpoint; a refusal then ends the channel", async () => {
  let issued = 0;
  const asked = new Map();
  const fetch = fakeFetch(({ body }) => {
    const times = (asked.get(body.channel_name) ?? 0) + 1;
    asked.set(body.channel_name, times);
    if (body.channel_name === "private-b" && times > 1) return { status: 403, body: { error: { code: "forbidden", message: "no longer" } } };
    return { body: { token: `token-${++issued}` } };
  });
  const rt = track(connect({ backend: "pubnub", subscribeKey: "sub", userId: "tab-a", PubNub: FakePubNub, fetch }));
  await rt.ready(); // the client is made once the user id is known
  const pubnub = FakePubNub.last;
  await rt.ready();
  const a = rt.private("a");
  const b = rt.private("b");
  const errors = [];
  b.onError((error) => errors.push(error.code));
  await until(() => pubnub.subscribeCalls.length === 2);
  pubnub.status({ category: "PNConnectedCategory", subscribedChannels: ["private-a", "private-b"] });
  await Promise.all([a.ready, b.ready]);
  const before = pubnub.tokens.length;
  pubnub.status({ category: "PNAccessDeniedCategory", affectedChannels: ["private-a", "private-b"] });
  await until(() => errors.length === 1);
  assert.deepEqual(errors, ["forbidden"]);
  assert.equal(pubnub.tokens.length, before + 1, "a new token for the channel still granted");
  assert.deepEqual(pubnub.subscribeCalls.at(-1), { channels: ["private-a"], withPresence: false });
  assert.deepEqual(pubnub.unsubscribed, ["private-b"]);
  assert.equal(b.subscribed, false);
});
