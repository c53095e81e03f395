// Compiled (not run) by test/types.test.js: index.d.ts must accept the documented API.
import {
  Channel,
  Client,
  GapInfo,
  LiveList,
  LiveObject,
  Member,
  Position,
  PresenceChannel,
  RTBridgeError,
  RecoveredInfo,
  ResubscribedInfo,
  State,
  Subscription,
  connect,
  fetchConfig,
  filterChannel,
  objectChannel,
  type TransportFactory,
} from "rtbridge";
import { connect as connectAll, transports } from "rtbridge/all";
import { pusher } from "rtbridge/transports/pusher";
import { selfhosted } from "rtbridge/transports/selfhosted";
// @ts-expect-error: the main entry has no transports table (it is in "rtbridge/all")
import { transports as noTable } from "rtbridge";

const rt: Client = connect();
const off: () => void = rt.onState((state: State) => state === "connected");
off();
rt.ready(() => console.log(rt.socketId())).then((client: Client) => client.headers());
const sub: Subscription = rt.subscribe("todo.todoitem", { todo_list_id: 1, done: false }, (event, data, meta) => {
  console.log(event.toUpperCase(), data, meta.channel, meta.offset, meta.epoch);
});
rt.subscribe("todo.todolist.1", (event: string) => event);
sub.ready.then((s: Subscription) => s.unsubscribe());
sub.onGap((channel: string, info: GapInfo) => [channel, info.recovered, info.reason, info.offset, info.error?.code]);
sub.onResubscribed((channel: string, info: ResubscribedInfo) => info.recovered || channel);
sub.onRecovered((channel: string, info: RecoveredInfo) => [info.reason, info.offset, info.epoch]);
rt.onRecovered((channel, info) => info.recovered === true);
rt.onGap((channel, info) => info.recovered === false);
const stopRecovered: () => void = rt.channel("x").onRecovered((channel, info) => info.offset);
connect({ backend: "pusher", key: "k", historyEndpoint: "/rtbridge/history", holdTimeout: 1000, transport: pusher });
const position: Position = { offset: 41, epoch: "k3J9" };
// @ts-expect-error: a gap is never recovered
const recoveredGap: GapInfo = { recovered: true, reason: "hole" };
sub.onError((error: RTBridgeError) => error.code);
const channel: Channel = rt.channel("todo.todolist.1").listen("renamed", (data) => data.name).stopListening("renamed");
channel.leave();
rt.onError((error) => console.error(error.reason));
connect({ backend: "pusher", key: "app-key", wsHost: "127.0.0.1", wsPort: 6001, forceTLS: false, transport: pusher });
const all: Client = connectAll({ backend: "pusher", key: "app-key" });
connectAll({ configUrl: "/rtbridge/config" }).then((client: Client) => client.socketId());
connect({ backend: "local", transport: selfhosted });
connect({ transport: pusher }); // the page's config, this transport
const factory: TransportFactory = pusher;
connect({ configUrl: "/rtbridge/config", transport: factory }).then((client: Client) => client.state);
// @ts-expect-error: a transport is a factory, not its name
connect({ backend: "pusher", key: "k", transport: "pusher" });
connect({ backend: "local", url: null, path: "/rtbridge/ws", reconnect: { maxDelay: 10_000 } });
connect({ backend: "firebase", databaseURL: "https://x.firebaseio.com", root: "rtbridge" });
connect({ reconnect: false });
connect({ configUrl: "http://127.0.0.1:8000/rtbridge/config" }).then((client: Client) => client.join("presence-room"));
fetchConfig("/rtbridge/config", { credentials: "include" }).then((config) => connect(config).socketId());
filterChannel("todo.todoitem", { todo_list__id: 1 });
objectChannel("todo.todoitem", 5);
transports.custom = (config, hooks) => ({
  connect: () => hooks.open("id"),
  disconnect: () => hooks.state("disconnected"),
  socketId: () => "id",
  subscribe: async (channel: string, since?: Position) => since && { offset: since.offset, epoch: since.epoch, recovered: true },
  unsubscribe: () => undefined,
});
transports.positioned = (config, hooks) => ({
  connect: () => {
    hooks.message("c", "e", {}, { channel: "c", offset: 2, epoch: position.epoch });
    hooks.skip("c", { offset: 3, epoch: position.epoch });
    hooks.gap("c", { offset: 9, epoch: "fresh" });
    hooks.missed("c");
  },
  disconnect: () => undefined,
  socketId: () => null,
  subscribe: () => undefined,
  unsubscribe: () => undefined,
});
rt.disconnect();

// @ts-expect-error: the handler is required
rt.subscribe("todo.todoitem", { todo_list_id: 1 });
// @ts-expect-error: not a state
const bad: State = "open";

// Private and presence channels, whispers (issue 6).
const orders: Channel = rt.private("orders").listen("updated", (data) => data.id);
orders.whisper("typing", { field: "text" }).then(() => undefined);
orders.listenForWhisper("typing", (data, meta) => meta.user_id).stopListeningForWhisper("typing");
type EditorInfo = { id: number; name: string };
const room: PresenceChannel<EditorInfo> = rt
  .join<EditorInfo>("todo.todoitem.7")
  .here((members: Member<EditorInfo>[]) => members.map((member) => member.info.name))
  .joining((member) => member.id.toUpperCase())
  .leaving((member) => member.info.name);
const names: string[] = room.members().map((member) => member.info.name);
room.ready.then((channel) => channel.members());
connect({ authEndpoint: "/auth", dataEndpoint: "/data", csrfToken: () => "t", headers: { "X-A": "1" }, credentials: "include" });

// Data calls and live collections (issue 7).
type Item = { id: number; text: string; done: boolean; todo_list_id: number };
rt.getList<Item>("todo-item", { todo_list_id: 1 }, { page: 2, pageSize: 10 }).then(({ data, page }) => data[0].text + page?.number);
rt.getSingle<Item>("todo-item", { id: 5 }).then((item) => item.done);
rt.create<Item>("todo-item", { todo_list_id: 1, text: "milk" }).then((item) => item.id);
rt.update("todo-item", { id: 5, done: true });
rt.delete("todo-item", { id: 5 }).then(({ id }) => id);
rt.call<{ data: { deleted: number } }>("todo-item", "clear_done", { todo_list_id: 1 }).then((body) => body.data.deleted);
rt.callRouter("get_list", "todo-item", {});
const live: LiveList<Item> = rt.liveList<Item>("todo-item", { todo_list_id: 1 }, { order: "-id" });
const offChange: () => void = live.onChange((rows: Item[]) => rows.map((row) => row.text));
live.ready.then((list) => list.rows().length);
live.onError((error: RTBridgeError) => [error.status, error.code, error.fields]);
rt.liveList<Item>("todo-item", {}, { order: (a, b) => a.text.localeCompare(b.text) }).close();
const one: LiveObject<Item> = rt.liveObject<Item>("todo-item", { id: 5 });
one.onChange((item) => item?.text);
const current: Item | null = one.get();
offChange();
// @ts-expect-error: join() returns a presence channel, whose here() wants members
rt.join("room").here((members: number) => members);
