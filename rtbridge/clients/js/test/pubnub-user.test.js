// The PubNub user id: stable per device across page loads, distinct for tabs open at once.
import assert from "node:assert/strict";
import test from "node:test";
import { pubnubUserId } from "../src/transports/pubnub-user.js";

/** A localStorage and a Web Locks manager shared by the "tabs" of one fake device. */
function device() {
  const items = new Map();
  const held = new Map(); // lock name → release
  const storage = { getItem: (key) => items.get(key) ?? null, setItem: (key, value) => items.set(key, String(value)) };
  const locks = {
    request(name, options, callback) {
      if (held.has(name)) return Promise.resolve(callback(null));
      let release;
      held.set(name, () => release());
      const done = callback({ name });
      return Promise.race([done, new Promise((resolve) => (release = resolve))]).then(() => held.delete(name));
    },
  };
  return { storage, locks, close: (name) => held.get(name)?.() };
}

test("pubnub user id: one device id across page loads, one slot per open tab", async () => {
  const { storage, locks, close } = device();
  const first = await pubnubUserId({}, storage, locks);
  const second = await pubnubUserId({}, storage, locks);
  assert.match(first, /^rtb-.+-0$/);
  assert.equal(second, first.replace(/-0$/, "-1"), "a second open tab takes the next slot");
  close(`rtbridge:pubnub-device:${first.slice(0, -2)}:0`);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(await pubnubUserId({}, storage, locks), first, "a reload reuses the freed slot: the same id");
});

test("pubnub user id: an explicit userId wins; no storage gives a random id per load; no locks the device id", async () => {
  assert.equal(await pubnubUserId({ userId: "given" }), "given");
  const a = await pubnubUserId({}, undefined, undefined);
  const b = await pubnubUserId({}, undefined, undefined);
  assert.notEqual(a, b);
  const refusing = { getItem() { throw new Error("SecurityError"); }, setItem() {} };
  assert.ok(await pubnubUserId({}, refusing, undefined));
  const { storage } = device();
  const id = await pubnubUserId({}, storage, undefined);
  assert.equal(await pubnubUserId({}, storage, undefined), id);
});
