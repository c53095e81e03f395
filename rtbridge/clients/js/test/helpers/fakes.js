// Test doubles: a WebSocket the test drives as the server, and tiny vendor SDK stand-ins.

/** A WebSocket whose server side the test plays; every instance is kept in `FakeWebSocket.all`. */
export class FakeWebSocket {
  static all = [];
  static get last() {
    return FakeWebSocket.all.at(-1);
  }

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedByClient = false;
    FakeWebSocket.all.push(this);
  }

  send(text) {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.sent.push(JSON.parse(text));
  }

  close() {
    this.closedByClient = true;
    this.readyState = 3;
  }

  /** Server side: accept the connection and send the welcome. */
  accept(socketId = "s1.1", heartbeat = 25) {
    this.readyState = 1;
    this.onopen?.({});
    this.push({ op: "welcome", protocol: 2, socket_id: socketId, heartbeat, server: "fake" });
  }

  push(frame) {
    this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
  }

  /** Server side: close the connection with `code`. */
  drop(code = 1006, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** The last frame the client sent with this op. */
  lastSent(op) {
    return this.sent.filter((frame) => frame.op === op).at(-1);
  }

  /**
   * Answer every subscribe not answered yet with an ack (protocol 2): the channel's top
   * `offset`/`epoch`, or for a subscribe with `since`, whether it can be replayed (same epoch).
   */
  ackAll(offset = 0, epoch = "ep") {
    for (const frame of this.sent) {
      if ((frame.op === "subscribe" || frame.op === "unsubscribe") && !frame.answered) {
        frame.answered = true;
        const { since } = frame;
        const position = since ? { offset: since.epoch === epoch ? since.offset : offset, epoch, recovered: since.epoch === epoch } : { offset, epoch };
        this.push({ op: "ack", id: frame.id, channel: frame.channel, ...(frame.op === "subscribe" && position) });
      }
    }
  }
}

/** Wait for pending promise callbacks (and zero-delay timers) to run. */
export const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

/** Wait until `predicate()` is true, polling. */
export async function until(predicate, timeout = 5000, what = "condition") {
  const deadline = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await tick(5);
  }
}

/** Capture console.error/console.warn calls during `fn`. */
export async function captureConsole(fn) {
  const seen = { error: [], warn: [] };
  const saved = { error: console.error, warn: console.warn };
  console.error = (...args) => seen.error.push(args);
  console.warn = (...args) => seen.warn.push(args);
  try {
    await fn(seen);
  } finally {
    Object.assign(console, saved);
  }
  return seen;
}

/**
 * A fetch() stand-in playing Django: `respond(request)` returns `{status, body}` (or a promise
 * of it); every request is kept in `fetch.calls` as `{url, method, headers, credentials, body}`
 * with the JSON body decoded.
 */
export function fakeFetch(respond = () => ({ body: {} })) {
  const calls = [];
  const fetch = async (url, init) => {
    const request = { url, ...init, body: JSON.parse(init.body) };
    calls.push(request);
    const { status = 200, body = {} } = await respond(request);
    return { status, text: async () => (typeof body === "string" ? body : JSON.stringify(body)) };
  };
  fetch.calls = calls;
  return fetch;
}

/** A fetch() that grants every channel with the token `token-<channel>`. */
export const grantingFetch = () => fakeFetch(({ body }) => ({ body: { auth: `token-${body.channel_name}` } }));
