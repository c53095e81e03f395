/**
 * Reconnect and retry delays, a leaf module (the client's auth retries and the self-hosted transport).
 * @module rtbridge/backoff
 */

/**
 * Return the delay before reconnect attempt `attempt` (0-based): exponential backoff with
 * full jitter, so a thousand clients dropped at once do not come back in lockstep.
 * @param {number} attempt
 * @param {{initialDelay?: number, maxDelay?: number, factor?: number}} [options]
 * @param {() => number} [random]
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const { initialDelay = 500, maxDelay = 30000, factor = 2 } = options;
  return Math.floor(random() * Math.min(maxDelay, initialDelay * factor ** attempt));
}
