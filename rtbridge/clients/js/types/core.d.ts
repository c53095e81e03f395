// Types of "rtbridge/core" (src/client.js): the client core (connection, channels, private
// channels) without presence, data calls or live collections. The shared types live in index.d.ts.
import type {
  Channel,
  Config,
  Filters,
  GapInfo,
  Handler,
  RecoveredInfo,
  ResubscribedInfo,
  RTBridgeError,
  Remove,
  State,
  Subscription,
  Transport,
  TransportFactory,
} from "../index.js";

export { RTBridgeError, backoffDelay } from "../index.js";

/** One connection to one transport, shared by every channel of a page. */
export class Client {
  constructor(transportFactory: TransportFactory, config: Config);
  readonly config: Config;
  readonly state: State;
  readonly transport: Transport & Record<string, any>;
  socketId(): string | null;
  /** `{"X-RTBridge-Socket-Id": socketId()}` for fetch() calls to Django (empty before connecting). */
  headers(): Record<string, string>;
  onState(fn: (state: State) => void): Remove;
  ready(fn?: (client: this) => void): Promise<this>;
  subscribe(name: string, handler: Handler): Subscription;
  subscribe(label: string, filters: Filters, handler: Handler): Subscription;
  channel(name: string): Channel;
  /** The private channel `name` (`private-` added when missing), authorized by Django. */
  private(name: string): Channel;
  leave(name: string): void;
  onError(fn: (error: RTBridgeError) => void): Remove;
  /** Messages on a channel may have been lost for good: refetch (live lists do it themselves). */
  onGap(fn: (channel: string, info: GapInfo) => void): Remove;
  onResubscribed(fn: (channel: string, info: ResubscribedInfo) => void): Remove;
  /** Missed messages were recovered from history (after a reconnect or a hole): no refetch needed. */
  onRecovered(fn: (channel: string, info: RecoveredInfo) => void): Remove;
  disconnect(): void;
}

/** Add `fn` to `set`; return a function that removes it (for transport and extension authors). */
export function addHook<Fn extends (...args: any[]) => unknown>(set: Set<Fn>, fn: Fn): Remove;
/** Return `name` with `prefix` added when missing; throws for the other protected prefix. */
export function prefixed(prefix: "private-" | "presence-", name: string): string;
