// The selfhosted transport against the REAL rtbridge server (Python, started by the test).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import WebSocket from "ws";

import { connect, filterChannel } from "../src/rtbridge.js";
import { grantingFetch, until } from "./helpers/fakes.js";
import { RealServer, pythonAvailable, PYTHON } from "./helpers/server.js";

const IN_CI = ["1", "true", "yes"].includes((process.env.CI ?? "").toLowerCase());
let server;
let skip = false;
let protocol = 0; // the server's wire protocol (its welcome's "protocol")

before(async () => {
  if (!pythonAvailable()) {
    if (IN_CI) throw new Error(`no Python at ${PYTHON} (set RTBRIDGE_PYTHON) under CI=true`);
    skip = `no Python at ${PYTHON}; set RTBRIDGE_PYTHON to run the integration tests`;
    return;
  }
  server = await RealServer.start();
  const socket = new WebSocket(server.url);
  protocol = await new Promise((resolve, reject) => {
    socket.once("message", (text) => resolve(JSON.parse(text).protocol));
    socket.once("error", reject);
  });
  socket.close();
});

/**
 * Run `body`, which needs protocol 2 (positions, resume; issue 12's server part). Against an
 * older server it must fail: a strict expected failure, so it cannot pass by accident.
 */
async function needsProtocol2(t, body) {
  if (protocol >= 2) return body();
  await assert.rejects(body, "passes against a protocol-1 server: drop needsProtocol2 here");
  t.diagnostic(`expected failure against protocol ${protocol}: needs the issue 12 server part`);
}

/** A WebSocket the test can cut, and keep away from the server while `blocked`. */
class Cuttable extends WebSocket {
  static last = null;
  static blocked = false;
  constructor(url) {
    super(Cuttable.blocked ? "ws://127.0.0.1:1/refused" : url);
    if (!Cuttable.blocked) Cuttable.last = this;
  }
}

after(async () => {
  await server?.close();
});

function client(t, options = {}) {
  if (skip) return t.skip(skip);
  const rt = connect({ backend: "local", url: server.url, WebSocket, reconnect: { initialDelay: 50, maxDelay: 200 }, ...options });
  t.after(() => rt.disconnect());
  return rt;
}

/** Collect messages as [channel, event, data] and wait for a count. */
function inbox() {
  const items = [];
  return {
    items,
    handler: (channel) => (event, data, meta) => items.push([channel ?? meta.channel, event, data, meta.offset]),
    wait: (count, what = `${count} message(s)`) => until(() => items.length >= count, 5000, what),
  };
}

test("subscribe with filters receives what Python publishes on the filter channel", async (t) => {
  const rt = client(t);
  if (!rt) return;
  await rt.ready();
  assert.match(rt.socketId(), /^[0-9a-f]+\.\d+$/);
  const box = inbox();
  const sub = rt.subscribe("todo.todoitem", { todo_list__id: 1 }, box.handler());
  await sub.ready;
  await server.publish(filterChannel("todo.todoitem", { todo_list_id: 1 }), "created", { id: 5, text: "milk" });
  await server.publish("todo.todoitem;todo_list_id=2", "created", { id: 6 }); // another list
  await server.publish("todo.todoitem;todo_list_id=1", "updated", { id: 5, done: true });
  await box.wait(2);
  assert.deepEqual(
    box.items.map((item) => item.slice(0, 3)),
    [
      ["todo.todoitem;todo_list_id=1", "created", { id: 5, text: "milk" }],
      ["todo.todoitem;todo_list_id=1", "updated", { id: 5, done: true }],
    ],
  );
  // Protocol 2: contiguous offsets per channel, assigned at publish time.
  await needsProtocol2(t, async () => {
    const [first, second] = box.items.map((item) => item[3]);
    assert.equal(typeof first, "number");
    assert.equal(second, first + 1);
  });
});

test("a socket cut while messages are published: the resume replays them in order, recovered, no gap", async (t) => {
  const rt = client(t, { WebSocket: Cuttable, reconnect: { initialDelay: 20, maxDelay: 50 } });
  if (!rt) return;
  await needsProtocol2(t, async () => {
    const box = inbox();
    const events = [];
    rt.onGap((channel, info) => events.push(["gap", info.recovered]));
    rt.onResubscribed((channel, info) => events.push(["resubscribed", info.recovered]));
    const sub = rt.subscribe("chat.resume", box.handler());
    await sub.ready;
    await server.publish("chat.resume", "said", { n: 1 });
    await box.wait(1);
    Cuttable.blocked = true;
    Cuttable.last.terminate();
    await until(() => rt.state === "reconnecting", 5000, "reconnecting");
    for (const n of [2, 3, 4]) await server.publish("chat.resume", "said", { n });
    Cuttable.blocked = false;
    await until(() => events.length === 1, 10000, "the resume");
    await box.wait(4, "the replayed messages");
    await server.publish("chat.resume", "said", { n: 5 });
    await box.wait(5);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(box.items.map((item) => item[2].n), [1, 2, 3, 4, 5], "every message once, in order");
    const offsets = box.items.map((item) => item[3]);
    assert.deepEqual(offsets, offsets.map((_, index) => offsets[0] + index));
    assert.deepEqual(events, [["resubscribed", true]]);
  });
  Cuttable.blocked = false;
});

test("channel().listen() gets only its event; exclude skips the sender", async (t) => {
  const rt = client(t);
  if (!rt) return;
  const names = [];
  const channel = rt.channel("todo.todolist.1").listen("renamed", (data) => names.push(data.name));
  await channel.ready;
  await server.publish("todo.todolist.1", "deleted", {});
  await server.publish("todo.todolist.1", "renamed", { name: "mine" }, rt.socketId());
  await server.publish("todo.todolist.1", "renamed", { name: "Groceries" });
  await until(() => names.length >= 1);
  assert.deepEqual(names, ["Groceries"]);
});

test("unsubscribe stops delivery; the server's refusal reaches ready with its code", async (t) => {
  const rt = client(t);
  if (!rt) return;
  const box = inbox();
  const gone = rt.subscribe("chat.a", box.handler());
  const kept = rt.subscribe("chat.b", box.handler());
  await Promise.all([gone.ready, kept.ready]);
  gone.unsubscribe();
  await server.publish("chat.a", "said", { n: 1 });
  await server.publish("chat.b", "said", { n: 2 });
  await box.wait(1);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(box.items.map((item) => item[0]), ["chat.b"]);

  // A forged token (a fetch() stand-in plays the auth endpoint) is refused by the server.
  const forged = client(t, { fetch: grantingFetch() });
  forged.onError(() => {});
  const refused = forged.subscribe("private-todo.todolist.1", () => {});
  await assert.rejects(refused.ready, (error) => {
    assert.equal(error.code, 4403);
    assert.ok(error.reason, "the server's reason is kept");
    return true;
  });
});

test("after the server restarts: reconnect, resubscribe, resubscribed hook, no duplicates", async (t) => {
  const rt = client(t);
  if (!rt) return;
  const states = [];
  rt.onState((state) => states.push(state));
  const box = inbox();
  const sub = rt.subscribe("todo.todoitem", { todo_list_id: 9 }, box.handler());
  const resubscribed = [];
  sub.onResubscribed((channel) => resubscribed.push(channel));
  await sub.ready;
  const firstId = rt.socketId();

  await server.send({ cmd: "stop" });
  await until(() => rt.state === "reconnecting", 15000, `reconnecting (states: ${states})`);
  await server.send({ cmd: "start" });
  await until(() => resubscribed.length === 1, 10000, "the resubscribe");
  assert.equal(rt.state, "connected");
  assert.notEqual(rt.socketId(), firstId);
  assert.deepEqual(resubscribed, ["todo.todoitem;todo_list_id=9"]);

  await server.publish("todo.todoitem;todo_list_id=9", "created", { id: 1 });
  await box.wait(1);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(box.items.length, 1, "one handler call, not one per connection");
  assert.deepEqual(states.slice(0, 2), ["connecting", "connected"]);
  assert.ok(states.includes("reconnecting"));
  assert.equal(states.at(-1), "connected");
});

test("heartbeats are answered, so an idle client outlives the server's idle timeout", async (t) => {
  if (skip) return t.skip(skip);
  // A server of its own: heartbeat every 0.2 s, silent clients closed after 1 s.
  const strict = await RealServer.start(["--heartbeat", "0.2", "--idle-timeout", "1"]);
  t.after(() => strict.close());
  const rt = connect({ backend: "local", url: strict.url, WebSocket, reconnect: false });
  t.after(() => rt.disconnect());
  const states = [];
  rt.onState((state) => states.push(state));
  const box = inbox();
  const sub = rt.subscribe("chat.idle", box.handler());
  await sub.ready;
  const socketId = rt.socketId();
  await new Promise((resolve) => setTimeout(resolve, 2500));
  await strict.publish("chat.idle", "said", { n: 1 });
  await box.wait(1);
  assert.equal(rt.socketId(), socketId, "the same connection");
  assert.deepEqual(states, ["connecting", "connected"]);
});
