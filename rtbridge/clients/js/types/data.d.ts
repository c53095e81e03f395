// Types of "rtbridge/data" (src/data.js): the routers' verbs as functions of a client.
import type { Filters, ListReply, Remove } from "../index.js";
import type { Client } from "./core.js";

/** Call any verb (custom ones included); resolves with the whole reply body (`{data, ...}`). */
export function call<Body = any>(client: Client, route: string, verb: string, args?: Record<string, any>): Promise<Body>;
/** Load one page of a router's list: resolves with `{data, page}`. */
export function getList<Row = any>(
  client: Client,
  route: string,
  filters?: Filters,
  options?: { page?: number; pageSize?: number },
): Promise<ListReply<Row>>;
export function getSingle<Row = any>(client: Client, route: string, args: { id: any } & Record<string, any>): Promise<Row>;
export function create<Row = any>(client: Client, route: string, values: Record<string, any>): Promise<Row>;
export function update<Row = any>(client: Client, route: string, values: { id: any } & Record<string, any>): Promise<Row>;
/** Delete an object (the full client's `delete()`); resolves with `{id}`. */
export function remove(client: Client, route: string, args: { id: any }): Promise<{ id: any }>;
/** Call `fn` after each successful create/update/delete of `client`; returns a remover. */
export function onWrite(
  client: Client,
  fn: (route: string, verb: "create" | "update" | "delete", args: Record<string, any>, data: any) => void,
): Remove;
