// Types of "rtbridge/transports/pubnub-user": the stable per-device, per-tab PubNub user id.

/**
 * Resolve to the page's PubNub user id: `config.userId` when given, else
 * `<device id from localStorage>-<slot of this open tab>` (a random id without storage).
 */
export function pubnubUserId(
  config: { userId?: string },
  storage?: Storage,
  locks?: LockManager,
): Promise<string>;
