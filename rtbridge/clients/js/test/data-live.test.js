// Data calls (HTTP through a fetch() stand-in, and over the self-hosted socket) and live
// collections (null transport playing the server, fetch() stand-in playing the routers).
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { RTBridgeError, comparator, connect } from "../src/rtbridge.js";
import { FakeWebSocket, captureConsole, fakeFetch, tick, until } from "./helpers/fakes.js";

const clients = [];
afterEach(() => {
  clients.splice(0).forEach((rt) => rt.disconnect());
  FakeWebSocket.all.length = 0;
  delete globalThis.document;
});

function track(rt) {
  clients.push(rt);
  return rt;
}

// Data calls over HTTP -----------------------------------------------------------------------

test("each verb POSTs JSON to {dataEndpoint}/<route>/<verb> with CSRF and socket id; results are unwrapped", async () => {
  globalThis.document = { cookie: "csrftoken=tok" };
  const fetch = fakeFetch(({ url, body }) => {
    const verb = url.split("/").at(-1);
    if (verb === "get_list") return { body: { data: [{ id: 1 }], page: { number: 1, has_next: false } } };
    if (verb === "create") return { status: 201, body: { data: { id: 9, ...body } } };
    if (verb === "clear_done") return { body: { data: { deleted: 2 }, extra: true } };
    return { body: { data: { id: body.id, verb } } };
  });
  const rt = track(connect({ backend: "null", fetch }));
  await rt.ready();
  assert.deepEqual(await rt.getList("todo-item", { todo_list_id: 1 }, { page: 2, pageSize: 10 }), {
    data: [{ id: 1 }],
    page: { number: 1, has_next: false },
  });
  assert.deepEqual(await rt.getSingle("todo-item", { id: 5 }), { id: 5, verb: "get_single" });
  assert.deepEqual(await rt.create("todo-item", { text: "milk" }), { id: 9, text: "milk" });
  assert.deepEqual(await rt.update("todo-item", { id: 5, done: true }), { id: 5, verb: "update" });
  assert.deepEqual(await rt.delete("todo-item", { id: 5 }), { id: 5, verb: "delete" });
  assert.deepEqual(await rt.call("todo-item", "clear_done", { todo_list_id: 1 }), { data: { deleted: 2 }, extra: true });
  assert.deepEqual(await rt.callRouter("get_single", "todo-item", { id: 3 }), { data: { id: 3, verb: "get_single" } });
  assert.deepEqual(
    fetch.calls.map((call) => [call.url, call.body]),
    [
      ["/rtbridge/data/todo-item/get_list", { todo_list_id: 1, page: 2, page_size: 10 }],
      ["/rtbridge/data/todo-item/get_single", { id: 5 }],
      ["/rtbridge/data/todo-item/create", { text: "milk" }],
      ["/rtbridge/data/todo-item/update", { id: 5, done: true }],
      ["/rtbridge/data/todo-item/delete", { id: 5 }],
      ["/rtbridge/data/todo-item/clear_done", { todo_list_id: 1 }],
      ["/rtbridge/data/todo-item/get_single", { id: 3 }],
    ],
  );
  for (const call of fetch.calls) {
    assert.equal(call.method, "POST");
    assert.equal(call.credentials, "same-origin");
    assert.equal(call.headers["X-CSRFToken"], "tok");
    assert.equal(call.headers["X-RTBridge-Socket-Id"], "null.1");
  }
});

test("router errors reject with status, code, reason and per-field messages", async () => {
  const fetch = fakeFetch(() => ({
    status: 422,
    body: { error: { code: "invalid", message: "Some values are not valid.", fields: { text: ["This field cannot be blank."] } } },
  }));
  const rt = track(connect({ backend: "null", fetch, dataEndpoint: "http://127.0.0.1:9/api" }));
  await assert.rejects(rt.create("todo-item", { text: "" }), (error) => {
    assert.ok(error instanceof RTBridgeError);
    assert.equal(error.status, 422);
    assert.equal(error.code, "invalid");
    assert.equal(error.reason, "Some values are not valid.");
    assert.deepEqual(error.fields, { text: ["This field cannot be blank."] });
    assert.match(error.message, /todo-item\/create failed: 422 invalid: Some values are not valid\./);
    return true;
  });
  assert.equal(fetch.calls[0].url, "http://127.0.0.1:9/api/todo-item/create");
  const down = track(connect({ backend: "null", fetch: async () => Promise.reject(new TypeError("fetch failed")) }));
  await assert.rejects(down.getList("todo-item"), (error) => error.code === "network_error" && error.status === 0);
});

test("Django's HTML 500 page (an exception in a router) rejects with code server_error, not a parse error", async () => {
  const rt = track(connect({ backend: "null", fetch: fakeFetch(() => ({ status: 500, body: "<h1>Server Error (500)</h1>" })) }));
  await assert.rejects(rt.update("todo-item", { id: 1 }), (error) => {
    assert.equal(error.code, "server_error");
    assert.match(error.message, /answered 500 .*Server Error \(500\).*the server's log has the error/);
    return true;
  });
});

test("without fetch() the error says how to pass one", async () => {
  const saved = globalThis.fetch;
  delete globalThis.fetch;
  try {
    const rt = track(connect({ backend: "null" }));
    await assert.rejects(rt.getList("todo-item"), /no fetch\(\); pass one: connect\(\{\.\.\., fetch\}\)/);
  } finally {
    globalThis.fetch = saved;
  }
});

// Data calls over the self-hosted socket -------------------------------------------------------

function socketClient(options = {}) {
  const fetch = fakeFetch(() => ({ body: { data: "over http" } }));
  const rt = track(
    connect({ backend: "local", url: "ws://127.0.0.1:9/ws", WebSocket: FakeWebSocket, reconnect: { initialDelay: 5, maxDelay: 10 }, fetch, ...options }),
  );
  const ws = FakeWebSocket.last;
  ws.readyState = 1;
  ws.push({ op: "welcome", protocol: 2, socket_id: "s.1", heartbeat: 25, features: ["auth", "presence", "whisper", "call"] });
  return { rt, ws, fetch };
}

test("with the call feature, verbs go over the socket (call op, reply frame) with the same results and errors", async () => {
  const { rt, ws, fetch } = socketClient();
  const list = rt.getList("todo-item", { todo_list_id: 1 });
  const frame = ws.lastSent("call");
  assert.deepEqual({ ...frame, id: 0 }, { op: "call", id: 0, route: "todo-item", verb: "get_list", args: { todo_list_id: 1 } });
  ws.push({ op: "reply", id: frame.id, status: 200, body: { data: [{ id: 5 }], page: { number: 1 } } });
  assert.deepEqual(await list, { data: [{ id: 5 }], page: { number: 1 } });
  const created = rt.create("todo-item", { text: "" });
  ws.push({ op: "reply", id: ws.lastSent("call").id, status: 422, body: { error: { code: "invalid", message: "bad", fields: { text: ["blank"] } } } });
  await assert.rejects(created, (error) => error.status === 422 && error.code === "invalid" && error.fields.text[0] === "blank");
  assert.equal(fetch.calls.length, 0, "nothing over HTTP");
});

test("without the call feature, verbs go over HTTP", async () => {
  const fetch = fakeFetch(() => ({ body: { data: { id: 1 } } }));
  const rt = track(connect({ backend: "local", url: "ws://x", WebSocket: FakeWebSocket, fetch }));
  FakeWebSocket.last.accept();
  assert.deepEqual(await rt.getSingle("todo-item", { id: 1 }), { id: 1 });
  assert.equal(FakeWebSocket.last.lastSent("call"), undefined);
  assert.equal(fetch.calls.length, 1);
});

test("a lost connection: a read is repeated over HTTP, a write is reported as of unknown outcome", async () => {
  const { rt, ws, fetch } = socketClient();
  const read = rt.getList("todo-item");
  const write = rt.create("todo-item", { text: "milk" });
  ws.drop(1006);
  assert.deepEqual(await read, { data: "over http" });
  await assert.rejects(write, (error) => error.code === "connection_lost" && /may or may not have been made/.test(error.message));
  assert.deepEqual(fetch.calls.map((call) => call.url), ["/rtbridge/data/todo-item/get_list"]);
});

// Live collections ----------------------------------------------------------------------------

/**
 * A fake router over an in-memory table: answers subscribe/get_list/get_single/create/update/
 * delete like `rtbridge.routers` (paginated by `pageSize`), with hooks to hold answers back.
 */
function fakeRouter(rows = [], { pageSize = 100, channel = "testapp.todoitem;todo_list_id=1", auth } = {}) {
  const table = new Map(rows.map((row) => [row.id, { ...row }]));
  const router = { table, holds: [], failNext: null };
  router.fetch = fakeFetch(async ({ url, body }) => {
    const verb = url.split("/").at(-1);
    if (router.hold?.(verb)) await new Promise((resolve) => router.holds.push(resolve));
    if (router.failNext) {
      const answer = router.failNext;
      router.failNext = null;
      return answer;
    }
    if (verb === "subscribe") return { body: { data: null, channels: [channel], ...(auth && { auth }) } };
    if (verb === "get_list") {
      const matching = [...table.values()].filter((row) => row.todo_list_id === body.todo_list_id || body.todo_list_id === undefined);
      const page = body.page ?? 1;
      const data = matching.slice((page - 1) * pageSize, page * pageSize);
      return { body: { data, page: { number: page, has_next: page * pageSize < matching.length } } };
    }
    if (verb === "get_single") {
      const row = table.get(body.id);
      return row ? { body: { data: row } } : { status: 404, body: { error: { code: "not_found", message: "gone" } } };
    }
    if (verb === "create") {
      const row = { id: Math.max(0, ...table.keys()) + 1, done: false, ...body };
      table.set(row.id, row);
      return { status: 201, body: { data: row } };
    }
    if (verb === "update") {
      const row = table.get(body.id);
      const changed = Object.fromEntries(Object.entries(body).filter(([key, value]) => key !== "id" && row[key] !== value));
      Object.assign(row, changed);
      return { body: { data: { id: body.id, ...changed } } };
    }
    if (verb === "delete") {
      table.delete(body.id);
      return { body: { data: { id: body.id } } };
    }
    return { status: 404, body: { error: { code: "unknown_verb", message: verb } } };
  });
  router.release = () => router.holds.splice(0).forEach((resolve) => resolve());
  return router;
}

const CHANNEL = "testapp.todoitem;todo_list_id=1";
const texts = (rows) => rows.map((row) => row.text);

async function liveSetup(rows, options = {}, routerOptions = {}) {
  const router = fakeRouter(rows, routerOptions);
  const rt = track(connect({ backend: "null", fetch: router.fetch }));
  await rt.ready();
  const live = rt.liveList("todo-item", { todo_list_id: 1 }, options);
  const changes = [];
  live.onChange((rows) => changes.push(texts(rows)));
  return { rt, live, router, changes, deliver: (event, data) => rt.transport.deliver(CHANNEL, event, data) };
}

test("liveList: subscribe verb (include_data false), subscribe, load every page, then follow events in order", async () => {
  const { rt, live, router, changes, deliver } = await liveSetup(
    [
      { id: 2, text: "b", todo_list_id: 1 },
      { id: 1, text: "a", todo_list_id: 1 },
      { id: 3, text: "c", todo_list_id: 1 },
    ],
    { order: "id" },
    { pageSize: 2 },
  );
  assert.equal(await live.ready, live);
  assert.equal(live.channel, CHANNEL);
  assert.ok(rt.transport.channels.has(CHANNEL));
  assert.deepEqual(
    router.fetch.calls.map((call) => [call.url.split("/").at(-1), call.body]),
    [
      ["subscribe", { todo_list_id: 1, include_data: false }],
      ["get_list", { todo_list_id: 1, page: 1 }],
      ["get_list", { todo_list_id: 1, page: 2 }],
    ],
  );
  assert.deepEqual(texts(live.rows()), ["a", "b", "c"]);
  deliver("created", { id: 0, text: "zero", todo_list_id: 1 }); // sorted in, not appended
  deliver("updated", { id: 2, done: true }); // changed fields merged
  deliver("deleted", { id: 3 });
  deliver("left", { id: 1 });
  deliver("entered", { id: 7, text: "moved in", todo_list_id: 1 });
  deliver("created", { id: 7, text: "moved in (again)", todo_list_id: 1 }); // replaces, never doubles
  deliver("deleted", { id: 99 }); // unknown: nothing
  assert.deepEqual(changes, [
    ["a", "b", "c"],
    ["zero", "a", "b", "c"],
    ["zero", "a", "b", "c"],
    ["zero", "a", "b"],
    ["zero", "b"],
    ["zero", "b", "moved in"],
    ["zero", "b", "moved in (again)"],
  ]);
  assert.deepEqual(live.rows()[1], { id: 2, text: "b", todo_list_id: 1, done: true });
  live.close();
  await tick();
  assert.ok(!rt.transport.channels.has(CHANNEL));
  deliver("created", { id: 50, text: "after close" });
  assert.equal(changes.length, 7);
});

test("liveList order: '-id', a field, or a function", async () => {
  const rows = [
    { id: 1, text: "b" },
    { id: 2, text: "c" },
    { id: 3, text: "a" },
  ];
  assert.deepEqual(texts([...rows].sort(comparator("-id"))), ["a", "c", "b"]);
  assert.deepEqual(texts([...rows].sort(comparator("text"))), ["a", "b", "c"]);
  assert.deepEqual(texts([...rows].sort(comparator("-text"))), ["c", "b", "a"]);
  assert.deepEqual(texts([...rows].sort(comparator((x, y) => y.text.localeCompare(x.text)))), ["c", "b", "a"]);
  const { live, deliver } = await liveSetup([{ id: 1, text: "m", todo_list_id: 1 }], { order: "-text" });
  await live.ready;
  deliver("created", { id: 2, text: "z" });
  deliver("created", { id: 3, text: "a" });
  deliver("updated", { id: 3, text: "zz" }); // a changed sort key moves the row
  assert.deepEqual(texts(live.rows()), ["zz", "z", "m"]);
});

test("the race: events that arrive while the list loads are applied after it, none lost, none doubled", async () => {
  const router = fakeRouter([
    { id: 1, text: "a", todo_list_id: 1 },
    { id: 2, text: "b", todo_list_id: 1 },
  ]);
  router.hold = (verb) => verb === "get_list";
  const rt = track(connect({ backend: "null", fetch: router.fetch }));
  const live = rt.liveList("todo-item", { todo_list_id: 1 }, { order: "id" });
  const changes = [];
  live.onChange((rows) => changes.push(texts(rows)));
  await until(() => router.holds.length === 1, 2000, "the held get_list");
  // The server changed rows after our subscribe but before/while the list query ran: the
  // query sees id 3 and the update of 2, and their events reach us as well.
  router.table.set(3, { id: 3, text: "c", todo_list_id: 1 });
  router.table.get(2).text = "B";
  router.table.delete(1);
  const deliver = (event, data) => rt.transport.deliver(CHANNEL, event, data);
  deliver("created", { id: 3, text: "c", todo_list_id: 1 });
  deliver("updated", { id: 2, text: "B" });
  deliver("deleted", { id: 1 });
  deliver("created", { id: 4, text: "d", todo_list_id: 1 }); // after the query: only the event has it
  assert.deepEqual(changes, [], "nothing is shown before the load");
  router.release();
  await live.ready;
  assert.deepEqual(changes, [["B", "c", "d"]], "one change: the load with the buffered events applied");
  deliver("updated", { id: 4, done: true });
  assert.deepEqual(live.rows().map((row) => row.id), [2, 3, 4]);
});

test("after a reconnect (resubscribed) or a gap everything is loaded again, buffering meanwhile", async () => {
  const { rt, live, router, changes } = await liveSetup([{ id: 1, text: "a", todo_list_id: 1 }], { order: "id" });
  await live.ready;
  router.table.set(2, { id: 2, text: "missed while away", todo_list_id: 1 });
  router.hold = (verb) => verb === "get_list";
  rt.transport.gap(CHANNEL, { expected: 5, received: 7 });
  await until(() => router.holds.length === 1);
  rt.transport.deliver(CHANNEL, "created", { id: 3, text: "during the reload", todo_list_id: 1 });
  assert.deepEqual(changes, [["a"]], "buffered while reloading");
  router.release();
  await until(() => changes.length === 2);
  assert.deepEqual(changes[1], ["a", "missed while away", "during the reload"]);

  // The channel's onResubscribed (after a reconnect) does the same.
  router.hold = null;
  router.table.delete(1);
  rt.transport.disconnect();
  rt.transport.connect();
  await until(() => changes.length === 3);
  assert.deepEqual(changes[2], ["missed while away"]);
  assert.equal(router.fetch.calls.filter((call) => call.url.endsWith("/get_list")).length, 3);
});

test("refetch events reload one object; a 404 removes it; a refetch of a delete removes at once", async () => {
  const { live, router, deliver } = await liveSetup(
    [
      { id: 1, text: "a", todo_list_id: 1 },
      { id: 2, text: "b", todo_list_id: 1 },
    ],
    { order: "id" },
  );
  await live.ready;
  router.table.get(1).text = "a, too big to publish";
  deliver("refetch", { id: 1, event: "updated" });
  await until(() => live.rows()[0].text !== "a");
  assert.equal(live.rows()[0].text, "a, too big to publish");
  router.table.delete(2);
  deliver("refetch", { id: 2, event: "updated" });
  await until(() => live.rows().length === 1);
  deliver("refetch", { id: 1, event: "deleted" });
  assert.deepEqual(live.rows(), []);
  // An update for a row we do not have (e.g. it entered while we reloaded) loads it.
  router.table.set(5, { id: 5, text: "e", todo_list_id: 1 });
  deliver("updated", { id: 5, done: true });
  await until(() => live.rows().length === 1);
  assert.equal(live.rows()[0].text, "e");
});

test("own writes: applied from the reply (the server does not send this socket its own change)", async () => {
  const { rt, live, changes } = await liveSetup([{ id: 1, text: "a", todo_list_id: 1 }], { order: "id" });
  await live.ready;
  await rt.create("todo-item", { text: "mine", todo_list_id: 1 });
  await rt.create("todo-item", { text: "other list", todo_list_id: 2 });
  await rt.update("todo-item", { id: 1, text: "A" });
  assert.deepEqual(changes.at(-1), ["A", "mine"]);
  // Moving our row to another list removes it; deleting removes it.
  await rt.update("todo-item", { id: 2, todo_list_id: 2 });
  assert.deepEqual(changes.at(-1), ["A"]);
  await rt.delete("todo-item", { id: 1 });
  assert.deepEqual(changes.at(-1), []);
  // Moving a row into our list: the reply has only the changed fields, so the row is loaded.
  await rt.update("todo-item", { id: 2, todo_list_id: 1 });
  await until(() => changes.at(-1).length === 1);
  assert.deepEqual(live.rows(), [{ id: 2, text: "mine", todo_list_id: 1, done: false }]);
});

test("own writes during the first load are applied after it; own updates of rows elsewhere change nothing", async () => {
  const router = fakeRouter([
    { id: 1, text: "a", todo_list_id: 1 },
    { id: 9, text: "elsewhere", todo_list_id: 2 },
  ]);
  router.hold = (verb) => verb === "get_list";
  const rt = track(connect({ backend: "null", fetch: router.fetch }));
  const live = rt.liveList("todo-item", { todo_list_id: 1 }, { order: "id" });
  await until(() => router.holds.length === 1);
  // The list query ran before these commits (its held answer shows the old rows): only the
  // replies tell us about them.
  router.hold = null;
  await rt.create("todo-item", { text: "mine", todo_list_id: 1 });
  await rt.update("todo-item", { id: 1, text: "A" });
  router.table.get(1).text = "a"; // the held answer below shows the state before our writes
  router.table.delete(10);
  router.release();
  await live.ready;
  assert.deepEqual(texts(live.rows()), ["A", "mine"]);
  const lists = router.fetch.calls.filter((call) => call.url.endsWith("/get_list")).length;
  const changes = [];
  live.onChange((current) => changes.push(texts(current)));
  await rt.update("todo-item", { id: 9, text: "still elsewhere" }); // not ours, no filter field changed
  await tick(10);
  assert.deepEqual(changes, [["A", "mine"]], "only the immediate call of onChange");
  assert.equal(router.fetch.calls.filter((call) => call.url.endsWith("/get_list")).length, lists, "no reload");
  assert.equal(router.fetch.calls.filter((call) => call.url.endsWith("/get_single")).length, 0, "no refetch");
});

test("a failed reload keeps the rows and applies what arrived meanwhile; onError is told", async () => {
  const { rt, live, router, changes } = await liveSetup([{ id: 1, text: "a", todo_list_id: 1 }], { order: "id" });
  await live.ready;
  const errors = [];
  live.onError((error) => errors.push(error.code));
  router.hold = (verb) => verb === "get_list";
  rt.transport.gap(CHANNEL, { reason: "server" });
  await until(() => router.holds.length === 1);
  rt.transport.deliver(CHANNEL, "created", { id: 2, text: "b", todo_list_id: 1 });
  router.failNext = { status: 500, body: { error: { code: "server_error", message: "boom" } } };
  router.release();
  await until(() => errors.length === 1);
  assert.deepEqual(errors, ["server_error"]);
  assert.deepEqual(changes.at(-1), ["a", "b"]);
  rt.transport.deliver(CHANNEL, "created", { id: 3, text: "c", todo_list_id: 1 });
  assert.deepEqual(changes.at(-1), ["a", "b", "c"], "not stuck buffering");
});

test("a refused subscribe (e.g. 403 for a private model) rejects ready and reaches onError", async () => {
  const router = fakeRouter([]);
  router.failNext = { status: 403, body: { error: { code: "forbidden", message: "no" } } };
  const rt = track(connect({ backend: "null", fetch: router.fetch }));
  const live = rt.liveList("todo-item", { todo_list_id: 1 });
  const errors = [];
  live.onError((error) => errors.push(error.code));
  await assert.rejects(live.ready, (error) => error.status === 403 && error.code === "forbidden");
  await tick();
  assert.deepEqual(errors, ["forbidden"]);
});

test("a private model: the subscribe reply's auth answer is used for the subscription, no auth request", async () => {
  const router = fakeRouter([], { channel: "private-testapp.document;owner=ann", auth: { "private-testapp.document;owner=ann": { auth: "tok" } } });
  const rt = track(
    connect({ backend: "local", url: "ws://x", WebSocket: FakeWebSocket, fetch: router.fetch }),
  );
  const ws = FakeWebSocket.last;
  ws.accept("s.1");
  const live = rt.liveList("document", { owner: "ann" });
  await until(() => ws.lastSent("subscribe"));
  assert.deepEqual({ ...ws.lastSent("subscribe"), id: 0 }, { op: "subscribe", id: 0, channel: "private-testapp.document;owner=ann", auth: "tok" });
  assert.equal(router.fetch.calls.filter((call) => call.url.endsWith("/auth")).length, 0);
  ws.ackAll();
  await live.ready;
  // After a reconnect the socket id changed: the auth endpoint is asked.
  ws.drop(1006);
  await until(() => FakeWebSocket.all.length === 2);
  FakeWebSocket.last.accept("s.2");
  await until(() => router.fetch.calls.some((call) => call.url.endsWith("/rtbridge/auth")));
});

test("liveObject: one object kept current; deleted gives null", async () => {
  const router = fakeRouter([{ id: 5, text: "milk", todo_list_id: 1 }], { channel: "testapp.todoitem.5" });
  const rt = track(connect({ backend: "null", fetch: router.fetch }));
  const item = rt.liveObject("todo-item", { id: 5 });
  const seen = [];
  item.onChange((object) => seen.push(object && object.text));
  await item.ready;
  // The router's subscribe verb is asked for the object's channel (and its auth, if private).
  const asked = router.fetch.calls.find((call) => call.url.endsWith("/subscribe"));
  assert.deepEqual(asked.body, { id: 5, include_data: false });
  assert.equal(item.channel, "testapp.todoitem.5");
  assert.deepEqual(item.get(), { id: 5, text: "milk", todo_list_id: 1 });
  rt.transport.deliver("testapp.todoitem.5", "updated", { id: 5, text: "oat milk" });
  rt.transport.deliver("testapp.todoitem.5", "deleted", { id: 5 });
  assert.deepEqual(seen, ["milk", "oat milk", null]);
  const missing = rt.liveObject("todo-item", { id: 404 }, { channel: "testapp.todoitem.404" });
  await missing.ready;
  assert.equal(missing.get(), null);
});

test("a throwing onChange callback is reported, the collection keeps working", async () => {
  const { rt, live, deliver } = await liveSetup([], { order: "id" });
  await live.ready;
  const errors = [];
  rt.onError((error) => errors.push(error.code));
  live.onChange(() => {
    throw new Error("render failed");
  });
  await captureConsole(() => deliver("created", { id: 1, text: "a" }));
  deliver("created", { id: 2, text: "b" });
  assert.deepEqual(texts(live.rows()), ["a", "b"]);
  assert.ok(errors.includes("handler_error"));
});

test("a failed first load shows nothing partial; refetch() retries and then shows everything", async () => {
  const router = fakeRouter([{ id: 1, text: "a", todo_list_id: 1 }]);
  router.hold = (verb) => verb === "get_list";
  const rt = track(connect({ backend: "null", fetch: router.fetch }));
  const live = rt.liveList("todo-item", { todo_list_id: 1 }, { order: "id" });
  const changes = [];
  live.onChange((rows) => changes.push(texts(rows)));
  live.onError(() => {});
  await until(() => router.holds.length === 1);
  router.failNext = { status: 503, body: { error: { code: "unavailable", message: "later" } } };
  router.release();
  await assert.rejects(live.ready, (error) => error.code === "unavailable");
  router.hold = null;
  rt.transport.deliver(CHANNEL, "created", { id: 2, text: "b", todo_list_id: 1 });
  assert.deepEqual(changes, [], "no partial list");
  router.table.set(2, { id: 2, text: "b", todo_list_id: 1 });
  await live.refetch();
  assert.deepEqual(changes, [["a", "b"]]);
});
