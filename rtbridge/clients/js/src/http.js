/**
 * HTTP calls to Django (the auth endpoint and the data routers): JSON in and out, the session
 * cookie, `X-CSRFToken` and `X-RTBridge-Socket-Id`, and one error shape for every failure.
 * @module rtbridge/http
 */
import { RTBridgeError } from "./errors.js";

/**
 * Return the CSRF token to send: `config.csrfToken()` when it is a function; else the
 * `csrftoken` cookie (`config.csrfCookieName` when Django's `CSRF_COOKIE_NAME` differs), which
 * stays right after Django rotates the token (at login); else `config.csrfToken` (the token
 * `{% rtbridge_config %}` put on the page, for `CSRF_COOKIE_HTTPONLY` or `CSRF_USE_SESSIONS`).
 * @param {{csrfToken?: string|(() => string|null), csrfCookieName?: string}} config
 * @returns {string|null}
 */
export function csrfToken(config) {
  const given = config.csrfToken;
  if (typeof given === "function") return given();
  const name = config.csrfCookieName ?? "csrftoken";
  for (const part of String(globalThis.document?.cookie ?? "").split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return given || null;
}

/**
 * Return `body` for a success, or throw the `RTBridgeError` a router or the auth endpoint
 * answered (`{"error": {"code", "message", "fields"?}}`), with `status`, `code`, `reason`
 * (the server's message) and `fields`. Shared by HTTP and the self-hosted socket's replies.
 * @param {number} status
 * @param {any} body
 * @param {string} what the request, for the message, e.g. "todo-item/create"
 */
export function settle(status, body, what) {
  if (status < 400) return body;
  const { code = status, message = "no reason given", ...rest } = body?.error ?? {};
  throw new RTBridgeError(`rtbridge: ${what} failed: ${status} ${code}: ${message}`, { ...rest, status, code, reason: message });
}

/**
 * POST `body` as JSON to `url` with the session cookie, CSRF and socket-id headers.
 * @param {import("./client.js").Client} client
 * @param {string} url
 * @param {object} body
 * @param {string} what the request, for error messages
 * @returns {Promise<any>} the decoded answer; rejects with `RTBridgeError`
 */
export async function post(client, url, body, what) {
  const { config } = client;
  const fetch = config.fetch ?? globalThis.fetch;
  if (!fetch) {
    throw new RTBridgeError("rtbridge: this runtime has no fetch(); pass one: connect({..., fetch}).", { code: "missing_fetch" });
  }
  const extra = typeof config.headers === "function" ? config.headers() : config.headers;
  const headers = { "Content-Type": "application/json", Accept: "application/json", ...client.headers(), ...extra };
  const token = csrfToken(config);
  if (token) headers["X-CSRFToken"] = token;
  let response, text;
  try {
    response = await fetch(url, {
      method: "POST",
      credentials: config.credentials ?? "same-origin",
      headers,
      body: JSON.stringify(body),
    });
    text = await response.text();
  } catch (cause) {
    throw new RTBridgeError(`rtbridge: ${what} failed: POST ${url}: ${cause?.message ?? cause}`, { code: "network_error", status: 0, cause });
  }
  let answer;
  try {
    answer = JSON.parse(text);
  } catch {
    // Not rtbridge's JSON (a proxy's error page, Django's HTML 403 for a missing CSRF cookie, its 500 page, ...).
    const { status } = response;
    const hint = status === 403 ? " (is the CSRF cookie set? see docs/js.md)" : status >= 500 ? " (the server's log has the error)" : "";
    throw new RTBridgeError(
      `rtbridge: ${what} failed: POST ${url} answered ${status} with something that is not JSON: ${text.slice(0, 80)}${hint}`,
      { code: status === 403 ? "csrf_failed" : status >= 500 ? "server_error" : "bad_response", status },
    );
  }
  return settle(response.status, answer, what);
}
