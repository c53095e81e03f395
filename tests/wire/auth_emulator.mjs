// The Firebase Auth emulator from firebase-tools, started without the CLI (which would fetch
// its message of the day and check for updates over the network): node auth_emulator.mjs PORT PROJECT
// Prints {"ready": true} once it listens on 127.0.0.1:PORT; runs until killed.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { AuthEmulator } = require("firebase-tools/lib/emulator/auth/index.js");
const [port, projectId] = process.argv.slice(2);
const emulator = new AuthEmulator({ host: "127.0.0.1", port: Number(port), projectId });
await emulator.start();
process.stdout.write(JSON.stringify({ ready: true }) + "\n");
process.on("SIGTERM", () => emulator.stop().then(() => process.exit(0)));
