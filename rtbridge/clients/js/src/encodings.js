/**
 * Per-transport channel encodings, the twins of `encode_for_*` in `rtbridge/channel_names.py`.
 *
 * Only the hosted transports import this module, so the self-hosted bundle stays small.
 * @module rtbridge/encodings
 */
import { validateChannel } from "./channel-names.js";

const PUSHER_MAX_LENGTH = 164;
const PUBNUB_MAX_LENGTH = 92;

/**
 * Map a logical name to a Pusher channel name (`[-a-zA-Z0-9_=@,.;]`, ≤164 characters). The
 * logical alphabet is a subset of Pusher's, so names are kept; a longer name keeps 131
 * characters, then `,` and 32 hex digits of its SHA-256.
 * @param {string} name
 */
export function encodeForPusher(name) {
  validateChannel(name);
  return name.length <= PUSHER_MAX_LENGTH ? name : `${name.slice(0, 131)},${sha256Hex(name).slice(0, 32)}`;
}

/**
 * Map a logical name to a PubNub channel name (≤92 characters, no `.`): `.` becomes `~`;
 * a longer name keeps 59 characters, then `!` and 32 hex digits of its SHA-256.
 * @param {string} name
 */
export function encodeForPubnub(name) {
  const encoded = validateChannel(name).replace(/\./g, "~");
  return encoded.length <= PUBNUB_MAX_LENGTH ? encoded : `${encoded.slice(0, 59)}!${sha256Hex(name).slice(0, 32)}`;
}

/**
 * Map a logical name to a Realtime Database key (no `. $ # [ ] /`): `.` becomes `~`.
 * @param {string} name
 */
export const encodeForFirebase = (name) => validateChannel(name).replace(/\./g, "~");

// A synchronous SHA-256 (Web Crypto's digest is async, and channel names are needed
// synchronously when subscribe() is called). Input is a logical name, so ASCII.
const K = [];
const H0 = [];
{
  const frac = (x) => ((x - Math.floor(x)) * 2 ** 32) >>> 0;
  for (let n = 2, found = 0; found < 64; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) if (n % d === 0) prime = false;
    if (!prime) continue;
    if (found < 8) H0.push(frac(Math.sqrt(n)));
    K.push(frac(Math.cbrt(n)));
    found++;
  }
}

/**
 * Return the SHA-256 of an ASCII string as 64 hex digits.
 * @param {string} text
 */
export function sha256Hex(text) {
  const bytes = Array.from(text, (ch) => ch.charCodeAt(0) & 0xff);
  const bitLength = bytes.length * 8;
  bytes.push(0x80);
  while (bytes.length % 64 !== 56) bytes.push(0);
  for (let shift = 56; shift >= 0; shift -= 8) bytes.push(shift >= 32 ? 0 : (bitLength >>> shift) & 0xff);
  const h = H0.slice();
  const w = new Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let offset = 0; offset < bytes.length; offset += 64) {
    for (let i = 0; i < 16; i++) {
      const j = offset + i * 4;
      w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
    }
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    [a, b, c, d, e, f, g, hh].forEach((value, i) => (h[i] = (h[i] + value) | 0));
  }
  return h.map((x) => (x >>> 0).toString(16).padStart(8, "0")).join("");
}
