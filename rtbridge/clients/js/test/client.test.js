// The client core over the null transport: subscriptions, listeners, hooks and bad input.
import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidChannelName, RTBridgeError, backoffDelay, connect, readConfig } from "../src/rtbridge.js";
import { captureConsole, tick } from "./helpers/fakes.js";

const open = async () => {
  const rt = connect({ backend: "null" });
  await rt.ready();
  return rt;
};

test("connect() reports states, ready() and socketId()", async () => {
  const rt = connect({ backend: "null" });
  const states = [];
  rt.onState((state) => states.push(state));
  assert.equal(rt.socketId(), null);
  let readyCalls = 0;
  rt.ready(() => readyCalls++);
  assert.equal(await rt.ready(), rt);
  await tick();
  assert.equal(readyCalls, 1);
  assert.equal(rt.socketId(), "null.1");
  assert.deepEqual(rt.headers(), { "X-RTBridge-Socket-Id": "null.1" });
  rt.disconnect();
  assert.deepEqual(rt.headers(), {});
  assert.deepEqual(states, ["connecting", "connected", "disconnected"]);
  rt.ready(() => readyCalls++); // already connected once: called at once
  await tick();
  assert.equal(readyCalls, 2);
});

test("subscribe() with filters listens on the filter channel and passes event, data, meta", async () => {
  const rt = await open();
  const seen = [];
  const sub = rt.subscribe("todo.todoitem", { todo_list__id: 1 }, (event, data, meta) => seen.push([event, data, meta]));
  assert.equal(sub.channel, "todo.todoitem;todo_list_id=1");
  assert.equal(await sub.ready, sub);
  assert.ok(rt.transport.channels.has("todo.todoitem;todo_list_id=1"));
  rt.transport.deliver(sub.channel, "created", { id: 5 }, { seq: 1 });
  rt.transport.deliver("todo.todoitem", "created", { id: 6 }); // another channel
  assert.deepEqual(seen, [["created", { id: 5 }, { channel: sub.channel, seq: 1 }]]);
  sub.unsubscribe();
  await tick();
  assert.ok(!rt.transport.channels.has(sub.channel));
  rt.transport.deliver(sub.channel, "created", { id: 7 });
  assert.equal(seen.length, 1);
});

test("subscribe() without filters takes the handler second", async () => {
  const rt = await open();
  const seen = [];
  const sub = rt.subscribe("todo.todolist.1", (event) => seen.push(event));
  await sub.ready;
  rt.transport.deliver("todo.todolist.1", "updated", {});
  assert.deepEqual(seen, ["updated"]);
});

test("two subscriptions share one channel; it stays until the last one leaves", async () => {
  const rt = await open();
  const a = [];
  const b = [];
  const first = rt.subscribe("todo.todoitem", (event) => a.push(event));
  const second = rt.subscribe("todo.todoitem", (event) => b.push(event));
  await Promise.all([first.ready, second.ready]);
  first.unsubscribe();
  first.unsubscribe(); // twice is harmless
  await tick();
  assert.ok(rt.transport.channels.has("todo.todoitem"));
  rt.transport.deliver("todo.todoitem", "deleted", {});
  assert.deepEqual([a, b], [[], ["deleted"]]);
  second.unsubscribe();
  await tick();
  assert.ok(!rt.transport.channels.has("todo.todoitem"));
});

test("channel().listen() and stopListening()", async () => {
  const rt = await open();
  const channel = rt.channel("todo.todolist.1");
  assert.equal(rt.channel("todo.todolist.1"), channel);
  const names = [];
  const onRename = (data) => names.push(data.name);
  channel.listen("renamed", onRename).listen("renamed", onRename); // not doubled
  await channel.ready;
  rt.transport.deliver("todo.todolist.1", "renamed", { name: "Groceries" });
  rt.transport.deliver("todo.todolist.1", "deleted", {});
  assert.deepEqual(names, ["Groceries"]);
  channel.stopListening("renamed", onRename);
  rt.transport.deliver("todo.todolist.1", "renamed", { name: "Other" });
  assert.deepEqual(names, ["Groceries"]);
  assert.ok(rt.transport.channels.has("todo.todolist.1"), "an explicit channel stays until leave()");
  rt.leave("todo.todolist.1");
  await tick();
  assert.ok(!rt.transport.channels.has("todo.todolist.1"));
});

test("a throwing handler is reported and does not stop the other handlers", async () => {
  const rt = await open();
  const errors = [];
  const channelErrors = [];
  rt.onError((error) => errors.push(error));
  const seen = [];
  const bad = rt.subscribe("todo.todoitem", () => {
    throw new Error("boom");
  });
  bad.onError((error) => channelErrors.push(error));
  rt.subscribe("todo.todoitem", (event) => seen.push(event));
  rt.channel("todo.todoitem").listen("created", () => seen.push("listener"));
  await bad.ready;
  const logged = await captureConsole(() => rt.transport.deliver("todo.todoitem", "created", {}));
  assert.deepEqual(seen, ["created", "listener"]);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "handler_error");
  assert.equal(errors[0].channel, "todo.todoitem");
  assert.equal(errors[0].cause.message, "boom");
  assert.equal(channelErrors[0], errors[0]);
  assert.match(String(logged.error[0][0]), /a handler threw: boom/);
});

test("an onError hook that throws is logged, not looped", async () => {
  const rt = await open();
  rt.onError(() => {
    throw new Error("hook broke");
  });
  rt.subscribe("x", () => {
    throw new Error("boom");
  });
  await tick();
  const logged = await captureConsole(() => rt.transport.deliver("x", "e", {}));
  assert.equal(logged.error.length, 2);
});

test("gap and resubscribed hooks reach the subscription and the client", async () => {
  const rt = await open();
  const sub = rt.subscribe("todo.todoitem", () => {});
  const gaps = [];
  sub.onGap((channel, info) => gaps.push(["sub", channel, info]));
  rt.onGap((channel, info) => gaps.push(["client", channel, info]));
  await sub.ready;
  rt.transport.gap("todo.todoitem", { reason: "server" });
  assert.deepEqual(gaps, [
    ["sub", "todo.todoitem", { recovered: false, reason: "server" }],
    ["client", "todo.todoitem", { recovered: false, reason: "server" }],
  ]);
  sub.unsubscribe();
});

test("bad input throws at once, naming the value and the rule", () => {
  assert.throws(() => connect({ backend: "nope" }), (error) => {
    assert.ok(error instanceof RTBridgeError);
    assert.match(error.message, /unknown backend "nope"; known backends are local, redis, selfhosted, pusher, pubnub, firebase/);
    return true;
  });
  assert.throws(() => connect({ backend: "toString" }), /unknown backend "toString"/);
  const rt = connect({ backend: "null" });
  assert.throws(() => rt.subscribe("a b", () => {}), InvalidChannelName);
  assert.throws(() => rt.subscribe("todo.todoitem", { "todo list": 1 }, () => {}), /Filter key "todo list" is not allowed/);
  assert.throws(() => rt.subscribe("todo.todoitem", { id: 1 }), /needs a handler function/);
  assert.throws(() => rt.channel("x/y"), /contains "\/"/);
  assert.throws(() => rt.channel("x").listen("", () => {}), /needs an event name/);
  assert.throws(() => rt.onState("nope"), /Expected a function/);
  rt.disconnect();
});

test("connect() without a config reads the page's config element, or says how to add one", async () => {
  assert.throws(() => connect(), /no #rtbridge-config element on this page; add \{% load rtbridge %\}\{% rtbridge_config %\}/);
  globalThis.document = {
    getElementById: (id) => (id === "rtbridge-config" ? { textContent: '{"backend": "null", "extra": 1}' } : null),
  };
  try {
    assert.deepEqual(readConfig(), { backend: "null", extra: 1 });
    const rt = connect({ reconnect: false });
    assert.deepEqual(rt.config, { backend: "null", extra: 1, reconnect: false });
    rt.disconnect();
  } finally {
    delete globalThis.document;
  }
});

test("the locmem backend gets the null transport with one warning", async () => {
  const logged = await captureConsole(async () => {
    connect({ backend: "locmem" }).disconnect();
    connect({ backend: "dummy" }).disconnect();
  });
  assert.equal(logged.warn.length, 1);
  assert.match(logged.warn[0][0], /the "locmem" backend has no client transport/);
});

test("backoff is exponential, capped, with full jitter", () => {
  const options = { initialDelay: 100, maxDelay: 1000 };
  assert.equal(backoffDelay(0, options, () => 0.999999), 99);
  assert.equal(backoffDelay(3, options, () => 0.5), 400);
  assert.equal(backoffDelay(10, options, () => 0.5), 500);
  assert.equal(backoffDelay(10, options, () => 0), 0);
  assert.equal(backoffDelay(1, {}, () => 0.5), 500);
});

test("global.js exposes the module as window.RTBridge", async () => {
  delete globalThis.RTBridge;
  const module = await import("../src/global.js");
  assert.equal(typeof globalThis.RTBridge.connect, "function");
  assert.equal(globalThis.RTBridge.connect, connect, "the same instance as the module");
  assert.ok(module);
  delete globalThis.RTBridge;
});

test("whispers through the null transport: recorded when sent, delivered to listeners", async () => {
  const rt = await open();
  const channel = rt.private("orders");
  const heard = [];
  channel.listenForWhisper("typing", (data, meta) => heard.push([data, meta.user_id]));
  await channel.whisper("typing", { field: "text" });
  assert.deepEqual(rt.transport.whispers, [["private-orders", "typing", { field: "text" }]]);
  rt.transport.deliverWhisper("private-orders", "typing", { field: "done" }, { user_id: "2" });
  assert.deepEqual(heard, [[{ field: "done" }, "2"]]);
  assert.throws(() => channel.whisper("", {}), /needs an event name/);
  rt.disconnect();
});
