// Continuity on the hosted transports (stand-ins for pusher-js, the PubNub SDK and Firebase's
// SDK): each transport's position extraction from its envelope, own messages as skips, and the
// resume from Django's history endpoint after the SDK's own reconnect.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { connect } from "../src/rtbridge.js";
import { fakeFetch, tick, until } from "./helpers/fakes.js";
import { FakePubNub, FakePusher, fakeFirebase } from "./helpers/sdks.js";

const EPOCH = "k3J9";
const HISTORY = { historyEndpoint: "/rtbridge/history", holdTimeout: 20 };
const clients = [];
afterEach(() => clients.splice(0).forEach((rt) => rt.disconnect()));

/**
 * A fetch() playing Django's history endpoint for every channel: `log[channel]` holds the
 * channel's messages `{event, data, exclude?}` at offsets 1..n of `EPOCH`.
 */
function history(log = {}) {
  return fakeFetch(({ url, body }) => {
    assert.equal(url, "/rtbridge/history");
    const messages = log[body.channel] ?? [];
    if (body.since === null) return { body: { channel: body.channel, offset: messages.length, epoch: EPOCH } }; // the top only
    const { offset, epoch } = body.since;
    if (epoch !== EPOCH) return { body: { channel: body.channel, recovered: false, offset: messages.length, epoch: EPOCH, messages: [] } };
    const missed = messages.slice(offset).map((message, index) => ({ offset: offset + index + 1, exclude: null, ...message }));
    return { body: { channel: body.channel, recovered: true, offset: messages.length, epoch: EPOCH, messages: missed } };
  });
}

function track(rt) {
  clients.push(rt);
  const seen = [];
  const events = [];
  rt.onGap((channel, info) => events.push(["gap", channel, info.reason]));
  rt.onRecovered((channel, info) => events.push(["recovered", channel, info.reason, info.offset]));
  rt.onResubscribed((channel, info) => events.push(["resubscribed", channel, info.recovered]));
  return { rt, seen, events };
}

test("pusher: the {data, offset, epoch} envelope is unwrapped into meta; a reconnect resumes from history", async () => {
  const log = { "todo.todoitem": [{ event: "created", data: { id: 1 } }] };
  const fetch = history(log);
  const { rt, seen, events } = track(connect({ backend: "pusher", key: "k", Pusher: FakePusher, fetch, ...HISTORY }));
  const pusher = FakePusher.last;
  const sub = rt.subscribe("todo.todoitem", (event, data, meta) => seen.push([event, data, meta]));
  pusher.setState("connected", "1.1");
  await until(() => pusher.channels.has("todo.todoitem"), 1000, "the subscribe after the start position");
  assert.deepEqual(fetch.calls[0].body, { channel: "todo.todoitem", since: null, socket_id: "1.1" });
  const channel = pusher.channels.get("todo.todoitem");
  channel.subscribed = true;
  channel.emit("pusher:subscription_succeeded", {});
  await sub.ready;
  log["todo.todoitem"].push({ event: "created", data: { id: 2 } });
  channel.emit("created", { data: { id: 2 }, offset: 2, epoch: EPOCH });
  assert.deepEqual(seen, [["created", { id: 2 }, { channel: "todo.todoitem", offset: 2, epoch: EPOCH }]]);
  // Away: 3 (ours, excluded by Pusher: we never see it live) and 4 are published.
  log["todo.todoitem"].push({ event: "updated", data: { id: 2 }, exclude: "1.1" }, { event: "deleted", data: { id: 1 } });
  pusher.setState("unavailable");
  pusher.setState("connected", "2.2");
  await until(() => events.length === 2, 1000, "the resume");
  assert.deepEqual(fetch.calls.at(-1).body, { channel: "todo.todoitem", since: { offset: 2, epoch: EPOCH }, socket_id: "2.2" });
  assert.deepEqual(seen.slice(1), [["deleted", { id: 1 }, { channel: "todo.todoitem", offset: 4, epoch: EPOCH }]]);
  assert.deepEqual(events, [
    ["recovered", "todo.todoitem", "reconnect", 2],
    ["resubscribed", "todo.todoitem", true],
  ]);
});

test("pusher: without history (no historyEndpoint) the data is passed as it came, even if it looks like an envelope", async () => {
  const { rt, seen } = track(connect({ backend: "pusher", key: "k", Pusher: FakePusher }));
  const pusher = FakePusher.last;
  rt.subscribe("chat.x", (event, data, meta) => seen.push([data, meta]));
  pusher.setState("connected", "1.1");
  await tick();
  pusher.channels.get("chat.x").emit("said", { data: 1, offset: 5, epoch: "x" });
  assert.deepEqual(seen, [[{ data: 1, offset: 5, epoch: "x" }, { channel: "chat.x" }]]);
});

test("pubnub: positions from the envelope; our own message is a skip; a dropped burst is filled from history", async () => {
  const name = "todo~todoitem";
  const log = { "todo.todoitem": [] };
  const fetch = history(log);
  const { rt, seen, events } = track(connect({ backend: "pubnub", subscribeKey: "sub", userId: "me", PubNub: FakePubNub, fetch, ...HISTORY }));
  await rt.ready(); // the SDK is made once the user id is known
  const pubnub = FakePubNub.last;
  const sub = rt.subscribe("todo.todoitem", (event, data, meta) => seen.push([data.n, meta.offset, meta.epoch, meta.timetoken]));
  await until(() => pubnub.subscribed.includes(name));
  pubnub.status({ category: "PNConnectedCategory", affectedChannels: [name] });
  await sub.ready;
  const publish = (n, extra = {}) => {
    log["todo.todoitem"].push({ event: "e", data: { n }, ...extra });
    return { channel: name, timetoken: `t${n}`, message: { event: "e", data: { n }, offset: n, epoch: EPOCH, ...extra } };
  };
  pubnub.message(publish(1));
  pubnub.message(publish(2, { exclude: rt.socketId() })); // our own: not delivered, but the position moves on
  pubnub.message(publish(3));
  assert.deepEqual(seen, [
    [1, 1, EPOCH, "t1"],
    [3, 3, EPOCH, "t3"],
  ]);
  assert.equal(fetch.calls.length, 1, "only the start position: the skip left no hole");
  // A burst of 150: PubNub hands over the newest 100 of one subscribe response.
  const burst = Array.from({ length: 150 }, (_, index) => publish(4 + index));
  burst.slice(50).forEach((message) => pubnub.message(message));
  await until(() => seen.length === 152, 2000, "the burst filled from history");
  assert.deepEqual(seen.map(([n]) => n), Array.from({ length: 153 }, (_, index) => index + 1).filter((n) => n !== 2));
  assert.deepEqual(events, [["recovered", "todo.todoitem", "hole", 3]]);
  // The SDK's "message count exceeded" status (legacy subscribe loop): every channel is filled.
  log["todo.todoitem"].push({ event: "e", data: { n: 154 } });
  pubnub.status({ category: "PNRequestMessageCountExceededCategory" });
  await until(() => seen.length === 153, 1000, "the fill after the status");
  assert.deepEqual(events.at(-1), ["recovered", "todo.todoitem", "missed", 153]);
});

test("pubnub: a failing subscribe loop is reconnecting, restarted with backoff, then resumed from history", async () => {
  const name = "chat~a"; // encodeForPubnub("chat.a")
  const log = { "chat.a": [{ event: "e", data: { n: 1 } }] };
  const fetch = history(log);
  const config = { backend: "pubnub", subscribeKey: "sub", userId: "me", PubNub: FakePubNub, fetch, reconnect: { initialDelay: 1, maxDelay: 1 }, ...HISTORY };
  const { rt, seen, events } = track(connect(config));
  await rt.ready();
  const pubnub = FakePubNub.last;
  const sub = rt.subscribe("chat.a", (event, data) => seen.push(data.n));
  await until(() => pubnub.subscribed.includes(name));
  pubnub.status({ category: "PNConnectedCategory", affectedChannels: [name] });
  await sub.ready;
  // The service answers 5xx until the SDK's retries are spent: it reports the loop as failed.
  pubnub.status({ category: "PNDisconnectedUnexpectedlyCategory", error: "PNNetworkIssuesCategory" });
  assert.equal(rt.state, "reconnecting");
  // Restarted by subscribing again (the SDK then announces the next success as connected).
  await until(() => pubnub.subscribeCalls.length === 2, 3000, "a new subscribe after the backoff");
  assert.deepEqual(pubnub.subscribeCalls[1], { channels: [name] });
  log["chat.a"].push({ event: "e", data: { n: 2 } });
  pubnub.status({ category: "PNConnectedCategory", affectedChannels: [name] });
  assert.equal(rt.state, "connected");
  await until(() => events.length === 2, 1000, "the resume");
  assert.deepEqual(seen, [2]);
  assert.deepEqual(events, [
    ["recovered", "chat.a", "reconnect", 1],
    ["resubscribed", "chat.a", true],
  ]);
});

test("firebase: positions from the written value; our own write is a skip; a reconnect resumes from history", async () => {
  const firebase = fakeFirebase();
  const log = { "chat.f": [] };
  const fetch = history(log);
  const { rt, seen, events } = track(connect({ backend: "firebase", databaseURL: "https://x.firebaseio.com", firebase, fetch, ...HISTORY }));
  firebase.setValue(".info/connected", true);
  const sub = rt.subscribe("chat.f", (event, data, meta) => seen.push([data.n, meta.offset, meta.key]));
  await sub.ready;
  const path = "rtbridge/chat~f";
  const write = (n, extra = {}) => {
    log["chat.f"].push({ event: "e", data: { n }, ...extra });
    firebase.add(path, `-k${n}`, { event: "e", data: { n }, ts: Date.now() + 1000, offset: n, epoch: EPOCH, ...extra });
  };
  write(1);
  write(2, { exclude: rt.socketId() });
  write(3);
  assert.deepEqual(seen, [
    [1, 1, "-k1"],
    [3, 3, "-k3"],
  ]);
  firebase.setValue(".info/connected", false);
  log["chat.f"].push({ event: "e", data: { n: 4 } });
  firebase.setValue(".info/connected", true);
  await until(() => events.length === 2, 1000, "the resume");
  write(5); // the SDK's own replay of what it missed may come too: no duplicate
  firebase.add(path, "-k4", { event: "e", data: { n: 4 }, ts: Date.now() + 1000, offset: 4, epoch: EPOCH });
  assert.deepEqual(seen.map(([n]) => n), [1, 3, 4, 5]);
  assert.deepEqual(events, [
    ["recovered", "chat.f", "reconnect", 3],
    ["resubscribed", "chat.f", true],
  ]);
});
