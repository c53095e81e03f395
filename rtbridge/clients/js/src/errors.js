/**
 * The one error class of the client, a leaf module: the core, the feature modules and every
 * transport import it from here.
 * @module rtbridge/errors
 */

/** An error from the server, a transport or a handler; `code` is the server's code when it has one. */
export class RTBridgeError extends Error {
  /**
   * @param {string} message
   * @param {{code?: number|string, reason?: string, channel?: string, cause?: unknown, retry?: boolean,
   *   status?: number, fields?: Record<string, string[]>, detail?: string}} [details]
   */
  constructor(message, details = {}) {
    super(message);
    this.name = "RTBridgeError";
    Object.assign(this, details);
  }
}
