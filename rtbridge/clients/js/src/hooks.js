/**
 * Hook sets (the `onX(fn)` registrations of clients, channels and live collections), a leaf module.
 * @module rtbridge/hooks
 */

/** Add `fn` to `set` and return a function that removes it. */
export function addHook(set, fn) {
  if (typeof fn !== "function") throw new TypeError(`Expected a function, got ${typeof fn}.`);
  set.add(fn);
  return () => set.delete(fn);
}
