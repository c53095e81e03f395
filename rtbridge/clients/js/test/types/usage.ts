// Compiled (not run) by test/types.test.js: index.d.ts must accept the documented API.
import {
  Channel,
  Client,
  RTBridgeError,
  State,
  Subscription,
  connect,
  filterChannel,
  objectChannel,
  transports,
} from "rtbridge";

const rt: Client = connect();
const off: () => void = rt.onState((state: State) => state === "connected");
off();
rt.ready(() => console.log(rt.socketId())).then((client: Client) => client.headers());
const sub: Subscription = rt.subscribe("todo.todoitem", { todo_list_id: 1, done: false }, (event, data, meta) => {
  console.log(event.toUpperCase(), data, meta.channel, meta.seq);
});
rt.subscribe("todo.todolist.1", (event: string) => event);
sub.ready.then((s: Subscription) => s.unsubscribe());
sub.onGap((channel: string) => channel);
sub.onResubscribed((channel: string) => channel);
sub.onError((error: RTBridgeError) => error.code);
const channel: Channel = rt.channel("todo.todolist.1").listen("renamed", (data) => data.name).stopListening("renamed");
channel.leave();
rt.onError((error) => console.error(error.reason));
connect({ backend: "pusher", key: "app-key", wsHost: "127.0.0.1", wsPort: 6001, forceTLS: false });
connect({ backend: "local", url: null, path: "/rtbridge/ws", reconnect: { maxDelay: 10_000 } });
connect({ backend: "firebase", databaseURL: "https://x.firebaseio.com", root: "rtbridge" });
connect({ reconnect: false });
filterChannel("todo.todoitem", { todo_list__id: 1 });
objectChannel("todo.todoitem", 5);
transports.custom = (config, hooks) => ({
  connect: () => hooks.open("id"),
  disconnect: () => hooks.state("disconnected"),
  socketId: () => "id",
  subscribe: async () => undefined,
  unsubscribe: () => undefined,
});
rt.disconnect();

// @ts-expect-error: the handler is required
rt.subscribe("todo.todoitem", { todo_list_id: 1 });
// @ts-expect-error: not a state
const bad: State = "open";
