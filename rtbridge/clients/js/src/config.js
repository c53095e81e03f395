/**
 * `connect({configUrl})`: fetch the client config from Django (`GET /rtbridge/config`) for
 * pages Django does not render: a single-page app, maybe on another origin (docs/js.md).
 * @module rtbridge/config
 */
import { RTBridgeError } from "./errors.js";

// Backends whose socket URL is derived from the server's host when the config has none.
const SELF_HOSTED = ["local", "redis", "selfhosted"];
// Config keys that are URLs of Django endpoints (relative to the config's URL).
const ENDPOINTS = ["authEndpoint", "dataEndpoint", "historyEndpoint"];
const CORS_HINT =
  " (from another origin, Django must answer with CORS headers that allow this origin with " +
  'credentials, e.g. django-cors-headers: see docs/js.md, "Single-page apps")';

/**
 * Fetch the config at `configUrl` (with the cookies: `credentials: "include"` unless given)
 * and resolve with it ready for `connect()`: endpoint URLs made absolute against `configUrl`,
 * the self-hosted socket URL derived from its host when the config has none, and the same
 * `credentials` for the auth and data calls. Rejects with an `RTBridgeError` saying what failed.
 * @param {string} configUrl e.g. "https://api.example.com/rtbridge/config"
 * @param {{fetch?: typeof fetch, credentials?: "omit"|"same-origin"|"include"}} [options]
 * @returns {Promise<object>}
 */
export async function fetchConfig(configUrl, options = {}) {
  const fetch = options.fetch ?? globalThis.fetch;
  if (!fetch) {
    throw new RTBridgeError("rtbridge: this runtime has no fetch(); pass one: connect({configUrl, fetch}).", { code: "missing_fetch" });
  }
  let url;
  try {
    url = new URL(configUrl, globalThis.location?.href);
  } catch {
    throw new RTBridgeError(`rtbridge: configUrl ${JSON.stringify(configUrl)} is not a URL; give e.g. "https://api.example.com/rtbridge/config".`, { code: "bad_config_url" });
  }
  const credentials = options.credentials ?? "include";
  const what = `rtbridge: fetching the config from ${url.href}`;
  let response, text;
  try {
    response = await fetch(url.href, { credentials, headers: { Accept: "application/json" } });
    text = await response.text();
  } catch (cause) {
    throw new RTBridgeError(`${what} failed: ${cause?.message ?? cause}${CORS_HINT}`, { code: "config_failed", status: 0, cause });
  }
  if (!response.ok) {
    const hint = response.status === 404 ? ' (is path("rtbridge/", include("rtbridge.urls")) in the project\'s urls.py?)' : "";
    throw new RTBridgeError(`${what} failed: it answered ${response.status}${hint}`, { code: "config_failed", status: response.status });
  }
  let config;
  try {
    config = JSON.parse(text);
  } catch {
    throw new RTBridgeError(`${what} failed: the answer is not JSON: ${text.slice(0, 80)}`, { code: "config_failed", status: response.status });
  }
  if (typeof config?.backend !== "string") {
    throw new RTBridgeError(`${what} failed: the answer has no "backend"; is ${url.href} rtbridge's config endpoint?`, { code: "config_failed", status: response.status });
  }
  return resolveConfig(config, url, credentials);
}

/**
 * Return `config` with its endpoints absolute against `base` (the config's URL) and, for the
 * self-hosted server, the socket URL on `base`'s host when `config.url` is null.
 * @param {object} config
 * @param {URL} base
 * @param {"omit"|"same-origin"|"include"} credentials
 */
export function resolveConfig(config, base, credentials) {
  const resolved = { ...config, credentials };
  for (const key of ENDPOINTS) {
    if (typeof resolved[key] === "string") resolved[key] = new URL(resolved[key], base).href;
  }
  if (SELF_HOSTED.includes(resolved.backend) && !resolved.url) {
    // null means "the host that served the config", not the page's (another origin here).
    resolved.url = `${base.protocol === "https:" ? "wss" : "ws"}://${base.host}${resolved.path ?? "/rtbridge/ws"}`;
  }
  return resolved;
}
