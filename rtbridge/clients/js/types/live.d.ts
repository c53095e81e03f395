// Types of "rtbridge/live" (src/live.js): `new LiveList(client, route, filters, options)`.
export { LiveList, LiveObject, comparator } from "../index.js";
