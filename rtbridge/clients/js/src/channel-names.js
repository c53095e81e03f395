/**
 * Logical channel names: the rules and the filter/object channel builders.
 *
 * This is the JavaScript twin of `rtbridge/channel_names.py`; both sides are checked against
 * `tests/vectors/channel_names.json`, so a filter always gives the same name in Python and
 * in the browser. Per-transport encodings live in `encodings.js` (only the hosted transports
 * need them).
 * @module rtbridge/channel-names
 */

export const MAX_CHANNEL_LENGTH = 200;
const ALPHABET = "A-Z a-z 0-9 _ - . ; = @";
const CHANNEL_RE = /^[A-Za-z0-9_\-.;=@]+$/;
const BASE_RE = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;
const KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Filter values written verbatim; everything else is base64url-encoded behind "@".
const PLAIN_RE = /^[A-Za-z0-9_-]+$/;

/** Thrown for an invalid channel name, filter key or filter value. */
export class InvalidChannelName extends TypeError {
  constructor(message) {
    super(message);
    this.name = "InvalidChannelName";
  }
}

const show = (value) => (typeof value === "string" ? JSON.stringify(value) : String(value));

/**
 * Return `name` if it is a valid logical channel name, else throw `InvalidChannelName`.
 * @param {string} name
 * @returns {string}
 */
export function validateChannel(name) {
  if (typeof name !== "string") {
    throw new InvalidChannelName(`Channel name ${show(name)} is a ${typeof name}; channel names are strings.`);
  }
  if (!name) throw new InvalidChannelName("Channel name is empty; give at least one character.");
  if (name.length > MAX_CHANNEL_LENGTH) {
    throw new InvalidChannelName(
      `Channel name ${show(name.slice(0, 40))}... is ${name.length} characters long; the limit is ${MAX_CHANNEL_LENGTH}.`,
    );
  }
  if (!CHANNEL_RE.test(name)) {
    const bad = [...new Set([...name].filter((ch) => !CHANNEL_RE.test(ch)))].sort().join("");
    throw new InvalidChannelName(
      `Channel name ${show(name)} contains ${show(bad)}; allowed characters are ${ALPHABET}.`,
    );
  }
  return name;
}

/**
 * Say whether `name` is a private or presence channel (authorized by Django).
 * @param {string} name
 */
export const isProtected = (name) => name.startsWith("private-") || name.startsWith("presence-");

/**
 * Map a filter key to its canonical form (SwampDragon's `todo_list__id` → `todo_list_id`).
 * @param {string} key
 * @returns {string}
 */
export function normalizeFilterKey(key) {
  if (typeof key !== "string" || !key) {
    throw new InvalidChannelName(`Filter key ${show(key)} must be a non-empty string.`);
  }
  if (key.endsWith("__id") || key.endsWith("__pk")) key = key.slice(0, -4) + "_id";
  if (key.includes("__") || !KEY_RE.test(key)) {
    throw new InvalidChannelName(
      `Filter key ${show(key)} is not allowed; filters are equality filters on one field, ` +
        "written as a Python identifier such as 'todo_list_id' (or 'todo_list__id').",
    );
  }
  return key;
}

function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Encode one filter (or primary key) value as Python's `encode_filter_value` does.
 *
 * Integers, booleans and `null` have a canonical text form, so `1` and `"1"` give the same
 * name (as Django's `filter(todo_list_id="1")` matches the same rows); strings of
 * `A-Z a-z 0-9 _ -` are written as they are, any other string becomes `@` + base64url(UTF-8).
 * @param {string|number|boolean|null|bigint} value
 * @returns {string}
 */
export function encodeFilterValue(value) {
  if (value === true) return "true";
  if (value === false) return "false";
  if (value === null) return "null";
  if (typeof value === "bigint") return String(value);
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    throw new InvalidChannelName(
      `Filter value ${value} is not an integer; pass integers, or decimals as strings (e.g. "1.5").`,
    );
  }
  if (typeof value === "string") return PLAIN_RE.test(value) ? value : "@" + base64url(value);
  throw new InvalidChannelName(
    `Filter value ${show(value)} has type ${typeof value}; allowed types are string, integer, boolean and null.`,
  );
}

function modelBase(label) {
  const base = typeof label === "string" ? label.toLowerCase() : label;
  if (typeof base !== "string" || !BASE_RE.test(base)) {
    throw new InvalidChannelName(
      `Channel base ${show(label)} is not allowed; use lower-case letters, digits, '_' and '-' ` +
        "in dot-separated parts, such as 'todo.todoitem'.",
    );
  }
  return base;
}

/**
 * Return the channel of one object, e.g. `objectChannel("todo.todoitem", 5)` → `todo.todoitem.5`.
 * @param {string} label `<app_label>.<model_name>`
 * @param {string|number} pk
 */
export const objectChannel = (label, pk) => validateChannel(`${modelBase(label)}.${encodeFilterValue(pk)}`);

/**
 * Return the channel of a filter, e.g. `todo.todoitem;todo_list_id=1` (keys sorted).
 * An empty filter gives the collection channel.
 * @param {string} label `<app_label>.<model_name>`
 * @param {Record<string, string|number|boolean|null>} [filters]
 */
export function filterChannel(label, filters = {}) {
  const base = modelBase(label);
  if (filters === null || typeof filters !== "object" || Array.isArray(filters)) {
    throw new InvalidChannelName(`Filters ${show(filters)} must be a plain object such as {todo_list_id: 1}.`);
  }
  const pairs = new Map();
  for (const [key, value] of Object.entries(filters)) {
    const canonical = normalizeFilterKey(key);
    if (pairs.has(canonical)) {
      throw new InvalidChannelName(`Filter key ${show(key)} repeats ${show(canonical)}; give each field once.`);
    }
    pairs.set(canonical, encodeFilterValue(value));
  }
  const keys = [...pairs.keys()].sort();
  return validateChannel(keys.length ? `${base};${keys.map((key) => `${key}=${pairs.get(key)}`).join(";")}` : base);
}
