// Types of "rtbridge/transports/sdk": helpers shared by the hosted transports.
import type { Member } from "../../index.js";

/** Return `config[key]`, else `globalThis[key]`, else throw an error saying how to supply it. */
export function findSdk(config: { backend: string; [option: string]: unknown }, key: string, howTo: string): any;
/** A random id for this connection. */
export function randomId(): string;
/** The member `{id, info}` an auth answer describes (rtbridge's or Pusher's `channel_data`). */
export function memberOf(answer: any, fallbackId: string): Member;
