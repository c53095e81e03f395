// Every vector in tests/vectors/channel_names.json (computed by the Python side) holds here too.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  InvalidChannelName,
  encodeFilterValue,
  filterChannel,
  normalizeFilterKey,
  objectChannel,
  validateChannel,
} from "../src/channel-names.js";
import { encodeForFirebase, encodeForPubnub, encodeForPusher, sha256Hex } from "../src/encodings.js";

const vectors = JSON.parse(readFileSync(new URL("../../../../tests/vectors/channel_names.json", import.meta.url), "utf8"));

test("the vectors file has every section", () => {
  for (const key of ["filter_channels", "object_channels", "encodings", "invalid_channels", "invalid_filter_keys"]) {
    assert.ok(vectors[key].length > 0, key);
  }
});

test("filter channels equal the Python side", () => {
  for (const { base, filters, channel } of vectors.filter_channels) {
    assert.equal(filterChannel(base, filters), channel, JSON.stringify(filters));
  }
});

test("object channels equal the Python side", () => {
  for (const { base, pk, channel } of vectors.object_channels) {
    assert.equal(objectChannel(base, pk), channel, String(pk));
  }
});

test("transport encodings equal the Python side", () => {
  for (const vector of vectors.encodings) {
    assert.equal(encodeForPusher(vector.channel), vector.pusher);
    assert.equal(encodeForPubnub(vector.channel), vector.pubnub);
    assert.equal(encodeForFirebase(vector.channel), vector.firebase);
  }
});

test("invalid channel names are refused, naming the value and the rule", () => {
  for (const name of vectors.invalid_channels) {
    assert.throws(() => validateChannel(name), InvalidChannelName, JSON.stringify(name));
  }
  assert.throws(() => validateChannel("a b"), /"a b" contains " "; allowed characters are A-Z a-z 0-9/);
  assert.throws(() => validateChannel("a".repeat(201)), /201 characters long; the limit is 200/);
  assert.throws(() => validateChannel(5), /is a number; channel names are strings/);
});

test("invalid filter keys are refused, naming the key", () => {
  for (const key of vectors.invalid_filter_keys) {
    assert.throws(() => normalizeFilterKey(key), InvalidChannelName, JSON.stringify(key));
    assert.throws(() => filterChannel("todo.todoitem", { [key]: 1 }), InvalidChannelName);
  }
  assert.throws(() => normalizeFilterKey("todo_list__name"), /"todo_list__name" is not allowed; filters are equality filters/);
});

test("filter values and bases outside the rules are refused", () => {
  assert.throws(() => encodeFilterValue(1.5), /not an integer/);
  assert.throws(() => encodeFilterValue({}), /has type object/);
  assert.throws(() => filterChannel("Todo Item", {}), /Channel base "Todo Item" is not allowed/);
  assert.throws(() => filterChannel("todo.todoitem", { todo_list_id: 1, todo_list__id: 2 }), /repeats "todo_list_id"/);
  assert.throws(() => filterChannel("todo.todoitem", [1]), /must be a plain object/);
  assert.equal(filterChannel("Todo.TodoItem", { n: 10n }), "todo.todoitem;n=10");
});

test("the synchronous SHA-256 matches known digests", () => {
  assert.equal(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
});
