// The hosted transports against small stand-ins for pusher-js, the PubNub SDK and Firebase's modular SDK.
import assert from "node:assert/strict";
import { test } from "node:test";

import { connect, encodeForFirebase } from "../src/rtbridge.js";
import { pushIdPrefix } from "../src/transports/firebase.js";
import { fakeFetch, grantingFetch, tick, until } from "./helpers/fakes.js";
import { FakePubNub, FakePusher, fakeFirebase } from "./helpers/sdks.js";

// pusher-js ----------------------------------------------------------------------------------

test("pusher: options, states, socket id, events, errors and unsubscribe", async () => {
  const rt = connect({ backend: "pusher", key: "app-key", wsHost: "127.0.0.1", wsPort: 6001, forceTLS: false, Pusher: FakePusher, fetch: grantingFetch() });
  const pusher = FakePusher.last;
  assert.equal(pusher.key, "app-key");
  const { channelAuthorization, ...options } = pusher.options;
  assert.equal(typeof channelAuthorization.customHandler, "function");
  assert.deepEqual(
    options,
    { cluster: "mt1", wsHost: "127.0.0.1", wsPort: 6001, wssPort: 6001, forceTLS: false, enabledTransports: ["ws", "wss"], disableStats: true },
  );
  const states = [];
  rt.onState((state) => states.push(state));
  const seen = [];
  const sub = rt.subscribe("todo.todoitem", { todo_list_id: 1 }, (event, data) => seen.push([event, data]));
  pusher.setState("connected", "123.456");
  assert.equal(rt.socketId(), "123.456");
  await tick();
  const channel = pusher.channels.get("todo.todoitem;todo_list_id=1");
  channel.subscribed = true;
  channel.emit("pusher:subscription_succeeded", {});
  await sub.ready;
  channel.emit("created", { id: 1 });
  channel.emit("pusher_internal:member_added", {});
  assert.deepEqual(seen, [["created", { id: 1 }]]);

  // A reconnect: pusher-js resubscribes by itself; the client fires resubscribed once, binds nothing twice.
  const resubscribed = [];
  rt.onResubscribed((name) => resubscribed.push(name));
  pusher.setState("unavailable");
  pusher.setState("connecting");
  pusher.setState("connected", "789.1");
  await tick();
  assert.deepEqual(resubscribed, ["todo.todoitem;todo_list_id=1"]);
  channel.emit("updated", { id: 1 });
  assert.deepEqual(seen.at(-1), ["updated", { id: 1 }]);
  assert.equal(seen.length, 2);
  assert.deepEqual(states, ["connecting", "connected", "reconnecting", "connected"]);

  const refused = rt.subscribe("private-todo.todolist.1", () => {});
  await tick();
  pusher.channels.get("private-todo.todolist.1").emit("pusher:subscription_error", { type: "AuthError", error: "denied", status: 403 });
  await assert.rejects(refused.ready, (error) => error.code === 403 && error.reason === "denied" && error.channel === "private-todo.todolist.1");

  sub.unsubscribe();
  await tick();
  assert.deepEqual(pusher.unsubscribed, ["todo.todoitem;todo_list_id=1"]);
  // pusher-js may return the same Channel object to a new subscribe: bound once, not twice.
  const again = rt.subscribe("todo.todoitem", { todo_list_id: 1 }, (event, data) => seen.push(["again", event]));
  await tick();
  channel.emit("pusher:subscription_succeeded", {});
  await again.ready;
  channel.emit("created", { id: 3 });
  assert.deepEqual(seen.slice(2), [["again", "created"]]);
  rt.disconnect();
  assert.ok(pusher.disconnected);
});

test("pusher: a channel refused when pusher-js subscribes again after a reconnect is revoked, not silent", async () => {
  const fetch = grantingFetch();
  const rt = connect({ backend: "pusher", key: "k", Pusher: FakePusher, fetch });
  const pusher = FakePusher.last;
  pusher.setState("connected", "1.1");
  const errors = [];
  const sub = rt.subscribe("private-room", () => {});
  sub.onError((error) => errors.push(error));
  await tick();
  const channel = pusher.channels.get("private-room");
  await channel.auth;
  channel.subscribed = true;
  channel.emit("pusher:subscription_succeeded", {});
  await sub.ready;
  // The app ended the user's connections (revoke); pusher-js reconnects and subscribes again,
  // and Django's rule refuses now.
  channel.emit("pusher:subscription_error", { type: "AuthError", error: "forbidden", status: 403 });
  await tick();
  assert.equal(errors.length, 1, "the app is told");
  assert.equal(errors[0].channel, "private-room");
  assert.deepEqual(pusher.unsubscribed, ["private-room"], "the subscription is over");
  rt.disconnect();
});

test("pusher: cluster config without wsHost", () => {
  const rt = connect({ backend: "pusher", key: "k", cluster: "eu", Pusher: FakePusher });
  const { channelAuthorization, ...options } = FakePusher.last.options;
  assert.deepEqual(options, { cluster: "eu" });
  rt.disconnect();
});

test("pusher: a missing SDK says how to supply it; the global one is found", () => {
  assert.throws(
    () => connect({ backend: "pusher", key: "k" }),
    /needs the Pusher SDK, which was neither passed nor found as globalThis.Pusher\. Load pusher-js .* or pass it: import Pusher from "pusher-js"; connect\(\{\.\.\., Pusher\}\)/,
  );
  globalThis.Pusher = FakePusher;
  try {
    connect({ backend: "pusher", key: "global" }).disconnect();
    assert.equal(FakePusher.last.key, "global");
  } finally {
    delete globalThis.Pusher;
  }
});

// PubNub -------------------------------------------------------------------------------------

test("pubnub: config, encoded channels, messages, exclude, reconnect and access denied", async () => {
  const fetch = fakeFetch(({ body }) => ({ body: { token: `token-${body.channel_name}` } }));
  const rt = connect({ backend: "pubnub", subscribeKey: "sub-c-1", origin: "127.0.0.1:9", ssl: false, userId: "me", PubNub: FakePubNub, fetch });
  await rt.ready(); // the client is made once the user id is known
  const pubnub = FakePubNub.last;
  assert.deepEqual(pubnub.config, { subscribeKey: "sub-c-1", userId: "me", origin: "127.0.0.1:9", ssl: false, enableEventEngine: false });
  // The PubNub user id is the device's; the socket id (exclude) is this page load's.
  assert.notEqual(rt.socketId(), "me");
  const seen = [];
  const sub = rt.subscribe("todo.todoitem", { todo_list_id: 1 }, (event, data, meta) => seen.push([event, data, meta.channel]));
  await tick();
  assert.deepEqual(pubnub.subscribed, ["todo~todoitem;todo_list_id=1"]);
  pubnub.status({ category: "PNConnectedCategory", affectedChannels: ["todo~todoitem;todo_list_id=1"] });
  await sub.ready;
  pubnub.message({ channel: "todo~todoitem;todo_list_id=1", message: { event: "created", data: { id: 1 } }, timetoken: "1" });
  pubnub.message({ channel: "todo~todoitem;todo_list_id=1", message: { event: "created", data: { id: 2 }, exclude: rt.socketId() } });
  pubnub.message({ channel: "todo~todoitem;todo_list_id=1", message: { event: "created", data: { id: 3 }, exclude: "me" } });
  pubnub.message({ channel: "other", message: { event: "created", data: {} } });
  assert.deepEqual(seen, [
    ["created", { id: 1 }, "todo.todoitem;todo_list_id=1"],
    ["created", { id: 3 }, "todo.todoitem;todo_list_id=1"],
  ], "another tab of this device (same user id) gets what this one excluded");

  const resubscribed = [];
  rt.onResubscribed((name) => resubscribed.push(name));
  pubnub.status({ category: "PNDisconnectedUnexpectedlyCategory" });
  assert.equal(rt.state, "reconnecting");
  pubnub.status({ category: "PNConnectedCategory", affectedChannels: ["todo~todoitem;todo_list_id=1"] });
  await tick();
  assert.equal(rt.state, "connected");
  assert.deepEqual(resubscribed, ["todo.todoitem;todo_list_id=1"]);
  assert.deepEqual(pubnub.subscribed, ["todo~todoitem;todo_list_id=1"], "the SDK resubscribes, not us");

  const refused = rt.subscribe("private-x", () => {});
  await until(() => pubnub.subscribed.includes("private-x"));
  assert.deepEqual(pubnub.tokens, ["token-private-x"], "the auth answer's token is given to the SDK");
  // PubNub's 403 names the refused channels: that one leaves the subscription, the others go on.
  pubnub.status({ category: "PNAccessDeniedCategory", error: true, errorData: { payload: { channels: ["private-x"] } } });
  await assert.rejects(refused.ready, (error) => error.code === 403 && error.channel === "private-x");
  assert.deepEqual(pubnub.unsubscribed, ["private-x"]);

  sub.unsubscribe();
  await tick();
  assert.deepEqual(pubnub.unsubscribed, ["private-x", "todo~todoitem;todo_list_id=1"]);
  rt.disconnect();
  assert.equal(pubnub.listeners.length, 0);
});

test("pubnub: a refusal of channels that worked is an outage: not connected, restarted by subscribing again", async () => {
  const rt = connect({ backend: "pubnub", subscribeKey: "k", userId: "me", PubNub: FakePubNub, reconnect: { initialDelay: 10, maxDelay: 10 } });
  await rt.ready();
  const pubnub = FakePubNub.last;
  const states = [];
  rt.onState((state) => states.push(state));
  const resubscribed = [];
  rt.onResubscribed((name) => resubscribed.push(name));
  const sub = rt.subscribe("todo.todoitem", () => {});
  await tick();
  pubnub.status({ category: "PNConnectedCategory", affectedChannels: ["todo~todoitem"] });
  await sub.ready;
  // The service refuses the running subscription (a 403 for every channel of the page).
  pubnub.status({ category: "PNAccessDeniedCategory", error: true, errorData: { payload: { channels: ["todo~todoitem"] } } });
  assert.equal(rt.state, "reconnecting", "a refused page is not connected");
  assert.deepEqual(pubnub.unsubscribed, [], "a channel that worked is kept for the retry");
  // The retry subscribes again (so the SDK announces the next success as PNConnectedCategory).
  await until(() => pubnub.subscribeCalls.length === 2);
  assert.deepEqual(pubnub.subscribeCalls[1], { channels: ["todo~todoitem"] });
  pubnub.status({ category: "PNConnectedCategory", affectedChannels: ["todo~todoitem"], subscribedChannels: ["todo~todoitem"] });
  await tick();
  assert.equal(rt.state, "connected");
  assert.deepEqual(states, ["connected", "reconnecting", "connected"], "onState reports the current state first");
  assert.deepEqual(resubscribed, ["todo.todoitem"], "the channel resumes (history) after the outage");
  rt.disconnect();
});

test("pubnub: a missing SDK says how to supply it", () => {
  assert.throws(() => connect({ backend: "pubnub", subscribeKey: "k" }), /needs the PubNub SDK.*import PubNub from "pubnub"; connect\(\{\.\.\., PubNub\}\)/);
});

// Firebase -----------------------------------------------------------------------------------

test("firebase: listens under <root>/<encoded channel> for children added after subscribe", async () => {
  const firebase = fakeFirebase();
  const rt = connect({
    backend: "firebase",
    databaseURL: "https://demo-rtbridge-default-rtdb.firebaseio.com",
    root: "rtbridge",
    emulatorHost: "127.0.0.1:9000",
    firebase,
  });
  assert.deepEqual(firebase.calls.slice(0, 3).map((call) => call[0]), ["initializeApp", "getDatabase", "emulator"]);
  assert.deepEqual(firebase.calls[2], ["emulator", "127.0.0.1", 9000]);
  assert.equal(rt.state, "connecting");
  firebase.setValue(".info/serverTimeOffset", 60000);
  firebase.setValue(".info/connected", true);
  assert.equal(rt.state, "connected");
  const seen = [];
  const before = Date.now();
  const sub = rt.subscribe("todo.todoitem", { todo_list_id: 1 }, (event, data, meta) => seen.push([event, data, meta.ts]));
  await sub.ready;
  const path = `rtbridge/${encodeForFirebase("todo.todoitem;todo_list_id=1")}`;
  assert.equal(path, "rtbridge/todo~todoitem;todo_list_id=1");
  const { since } = firebase.children.get(path);
  const serverNow = before + 60000;
  assert.ok(since >= pushIdPrefix(serverNow - 10000) && since <= pushIdPrefix(Date.now() + 50000), "starts at the server's now less 10 s");
  firebase.add(path, "-Nabb", { event: "created", data: { id: 0 }, ts: serverNow - 5000 }); // before subscribe
  firebase.add(path, "-Nabc", { event: "created", data: { id: 1 }, ts: serverNow + 5 });
  firebase.add(path, "-Nabd", { event: "created", data: { id: 2 }, ts: serverNow + 6, exclude: rt.socketId() });
  assert.deepEqual(seen, [["created", { id: 1 }, serverNow + 5]]);

  firebase.setValue(".info/connected", false);
  assert.equal(rt.state, "reconnecting");
  firebase.setValue(".info/connected", true);
  await tick();
  assert.equal(firebase.children.get(path).since, since, "the SDK's listener is kept through reconnects");

  const errors = [];
  sub.onError((error) => errors.push(error));
  firebase.children.get(path).cancel({ code: "PERMISSION_DENIED", message: "permission_denied" });
  assert.equal(errors[0].code, "PERMISSION_DENIED");
  sub.unsubscribe();
  rt.disconnect();
  assert.deepEqual(firebase.calls.at(-1), ["goOffline"]);
});

test("firebase: push-id prefixes sort like time", () => {
  assert.equal(pushIdPrefix(0), "--------");
  assert.ok(pushIdPrefix(1700000000000) < pushIdPrefix(1700000000001));
  // A push id generated at that millisecond sorts after the prefix.
  assert.ok(`${pushIdPrefix(1700000000000)}abcdefghijkl` > pushIdPrefix(1700000000000));
});

test("firebase: a missing SDK or function says how to supply it", () => {
  assert.throws(() => connect({ backend: "firebase", databaseURL: "x" }), /needs the firebase SDK.*import \* as database from "firebase\/database"/);
  assert.throws(() => connect({ backend: "firebase", databaseURL: "x", firebase: { getDatabase() {} } }), /config\.firebase\.ref is missing/);
});
