/**
 * PubNub presence for the PubNub transport: PubNub reports tabs (uuids), and each tab's state
 * `{id, info}` (set from the auth answer's `channel_data`) names its member, so the client can
 * count tabs per member. The full list comes from `hereNow` (once per (re)subscribe, and again
 * when PubNub switches to `interval` events for many members).
 * @module rtbridge/transports/pubnub-presence
 */
import { encodeForPubnub } from "../encodings.js";
import { RTBridgeError } from "../errors.js";

/**
 * Return `{announce(entry), event(presenceEvent)}` for the transport's channel entries
 * (`entry.me` is this tab's member, `entry.tabs` maps uuids to member ids).
 * @param {{client: () => any, userId: () => string, channels: Map<string, any>, hooks: object}} options
 *   `userId()` is this tab's PubNub user id (its uuid in presence)
 */
export function pubnubPresence({ client, userId, channels, hooks }) {
  const entryOf = (uuid, state) => state && state.id != null && { id: String(state.id), info: state.info ?? null, key: uuid };

  function refreshMembers(entry, action) {
    const name = encodeForPubnub(entry.logical);
    client().hereNow({ channels: [name], includeUUIDs: true, includeState: true }).then(
      (answer) => {
        entry.tabs = new Map();
        const list = [];
        const add = (member) => {
          list.push(member);
          entry.tabs.set(member.key, member.id);
        };
        const me = userId();
        for (const { uuid, state } of answer?.channels?.[name]?.occupants ?? []) {
          const member = uuid === me ? { ...entry.me, key: uuid } : entryOf(uuid, state);
          if (member) add(member);
        }
        if (!entry.tabs.has(me)) add({ ...entry.me, key: me }); // hereNow may not list this tab yet
        hooks.presence(entry.logical, action, list);
      },
      (error) => hooks.error(new RTBridgeError(`rtbridge: PubNub hereNow failed for ${entry.logical}: ${error?.message ?? error}`, { code: "presence_failed", channel: entry.logical })),
    );
  }

  function presenceEvent(event) {
    const entry = channels.get(String(event.channel ?? "").replace(/-pnpres$/, ""));
    if (!entry?.me) return;
    const { action, uuid } = event;
    if (action === "interval") return refreshMembers(entry, "sync"); // many members: PubNub batches
    if (uuid === userId()) return;
    if (action === "join" || action === "state-change") {
      const member = entryOf(uuid, event.state);
      if (!member) return; // a join before its state: the state-change follows
      entry.tabs.set(uuid, member.id);
      hooks.presence(entry.logical, "join", [member]);
    } else if (action === "leave" || action === "timeout") {
      const id = entry.tabs.get(uuid);
      entry.tabs.delete(uuid);
      if (id !== undefined) hooks.presence(entry.logical, "leave", [{ id, key: uuid }]);
    }
  }

  function announce(entry) {
    // This tab's state names its member; then the full list (once per (re)subscribe).
    const name = encodeForPubnub(entry.logical);
    Promise.resolve(client().setState({ channels: [name], state: { id: entry.me.id, info: entry.me.info } }))
      .catch(() => {}) // the list below still carries this tab
      .then(() => channels.get(name) === entry && refreshMembers(entry, "here"));
  }

  return { announce, event: presenceEvent };
}
