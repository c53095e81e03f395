// Type definitions for the rtbridge JS client (src/rtbridge.js).

/** Connection states, in the order a client usually goes through them. */
export type State = "connecting" | "connected" | "reconnecting" | "disconnected";

/** A filter value: the same values give the same channel name as Python's `filter_channel`. */
export type FilterValue = string | number | bigint | boolean | null;
export type Filters = Record<string, FilterValue>;

/** What a handler gets besides the event and data. */
export interface Meta {
  /** The logical channel name, e.g. `todo.todoitem;todo_list_id=1`. */
  channel: string;
  /** Self-hosted: the channel's sequence number on the server node. */
  seq?: number;
  /** PubNub: the message's timetoken. */
  timetoken?: string;
  /** Firebase: the message's push id and database timestamp (ms). */
  key?: string;
  ts?: number;
}

export type Handler = (event: string, data: any, meta: Meta) => void;
export type Listener = (data: any, meta: Meta) => void;
/** Why messages may have been missed: a sequence jump, or the server said so. */
export type GapInfo = { expected: number; received: number } | { reason: "server" } | Record<string, unknown>;
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
  /** Self-hosted only: backoff between reconnect attempts, or false for none. */
  reconnect?: ReconnectOptions | false;
  /** Id of the element `{% rtbridge_config %}` rendered (default "rtbridge-config"). */
  configElementId?: string;
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
  /** The modular SDK's database functions plus `app` (a FirebaseApp) or `initializeApp`. */
  firebase?: Record<string, unknown>;
}

export interface NullConfig extends CommonOptions {
  backend: "locmem" | "dummy" | "console" | "null";
  /** Do not warn that the page receives nothing. */
  quiet?: boolean;
}

export type Config = SelfHostedConfig | PusherConfig | PubNubConfig | FirebaseConfig | NullConfig;

/** What a transport calls back; see docs/js.md, "Writing a transport". */
export interface TransportHooks {
  open(socketId: string | null): void;
  state(state: State): void;
  message(channel: string, event: string, data: any, meta: Meta): void;
  gap(channel: string, info: GapInfo): void;
  error(error: RTBridgeError): void;
}

export interface Transport {
  connect(): void;
  disconnect(): void;
  socketId(): string | null;
  subscribe(channel: string): Promise<unknown> | void;
  unsubscribe(channel: string): Promise<unknown> | void;
}

export type TransportFactory = (config: any, hooks: TransportHooks) => Transport;

/** An error from the server, a transport or a handler. */
export class RTBridgeError extends Error {
  /** The server's code (e.g. 4403), or "handler_error", "missing_sdk", "unknown_backend", "closed", ... */
  code?: number | string;
  /** The server's reason. */
  reason?: string;
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
  onResubscribed(fn: (channel: string) => void): Remove;
  onError(fn: (error: RTBridgeError) => void): Remove;
}

export class Channel {
  readonly name: string;
  readonly subscribed: boolean;
  readonly ready: Promise<Channel>;
  listen(event: string, fn: Listener): this;
  stopListening(event: string, fn?: Listener): this;
  onGap(fn: (channel: string, info: GapInfo) => void): Remove;
  onResubscribed(fn: (channel: string) => void): Remove;
  onError(fn: (error: RTBridgeError) => void): Remove;
  leave(): void;
}

export class Client {
  constructor(transportFactory: TransportFactory, config: Config);
  readonly config: Config;
  readonly state: State;
  readonly transport: Transport & Record<string, any>;
  socketId(): string | null;
  /** `{"X-RTBridge-Socket-Id": socketId()}` for fetch() calls to Django (empty before connecting). */
  headers(): Record<string, string>;
  onState(fn: (state: State) => void): Remove;
  ready(fn?: (client: Client) => void): Promise<Client>;
  subscribe(name: string, handler: Handler): Subscription;
  subscribe(label: string, filters: Filters, handler: Handler): Subscription;
  channel(name: string): Channel;
  leave(name: string): void;
  onError(fn: (error: RTBridgeError) => void): Remove;
  onGap(fn: (channel: string, info: GapInfo) => void): Remove;
  onResubscribed(fn: (channel: string) => void): Remove;
  disconnect(): void;
}

/** Connect with `config`, or with the page's `{% rtbridge_config %}` merged under `options`. */
export function connect(config?: Config | CommonOptions): Client;
export function readConfig(elementId?: string): Config;
export const CONFIG_ELEMENT_ID: "rtbridge-config";
export const transports: Record<string, TransportFactory>;
export function backoffDelay(attempt: number, options?: ReconnectOptions, random?: () => number): number;

export function validateChannel(name: string): string;
export function isProtected(name: string): boolean;
export function normalizeFilterKey(key: string): string;
export function filterChannel(label: string, filters?: Filters): string;
export function objectChannel(label: string, pk: string | number | bigint): string;
export function encodeForPusher(name: string): string;
export function encodeForPubnub(name: string): string;
export function encodeForFirebase(name: string): string;
