// makeConnect(table) and the two entries built on it: the main entry ("rtbridge", src/index.js:
// self-hosted and null transports, others passed as `transport`) and "rtbridge/all" (every one).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Client, makeConnect } from "../src/connect.js";
import * as main from "../src/index.js";
import * as all from "../src/rtbridge.js";
import { nullTransport } from "../src/transports/null.js";
import { pusher } from "../src/transports/pusher.js";
import { selfhosted } from "../src/transports/selfhosted.js";
import { FakeWebSocket } from "./helpers/fakes.js";
import { FakePusher } from "./helpers/sdks.js";

/** A transport factory that records the configs it was called with. */
function recording() {
  const calls = [];
  const factory = (config, hooks) => {
    calls.push(config);
    return nullTransport({ ...config, quiet: true }, hooks);
  };
  return { factory, calls };
}

test("makeConnect: the table's transport for the config's backend, read at each call", () => {
  const first = recording();
  const table = { mine: first.factory };
  const connect = makeConnect(table, "test");
  const rt = connect({ backend: "mine", option: 1 });
  assert.ok(rt instanceof Client);
  assert.deepEqual(first.calls, [{ backend: "mine", option: 1 }]);
  const later = recording();
  table.later = later.factory;
  connect({ backend: "later" }).disconnect();
  assert.equal(later.calls.length, 1);
  rt.disconnect();
});

test("makeConnect: config.transport wins over the table and is not passed on in the config", () => {
  const inTable = recording();
  const given = recording();
  const connect = makeConnect({ local: inTable.factory });
  const rt = connect({ backend: "local", url: "ws://x/", transport: given.factory });
  assert.equal(inTable.calls.length, 0);
  assert.deepEqual(given.calls, [{ backend: "local", url: "ws://x/" }]);
  assert.equal("transport" in rt.config, false);
  // An alias no table knows (a transport of one's own) works with `transport` too.
  connect({ backend: "custom", transport: given.factory }).disconnect();
  assert.equal(given.calls.length, 2);
  rt.disconnect();
});

test("makeConnect: an unknown backend is unknown_backend, naming the known ones and `transport`", () => {
  const connect = makeConnect({ local: selfhosted, null: nullTransport });
  assert.throws(
    () => connect({ backend: "pushr" }),
    (error) => {
      assert.equal(error.name, "RTBridgeError");
      assert.equal(error.code, "unknown_backend");
      assert.match(error.message, /unknown backend "pushr"; known backends are local, null, pusher, pubnub, firebase\./);
      assert.match(error.message, /connect\(\{\.\.\., transport: factory\}\)/);
      return true;
    },
  );
  // Names of Object.prototype are no backends.
  assert.throws(() => connect({ backend: "toString" }), { code: "unknown_backend" });
});

test("makeConnect: a hosted backend missing from the table names both fixes", () => {
  const connect = makeConnect({ local: selfhosted }, 'the main entry "rtbridge"');
  for (const backend of ["pusher", "pubnub", "firebase"]) {
    assert.throws(
      () => connect({ backend }),
      (error) => {
        assert.equal(error.code, "missing_transport");
        assert.ok(error.message.includes(`the ${backend} backend needs its transport, which the main entry "rtbridge" leaves out`), error.message);
        assert.ok(error.message.includes(`import { ${backend} } from "rtbridge/transports/${backend}"; connect({..., transport: ${backend}})`), error.message);
        assert.ok(error.message.includes('import { connect } from "rtbridge/all"'), error.message);
        return true;
      },
    );
  }
});

test("makeConnect: a transport that is not a factory is refused, not ignored", () => {
  const connect = makeConnect({ local: selfhosted });
  for (const transport of ["pusher", null, {}]) {
    assert.throws(() => connect({ backend: "local", transport }), (error) => {
      assert.equal(error.code, "invalid_transport");
      assert.match(error.message, /takes a transport factory/);
      return true;
    });
  }
});

test("makeConnect: configUrl fetches the config, then connects with the given transport", async () => {
  const given = recording();
  const connect = makeConnect({});
  const fetch = async () => ({ ok: true, status: 200, text: async () => JSON.stringify({ backend: "pusher", key: "k" }) });
  const rt = await connect({ configUrl: "http://127.0.0.1:8000/rtbridge/config", fetch, transport: given.factory });
  assert.ok(rt instanceof Client);
  assert.equal(given.calls.length, 1);
  assert.equal(given.calls[0].backend, "pusher");
  assert.equal(given.calls[0].key, "k");
  rt.disconnect();
  // Without one, the fetched hosted backend gets the error naming the fix (as a rejection).
  await assert.rejects(makeConnect({}, "x")({ configUrl: "http://127.0.0.1:8000/rtbridge/config", fetch }), { code: "missing_transport" });
});

test('the main entry: self-hosted and null backends as they are; "pusher" needs `transport`', () => {
  assert.equal("transports" in main, false);
  const rt = main.connect({ backend: "local", url: "ws://127.0.0.1:1/rtbridge/ws", WebSocket: FakeWebSocket, reconnect: false });
  assert.equal(FakeWebSocket.last.url, "ws://127.0.0.1:1/rtbridge/ws");
  rt.disconnect();
  for (const backend of ["locmem", "dummy", "console", "null"]) main.connect({ backend, quiet: true }).disconnect();
  assert.throws(
    () => main.connect({ backend: "pusher", key: "k", Pusher: FakePusher }),
    (error) => {
      assert.equal(error.code, "missing_transport");
      assert.ok(error.message.includes('import { pusher } from "rtbridge/transports/pusher"; connect({..., transport: pusher})'), error.message);
      assert.ok(error.message.includes('import { connect } from "rtbridge/all"'), error.message);
      return true;
    },
  );
  const hosted = main.connect({ backend: "pusher", key: "app-key", Pusher: FakePusher, transport: pusher });
  assert.equal(FakePusher.last.key, "app-key");
  hosted.disconnect();
});

test('"rtbridge/all": the main entry plus transports; connect() needs only the backend', () => {
  assert.deepEqual(Object.keys(all).filter((name) => !(name in main)), ["transports"]);
  for (const name of Object.keys(main)) if (name !== "connect") assert.equal(all[name], main[name], name);
  assert.notEqual(all.connect, main.connect);
  const rt = all.connect({ backend: "pusher", key: "all-key", Pusher: FakePusher });
  assert.equal(FakePusher.last.key, "all-key");
  assert.equal(rt.config.backend, "pusher");
  rt.disconnect();
  assert.throws(() => all.connect({ backend: "nope" }), (error) => {
    assert.equal(error.code, "unknown_backend");
    assert.match(error.message, /known backends are local, redis, selfhosted, pusher, pubnub, firebase, locmem, dummy, console, null\./);
    return true;
  });
});
