// Continuity: the merge of one channel (Stream, alone), then the client resuming through a
// scripted transport (self-hosted style: subscribe with `since`) and through Django's history
// endpoint (hosted style), and live lists that reload only when something was really lost.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { Client } from "../src/client.js";
import { Stream } from "../src/continuity.js";
import { connect } from "../src/rtbridge.js";
import { fakeFetch, tick, until } from "./helpers/fakes.js";

const E = "epoch-1";
const message = (offset, epoch = E, extra = {}) => ({ offset, epoch, event: "e", data: { n: offset }, ...extra });

/** A Stream whose deliveries, gaps, recoveries and fills are recorded; `answer(since)` answers fills. */
function stream(answer = () => new Promise(() => {}), holdTimeout = 20) {
  const seen = { delivered: [], gaps: [], recovered: [], fills: [] };
  const s = new Stream({
    deliver: (m) => seen.delivered.push(m.offset ?? m.data),
    fill: (since) => (seen.fills.push(since), Promise.resolve(answer(since))),
    gap: (info) => seen.gaps.push(info),
    recovered: (info) => seen.recovered.push(info),
    holdTimeout,
  });
  return Object.assign(s, { seen });
}

const closed = [];
afterEach(() => closed.splice(0).forEach((item) => ("disconnect" in item ? item.disconnect() : item.close())));

test("in order: every message once; duplicates (offset <= position) are dropped; skips move on silently", () => {
  const s = stream();
  closed.push(s);
  for (const offset of [1, 2, 2, 1, 3]) s.receive(message(offset));
  s.receive(message(4, E, { skip: true })); // our own change: no delivery
  s.receive(message(5));
  s.receive({ event: "x", data: "no position" }); // an unpositioned message is delivered as it comes
  assert.deepEqual(s.seen.delivered, [1, 2, 3, 5, "no position"]);
  assert.deepEqual(s.position, { offset: 5, epoch: E });
  assert.deepEqual(s.seen.fills, []);
});

test("out of order within the hold timeout: delivered in order, history is not asked", async () => {
  const s = stream(undefined, 50);
  closed.push(s);
  s.receive(message(1));
  s.receive(message(3));
  s.receive(message(4));
  assert.deepEqual(s.seen.delivered, [1], "3 and 4 wait for 2");
  s.receive(message(2));
  assert.deepEqual(s.seen.delivered, [1, 2, 3, 4]);
  await tick(80);
  assert.deepEqual(s.seen.fills, [], "the hole closed before the timeout: no fill");
});

test("a hole is filled from history after the hold timeout; held messages follow, in order, once", async () => {
  const s = stream((since) => ({ recovered: true, offset: 6, epoch: E, messages: [2, 3, 4, 5, 6].map((n) => message(n, undefined)) }));
  closed.push(s);
  s.receive(message(1));
  s.receive(message(5));
  s.receive(message(6));
  s.receive(message(7));
  await until(() => s.seen.delivered.length === 7, 1000, "the fill");
  assert.deepEqual(s.seen.delivered, [1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(s.seen.fills, [{ offset: 1, epoch: E }]);
  assert.deepEqual(s.seen.recovered, [{ recovered: true, reason: "hole", offset: 1, epoch: E }]);
  assert.deepEqual(s.seen.gaps, []);
});

test("a hole history cannot fill (trimmed): onGap with recovered false, the answer's top, newer held ones delivered", async () => {
  const s = stream(() => ({ recovered: false, offset: 40, epoch: E, messages: [] }));
  closed.push(s);
  s.receive(message(1));
  s.receive(message(39)); // older than the top: dropped with the loss
  s.receive(message(41));
  s.receive(message(42));
  await until(() => s.seen.gaps.length === 1, 1000, "the gap");
  assert.deepEqual(s.seen.gaps, [{ recovered: false, reason: "hole", offset: 42, epoch: E }]);
  assert.deepEqual(s.seen.delivered, [1, 41, 42]);
  assert.deepEqual(s.position, { offset: 42, epoch: E });
});

test("an epoch change (history lost): recovered false, the new epoch's top; the old epoch's late messages are dropped", async () => {
  const s = stream(() => ({ recovered: false, offset: 3, epoch: "epoch-2", messages: [] }));
  closed.push(s);
  s.receive(message(7));
  s.receive(message(4, "epoch-2"));
  s.receive(message(3, "epoch-2")); // at or before the new top: part of what was lost
  await until(() => s.seen.gaps.length === 1, 1000, "the gap");
  assert.deepEqual(s.seen.fills, [{ offset: 7, epoch: E }]);
  assert.deepEqual(s.seen.gaps, [{ recovered: false, reason: "hole", offset: 4, epoch: "epoch-2" }]);
  s.receive(message(8)); // a late delivery of the old epoch
  s.receive(message(5, "epoch-2"));
  assert.deepEqual(s.seen.delivered, [7, 4, 5]);
});

test("a message held in an epoch that was given up is dropped with it: no endless fills", async () => {
  const s = stream(() => ({ recovered: false, offset: 0, epoch: "epoch-2", messages: [] }), 5);
  closed.push(s);
  s.receive(message(1));
  s.receive(message(3)); // a hole in epoch 1 ...
  s.lost("server", { offset: 0, epoch: "epoch-2" }); // ... then the server says epoch 1 is gone
  s.receive(message(1, "epoch-2"));
  await tick(60);
  assert.deepEqual(s.seen.delivered, [1, 1]);
  assert.deepEqual(s.seen.fills, [], "nothing held is waiting for history");
});

test("history failing for good: onGap carries the error; the held messages go out from the oldest", async () => {
  const failure = Object.assign(new Error("forbidden"), { status: 403 });
  const s = new Stream({
    deliver: (m) => delivered.push(m.offset),
    fill: () => Promise.reject(failure),
    gap: (info) => gaps.push(info),
    recovered: () => assert.fail("nothing was recovered"),
    holdTimeout: 0,
  });
  const delivered = [];
  const gaps = [];
  closed.push(s);
  s.receive(message(1));
  s.receive(message(4));
  s.receive(message(5));
  await until(() => gaps.length === 1);
  assert.deepEqual(gaps, [{ recovered: false, reason: "hole", offset: 5, epoch: E, error: failure }]);
  assert.deepEqual(delivered, [1, 4, 5]);
});

test("a start answer gives the position: messages held until then, those at or before it dropped", async () => {
  const s = stream();
  closed.push(s);
  let answer;
  const started = s.fill("start", () => new Promise((resolve) => (answer = resolve)));
  s.receive(message(10));
  s.receive(message(11));
  assert.deepEqual(s.seen.delivered, [], "held until the start position is known");
  answer({ offset: 10, epoch: E });
  assert.equal(await started, true);
  assert.deepEqual(s.seen.delivered, [11]);
  assert.deepEqual(s.seen.gaps, []);
  // Without any position in the answer (a server without history), the first message starts it.
  const plain = stream();
  closed.push(plain);
  await plain.fill("start", async () => ({ op: "ack" }));
  plain.receive(message(3));
  plain.receive(message(4));
  assert.deepEqual(plain.seen.delivered, [3, 4]);
});

test("an answer to a fill that a newer fill took over is ignored", async () => {
  const s = stream();
  closed.push(s);
  s.receive(message(1));
  const answers = [];
  const old = s.fill("reconnect", () => new Promise((resolve) => answers.push(resolve)));
  const current = s.fill("reconnect", () => new Promise((resolve) => answers.push(resolve)));
  answers[0]({ recovered: false, offset: 99, epoch: "other" });
  answers[1]({ recovered: true, offset: 1, epoch: E });
  assert.equal(await old, undefined);
  assert.equal(await current, true);
  assert.deepEqual(s.position, { offset: 1, epoch: E });
  assert.deepEqual(s.seen.gaps, []);
});

// The client, through a scripted transport -----------------------------------------------

/** A transport the test plays: `subscribes` lists `[channel, since]`; `answer` answers them. */
function scripted(answer) {
  const transport = { subscribes: [] };
  const factory = (config, hooks) =>
    Object.assign(transport, {
      hooks,
      connect: () => queueMicrotask(() => hooks.open("sock.1")),
      disconnect() {},
      socketId: () => "sock.1",
      subscribe(channel, since) {
        transport.subscribes.push([channel, since ?? null]);
        return answer(channel, since);
      },
      unsubscribe() {},
      deliver: (channel, offset, epoch = E) => hooks.message(channel, "e", { n: offset }, { channel, offset, epoch }),
    });
  return { transport, factory };
}

/** Record every hook of the client as [hook, channel, info]. */
function record(rt) {
  const events = [];
  rt.onGap((channel, info) => events.push(["gap", channel, info]));
  rt.onRecovered((channel, info) => events.push(["recovered", channel, info]));
  rt.onResubscribed((channel, info) => events.push(["resubscribed", channel, info]));
  return events;
}

test("self-hosted style: the resume after a reconnect subscribes with since; recovered true needs no refetch", async () => {
  const { transport, factory } = scripted((channel, since) =>
    since ? { offset: since.offset, epoch: E, recovered: since.epoch === E } : { offset: 2, epoch: E },
  );
  const rt = new Client(factory, { backend: "test" });
  closed.push(rt);
  const seen = [];
  const sub = rt.subscribe("chat.a", (event, data, meta) => seen.push([data.n, meta.offset, meta.epoch]));
  const events = record(rt);
  await sub.ready;
  transport.deliver("chat.a", 3);
  transport.deliver("chat.a", 4);
  // The link drops; the server replays 5 and 6 after the resume's ack.
  transport.hooks.state("reconnecting");
  transport.hooks.open("sock.2");
  await until(() => events.length === 2);
  transport.deliver("chat.a", 5);
  transport.deliver("chat.a", 6);
  transport.deliver("chat.a", 6); // a live copy of a replayed one
  assert.deepEqual(transport.subscribes, [
    ["chat.a", null],
    ["chat.a", { offset: 4, epoch: E }],
  ]);
  assert.deepEqual(seen, [3, 4, 5, 6].map((n) => [n, n, E]));
  assert.deepEqual(events, [
    ["recovered", "chat.a", { recovered: true, reason: "reconnect", offset: 4, epoch: E }],
    ["resubscribed", "chat.a", { recovered: true }],
  ]);

  // The server restarted without its history: recovered false, the new top, onGap.
  transport.subscribe = (channel, since) => (transport.subscribes.push([channel, since]), { offset: 0, epoch: "fresh", recovered: false });
  transport.hooks.open("sock.3");
  await until(() => events.length === 4, 2000, "the gap");
  assert.deepEqual(transport.subscribes.at(-1), ["chat.a", { offset: 6, epoch: E }]);
  assert.deepEqual(events.slice(2), [
    ["gap", "chat.a", { recovered: false, reason: "reconnect", offset: 0, epoch: "fresh" }],
    ["resubscribed", "chat.a", { recovered: false }],
  ]);
  transport.deliver("chat.a", 1, "fresh");
  assert.deepEqual(seen.at(-1), [1, 1, "fresh"]);
});

test("a server gap frame moves the position to its top and reaches onGap; a transport's 'missed' fills", async () => {
  const { transport, factory } = scripted((channel, since) =>
    since ? { offset: since.offset, epoch: E, recovered: true } : { offset: 0, epoch: E },
  );
  const rt = new Client(factory, { backend: "test" });
  closed.push(rt);
  const seen = [];
  const sub = rt.subscribe("chat.b", (event, data) => seen.push(data.n));
  const events = record(rt);
  await sub.ready;
  transport.deliver("chat.b", 1);
  transport.hooks.gap("chat.b", { op: "gap", channel: "chat.b", offset: 9, epoch: E, recovered: false });
  transport.deliver("chat.b", 10);
  assert.deepEqual(seen, [1, 10]);
  assert.deepEqual(events, [["gap", "chat.b", { recovered: false, reason: "server", offset: 9, epoch: E }]]);
  transport.hooks.missed("chat.b");
  await until(() => events.length === 2);
  assert.deepEqual(transport.subscribes.at(-1), ["chat.b", { offset: 10, epoch: E }]);
  assert.deepEqual(events[1], ["recovered", "chat.b", { recovered: true, reason: "missed", offset: 10, epoch: E }]);
});

test("no positions (a server without history, the null transport): every resubscribe is recovered false and a gap", async () => {
  const { transport, factory } = scripted(() => ({ op: "ack" }));
  const rt = new Client(factory, { backend: "test" });
  closed.push(rt);
  const sub = rt.subscribe("chat.c", () => {});
  const events = record(rt);
  await sub.ready;
  transport.hooks.open("sock.2");
  await until(() => events.length === 2);
  assert.deepEqual(events, [
    ["gap", "chat.c", { recovered: false, reason: "reconnect" }],
    ["resubscribed", "chat.c", { recovered: false }],
  ]);
});

// Hosted style: Django's history endpoint ----------------------------------------------------

/** A fetch() playing Django's history endpoint over `log` (the channel's messages, offsets 1..n). */
function historyFetch(log, { epoch = E, size = 1000, fail = 0 } = {}) {
  const state = { epoch, fail };
  const fetch = fakeFetch(({ url, body }) => {
    if (!url.endsWith("/rtbridge/history")) return { status: 404, body: { error: { code: "not_found", message: url } } };
    if (state.fail > 0) {
      state.fail--;
      return { status: 503, body: { error: { code: "unavailable", message: "try later" } } };
    }
    const top = log.length;
    if (body.since === null) return { body: { channel: body.channel, offset: top, epoch: state.epoch } }; // the top only
    const { offset, epoch: since } = body.since;
    if (since !== state.epoch || offset < top - size) return { body: { channel: body.channel, recovered: false, offset: top, epoch: state.epoch, messages: [] } };
    const messages = log.slice(offset).map((item, index) => ({ offset: offset + index + 1, event: "e", data: item.data, exclude: item.exclude ?? null }));
    return { body: { channel: body.channel, recovered: true, offset: top, epoch: state.epoch, messages } };
  });
  return Object.assign(fetch, { state });
}

test("hosted: the start position is read before subscribing; a reconnect resumes from history (own messages skipped)", async () => {
  const log = [{ data: { n: 1 } }, { data: { n: 2 } }];
  const fetch = historyFetch(log);
  const { transport, factory } = scripted(() => undefined);
  const rt = new Client(factory, { backend: "test", historyEndpoint: "/rtbridge/history", fetch, holdTimeout: 10 });
  closed.push(rt);
  const seen = [];
  const sub = rt.subscribe("chat.h", (event, data, meta) => seen.push([data.n, meta.offset]));
  const events = record(rt);
  await sub.ready;
  assert.deepEqual(fetch.calls[0].body, { channel: "chat.h", since: null, socket_id: "sock.1" });
  assert.ok(fetch.calls[0].headers["Content-Type"], "posted like the auth calls");
  assert.deepEqual(transport.subscribes, [["chat.h", null]], "subscribed after the history answer");
  // Published while the page was away: 3 (by someone), 4 (by this page: excluded), 5.
  log.push({ data: { n: 3 } }, { data: { n: 4 }, exclude: "sock.1" }, { data: { n: 5 } });
  transport.hooks.state("reconnecting");
  transport.hooks.open("sock.2");
  await until(() => events.length === 2);
  assert.deepEqual(fetch.calls[1].body.since, { offset: 2, epoch: E });
  assert.deepEqual(seen, [
    [3, 3],
    [5, 5],
  ]);
  assert.deepEqual(events, [
    ["recovered", "chat.h", { recovered: true, reason: "reconnect", offset: 2, epoch: E }],
    ["resubscribed", "chat.h", { recovered: true }],
  ]);
  // A live burst with a hole (a vendor that dropped 6 and 7): filled from history, in order.
  log.push({ data: { n: 6 } }, { data: { n: 7 } }, { data: { n: 8 } });
  transport.deliver("chat.h", 8);
  await until(() => seen.length === 5);
  assert.deepEqual(seen.slice(2).map(([n]) => n), [6, 7, 8]);
});

test("hosted: a failing history endpoint is tried again; failing for good it is a gap, never a silent loss", async () => {
  const log = [{ data: { n: 1 } }];
  const fetch = historyFetch(log, { fail: 2 });
  const { transport, factory } = scripted(() => undefined);
  const rt = new Client(factory, { backend: "test", historyEndpoint: "/rtbridge/history", fetch, holdTimeout: 10, reconnect: { initialDelay: 1, maxDelay: 5 } });
  closed.push(rt);
  const seen = [];
  const sub = rt.subscribe("chat.f", (event, data) => seen.push(data.n));
  const events = record(rt);
  await sub.ready;
  assert.equal(fetch.calls.length, 3, "two 503s, then the answer");
  log.push({ data: { n: 2 } }, { data: { n: 3 } });
  transport.deliver("chat.f", 3);
  await until(() => seen.length === 2);
  assert.deepEqual(seen, [2, 3]);
  // Now the endpoint refuses (e.g. 403): the hole is reported, the held message delivered.
  rt.config.fetch = fakeFetch(() => ({ status: 403, body: { error: { code: "forbidden", message: "no" } } }));
  transport.deliver("chat.f", 6);
  await until(() => events.length === 2);
  assert.deepEqual(events[0], ["recovered", "chat.f", { recovered: true, reason: "hole", offset: 1, epoch: E }]);
  const [hook, channel, info] = events[1];
  assert.deepEqual([hook, channel, info.recovered, info.reason, info.offset, info.error.code], ["gap", "chat.f", false, "hole", 6, "forbidden"]);
  assert.deepEqual(seen, [2, 3, 6]);
});

// Live lists ---------------------------------------------------------------------------------

test("liveList: a recovered reconnect applies the missed events without a reload; recovered false reloads", async () => {
  const log = [];
  const table = new Map([[1, { id: 1, text: "a", todo_list_id: 1 }]]);
  const fetch = fakeFetch(({ url, body }) => {
    const verb = url.split("/").at(-1);
    if (verb === "history") {
      const top = log.length;
      if (body.since === null) return { body: { offset: top, epoch: fetch.epoch } };
      if (body.since.epoch !== fetch.epoch) return { body: { recovered: false, offset: top, epoch: fetch.epoch, messages: [] } };
      return { body: { recovered: true, offset: top, epoch: fetch.epoch, messages: log.slice(body.since.offset).map((m, i) => ({ offset: body.since.offset + i + 1, ...m })) } };
    }
    if (verb === "subscribe") return { body: { data: null, channels: ["testapp.todoitem;todo_list_id=1"] } };
    if (verb === "get_list") return { body: { data: [...table.values()], page: { number: 1, has_next: false } } };
    return { status: 404, body: { error: { code: "unknown_verb", message: verb } } };
  });
  fetch.epoch = E;
  const rt = connect({ backend: "null", historyEndpoint: "/rtbridge/history", fetch, holdTimeout: 10 });
  closed.push(rt);
  const live = rt.liveList("todo-item", { todo_list_id: 1 }, { order: "id" });
  await live.ready;
  const loads = () => fetch.calls.filter((call) => call.url.endsWith("/get_list")).length;
  assert.equal(loads(), 1);
  // Away: two rows created; back: history has both, the list gets them without a reload.
  for (const id of [2, 3]) {
    const row = { id, text: `missed ${id}`, todo_list_id: 1 };
    table.set(id, row);
    log.push({ event: "created", data: row, exclude: null });
  }
  rt.transport.disconnect();
  rt.transport.connect();
  await until(() => live.rows().length === 3, 2000, "the missed rows");
  await tick(20);
  assert.equal(loads(), 1, "no reload after a recovered reconnect");
  // The history store was wiped (new epoch): recovered false, so the list reloads by itself.
  fetch.epoch = "wiped";
  table.delete(1);
  rt.transport.disconnect();
  rt.transport.connect();
  await until(() => loads() === 2, 2000, "the reload");
  await until(() => live.rows().length === 2);
  assert.deepEqual(live.rows().map((row) => row.id), [2, 3]);
});
