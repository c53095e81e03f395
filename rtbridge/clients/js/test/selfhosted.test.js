// The self-hosted transport against a fake WebSocket that the test plays as the server (protocol 2).
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { connect } from "../src/rtbridge.js";
import { socketUrl } from "../src/transports/selfhosted.js";
import { FakeWebSocket, captureConsole, grantingFetch, tick, until } from "./helpers/fakes.js";

const clients = [];
afterEach(() => {
  clients.splice(0).forEach((rt) => rt.disconnect());
  FakeWebSocket.all.length = 0;
});

function start(options = {}) {
  const rt = connect({
    backend: "local",
    url: "ws://127.0.0.1:9/rtbridge/ws",
    WebSocket: FakeWebSocket,
    reconnect: { initialDelay: 5, maxDelay: 20 },
    ...options,
  });
  clients.push(rt);
  return rt;
}

test("the welcome connects and gives the socket id", async () => {
  const rt = start();
  const ws = FakeWebSocket.last;
  assert.equal(ws.url, "ws://127.0.0.1:9/rtbridge/ws");
  assert.equal(rt.state, "connecting");
  ws.accept("abc.1");
  assert.equal(rt.state, "connected");
  assert.equal(rt.socketId(), "abc.1");
});

test("subscribe sends a request with an id; the ack resolves ready; unsubscribe is sent", async () => {
  const rt = start();
  const ws = FakeWebSocket.last;
  const sub = rt.subscribe("todo.todoitem", { todo_list_id: 1 }, () => {});
  assert.equal(ws.sent.length, 0, "nothing is sent before the welcome");
  ws.accept();
  await tick();
  const frame = ws.lastSent("subscribe");
  assert.equal(frame.channel, "todo.todoitem;todo_list_id=1");
  assert.equal(typeof frame.id, "number");
  let resolved = false;
  sub.ready.then(() => (resolved = true));
  await tick();
  assert.equal(resolved, false);
  ws.ackAll();
  await tick();
  assert.equal(resolved, true);
  sub.unsubscribe();
  await tick();
  assert.deepEqual(
    { op: ws.lastSent("unsubscribe").op, channel: ws.lastSent("unsubscribe").channel },
    { op: "unsubscribe", channel: "todo.todoitem;todo_list_id=1" },
  );
});

test("an error frame rejects ready with the server's code and reason and reaches onError", async () => {
  const rt = start({ fetch: grantingFetch() });
  const ws = FakeWebSocket.last;
  ws.accept();
  const errors = [];
  rt.onError((error) => errors.push(error));
  const sub = rt.subscribe("private-todo.todolist.1", () => {});
  const subErrors = [];
  sub.onError((error) => subErrors.push(error));
  await until(() => ws.lastSent("subscribe"));
  const { id } = ws.lastSent("subscribe");
  ws.push({ op: "error", id, code: 4403, reason: "a private channel needs a token" });
  await assert.rejects(sub.ready, (error) => {
    assert.equal(error.code, 4403);
    assert.equal(error.reason, "a private channel needs a token");
    assert.equal(error.channel, "private-todo.todolist.1");
    assert.match(error.message, /4403 a private channel needs a token/);
    return true;
  });
  assert.equal(errors[0].code, 4403);
  assert.equal(subErrors[0].code, 4403);
  // A refused channel is not resubscribed after a reconnect.
  ws.drop(1006);
  await until(() => FakeWebSocket.all.length === 2);
  FakeWebSocket.last.accept();
  await tick();
  assert.equal(FakeWebSocket.last.lastSent("subscribe"), undefined);
});

test("an error frame without an id goes to onError", async () => {
  const rt = start();
  const ws = FakeWebSocket.last;
  ws.accept();
  const errors = [];
  rt.onError((error) => errors.push(error));
  ws.push({ op: "error", id: null, code: 4400, reason: "not JSON" });
  ws.push("{not json");
  assert.deepEqual(
    errors.map((error) => error.code),
    [4400, "bad_frame"],
  );
});

test("server heartbeats are answered", async () => {
  start();
  const ws = FakeWebSocket.last;
  ws.accept();
  ws.push({ op: "heartbeat" });
  assert.deepEqual(ws.sent, [{ op: "heartbeat" }]);
});

test("messages carry offset and epoch; a skip moves the position; a hole is filled by subscribing with since", async () => {
  const rt = start();
  const ws = FakeWebSocket.last;
  ws.accept();
  const seen = [];
  const events = [];
  const sub = rt.subscribe("todo.todoitem", (event, data, meta) => seen.push([meta.offset, meta.epoch]));
  sub.onGap((channel, info) => events.push(["gap", info]));
  sub.onRecovered((channel, info) => events.push(["recovered", info]));
  await tick();
  assert.equal(ws.lastSent("subscribe").since, undefined, "the first subscribe has no since");
  ws.ackAll(6, "k3J9");
  await sub.ready;
  const message = (offset, epoch = "k3J9") => ({ op: "message", channel: "todo.todoitem", event: "created", offset, epoch, data: {} });
  ws.push(message(7));
  ws.push(message(6)); // at or before the position: a duplicate
  // A skip (our own change, excluded) moves the position without a delivery and without a gap.
  ws.push({ op: "skip", channel: "todo.todoitem", offset: 8, epoch: "k3J9" });
  ws.push(message(9));
  assert.deepEqual(seen, [
    [7, "k3J9"],
    [9, "k3J9"],
  ]);
  // 10 never came: 11 waits, and the client subscribes again from 9; the server replays 10 and 11.
  ws.push(message(11));
  await until(() => ws.sent.filter((frame) => frame.op === "subscribe").length === 2, 1000, "the fill");
  assert.deepEqual(ws.lastSent("subscribe").since, { offset: 9, epoch: "k3J9" });
  ws.ackAll(11, "k3J9");
  ws.push(message(10));
  ws.push(message(11));
  ws.push(message(12));
  await tick();
  assert.deepEqual(seen.map(([offset]) => offset), [7, 9, 10, 11, 12]);
  assert.deepEqual(events, [["recovered", { recovered: true, reason: "hole", offset: 9, epoch: "k3J9" }]]);
  // The server's gap frame: it could not prove continuity; the position becomes its top.
  ws.push({ op: "gap", channel: "todo.todoitem", offset: 20, epoch: "fresh", recovered: false });
  ws.push(message(21, "fresh"));
  assert.deepEqual(events[1], ["gap", { recovered: false, reason: "server", offset: 20, epoch: "fresh" }]);
  assert.deepEqual(seen.at(-1), [21, "fresh"]);
});

test("after a reconnect each channel resumes with since; recovered true or false reaches the hooks", async () => {
  const rt = start();
  let ws = FakeWebSocket.last;
  ws.accept("a.1");
  const events = [];
  rt.onResubscribed((channel, info) => events.push(["resubscribed", channel, info]));
  rt.onGap((channel, info) => events.push(["gap", channel, info]));
  const seen = [];
  rt.subscribe("chat.a", (event, data, meta) => seen.push(meta.offset));
  rt.subscribe("chat.b", () => {});
  await tick();
  ws.ackAll(3, "E");
  await tick();
  ws.push({ op: "message", channel: "chat.a", event: "said", offset: 4, epoch: "E", data: {} });
  ws.drop(1006);
  await until(() => FakeWebSocket.all.length === 2, 1000, "a new socket");
  ws = FakeWebSocket.last;
  ws.accept("b.2");
  await tick();
  assert.deepEqual(
    ws.sent.filter((frame) => frame.op === "subscribe").map(({ channel, since }) => [channel, since]),
    [
      ["chat.a", { offset: 4, epoch: "E" }],
      ["chat.b", { offset: 3, epoch: "E" }],
    ],
  );
  // chat.a can be replayed (same epoch); chat.b's history is gone (an answer with another epoch).
  const [a, b] = ws.sent.filter((frame) => frame.op === "subscribe");
  ws.push({ op: "ack", id: a.id, channel: "chat.a", offset: 4, epoch: "E", recovered: true });
  ws.push({ op: "message", channel: "chat.a", event: "said", offset: 5, epoch: "E", data: {} });
  ws.push({ op: "ack", id: b.id, channel: "chat.b", offset: 0, epoch: "E2", recovered: false });
  await tick();
  assert.deepEqual(seen, [4, 5]);
  assert.deepEqual(events.sort((x, y) => x[1].localeCompare(y[1]) || x[0].localeCompare(y[0])), [
    ["resubscribed", "chat.a", { recovered: true }],
    ["gap", "chat.b", { recovered: false, reason: "reconnect", offset: 0, epoch: "E2" }],
    ["resubscribed", "chat.b", { recovered: false }],
  ]);
});

test("after a lost connection: backoff, reconnect, resubscribe, resubscribed hooks, no doubled handlers", async () => {
  const rt = start();
  const states = [];
  rt.onState((state) => states.push(state));
  let ws = FakeWebSocket.last;
  ws.accept("a.1");
  const seen = [];
  const resubscribed = [];
  const sub = rt.subscribe("todo.todoitem", (event) => seen.push(event));
  sub.onResubscribed((channel) => resubscribed.push(["sub", channel]));
  rt.onResubscribed((channel) => resubscribed.push(["client", channel]));
  rt.channel("todo.todolist.1").listen("renamed", () => seen.push("renamed"));
  await tick();
  ws.ackAll();
  await sub.ready;

  ws.drop(1006);
  assert.equal(rt.state, "reconnecting");
  assert.equal(rt.socketId(), null);
  await until(() => FakeWebSocket.all.length === 2, 1000, "a new socket");
  ws = FakeWebSocket.last;
  ws.accept("b.2");
  await tick();
  assert.deepEqual(ws.sent.map((frame) => frame.channel).sort(), ["todo.todoitem", "todo.todolist.1"]);
  assert.deepEqual(resubscribed, []);
  ws.ackAll();
  await tick();
  assert.deepEqual(resubscribed.sort(), [["client", "todo.todoitem"], ["client", "todo.todolist.1"], ["sub", "todo.todoitem"]]);
  assert.equal(rt.socketId(), "b.2");
  ws.push({ op: "message", channel: "todo.todoitem", event: "created", offset: 1, epoch: "ep", data: {} });
  ws.push({ op: "message", channel: "todo.todolist.1", event: "renamed", offset: 1, epoch: "ep", data: {} });
  assert.deepEqual(seen, ["created", "renamed"]);
  assert.deepEqual(states, ["connecting", "connected", "reconnecting", "connected"]);
});

test("a request cut by a lost connection is retried after the reconnect, and ready resolves then", async () => {
  const rt = start();
  let ws = FakeWebSocket.last;
  ws.accept();
  const sub = rt.subscribe("todo.todoitem", () => {});
  await tick();
  ws.drop(1001);
  await until(() => FakeWebSocket.all.length === 2);
  ws = FakeWebSocket.last;
  ws.accept();
  await tick();
  ws.ackAll();
  const resolved = await sub.ready;
  assert.equal(resolved, sub);
});

test("backoff grows between failed attempts and stops after maxAttempts", async () => {
  const rt = start({ reconnect: { initialDelay: 1, maxDelay: 5, maxAttempts: 3 } });
  const errors = [];
  rt.onError((error) => errors.push(error));
  FakeWebSocket.last.drop(1006); // never accepted: the server is down
  for (let n = 2; n <= 4; n++) {
    await until(() => FakeWebSocket.all.length === n);
    FakeWebSocket.last.drop(1006);
  }
  await tick(30);
  assert.equal(FakeWebSocket.all.length, 4);
  assert.equal(rt.state, "disconnected");
  assert.match(errors[0].message, /not reconnecting/);
});

for (const code of [1000, 4001]) {
  test(`close code ${code} is final: no reconnect`, async () => {
    const rt = start();
    FakeWebSocket.last.accept();
    const logged = await captureConsole(async () => {
      FakeWebSocket.last.drop(code, "bye");
      await tick(40);
    });
    assert.equal(FakeWebSocket.all.length, 1);
    assert.equal(rt.state, "disconnected");
    assert.equal(logged.error.length, code === 1000 ? 0 : 1);
  });
}

test("disconnect() closes the socket and never reconnects", async () => {
  const rt = start();
  const ws = FakeWebSocket.last;
  ws.accept();
  rt.disconnect();
  assert.ok(ws.closedByClient);
  ws.drop(1006); // a late close event from the old socket is ignored
  await tick(40);
  assert.equal(FakeWebSocket.all.length, 1);
  assert.equal(rt.state, "disconnected");
});

test("reconnect: false stays disconnected after a drop", async () => {
  const rt = start({ reconnect: false });
  FakeWebSocket.last.accept();
  await captureConsole(async () => {
    FakeWebSocket.last.drop(1006);
    await tick(20);
  });
  assert.equal(rt.state, "disconnected");
  assert.equal(FakeWebSocket.all.length, 1);
});

test("a silent server (no heartbeat) is dropped and reconnected", async () => {
  const rt = start({ heartbeatGrace: 10 });
  const ws = FakeWebSocket.last;
  ws.accept("a.1", 0.001); // heartbeat every 1 ms: silence for 2 * 1 ms + 10 ms counts as dead
  assert.equal(rt.state, "connected");
  await until(() => FakeWebSocket.all.length === 2, 1000, "the idle drop");
  assert.ok(ws.closedByClient);
});

test("url null means the page's host, ws or wss by the page's scheme", () => {
  globalThis.location = { protocol: "https:", host: "example.test:8443" };
  try {
    assert.equal(socketUrl({ url: null, path: "/rtbridge/ws" }), "wss://example.test:8443/rtbridge/ws");
    globalThis.location.protocol = "http:";
    assert.equal(socketUrl({ url: null, path: "/rt" }), "ws://example.test:8443/rt");
  } finally {
    delete globalThis.location;
  }
  assert.throws(() => socketUrl({ backend: "redis", url: null }), /url=null \(same host as the page\), but there is no page here/);
});

test("no WebSocket implementation: the error says how to pass one", () => {
  const saved = globalThis.WebSocket;
  delete globalThis.WebSocket;
  try {
    assert.throws(() => connect({ backend: "redis", url: "ws://x" }), /pass one, e\.g\. connect\(\{\.\.\., WebSocket\}\)/);
  } finally {
    if (saved) globalThis.WebSocket = saved;
  }
});

test("a refused subscription nobody awaits causes no unhandled rejection", async () => {
  const unhandled = [];
  const onUnhandled = (reason) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    const rt = start({ fetch: grantingFetch() });
    FakeWebSocket.last.accept();
    rt.onError(() => {});
    rt.subscribe("private-x", () => {});
    await until(() => FakeWebSocket.last.lastSent("subscribe"));
    const { id } = FakeWebSocket.last.lastSent("subscribe");
    FakeWebSocket.last.push({ op: "error", id, code: 4403, reason: "no token" });
    await tick(20);
    assert.deepEqual(unhandled, []);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});

test("a connection that never sends the welcome is given up after connectTimeout", async () => {
  const rt = start({ connectTimeout: 20 });
  const first = FakeWebSocket.last;
  await until(() => FakeWebSocket.all.length === 2, 1000, "a second attempt");
  assert.ok(first.closedByClient);
  assert.equal(rt.state, "reconnecting");
  FakeWebSocket.last.accept();
  assert.equal(rt.state, "connected");
});

test("the browser's online event retries at once instead of waiting for the backoff", async () => {
  const target = new EventTarget();
  globalThis.addEventListener = target.addEventListener.bind(target);
  globalThis.removeEventListener = target.removeEventListener.bind(target);
  try {
    const rt = start({ reconnect: { initialDelay: 60000, maxDelay: 60000 } });
    FakeWebSocket.last.accept();
    FakeWebSocket.last.drop(1006);
    assert.equal(rt.state, "reconnecting");
    assert.equal(FakeWebSocket.all.length, 1);
    target.dispatchEvent(new Event("online"));
    assert.equal(FakeWebSocket.all.length, 2);
    target.dispatchEvent(new Event("online")); // a socket is open: nothing more
    assert.equal(FakeWebSocket.all.length, 2);
    FakeWebSocket.last.accept();
    assert.equal(rt.state, "connected");
    rt.disconnect();
    target.dispatchEvent(new Event("online"));
    assert.equal(FakeWebSocket.all.length, 2, "not after disconnect()");
  } finally {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
  }
});
