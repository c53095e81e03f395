// Type definitions for the rtbridge JS client's main entry (src/index.js); the subpaths' are in
// types/ ("rtbridge/all", src/rtbridge.js: types/all.d.ts).
import type { Client as CoreClient } from "./types/core.js";

/** Connection states, in the order a client usually goes through them. */
export type State = "connecting" | "connected" | "reconnecting" | "disconnected";

/** A filter value: the same values give the same channel name as Python's `filter_channel`. */
export type FilterValue = string | number | bigint | boolean | null;
export type Filters = Record<string, FilterValue>;

/** Where a message stands in its channel: offsets are contiguous per channel within an epoch. */
export interface Position {
  /** 1 for the first message of a channel; 0: nothing published yet. */
  offset: number;
  /** Changes whenever the history behind the channel is lost (offsets start again). */
  epoch: string;
}

/** What a handler gets besides the event and data. */
export interface Meta {
  /** The logical channel name, e.g. `todo.todoitem;todo_list_id=1`. */
  channel: string;
  /** The message's position (assigned once, at publish time), when history is on. */
  offset?: number;
  epoch?: string;
  /** PubNub: the message's timetoken. */
  timetoken?: string;
  /** Firebase: the message's push id and database timestamp (ms). */
  key?: string;
  ts?: number;
}

export type Handler = (event: string, data: any, meta: Meta) => void;
export type Listener = (data: any, meta: Meta) => void;
/**
 * What led to a check of history: a resume after a reconnect, a hole in the offsets, a
 * transport that may have dropped messages (PubNub's per-response cap), or the server's `gap`.
 */
export type ContinuityReason = "reconnect" | "hole" | "missed" | "server";

/** Messages may have been lost for good (refetch); `offset`/`epoch`: the position it goes on from. */
export interface GapInfo extends Partial<Position> {
  recovered: false;
  reason: ContinuityReason;
  /** Why history could not be read (the history endpoint's error), when it failed. */
  error?: RTBridgeError;
}

/** Missed messages were recovered from history, from the position `offset`/`epoch` on. */
export interface RecoveredInfo extends Position {
  recovered: true;
  reason: ContinuityReason;
}

/** After a reconnect: whether every message missed meanwhile was (or is being) delivered. */
export interface ResubscribedInfo {
  recovered: boolean;
}
export type Remove = () => void;

export interface ReconnectOptions {
  /** Delay cap of the first attempt in ms (default 500). */
  initialDelay?: number;
  /** Largest delay in ms (default 30000). */
  maxDelay?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Attempts before giving up (default Infinity). */
  maxAttempts?: number;
}

/** Options every transport accepts. */
export interface CommonOptions {
  /** Self-hosted: backoff between reconnect attempts, or false for none (PubNub and retries of Django calls use its delays too). */
  reconnect?: ReconnectOptions | false;
  /** Hosted transports with history on: Django's history endpoint (`client_config()` gives it). */
  historyEndpoint?: string;
  /** ms to wait for a missing offset before asking history (default 500 hosted, 0 self-hosted). */
  holdTimeout?: number;
  /** Django's auth endpoint for private/presence channels (default "/rtbridge/auth"). */
  authEndpoint?: string;
  /** Base URL of the data routers (default "/rtbridge/data"). */
  dataEndpoint?: string;
  /** Extra headers for the auth and data requests (or a function returning them). */
  headers?: Record<string, string> | (() => Record<string, string>);
  /** A function returning the CSRF token (always used), or the page's token (used without a csrftoken cookie). */
  csrfToken?: string | (() => string | null);
  /** The CSRF cookie's name when Django's CSRF_COOKIE_NAME differs (default "csrftoken"). */
  csrfCookieName?: string;
  /** fetch() credentials mode of the auth and data requests (default "same-origin"). */
  credentials?: "omit" | "same-origin" | "include";
  /** A fetch() implementation, for runtimes without a global one. */
  fetch?: unknown;
  /** Id of the element `{% rtbridge_config %}` rendered (default "rtbridge-config"). */
  configElementId?: string;
  /**
   * The transport to use instead of `connect()`'s table, e.g. `pusher` from
   * "rtbridge/transports/pusher": the main entry knows only the self-hosted and null ones.
   */
  transport?: TransportFactory;
  [option: string]: unknown;
}

export interface SelfHostedConfig extends CommonOptions {
  backend: "local" | "redis" | "selfhosted";
  /** Absolute ws(s):// URL, or null for the page's own host. */
  url?: string | null;
  /** Socket path on the page's host (default "/rtbridge/ws"). */
  path?: string;
  /** A WebSocket class, for runtimes without a global one (Node < 22: the `ws` package). */
  WebSocket?: unknown;
  /** Extra ms allowed after two missed server heartbeats before the socket counts as dead (default 5000). */
  heartbeatGrace?: number;
  /** ms to wait for the server's welcome before giving a connection attempt up (default 10000). */
  connectTimeout?: number;
}

export interface PusherConfig extends CommonOptions {
  backend: "pusher";
  key: string;
  cluster?: string;
  wsHost?: string;
  wsPort?: number;
  forceTLS?: boolean;
  /** The pusher-js class; default `globalThis.Pusher`. */
  Pusher?: unknown;
  /** More pusher-js options, merged last. */
  pusherOptions?: Record<string, unknown>;
}

export interface PubNubConfig extends CommonOptions {
  backend: "pubnub";
  subscribeKey: string;
  /** Needed only to send whispers (they are published by the page). */
  publishKey?: string;
  origin?: string;
  ssl?: boolean;
  /** PubNub user id; also this client's socket id (default: random). */
  userId?: string;
  /** The PubNub class; default `globalThis.PubNub`. */
  PubNub?: unknown;
  /** More PubNub options, merged last. */
  pubnubOptions?: Record<string, unknown>;
}

export interface FirebaseConfig extends CommonOptions {
  backend: "firebase";
  databaseURL: string;
  /** Database path under which channels live (default "rtbridge"). */
  root?: string;
  /** "host:port" of a Realtime Database emulator. */
  emulatorHost?: string;
  /** ms the query starts early to cover a publisher clock behind the database's (default 10000). */
  clockSkew?: number;
  /**
   * The modular SDK's database functions plus `app` (a FirebaseApp) or `initializeApp`; for
   * protected channels also `getAuth` and `signInWithCustomToken` from "firebase/auth".
   */
  firebase?: Record<string, unknown>;
}

export interface NullConfig extends CommonOptions {
  backend: "locmem" | "dummy" | "console" | "null";
  /** Do not warn that the page receives nothing. */
  quiet?: boolean;
}

export type Config = SelfHostedConfig | PusherConfig | PubNubConfig | FirebaseConfig | NullConfig;

/** A presence member: one per user (not per tab). */
export interface Member<Info = any> {
  id: string;
  info: Info;
}

/** What a transport reports about members; `key` names one connection (tab) of the member. */
export interface PresenceEntry extends Member {
  key?: string;
}

/** What a transport calls back; see docs/js.md, "Writing a transport". */
export interface TransportHooks {
  open(socketId: string | null): void;
  state(state: State): void;
  message(channel: string, event: string, data: any, meta: Meta): void;
  /** A positioned message this connection was excluded from (its own change): only the position moves on. */
  skip(channel: string, position: Partial<Position>): void;
  /** The server could not prove continuity: go on from `position` (its top), reporting a gap. */
  gap(channel: string, position?: Partial<Position>): void;
  /** The transport may have dropped messages on `channel`: fill from history. */
  missed(channel: string): void;
  error(error: RTBridgeError): void;
  /** Resolve with Django's auth answer for a protected channel (`{auth}`, `{token}`, `channel_data`...). */
  authorize(channel: string, socketId?: string | null): Promise<any>;
  presence(channel: string, action: "here" | "sync" | "join" | "leave", members: PresenceEntry[]): void;
  whisper(channel: string, event: string, data: any, meta: Meta & { user_id?: string }): void;
  revoked(channel: string, error: RTBridgeError): void;
}

export interface Transport {
  connect(): void;
  disconnect(): void;
  socketId(): string | null;
  /**
   * Subscribe (idempotent). A transport that resumes by itself (self-hosted) takes `since` and
   * resolves with `{offset, epoch, recovered?}`; the others ignore it (history comes from Django).
   */
  subscribe(channel: string, since?: Position): Promise<unknown> | void;
  unsubscribe(channel: string): Promise<unknown> | void;
  /** Send a client event on a protected channel (optional). */
  whisper?(channel: string, event: string, data: any): Promise<unknown>;
  /** Say whether router calls can go over this transport (self-hosted with the `call` feature). */
  canCall?(): boolean;
  call?(route: string, verb: string, args: object): Promise<{ status: number; body: any }>;
}

export type TransportFactory = (config: any, hooks: TransportHooks) => Transport;

/** An error from the server, a transport, Django or a handler. */
export class RTBridgeError extends Error {
  /**
   * The server's code (e.g. 4403), Django's (e.g. "forbidden", "invalid", "not_found"), or
   * "handler_error", "missing_sdk", "unknown_backend", "closed", "network_error", ...
   */
  code?: number | string;
  /** The server's reason (Django's error message). */
  reason?: string;
  /** HTTP status of a Django answer (auth endpoint, routers); 0 for a network failure. */
  status?: number;
  /** Per-field messages of a 422 `invalid` answer. */
  fields?: Record<string, string[]>;
  /** Why the rtbridge server refused a token: "missing", "expired", "bad_signature", "wrong_socket", ... */
  detail?: string;
  /** The logical channel the error is about. */
  channel?: string;
  /** What a handler threw. */
  cause?: unknown;
  /** True when the request will be retried after a reconnect. */
  retry?: boolean;
}

/** Thrown at once for an invalid channel name, filter key or filter value. */
export class InvalidChannelName extends TypeError {}

export class Subscription {
  /** The logical channel name. */
  readonly channel: string;
  /** Resolves once the server acknowledged; rejects with its error (code, reason). */
  readonly ready: Promise<Subscription>;
  unsubscribe(): void;
  onGap(fn: (channel: string, info: GapInfo) => void): Remove;
  onResubscribed(fn: (channel: string, info: ResubscribedInfo) => void): Remove;
  onRecovered(fn: (channel: string, info: RecoveredInfo) => void): Remove;
  onError(fn: (error: RTBridgeError) => void): Remove;
}

export type WhisperListener = (data: any, meta: Meta & { user_id?: string }) => void;

export class Channel {
  readonly name: string;
  readonly subscribed: boolean;
  readonly ready: Promise<this>;
  listen(event: string, fn: Listener): this;
  stopListening(event: string, fn?: Listener): this;
  /** Send a client event to the others; throws at once on a public channel. */
  whisper(event: string, data?: any): Promise<void>;
  listenForWhisper(event: string, fn: WhisperListener): this;
  stopListeningForWhisper(event: string, fn?: WhisperListener): this;
  onGap(fn: (channel: string, info: GapInfo) => void): Remove;
  onResubscribed(fn: (channel: string, info: ResubscribedInfo) => void): Remove;
  onRecovered(fn: (channel: string, info: RecoveredInfo) => void): Remove;
  onError(fn: (error: RTBridgeError) => void): Remove;
  leave(): void;
}

export class PresenceChannel<Info = any> extends Channel {
  /** The full member list (this user included), once per (re)subscribe; at once if known. */
  here(fn: (members: Member<Info>[]) => void): this;
  /** A user arrived (their first tab). */
  joining(fn: (member: Member<Info>) => void): this;
  /** A user is gone (their last tab). */
  leaving(fn: (member: Member<Info>) => void): this;
  members(): Member<Info>[];
}

/** One page of a router's list. */
export interface Page {
  number: number;
  size?: number;
  count?: number;
  num_pages?: number;
  has_next: boolean;
  has_previous?: boolean;
}

export interface ListReply<Row = any> {
  data: Row[];
  page?: Page;
}

export type Order<Row = any> = string | ((a: Row, b: Row) => number);

export interface LiveOptions<Row = any> {
  /** "id", "-id", any field ("-created"), or a comparator; default: load order, new rows last. */
  order?: Order<Row>;
  /** Rows per get_list request while loading (every page is loaded). */
  pageSize?: number;
  /** Follow this channel instead of asking the router's subscribe verb. */
  channel?: string;
}

/** What live lists and live objects share. */
export interface Live {
  readonly route: string;
  /** The channel followed, once known. */
  readonly channel: string | null;
  readonly loaded: boolean;
  readonly closed: boolean;
  onError(fn: (error: RTBridgeError) => void): Remove;
  /** Load everything again (events meanwhile are buffered and applied after). */
  refetch(): Promise<this>;
  /** Stop following; the rows stay as they are. */
  close(): void;
}

export class LiveList<Row extends { id: any } = any> implements Live {
  /** Load `route`'s list with `filters` (every page) and follow it; `rt.liveList()` does this. */
  constructor(client: CoreClient, route: string, filters?: Filters, options?: LiveOptions<Row>);
  readonly route: string;
  readonly filters: Filters;
  readonly channel: string | null;
  readonly loaded: boolean;
  readonly closed: boolean;
  /** Resolves once loaded; rejects with the router's error. */
  readonly ready: Promise<this>;
  /** The rows now, in `order`. */
  rows(): Row[];
  /** After every change, and at once when loaded. */
  onChange(fn: (rows: Row[]) => void): Remove;
  onError(fn: (error: RTBridgeError) => void): Remove;
  refetch(): Promise<this>;
  close(): void;
}

export class LiveObject<Row extends { id: any } = any> implements Live {
  /** Load one object and follow it; `rt.liveObject()` does this. */
  constructor(client: CoreClient, route: string, lookup: { id: any }, options?: { channel?: string });
  readonly route: string;
  readonly id: string | number;
  readonly channel: string | null;
  readonly loaded: boolean;
  readonly closed: boolean;
  readonly ready: Promise<this>;
  /** The object, or null when deleted or not loaded. */
  get(): Row | null;
  onChange(fn: (object: Row | null) => void): Remove;
  onError(fn: (error: RTBridgeError) => void): Remove;
  refetch(): Promise<this>;
  close(): void;
}

/**
 * The client with everything: the core (`rtbridge/core`) plus presence (`join`), data calls
 * and live collections. `connect()` returns one.
 */
export class Client extends CoreClient {
  /** The presence channel `name` (`presence-` added when missing). */
  join<Info = any>(name: string): PresenceChannel<Info>;
  getList<Row = any>(route: string, filters?: Filters, options?: { page?: number; pageSize?: number }): Promise<ListReply<Row>>;
  getSingle<Row = any>(route: string, args: { id: any } & Record<string, any>): Promise<Row>;
  create<Row = any>(route: string, values: Record<string, any>): Promise<Row>;
  update<Row = any>(route: string, values: { id: any } & Record<string, any>): Promise<Row>;
  delete(route: string, args: { id: any }): Promise<{ id: any }>;
  /** Any verb, custom ones included: resolves with the whole reply body. */
  call<Body = any>(route: string, verb: string, args?: Record<string, any>): Promise<Body>;
  /** SwampDragon: callRouter(verb, route, args). */
  callRouter<Body = any>(verb: string, route: string, args?: Record<string, any>): Promise<Body>;
  /** SwampDragon: getPagedList(route, filters, page). */
  getPagedList<Row = any>(route: string, filters: Filters, page: number): Promise<ListReply<Row>>;
  liveList<Row extends { id: any } = any>(route: string, filters?: Filters, options?: LiveOptions<Row>): LiveList<Row>;
  liveObject<Row extends { id: any } = any>(route: string, lookup: { id: any }, options?: { channel?: string }): LiveObject<Row>;
}

/** Options of `connect({configUrl})`: the config comes from Django's `GET /rtbridge/config`. */
export interface ConfigUrlOptions extends CommonOptions {
  /** URL of Django's config endpoint, e.g. "https://api.example.com/rtbridge/config" (relative allowed). */
  configUrl: string;
}
/** Fetch the config endpoint (with cookies) and resolve with a config for `connect()`: endpoints absolute. */
export function fetchConfig(
  configUrl: string,
  options?: { fetch?: unknown; credentials?: "omit" | "same-origin" | "include" },
): Promise<Config>;
/**
 * Connect with `config`, or with the page's `{% rtbridge_config %}` merged under it. The main
 * entry knows the self-hosted (`local`, `redis`, `selfhosted`) and null (`locmem`, `dummy`,
 * `console`, `null`) backends; for a hosted one pass its transport (`connect({..., transport:
 * pusher})`) or use "rtbridge/all". With `configUrl`: fetch the config first and resolve with
 * the client.
 */
export function connect(config: ConfigUrlOptions): Promise<Client>;
export function connect(config?: Config | CommonOptions): Client;
export function readConfig(elementId?: string): Config;
export const CONFIG_ELEMENT_ID: "rtbridge-config";
export function backoffDelay(attempt: number, options?: ReconnectOptions, random?: () => number): number;

export function validateChannel(name: string): string;
export function isProtected(name: string): boolean;
export function normalizeFilterKey(key: string): string;
export function filterChannel(label: string, filters?: Filters): string;
export function objectChannel(label: string, pk: string | number | bigint): string;
export function encodeForPusher(name: string): string;
export function encodeForPubnub(name: string): string;
export function encodeForFirebase(name: string): string;
export function comparator<Row = any>(order?: Order<Row>): ((a: Row, b: Row) => number) | null;
/** The CSRF token the client sends: config.csrfToken, else the csrftoken cookie. */
export function csrfToken(config: Pick<CommonOptions, "csrfToken" | "csrfCookieName">): string | null;
