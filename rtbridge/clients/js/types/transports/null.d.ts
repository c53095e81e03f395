// Types of "rtbridge/transports/null": connects to nothing; tests play the server through it.
import type { Meta, NullConfig, PresenceEntry, Transport, TransportHooks } from "../../index.js";

export interface NullTransport extends Transport {
  /** The channels the client subscribed to. */
  readonly channels: Set<string>;
  /** Whispers sent by the page, as `[channel, event, data]`. */
  readonly whispers: [string, string, any][];
  /** Deliver `event` with `data` on `channel`, as if the server had sent it. */
  deliver(channel: string, event: string, data: any, meta?: Partial<Meta>): void;
  /** Report a gap on `channel`, as if the server had sent one. */
  gap(channel: string, info?: Record<string, unknown>): void;
  presence(channel: string, action: "here" | "sync" | "join" | "leave", members: PresenceEntry | PresenceEntry[]): void;
  /** Deliver a whisper from another member. */
  deliverWhisper(channel: string, event: string, data: any, meta?: Partial<Meta> & { user_id?: string }): void;
}

export function nullTransport(config: NullConfig | { backend: string; quiet?: boolean }, hooks: TransportHooks): NullTransport;
