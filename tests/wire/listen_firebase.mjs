// Receive with the firebase JS SDK against an emulator host:
// node listen_firebase.mjs '{"databaseURL","host","port","root","channels":[[logical, encoded]]}'
// Listens to children added from "now" (ordered by push id) and prints one JSON line each.
import { initializeApp } from "firebase/app";
import {
  connectDatabaseEmulator, getDatabase, onChildAdded, onValue, orderByKey, query, ref, startAt,
} from "firebase/database";

const PUSH_CHARS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
const config = JSON.parse(process.argv[2]);
const emit = (value) => process.stdout.write(JSON.stringify(value) + "\n");
const socketId = `listener-${process.pid}`;

function pushIdPrefix(ms) {
  let out = "";
  for (let i = 0; i < 8; i += 1) {
    out = PUSH_CHARS.charAt(ms % 64) + out;
    ms = Math.floor(ms / 64);
  }
  return out;
}

const app = initializeApp({ databaseURL: config.databaseURL, projectId: "demo-rtbridge" });
const db = getDatabase(app);
connectDatabaseEmulator(db, config.host, config.port);
const from = pushIdPrefix(Date.now());
let pending = config.channels.length;
for (const [logical, encoded] of config.channels) {
  const live = query(ref(db, `${config.root}/${encoded}`), orderByKey(), startAt(from));
  onChildAdded(live, (snapshot) => {
    const value = snapshot.val() || {};
    emit({
      channel: logical,
      event: value.event,
      data: value.data === undefined ? null : value.data,
      exclude: value.exclude ?? null,
      ts: value.ts,
      // The position rtbridge's history store gave the message (absent with history off).
      ...(value.offset !== undefined && { offset: value.offset, epoch: value.epoch }),
    });
  });
  let first = true;
  onValue(live, () => {
    if (!first) return;
    first = false;
    pending -= 1;
    if (pending === 0) emit({ ready: true, socketId });
  }, (error) => emit({ error: String(error) }));
}
process.on("SIGTERM", () => process.exit(0));
