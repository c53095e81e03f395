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

before(async () => {
  if (!pythonAvailable()) {
    if (IN_CI) throw new Error(`no Python at ${PYTHON} (set RTBRIDGE_PYTHON) under CI=true`);
    skip = `no Python at ${PYTHON}; set RTBRIDGE_PYTHON to run the integration tests`;
    return;
  }
  server = await RealServer.start();
});

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
    handler: (channel) => (event, data, meta) => items.push([channel ?? meta.channel, event, data, meta.seq]),
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
  assert.deepEqual(box.items, [
    ["todo.todoitem;todo_list_id=1", "created", { id: 5, text: "milk" }, 1],
    ["todo.todoitem;todo_list_id=1", "updated", { id: 5, done: true }, 2],
  ]);
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
