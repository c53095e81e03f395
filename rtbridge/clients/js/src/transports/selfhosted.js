/**
 * The self-hosted transport: a native WebSocket speaking rtbridge wire protocol 2
 * (`docs/protocol.md`) to an rtbridge server node, with heartbeats and reconnect with backoff.
 * Messages carry their position (`offset`, `epoch`) in `meta`; a subscribe with `since` asks
 * the server to replay what came after it, and its ack says whether it could (`recovered`).
 * @module rtbridge/transports/selfhosted
 */
import { backoffDelay } from "../backoff.js";
import { isProtected } from "../channel-names.js";
import { RTBridgeError } from "../errors.js";

// Close codes after which the client stays away (protocol v1: normal close, abuse).
const FINAL_CLOSE_CODES = [1000, 4001];

/** Return the socket URL: `config.url`, else `ws(s)://<page host><config.path>`. */
export function socketUrl(config) {
  if (config.url) return config.url;
  const { location } = globalThis;
  if (!location?.host) {
    throw new RTBridgeError(
      `The ${config.backend} backend has url=null (same host as the page), but there is no page here; ` +
        'pass connect({backend: "local", url: "ws://127.0.0.1:8000/rtbridge/ws"}).',
    );
  }
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${config.path ?? "/rtbridge/ws"}`;
}

/**
 * Create the transport (called by the client with its hooks).
 * @param {{url?: string|null, path?: string, WebSocket?: typeof WebSocket, reconnect?: object|false,
 *   connectTimeout?: number, heartbeatGrace?: number}} config
 * @param {object} hooks
 */
export function selfhosted(config, hooks) {
  const WebSocketClass = config.WebSocket ?? globalThis.WebSocket;
  if (!WebSocketClass) {
    throw new RTBridgeError(
      "No WebSocket implementation: this runtime has no global WebSocket; pass one, e.g. " +
        "connect({..., WebSocket}) with `import WebSocket from \"ws\"` in Node < 22.",
    );
  }
  const url = socketUrl(config);
  const reconnect = config.reconnect === false ? { maxAttempts: 0 } : { ...config.reconnect };
  const pending = new Map(); // request id → {resolve, reject}
  let socket = null;
  let socketId = null;
  let features = [];
  let nextId = 1;
  let attempt = 0;
  let stopped = false;
  let retryTimer;
  let idleTimer;
  let idleMs = 0;

  function open() {
    clearTimeout(retryTimer);
    const ws = (socket = new WebSocketClass(url));
    // Until the welcome, a socket that hangs (e.g. a black-holed SYN) is given up after this.
    idleMs = config.connectTimeout ?? 10000;
    watchIdle();
    ws.onmessage = (event) => ws === socket && receive(event.data);
    ws.onclose = (event) => ws === socket && closed(event.code, event.reason);
    ws.onerror = () => {}; // a close event always follows
  }

  function send(frame) {
    socket.send(JSON.stringify(frame));
  }

  function request(frame, onSocket = socketId) {
    // `onSocket`: the socket id a token was issued for; a reconnect since then makes it useless.
    if (!socket || socket.readyState !== 1 || socketId === null || onSocket !== socketId) {
      return Promise.reject(new RTBridgeError("rtbridge: not connected", { code: "closed", retry: true }));
    }
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject, channel: frame.channel });
      send({ ...frame, id });
    });
  }

  function watchIdle() {
    // The server sends a heartbeat every `heartbeat` seconds; two missed mean a dead link
    // that the browser may take minutes to notice on its own.
    clearTimeout(idleTimer);
    if (idleMs) idleTimer = setTimeout(() => drop(4408, "the server went silent"), idleMs);
  }

  function receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return hooks.error(new RTBridgeError(`rtbridge: the server sent a frame that is not JSON: ${String(text).slice(0, 80)}`, { code: "bad_frame" }));
    }
    watchIdle();
    const { op, channel } = frame;
    if (op === "welcome") {
      socketId = frame.socket_id;
      features = Array.isArray(frame.features) ? frame.features : [];
      attempt = 0;
      idleMs = frame.heartbeat > 0 ? frame.heartbeat * 2000 + (config.heartbeatGrace ?? 5000) : 0;
      watchIdle();
      hooks.open(socketId);
    } else if (op === "message") {
      hooks.message(channel, frame.event, frame.data, { channel, offset: frame.offset, epoch: frame.epoch });
    } else if (op === "skip") {
      // A message this socket was excluded from (its own change): only the position moves on.
      hooks.skip(channel, frame);
    } else if (op === "ack" || op === "pong" || op === "reply" || op === "error") {
      const request = pending.get(frame.id);
      pending.delete(frame.id);
      if (op !== "error") return request?.resolve(frame);
      const { code, reason, detail } = frame;
      const error = new RTBridgeError(`rtbridge: the server refused the request: ${code} ${reason}${detail ? ` (${detail})` : ""}`, {
        code,
        reason,
        detail,
        channel: request?.channel,
      });
      request ? request.reject(error) : hooks.error(error);
    } else if (op === "presence") {
      hooks.presence(channel, frame.action, [frame.member]);
    } else if (op === "whisper") {
      hooks.whisper(channel, frame.event, frame.data, { channel, user_id: frame.user_id });
    } else if (op === "revoked") {
      hooks.revoked(channel, new RTBridgeError(`rtbridge: the server ended ${channel}: ${frame.reason}`, { code: "revoked", reason: frame.reason, channel }));
    } else if (op === "gap") {
      hooks.gap(channel, frame); // `offset`/`epoch`: the position to go on from
    } else if (op === "heartbeat") {
      send({ op: "heartbeat" });
    }
  }

  function drop(code, reason) {
    // Give up on this socket now (handlers detached), then behave as if it closed.
    const ws = socket;
    socket = null;
    try {
      ws?.close();
    } catch {}
    closed(code, reason);
  }

  function closed(code, reason) {
    clearTimeout(idleTimer);
    socket = null;
    socketId = null;
    features = [];
    for (const { reject } of pending.values()) reject(new RTBridgeError("rtbridge: connection lost", { code: "closed", retry: true }));
    pending.clear();
    const max = reconnect.maxAttempts ?? Infinity;
    if (stopped || FINAL_CLOSE_CODES.includes(code) || attempt >= max) {
      if (!stopped && code !== 1000) {
        hooks.error(new RTBridgeError(`rtbridge: connection closed (${code} ${reason ?? ""}), not reconnecting`, { code, reason }));
      }
      return hooks.state("disconnected");
    }
    hooks.state("reconnecting");
    retryTimer = setTimeout(open, backoffDelay(attempt++, reconnect));
  }

  // When the browser says the network is back, retry now instead of at the end of the backoff.
  const online = () => !stopped && !socket && open();

  return {
    connect() {
      stopped = false;
      globalThis.addEventListener?.("online", online);
      open();
    },
    disconnect() {
      stopped = true;
      globalThis.removeEventListener?.("online", online);
      clearTimeout(retryTimer);
      if (socket) drop(1000, "disconnect()");
    },
    socketId: () => socketId,
    /** Subscribe (again) to `channel`; with `since` the server replays what came after it. */
    subscribe(channel, since) {
      // A protected channel needs a token from Django's auth endpoint, for this very socket.
      const attempt = async (retried) => {
        const onSocket = socketId;
        if (onSocket === null) throw new RTBridgeError("rtbridge: not connected", { code: "closed", retry: true });
        const answer = isProtected(channel) ? await hooks.authorize(channel, onSocket) : null;
        return request({ op: "subscribe", channel, ...(since && { since }), ...(answer && { auth: answer.auth }) }, onSocket).then(
          (ack) => {
            if (ack.members) hooks.presence(channel, "here", ack.members);
            return ack;
          },
          (error) => {
            // An expired token (a cached one, or a slow page) is renewed once.
            if (error.code === 4403 && error.detail === "expired" && !retried) return attempt(true);
            throw error;
          },
        );
      };
      return attempt(false);
    },
    unsubscribe(channel) {
      return request({ op: "unsubscribe", channel });
    },
    whisper(channel, event, data) {
      if (!features.includes("whisper")) {
        return Promise.reject(new RTBridgeError("rtbridge: this rtbridge server does not relay whispers (no \"whisper\" in its features).", { code: "unsupported", channel }));
      }
      return request({ op: "whisper", channel, event, data });
    },
    /** Say whether data calls can go over the socket (connected, and the server offers `call`). */
    canCall: () => socketId !== null && features.includes("call"),
    call(route, verb, args) {
      return request({ op: "call", route, verb, args });
    },
  };
}
