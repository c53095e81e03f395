// Types of "rtbridge/transports/selfhosted": the rtbridge server's WebSocket protocol v1.
import type { SelfHostedConfig, Transport, TransportHooks } from "../../index.js";

export function selfhosted(config: SelfHostedConfig, hooks: TransportHooks): Transport;
/** Return the socket URL: `config.url`, else `ws(s)://<page host><config.path>`. */
export function socketUrl(config: Pick<SelfHostedConfig, "backend" | "url" | "path">): string;
