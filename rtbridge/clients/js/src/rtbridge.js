/**
 * rtbridge with every transport (`rtbridge/all`; what the Django-served builds and the classic
 * script hold): the main entry's API, plus `transports` (each `RTBRIDGE_BACKEND` alias's
 * transport) and a `connect()` that knows them all.
 * @module rtbridge/all
 */
import { makeConnect } from "./connect.js";
import { firebase } from "./transports/firebase.js";
import { nullTransport } from "./transports/null.js";
import { pubnub } from "./transports/pubnub.js";
import { pusher } from "./transports/pusher.js";
import { selfhosted } from "./transports/selfhosted.js";

export * from "./index.js";

/** The transport for each `RTBRIDGE_BACKEND` alias (`client_config().backend`). */
export const transports = {
  local: selfhosted,
  redis: selfhosted,
  selfhosted,
  pusher,
  pubnub,
  firebase,
  locmem: nullTransport,
  dummy: nullTransport,
  console: nullTransport,
  null: nullTransport,
};

/**
 * Connect to the active backend and return the client (see `makeConnect`): every transport of
 * `transports` (an alias added to it counts), or `config.transport`.
 */
export const connect = makeConnect(transports, '"rtbridge/all"');
