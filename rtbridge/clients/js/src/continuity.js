/**
 * Continuity of one channel, a leaf module: deliver positioned messages once and in offset
 * order, hold what comes after a hole and fill the hole from history.
 *
 * It knows no transport. A message is `{offset, epoch, event, data, meta, skip?}` (`skip`: a
 * message this client was excluded from, which only moves the position on); a message without
 * a numeric `offset` has no position and is delivered as it comes. The owner supplies
 * `fill(since)`, which asks history for everything after `since` (`{offset, epoch}`, or null
 * when no position is known) and resolves with `{recovered, offset, epoch, messages?}`
 * (`messages` when the history comes in the answer; without them it comes through `receive`).
 * @module rtbridge/continuity
 */

/** The merge state of one channel. */
export class Stream {
  /**
   * @param {{deliver: (message: object) => void, fill: (since: object|null) => Promise<object>,
   *   gap: (info: object) => void, recovered: (info: object) => void, holdTimeout: number}} options
   *   `holdTimeout`: ms to wait for a missing offset (a transport that may reorder) before
   *   asking history
   */
  constructor(options) {
    this.options = options;
    /** The last position applied, `{offset, epoch}`, or null while none is known. */
    this.position = null;
    this._held = new Map(); // "epoch offset" → message received after a hole
    this._left = new Set(); // epochs given up for a newer one: their late messages are dropped
    this._asking = 0; // the number of the fill whose answer is awaited, or 0
    this._fills = 0;
    this._timer = null;
  }

  /** Take one message from the transport (live or replayed). */
  receive(message) {
    const { offset, epoch } = message;
    if (typeof offset !== "number") return this.options.deliver(message);
    if (this._left.has(epoch)) return;
    if (!this.position) {
      // No position yet: wait for the answer that gives one, or start from this message.
      if (this._asking) return this._hold(message);
      this.position = { offset: offset - 1, epoch };
    }
    const position = this.position;
    if (epoch === position.epoch && offset <= position.offset) return; // a duplicate
    this._hold(message);
    this._drain();
  }

  /**
   * Apply the answer to a fill asked from `since`; `answer` null means the request failed.
   * Return whether nothing was lost (always true for "start": there is nothing to lose yet).
   */
  settle(reason, since, answer, error) {
    this._asking = 0;
    const top = typeof answer?.offset === "number" ? { offset: answer.offset, epoch: answer.epoch } : null;
    if (reason === "start") return this.jump(top), true; // the position to start from
    if (answer?.recovered === true && since) {
      for (const message of answer.messages ?? []) this.receive({ ...message, epoch: answer.epoch });
      this._drain(true);
      this.options.recovered({ recovered: true, reason, ...since });
      return true;
    }
    if (error?.retry) return false; // cut by a lost connection: the reconnect resumes
    return this.lost(reason, top, error);
  }

  /**
   * Report that messages may have been lost (`onGap`): move to `top` and deliver what is held
   * after it. Return false.
   */
  lost(reason, top, error) {
    this.jump(top);
    this.options.gap({ recovered: false, reason, ...this.position, ...(error && { error }) });
    return false;
  }

  /**
   * Move to `top` (the server's position after a loss), or, without one, to just before the
   * oldest message held; then deliver the held messages after it.
   */
  jump(top) {
    const position = this.position;
    if (top && position?.epoch !== top.epoch) {
      if (position) this._left.add(position.epoch);
      this.position = { offset: top.offset, epoch: top.epoch };
    } else if (top) {
      position.offset = Math.max(position.offset, top.offset);
    } else {
      const oldest = [...this._held.values()].sort((a, b) => a.offset - b.offset)[0];
      this.position = oldest ? { offset: oldest.offset - 1, epoch: oldest.epoch } : null;
    }
    this._drain(true);
  }

  /**
   * Ask for what may have been missed after the position, and apply the answer; resolve with
   * whether nothing was lost (undefined when a newer fill took over, or the stream is closed).
   * `request(since)` is the question (default: `options.fill`, whose failure counts as a
   * loss); a `request` given here is a (re)subscribe, whose failure is the caller's to handle
   * (the promise rejects).
   * @param {string} reason "start", "reconnect", "hole" or "missed"
   * @param {(since: object|null) => Promise<object>} [request]
   */
  fill(reason, request) {
    if (this._asking < 0) return Promise.resolve(); // closed
    clearTimeout(this._timer);
    this._timer = null;
    const since = this.position && { ...this.position };
    const asked = (this._asking = ++this._fills);
    const current = () => asked === this._asking;
    return (request ?? this.options.fill)(since).then(
      (answer) => (current() ? this.settle(reason, since, answer) : undefined),
      (error) => {
        if (!request) return current() ? this.settle(reason, since, null, error) : undefined;
        if (current()) this._asking = 0;
        throw error;
      },
    );
  }

  /** Forget what is held and any pending fill (the channel is left). */
  close() {
    clearTimeout(this._timer);
    this._held.clear();
    this._asking = -1; // no answer applies any more
  }

  _hold(message) {
    this._held.set(`${message.epoch} ${message.offset}`, message);
  }

  /** Deliver held messages in order from the position; on a hole left, ask history later. */
  _drain(answered) {
    const position = this.position;
    if (!position) return;
    for (const [key, { epoch, offset }] of this._held) {
      if (this._left.has(epoch) || (epoch === position.epoch && offset <= position.offset)) this._held.delete(key);
    }
    for (let next; (next = this._held.get(`${position.epoch} ${position.offset + 1}`)); ) {
      this._held.delete(`${position.epoch} ${next.offset}`);
      position.offset = next.offset;
      if (!next.skip) this.options.deliver(next);
    }
    if (!this._held.size) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    if (!this._held.size || this._asking) return;
    // A hole (or a message of another epoch): wait `holdTimeout` for a late delivery, then
    // fill. Right after an answer, give replayed frames a moment to arrive first.
    if (this._timer) return;
    const delay = answered ? Math.max(this.options.holdTimeout, 1000) : this.options.holdTimeout;
    this._timer = setTimeout(() => this.fill("hole"), delay);
  }
}
