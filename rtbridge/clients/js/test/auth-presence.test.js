// Private and presence channels, whispers and revocation over the self-hosted transport
// (fake WebSocket as the server, a fetch() stand-in as Django's auth endpoint).
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { RTBridgeError, connect, csrfToken } from "../src/rtbridge.js";
import { FakeWebSocket, captureConsole, fakeFetch, grantingFetch, tick, until } from "./helpers/fakes.js";

const clients = [];
afterEach(() => {
  clients.splice(0).forEach((rt) => rt.disconnect());
  FakeWebSocket.all.length = 0;
  delete globalThis.document;
});

const FEATURES = ["auth", "presence", "whisper", "call", "revoke"];

function start(options = {}) {
  const rt = connect({
    backend: "local",
    url: "ws://127.0.0.1:9/rtbridge/ws",
    WebSocket: FakeWebSocket,
    reconnect: { initialDelay: 5, maxDelay: 20 },
    fetch: grantingFetch(),
    ...options,
  });
  clients.push(rt);
  return rt;
}

/** Accept the socket with a welcome listing the protocol's extra features. */
function welcome(ws, socketId = "s1.1") {
  ws.readyState = 1;
  ws.push({ op: "welcome", protocol: 2, socket_id: socketId, heartbeat: 25, server: "fake", features: FEATURES });
}

const subscribeFrame = (ws, channel) => ws.sent.find((frame) => frame.op === "subscribe" && frame.channel === channel);

test("private(): POSTs {socket_id, channel_name} with CSRF, socket id and custom headers, then subscribes with the token", async () => {
  globalThis.document = { cookie: "sessionid=abc; csrftoken=cookie%2Dtoken; other=1" };
  const fetch = fakeFetch(({ body }) => ({ body: { auth: `signed:${body.channel_name}` } }));
  const rt = start({ fetch, authEndpoint: "http://127.0.0.1:9/custom/auth", headers: { "X-Extra": "1" } });
  const ws = FakeWebSocket.last;
  const channel = rt.private("todo.todolist.1");
  assert.equal(channel.name, "private-todo.todolist.1", "the prefix is added");
  assert.equal(rt.private("private-todo.todolist.1"), channel);
  welcome(ws, "abc.7");
  await until(() => subscribeFrame(ws, "private-todo.todolist.1"));
  assert.equal(fetch.calls.length, 1);
  const [request] = fetch.calls;
  assert.equal(request.url, "http://127.0.0.1:9/custom/auth");
  assert.equal(request.method, "POST");
  assert.equal(request.credentials, "same-origin");
  assert.deepEqual(request.body, { socket_id: "abc.7", channel_name: "private-todo.todolist.1" });
  assert.equal(request.headers["X-CSRFToken"], "cookie-token");
  assert.equal(request.headers["X-RTBridge-Socket-Id"], "abc.7");
  assert.equal(request.headers["Content-Type"], "application/json");
  assert.equal(request.headers["X-Extra"], "1");
  assert.equal(subscribeFrame(ws, "private-todo.todolist.1").auth, "signed:private-todo.todolist.1");
  ws.ackAll();
  assert.equal(await channel.ready, channel);
  // A public channel needs no auth request.
  rt.channel("todo.todolist.1");
  await until(() => subscribeFrame(ws, "todo.todolist.1"));
  assert.equal(subscribeFrame(ws, "todo.todolist.1").auth, undefined);
  assert.equal(fetch.calls.length, 1);
});

test("csrfToken: a function wins, then the cookie, then the page's token; the default endpoint is /rtbridge/auth", async () => {
  globalThis.document = { cookie: "csrftoken=from-cookie" };
  const fetch = grantingFetch();
  const rt = start({ fetch, csrfToken: () => "from-config" });
  welcome(FakeWebSocket.last);
  rt.subscribe("private-a", () => {});
  await until(() => fetch.calls.length);
  assert.equal(fetch.calls[0].url, "/rtbridge/auth");
  assert.equal(fetch.calls[0].headers["X-CSRFToken"], "from-config");
  assert.equal(csrfToken({ csrfToken: "from-page" }), "from-cookie", "the cookie follows Django's rotation");
  assert.equal(csrfToken({ csrfToken: "from-page", csrfCookieName: "other" }), "from-page");
  globalThis.document = { cookie: "" };
  assert.equal(csrfToken({}), null);
});

test("a 403 from the auth endpoint rejects ready and reaches onError with the server's code; nothing is sent", async () => {
  const fetch = fakeFetch(() => ({
    status: 403,
    body: { error: { code: "forbidden", message: "The rule for 'private-todo.todolist.{pk}' refused.", channel: "private-todo.todolist.1" } },
  }));
  const rt = start({ fetch });
  const ws = FakeWebSocket.last;
  welcome(ws);
  const errors = [];
  rt.onError((error) => errors.push(error));
  const channel = rt.private("todo.todolist.1");
  await assert.rejects(channel.ready, (error) => {
    assert.ok(error instanceof RTBridgeError);
    assert.equal(error.status, 403);
    assert.equal(error.code, "forbidden");
    assert.equal(error.channel, "private-todo.todolist.1");
    assert.match(error.reason, /refused/);
    assert.match(error.message, /authorizing private-todo\.todolist\.1 failed: 403 forbidden/);
    return true;
  });
  assert.equal(errors[0].code, "forbidden");
  assert.equal(ws.lastSent("subscribe"), undefined);
  // Refused for good: not retried after a reconnect.
  ws.drop(1006);
  await until(() => FakeWebSocket.all.length === 2);
  welcome(FakeWebSocket.last, "s2.2");
  await tick(10);
  assert.equal(fetch.calls.length, 1);
});

test("Django's HTML 403 (CSRF cookie missing) becomes a clear error", async () => {
  const fetch = fakeFetch(() => ({ status: 403, body: "<html><h1>Forbidden (403)</h1>CSRF verification failed." }));
  const rt = start({ fetch });
  welcome(FakeWebSocket.last);
  const channel = rt.private("x");
  await captureConsole(async () => {
    await assert.rejects(channel.ready, /answered 403 with something that is not JSON.*is the CSRF cookie set/);
  });
});

test("4403 expired: the client asks the auth endpoint again and retries once; a second expiry is final", async () => {
  let issued = 0;
  const fetch = fakeFetch(() => ({ body: { auth: `token-${++issued}` } }));
  const rt = start({ fetch });
  const ws = FakeWebSocket.last;
  welcome(ws);
  const channel = rt.private("orders");
  await until(() => ws.lastSent("subscribe"));
  const first = ws.lastSent("subscribe");
  assert.equal(first.auth, "token-1");
  ws.push({ op: "error", id: first.id, code: 4403, reason: "token expired", detail: "expired" });
  await until(() => ws.lastSent("subscribe") !== first);
  const second = ws.lastSent("subscribe");
  assert.equal(second.auth, "token-2");
  ws.push({ op: "ack", id: second.id, channel: "private-orders", offset: 0, epoch: "ep" });
  await channel.ready;

  // Another channel whose fresh token is also refused as expired: reported, not looped.
  const other = rt.private("stock");
  rt.onError(() => {});
  await until(() => ws.lastSent("subscribe").channel === "private-stock");
  ws.push({ op: "error", id: ws.lastSent("subscribe").id, code: 4403, reason: "expired", detail: "expired" });
  await until(() => ws.lastSent("subscribe").auth === "token-4");
  ws.push({ op: "error", id: ws.lastSent("subscribe").id, code: 4403, reason: "expired", detail: "expired" });
  await assert.rejects(other.ready, (error) => error.code === 4403 && error.detail === "expired");
  assert.equal(fetch.calls.length, 4);
});

test("other 4403 details (wrong_socket, revoked, ...) are not retried", async () => {
  const fetch = grantingFetch();
  const rt = start({ fetch });
  const ws = FakeWebSocket.last;
  welcome(ws);
  rt.onError(() => {});
  const channel = rt.private("orders");
  await until(() => ws.lastSent("subscribe"));
  ws.push({ op: "error", id: ws.lastSent("subscribe").id, code: 4403, reason: "token for another socket", detail: "wrong_socket" });
  await assert.rejects(channel.ready, (error) => error.detail === "wrong_socket");
  assert.equal(fetch.calls.length, 1);
});

test("every reconnect asks for a new token for the new socket id", async () => {
  const fetch = grantingFetch();
  const rt = start({ fetch });
  let ws = FakeWebSocket.last;
  welcome(ws, "a.1");
  const channel = rt.private("orders");
  await until(() => ws.lastSent("subscribe"));
  ws.ackAll();
  await channel.ready;
  ws.drop(1006);
  await until(() => FakeWebSocket.all.length === 2);
  ws = FakeWebSocket.last;
  welcome(ws, "b.2");
  await until(() => ws.lastSent("subscribe"));
  assert.deepEqual(
    fetch.calls.map((call) => call.body.socket_id),
    ["a.1", "b.2"],
  );
});

test("a token fetched for a socket that dropped meanwhile is not sent on the next one", async () => {
  let release;
  const fetch = fakeFetch(({ body }) => new Promise((resolve) => (release = () => resolve({ body: { auth: `t-${body.socket_id}` } }))));
  const rt = start({ fetch });
  let ws = FakeWebSocket.last;
  welcome(ws, "a.1");
  const channel = rt.private("orders");
  await until(() => fetch.calls.length === 1);
  ws.drop(1006);
  await until(() => FakeWebSocket.all.length === 2);
  ws = FakeWebSocket.last;
  const slow = release;
  welcome(ws, "b.2");
  await until(() => fetch.calls.length === 2);
  slow(); // the answer for a.1 arrives late
  release();
  await until(() => ws.lastSent("subscribe"));
  await tick(5);
  assert.deepEqual(
    ws.sent.filter((frame) => frame.op === "subscribe").map((frame) => frame.auth),
    ["t-b.2"],
  );
  ws.ackAll();
  await channel.ready;
});

test("a router's auth answer is used once instead of a second auth request", async () => {
  const fetch = grantingFetch();
  const rt = start({ fetch });
  const ws = FakeWebSocket.last;
  welcome(ws, "a.1");
  rt._preauthorize("private-x", { auth: "from-router" }, "a.1");
  rt._preauthorize("private-y", { auth: "for-another-socket" }, "old.1");
  rt.private("x");
  rt.private("y");
  await until(() => subscribeFrame(ws, "private-x") && subscribeFrame(ws, "private-y"));
  assert.equal(subscribeFrame(ws, "private-x").auth, "from-router");
  assert.equal(subscribeFrame(ws, "private-y").auth, "token-private-y");
  assert.equal(fetch.calls.length, 1);
});

test("private()/join() with the other prefix is refused at once", () => {
  const rt = start();
  assert.throws(() => rt.private("presence-room"), /"presence-room" is not a private- channel; use join\(\)/);
  assert.throws(() => rt.join("private-room"), /"private-room" is not a presence- channel; use private\(\)/);
  assert.throws(() => rt.private("a b"), /contains " "/);
});

// Presence ------------------------------------------------------------------------------------

const ann = { id: "1", info: { id: 1, name: "Ann" } };
const bob = { id: "2", info: { id: 2, name: "Bob" } };
const cat = { id: "3", info: { id: 3, name: "Cat" } };

test("join(): the ack's members reach here(); presence frames reach joining/leaving; members() follows", async () => {
  const fetch = fakeFetch(() => ({ body: { auth: "tok", channel_data: ann } }));
  const rt = start({ fetch });
  const ws = FakeWebSocket.last;
  welcome(ws);
  const seen = [];
  const room = rt
    .join("todo.todoitem.7")
    .here((members) => seen.push(["here", members.map((m) => m.info.name)]))
    .joining((member) => seen.push(["joining", member.info.name]))
    .leaving((member) => seen.push(["leaving", member.info.name]));
  assert.equal(room.name, "presence-todo.todoitem.7");
  assert.equal(rt.join("presence-todo.todoitem.7"), room);
  await until(() => ws.lastSent("subscribe"));
  assert.equal(ws.lastSent("subscribe").auth, "tok");
  ws.push({ op: "ack", id: ws.lastSent("subscribe").id, channel: room.name, offset: 0, epoch: "ep", members: [ann, bob] });
  await room.ready;
  const frame = (action, member) => ws.push({ op: "presence", channel: room.name, action, member });
  frame("join", cat);
  frame("leave", bob);
  frame("leave", { id: "9", info: null }); // unknown: ignored
  assert.deepEqual(seen, [
    ["here", ["Ann", "Bob"]],
    ["joining", "Cat"],
    ["leaving", "Bob"],
  ]);
  assert.deepEqual(room.members(), [ann, cat]);
  // here() after the list arrived is called at once.
  const late = [];
  room.here((members) => late.push(members.length));
  assert.deepEqual(late, [2]);
});

test("presence after a reconnect: here() again with the new full list", async () => {
  const rt = start({ fetch: fakeFetch(() => ({ body: { auth: "tok", channel_data: ann } })) });
  let ws = FakeWebSocket.last;
  welcome(ws);
  const lists = [];
  const room = rt.join("room").here((members) => lists.push(members.map((m) => m.id)));
  await until(() => ws.lastSent("subscribe"));
  ws.push({ op: "ack", id: ws.lastSent("subscribe").id, channel: room.name, offset: 0, epoch: "ep", members: [ann, bob] });
  await room.ready;
  ws.drop(1006);
  await until(() => FakeWebSocket.all.length === 2);
  ws = FakeWebSocket.last;
  welcome(ws, "s2.2");
  await until(() => ws.lastSent("subscribe"));
  ws.push({ op: "ack", id: ws.lastSent("subscribe").id, channel: room.name, offset: 0, epoch: "ep", members: [ann, cat] });
  await until(() => lists.length === 2);
  assert.deepEqual(lists, [["1", "2"], ["1", "3"]]);
  assert.deepEqual(room.members(), [ann, cat]);
});

test("per-user presence from per-connection reports: a second tab is no join, the last tab's leave is", async () => {
  const rt = connect({ backend: "null" });
  clients.push(rt);
  await rt.ready();
  const seen = [];
  const room = rt
    .join("room")
    .here((members) => seen.push(["here", members.map((m) => m.id)]))
    .joining((member) => seen.push(["joining", member.id]))
    .leaving((member) => seen.push(["leaving", member.id]));
  await room.ready;
  const { transport } = rt;
  transport.presence(room.name, "here", [{ ...ann, key: "tab-a1" }]);
  transport.presence(room.name, "join", { ...bob, key: "tab-b1" });
  transport.presence(room.name, "join", { ...bob, key: "tab-b2" }); // Bob's second tab
  transport.presence(room.name, "leave", { id: "2", key: "tab-b1" }); // one of Bob's tabs closes
  assert.deepEqual(room.members().map((m) => m.id), ["1", "2"]);
  transport.presence(room.name, "leave", { id: "2", key: "tab-b2" }); // the last one
  // A full list again (Firebase, PubNub's interval mode): differences become joins and leaves.
  transport.presence(room.name, "sync", [{ ...cat, key: "c" }, { ...cat, key: "c2" }]);
  assert.deepEqual(seen, [
    ["here", ["1"]],
    ["joining", "2"],
    ["leaving", "2"],
    ["leaving", "1"],
    ["joining", "3"],
  ]);
  assert.deepEqual(room.members(), [cat]);
});

test("a throwing presence callback is reported, the others still run", async () => {
  const rt = connect({ backend: "null" });
  clients.push(rt);
  await rt.ready();
  const errors = [];
  rt.onError((error) => errors.push(error.code));
  const names = [];
  const room = rt
    .join("room")
    .joining(() => {
      throw new Error("render failed");
    })
    .joining((member) => names.push(member.id));
  await room.ready;
  await captureConsole(() => rt.transport.presence(room.name, "join", bob));
  assert.deepEqual(names, ["2"]);
  assert.deepEqual(errors, ["handler_error"]);
});

test("subscribe() on a presence channel gets events like any channel and adds no member", async () => {
  const rt = connect({ backend: "null" });
  clients.push(rt);
  await rt.ready();
  const events = [];
  const subscription = rt.subscribe("presence-room", (event, data) => events.push([event, data]));
  assert.equal(subscription.channel, "presence-room");
  await subscription.ready;
  const room = rt.join("room");
  assert.deepEqual(room.members(), []);
  rt.transport.deliver("presence-room", "moved", { to: 2 });
  assert.deepEqual(events, [["moved", { to: 2 }]]);
});

// Whispers ------------------------------------------------------------------------------------

test("whisper(): sends the whisper op once subscribed; whisper frames reach listenForWhisper with user_id", async () => {
  const rt = start();
  const ws = FakeWebSocket.last;
  welcome(ws);
  const heard = [];
  const room = rt.join("room").listenForWhisper("typing", (data, meta) => heard.push([data, meta.user_id]));
  const sent = room.whisper("typing", { field: "text" });
  await until(() => ws.lastSent("subscribe"));
  assert.equal(ws.lastSent("whisper"), undefined, "not before the subscription is acknowledged");
  ws.push({ op: "ack", id: ws.lastSent("subscribe").id, channel: room.name, offset: 0, epoch: "ep", members: [] });
  await until(() => ws.lastSent("whisper"));
  const frame = ws.lastSent("whisper");
  assert.deepEqual({ ...frame, id: 0 }, { op: "whisper", id: 0, channel: "presence-room", event: "typing", data: { field: "text" } });
  ws.push({ op: "ack", id: frame.id, channel: room.name });
  await sent;
  ws.push({ op: "whisper", channel: room.name, event: "typing", data: { field: "done" }, user_id: "2" });
  ws.push({ op: "whisper", channel: room.name, event: "other", data: {}, user_id: "2" });
  assert.deepEqual(heard, [[{ field: "done" }, "2"]]);
  room.stopListeningForWhisper("typing");
  ws.push({ op: "whisper", channel: room.name, event: "typing", data: {}, user_id: "2" });
  assert.equal(heard.length, 1);
});

test("whisper on a public channel throws at once; a refused whisper rejects and reaches onError", async () => {
  const rt = start();
  const ws = FakeWebSocket.last;
  welcome(ws);
  assert.throws(
    () => rt.channel("todo.todolist.1").whisper("typing", {}),
    (error) => error.code === "not_protected" && /needs a private- or presence- channel; "todo\.todolist\.1" is public/.test(error.message),
  );
  const errors = [];
  rt.onError((error) => errors.push(error.code));
  const channel = rt.private("orders");
  await until(() => subscribeFrame(ws, "private-orders"));
  ws.ackAll();
  const sent = channel.whisper("typing");
  await until(() => ws.lastSent("whisper"));
  ws.push({ op: "error", id: ws.lastSent("whisper").id, code: 4430, reason: "too many whispers" });
  await assert.rejects(sent, (error) => error.code === 4430);
  assert.deepEqual(errors, [4430]);
});

test("whisper to a server without the whisper feature is refused with a clear error", async () => {
  const rt = start();
  const ws = FakeWebSocket.last;
  ws.accept(); // a welcome without features
  rt.onError(() => {});
  const channel = rt.private("orders");
  await until(() => ws.lastSent("subscribe"));
  ws.ackAll();
  await assert.rejects(channel.whisper("typing"), (error) => error.code === "unsupported" && /does not relay whispers/.test(error.message));
});

test("revoked: the channel ends, onError is told, and it is not resubscribed", async () => {
  const rt = start();
  let ws = FakeWebSocket.last;
  welcome(ws);
  const channel = rt.private("todo.todolist.1");
  const errors = [];
  channel.onError((error) => errors.push(error));
  await until(() => ws.lastSent("subscribe"));
  ws.ackAll();
  await channel.ready;
  ws.push({ op: "revoked", channel: channel.name, reason: "access revoked" });
  assert.equal(errors[0].code, "revoked");
  assert.equal(errors[0].reason, "access revoked");
  assert.equal(channel.subscribed, false);
  ws.drop(1006);
  await until(() => FakeWebSocket.all.length === 2);
  ws = FakeWebSocket.last;
  welcome(ws, "s2.2");
  await tick(10);
  assert.equal(ws.lastSent("subscribe"), undefined);
});

test("Django unreachable or failing (not a refusal): the auth request is tried again, then reported", async () => {
  let calls = 0;
  const flaky = fakeFetch(() => (++calls < 3 ? { status: 503, body: "<html>Service Unavailable</html>" } : { body: { auth: "tok" } }));
  const rt = start({ fetch: flaky });
  const ws = FakeWebSocket.last;
  welcome(ws);
  const channel = rt.private("orders");
  await until(() => ws.lastSent("subscribe"), 3000, "the subscribe after two failures");
  assert.equal(ws.lastSent("subscribe").auth, "tok");
  assert.equal(calls, 3);
  ws.ackAll();
  await channel.ready;

  const down = fakeFetch(() => Promise.reject(new TypeError("fetch failed")));
  const other = start({ fetch: down });
  welcome(FakeWebSocket.last);
  other.onError(() => {});
  await assert.rejects(other.private("orders").ready, (error) => error.code === "network_error" && error.status === 0);
  assert.equal(down.calls.length, 4, "the first try and three more");
});
