// connect({configUrl}): the config fetched from Django, made absolute, and errors that say what failed.
import assert from "node:assert/strict";
import { test } from "node:test";

import { connect, fetchConfig } from "../src/rtbridge.js";

const CONFIG = {
  backend: "local",
  url: null,
  path: "/rtbridge/ws",
  authEndpoint: "/rtbridge/auth",
  dataEndpoint: "/rtbridge/data",
  csrfToken: "token-1",
};

function fakeFetch(status, body, calls = []) {
  return async (url, init) => {
    calls.push({ url, init });
    return { ok: status < 400, status, text: async () => (typeof body === "string" ? body : JSON.stringify(body)) };
  };
}

test("fetchConfig makes the endpoints and the socket absolute on the config's host", async () => {
  const calls = [];
  const config = await fetchConfig("https://api.example.com/rtbridge/config", { fetch: fakeFetch(200, CONFIG, calls) });
  assert.deepEqual(calls, [
    { url: "https://api.example.com/rtbridge/config", init: { credentials: "include", headers: { Accept: "application/json" } } },
  ]);
  assert.equal(config.url, "wss://api.example.com/rtbridge/ws");
  assert.equal(config.authEndpoint, "https://api.example.com/rtbridge/auth");
  assert.equal(config.dataEndpoint, "https://api.example.com/rtbridge/data");
  assert.equal(config.credentials, "include");
  assert.equal(config.csrfToken, "token-1");
});

test("fetchConfig keeps a socket URL the server gave (public_url) and absolute endpoints", async () => {
  const given = { ...CONFIG, url: "wss://rt.example.com/rtbridge/ws", dataEndpoint: "https://data.example.com/d" };
  const config = await fetchConfig("http://127.0.0.1:8000/rtbridge/config", { fetch: fakeFetch(200, given), credentials: "same-origin" });
  assert.equal(config.url, "wss://rt.example.com/rtbridge/ws");
  assert.equal(config.dataEndpoint, "https://data.example.com/d");
  assert.equal(config.credentials, "same-origin");
});

test("hosted backends get no socket URL", async () => {
  const config = await fetchConfig("http://127.0.0.1:8000/rtbridge/config", { fetch: fakeFetch(200, { backend: "pusher", key: "k" }) });
  assert.equal(config.url, undefined);
});

test("each failure says what failed", async () => {
  const url = "http://127.0.0.1:8000/rtbridge/config";
  const failing = async () => {
    throw new TypeError("Failed to fetch");
  };
  await assert.rejects(fetchConfig(url, { fetch: failing }), (error) => {
    assert.equal(error.code, "config_failed");
    assert.match(error.message, /fetching the config from http:\/\/127\.0\.0\.1:8000\/rtbridge\/config failed: Failed to fetch/);
    assert.match(error.message, /CORS headers that allow this origin with credentials/);
    return true;
  });
  await assert.rejects(fetchConfig(url, { fetch: fakeFetch(404, "<h1>Not Found</h1>") }), /answered 404 \(is path\("rtbridge\/", include\("rtbridge.urls"\)\)/);
  await assert.rejects(fetchConfig(url, { fetch: fakeFetch(200, "<html>") }), /the answer is not JSON: <html>/);
  await assert.rejects(fetchConfig(url, { fetch: fakeFetch(200, { hello: 1 }) }), /has no "backend"/);
  await assert.rejects(fetchConfig("http://[bad", { fetch: fakeFetch(200, CONFIG) }), (error) => error.code === "bad_config_url");
});

test("connect({configUrl}) resolves with a client on the fetched config, the options over it", async () => {
  const opened = [];
  class FakeSocket {
    constructor(url) {
      opened.push(url);
      this.readyState = 0;
    }
    send() {}
    close() {}
  }
  const client = await connect({
    configUrl: "http://127.0.0.1:8000/rtbridge/config",
    fetch: fakeFetch(200, CONFIG),
    WebSocket: FakeSocket,
    reconnect: false,
  });
  assert.equal(client.config.backend, "local");
  assert.equal(client.config.dataEndpoint, "http://127.0.0.1:8000/rtbridge/data");
  assert.equal(client.config.configUrl, undefined);
  assert.deepEqual(opened, ["ws://127.0.0.1:8000/rtbridge/ws"]);
  client.disconnect();
});
