// Types of "rtbridge/channel-names" (src/channel-names.js), the twin of rtbridge/channel_names.py.
import type { FilterValue } from "../index.js";

export {
  InvalidChannelName,
  filterChannel,
  isProtected,
  normalizeFilterKey,
  objectChannel,
  validateChannel,
} from "../index.js";

/** The longest logical channel name, in characters. */
export const MAX_CHANNEL_LENGTH: 200;
/** Encode one filter (or primary key) value as Python's `encode_filter_value` does. */
export function encodeFilterValue(value: FilterValue): string;
