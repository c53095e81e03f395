/**
 * Data calls: the routers' verbs (`docs/routers.md`) over HTTP on every transport
 * (`POST {dataEndpoint}/<route>/<verb>`), or over the self-hosted socket when the server offers
 * `call`. Both give the same answers and the same errors.
 * @module rtbridge/data
 */
import { RTBridgeError } from "./errors.js";
import { post, settle } from "./http.js";

// Safe to repeat over HTTP when the socket dropped before the answer; writes are not.
const READS = ["get_list", "get_single", "subscribe"];
const WRITES = ["create", "update", "delete"];

/**
 * Call `verb` of the router `route` with `args`; resolve with the reply body (`{data, ...}`).
 * Rejects with `RTBridgeError` carrying `status`, `code`, `reason` (the server's message) and
 * `fields` (per-field messages of a 422).
 * @param {import("./client.js").Client} client
 * @param {string} route
 * @param {string} verb
 * @param {object} [args]
 * @returns {Promise<any>}
 */
export async function call(client, route, verb, args = {}) {
  const what = `${route}/${verb}`;
  const { transport } = client;
  let body;
  if (transport.canCall?.()) {
    try {
      const reply = await transport.call(route, verb, args);
      body = settle(reply.status, reply.body, what);
    } catch (error) {
      if (!error?.retry) throw error;
      if (!READS.includes(verb)) {
        throw new RTBridgeError(
          `rtbridge: ${what}: the connection was lost before the server answered, so the change may or may not ` +
            "have been made; reload before trying again.",
          { code: "connection_lost", status: 0, cause: error },
        );
      }
    }
  }
  if (body === undefined) {
    const base = client.config.dataEndpoint ?? "/rtbridge/data";
    body = await post(client, `${base}/${encodeURIComponent(route)}/${encodeURIComponent(verb)}`, args, what);
  }
  // The server does not send this tab its own change (exclude = our socket id): live
  // collections learn it from here instead.
  if (WRITES.includes(verb)) for (const fn of [...(client._writeHooks ?? [])]) client._call(fn, [route, verb, args, body?.data]);
  return body;
}

/**
 * Load one page of `route`'s list: resolve with `{data, page}` (`page` when paginated).
 * @param {import("./client.js").Client} client
 * @param {string} route
 * @param {object} [filters] declared filters, e.g. `{todo_list_id: 1}`
 * @param {{page?: number, pageSize?: number}} [options]
 */
export function getList(client, route, filters = {}, { page, pageSize } = {}) {
  const args = { ...filters };
  if (page !== undefined) args.page = page;
  if (pageSize !== undefined) args.page_size = pageSize;
  return call(client, route, "get_list", args);
}

const dataOf = (verb) => (client, route, args) => call(client, route, verb, args).then((body) => body.data);

/** Resolve with one object: `getSingle(client, "todo-item", {id: 5})`. */
export const getSingle = dataOf("get_single");
/** Create an object; resolve with it as saved (status 201). */
export const create = dataOf("create");
/** Update an object (`{id, ...fields}`); resolve with `id` + the fields that changed. */
export const update = dataOf("update");
/** Delete an object (`{id}`); resolve with `{id}`. */
export const remove = dataOf("delete");

/** Call `fn(route, verb, args, data)` after each successful create/update/delete of this client. */
export function onWrite(client, fn) {
  const hooks = (client._writeHooks ??= new Set());
  hooks.add(fn);
  return () => hooks.delete(fn);
}
