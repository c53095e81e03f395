// Protected channels, presence, whispers, socket calls and live lists against the REAL rtbridge
// server and Django (test/harness/server.py: tests.testapp, sessions, CSRF, the auth endpoint).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import WebSocket from "ws";

import { connect } from "../src/rtbridge.js";
import { until } from "./helpers/fakes.js";
import { PYTHON, RealServer, pythonAvailable } from "./helpers/server.js";

const IN_CI = ["1", "true", "yes"].includes((process.env.CI ?? "").toLowerCase());
const CSRF = "rtbridgeJsHarnessCsrfToken012345"; // 32 characters, as Django's cookie secret
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

/**
 * A logged-in "browser" for `username`: the session and CSRF cookies go with the WebSocket
 * handshake (socket calls run as that user) and with every auth/data request.
 */
async function browser(t, username, options = {}) {
  const { user_id: userId, sessionid } = await server.user(username);
  const cookie = `sessionid=${sessionid}; csrftoken=${CSRF}`;
  class CookieSocket extends WebSocket {
    constructor(url) {
      super(url, { headers: { Cookie: cookie } });
    }
  }
  const rt = connect({
    backend: "local",
    url: server.url,
    WebSocket: CookieSocket,
    authEndpoint: `${server.httpUrl}/rtbridge/auth`,
    dataEndpoint: `${server.httpUrl}/rtbridge/data`,
    csrfToken: CSRF,
    headers: { Cookie: cookie },
    reconnect: { initialDelay: 50, maxDelay: 200 },
    ...options,
  });
  t.after(() => rt.disconnect());
  await rt.ready();
  return { rt, userId: String(userId) };
}

const runs = (t) => (skip ? (t.skip(skip), false) : true);

test("private channel: the owner is let in and gets messages; another user gets Django's 403 code", async (t) => {
  if (!runs(t)) return;
  const ann = await browser(t, "ann");
  const bob = await browser(t, "bob");
  const { id } = await server.orm("TodoList", "create", { name: "ann's groceries", owner: "ann" });
  const received = [];
  const channel = ann.rt.private(`testapp.todolist.${id}`).listen("renamed", (data) => received.push(data.name));
  await channel.ready;
  await server.publish(`private-testapp.todolist.${id}`, "renamed", { name: "Groceries" });
  await until(() => received.length === 1, 5000, "the private message");
  assert.deepEqual(received, ["Groceries"]);

  bob.rt.onError(() => {});
  await assert.rejects(bob.rt.private(`testapp.todolist.${id}`).ready, (error) => {
    assert.equal(error.status, 403);
    assert.equal(error.code, "forbidden");
    return true;
  });
});

test("presence: here, per-user joining and leaving (two tabs of one user), whispers with user_id", async (t) => {
  if (!runs(t)) return;
  const ann = await browser(t, "ann");
  const bobTab1 = await browser(t, "bob");
  const bobTab2 = await browser(t, "bob");
  const seen = [];
  const heard = [];
  const room = ann.rt
    .join("testapp.todoitem.7")
    .here((members) => seen.push(`here ${members.map((m) => m.info.name).sort()}`))
    .joining((member) => seen.push(`joining ${member.info.name}`))
    .leaving((member) => seen.push(`leaving ${member.info.name}`))
    .listenForWhisper("typing", (data, meta) => heard.push([data, meta.user_id]));
  await room.ready;
  assert.deepEqual(seen, ["here ann"]);

  const bobRoom = bobTab1.rt.join("testapp.todoitem.7");
  await bobRoom.ready;
  await until(() => seen.length === 2, 5000, "Bob's join");
  assert.deepEqual(bobRoom.members().map((m) => m.info.name).sort(), ["ann", "bob"]);
  const second = bobTab2.rt.join("testapp.todoitem.7");
  await second.ready;

  await bobRoom.whisper("typing", { field: "text" });
  await until(() => heard.length === 1, 5000, "the whisper");
  assert.deepEqual(heard, [[{ field: "text" }, bobTab1.userId]]);

  bobTab1.rt.disconnect(); // Bob still has a tab: no leave
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(seen, ["here ann", "joining bob"]);
  second.leave(); // his last tab
  await until(() => seen.length === 3, 5000, "Bob's leave");
  assert.deepEqual(seen, ["here ann", "joining bob", "leaving bob"]);
  assert.deepEqual(room.members().map((m) => m.info.name), ["ann"]);
});

test("whisper on a public channel is refused by the client before anything is sent", async (t) => {
  if (!runs(t)) return;
  const { rt } = await browser(t, "ann");
  assert.throws(() => rt.channel("testapp.todoitem").whisper("typing", {}), (error) => error.code === "not_protected");
});

test("data calls go over the socket (the server offers call) with the same answers as HTTP", async (t) => {
  if (!runs(t)) return;
  const overSocket = await browser(t, "carol");
  const overHttp = await browser(t, "carol", { fetch: globalThis.fetch });
  assert.ok(overSocket.rt.transport.canCall(), "the welcome lists call");
  let socketCalls = 0;
  const { call } = overSocket.rt.transport;
  overSocket.rt.transport.call = (...args) => (socketCalls++, call(...args));
  // The same client with socket calls switched off answers over HTTP.
  overHttp.rt.transport.canCall = () => false;
  const { id: listId } = await server.orm("TodoList", "create", { name: "carol's", owner: "carol" });
  const created = await overSocket.rt.create("todo-item", { todo_list_id: listId, text: "milk" });
  assert.equal(created.text, "milk");
  const viaSocket = await overSocket.rt.getList("todo-item", { todo_list_id: listId });
  const viaHttp = await overHttp.rt.getList("todo-item", { todo_list_id: listId });
  assert.deepEqual(viaSocket, viaHttp);
  assert.deepEqual(viaSocket.data.map((item) => item.text), ["milk"]);
  assert.deepEqual(await overSocket.rt.update("todo-item", { id: created.id, done: true }), { id: created.id, done: true, label: "milk ✓" });
  for (const rt of [overSocket.rt, overHttp.rt]) {
    await assert.rejects(rt.create("todo-item", { todo_list_id: listId, text: "x".repeat(300) }), (error) => {
      assert.equal(error.status, 422);
      assert.equal(error.code, "invalid");
      assert.ok(error.fields.text[0]);
      return true;
    });
    await assert.rejects(rt.getSingle("todo-item", { id: 999999 }), (error) => error.status === 404 && error.code === "not_found");
  }
  assert.deepEqual(await overSocket.rt.call("todo-item", "clear_done", { todo_list_id: listId }), { data: { deleted: 1 } });
  assert.equal(socketCalls, 6, "every call of that client went over the socket");
});

test("liveList against the real server: ORM changes by another process, own writes, moves, deletes", async (t) => {
  if (!runs(t)) return;
  const { rt } = await browser(t, "dave");
  const { id: listId } = await server.orm("TodoList", "create", { name: "dave's", owner: "dave" });
  const { id: otherId } = await server.orm("TodoList", "create", { name: "dave's other", owner: "dave" });
  const { id: first } = await server.orm("TodoItem", "create", { todo_list_id: listId, text: "first" });
  const live = rt.liveList("todo-item", { todo_list_id: listId }, { order: "-id" });
  const gaps = [];
  rt.onGap((channel, info) => gaps.push(info));
  await live.ready;
  const texts = () => live.rows().map((row) => row.text);
  assert.deepEqual(texts(), ["first"]);

  const { id: second } = await server.orm("TodoItem", "create", { todo_list_id: listId, text: "second" });
  await until(() => texts().length === 2, 5000, "the created row");
  await server.orm("TodoItem", "update", { id: first, text: "first!", done: true });
  await until(() => texts().includes("first!"), 5000, "the update");
  const mine = await rt.create("todo-item", { todo_list_id: listId, text: "mine" }); // excluded: applied from the reply
  assert.deepEqual(texts(), ["mine", "second", "first!"]);
  await server.orm("TodoItem", "update", { id: second, todo_list_id: otherId }); // moved out
  await until(() => texts().length === 2, 5000, "the move out");
  const { id: third } = await server.orm("TodoItem", "create", { todo_list_id: otherId, text: "elsewhere" });
  await server.orm("TodoItem", "update", { id: third, todo_list_id: listId }); // moved in
  await until(() => texts().includes("elsewhere"), 5000, "the move in");
  await server.orm("TodoItem", "delete", { id: first });
  await rt.delete("todo-item", { id: mine.id });
  await until(() => texts().length === 1, 5000, "the deletes");
  assert.deepEqual(texts(), ["elsewhere"]);
  assert.deepEqual(gaps, [], "own changes come back as skip frames, not gaps");
  assert.deepEqual(live.rows()[0], (await rt.getSingle("todo-item", { id: third })));
});

test("revoke ends the subscription and the client is told", async (t) => {
  if (!runs(t)) return;
  const { rt } = await browser(t, "erin");
  const { id } = await server.orm("TodoList", "create", { name: "erin's", owner: "erin" });
  const channel = rt.private(`testapp.todolist.${id}`);
  const errors = [];
  channel.onError((error) => errors.push(error));
  await channel.ready;
  await server.send({ cmd: "revoke", username: "erin", channel: channel.name });
  await until(() => errors.length === 1, 5000, "the revocation");
  assert.equal(errors[0].code, "revoked");
  assert.equal(channel.subscribed, false);
});

test("an expired token: the server says detail expired, the client asks again once and is let in", async (t) => {
  if (!runs(t)) return;
  const authCalls = [];
  const counting = (url, init) => {
    if (String(url).endsWith("/rtbridge/auth")) authCalls.push(JSON.parse(init.body).channel_name);
    return globalThis.fetch(url, init);
  };
  const { rt } = await browser(t, "fred", { fetch: counting });
  const { id } = await server.orm("TodoList", "create", { name: "fred's", owner: "fred" });
  await server.send({ cmd: "expire_next_tokens", count: 1 });
  const channel = rt.private(`testapp.todolist.${id}`);
  await channel.ready;
  assert.deepEqual(authCalls, [channel.name, channel.name]);
  const names = [];
  channel.listen("renamed", (data) => names.push(data.name));
  await server.publish(channel.name, "renamed", { name: "Fred's" });
  await until(() => names.length === 1, 5000, "a message on the channel");
});

test("after the server restarts, protected channels are authorized again for the new socket", async (t) => {
  if (!runs(t)) return;
  const authCalls = [];
  const counting = (url, init) => {
    if (String(url).endsWith("/rtbridge/auth")) authCalls.push(JSON.parse(init.body).socket_id);
    return globalThis.fetch(url, init);
  };
  const { rt } = await browser(t, "gina", { fetch: counting });
  const { id } = await server.orm("TodoList", "create", { name: "gina's", owner: "gina" });
  const channel = rt.private(`testapp.todolist.${id}`);
  const lists = [];
  const room = rt.join("testapp.todoitem.42").here((members) => lists.push(members.map((m) => m.info.name)));
  const resubscribed = [];
  rt.onResubscribed((name) => resubscribed.push(name));
  await Promise.all([channel.ready, room.ready]);
  const first = rt.socketId();

  await server.send({ cmd: "stop" });
  await until(() => rt.state === "reconnecting", 15000, "reconnecting");
  await server.send({ cmd: "start" });
  await until(() => resubscribed.length === 2, 15000, "both channels resubscribed");
  assert.notEqual(rt.socketId(), first);
  assert.deepEqual(authCalls, [first, first, rt.socketId(), rt.socketId()]);
  assert.deepEqual(lists, [["gina"], ["gina"]], "here() again after the resubscribe");
  const names = [];
  channel.listen("renamed", (data) => names.push(data.name));
  await server.publish(channel.name, "renamed", { name: "back" });
  await until(() => names.length === 1, 5000, "a message after the restart");
});

test("liveObject against the real server: one item followed on its object channel until deleted", async (t) => {
  if (!runs(t)) return;
  const { rt } = await browser(t, "hank");
  const { id: listId } = await server.orm("TodoList", "create", { name: "hank's", owner: "hank" });
  const { id } = await server.orm("TodoItem", "create", { todo_list_id: listId, text: "bread" });
  const item = rt.liveObject("todo-item", { id });
  const seen = [];
  item.onChange((object) => seen.push(object ? `${object.text}${object.done ? " (done)" : ""}` : null));
  await item.ready;
  assert.equal(item.channel, `testapp.todoitem.${id}`);
  await server.orm("TodoItem", "update", { id, done: true });
  await until(() => seen.at(-1) === "bread (done)", 5000, "the update");
  await server.orm("TodoItem", "delete", { id });
  await until(() => seen.at(-1) === null, 5000, "the delete");
  assert.deepEqual(seen, ["bread", "bread (done)", null]);
});
