// Start the real rtbridge server (test/harness/server.py) and drive it with JSON lines.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";

const JS_DIR = new URL("../../", import.meta.url).pathname;
/** The Python that runs the server: $RTBRIDGE_PYTHON, else the repository's .venv. */
export const PYTHON = process.env.RTBRIDGE_PYTHON ?? new URL("../../../../../.venv/bin/python", import.meta.url).pathname;
const HARNESS = new URL("../harness/server.py", import.meta.url).pathname;

export const pythonAvailable = () => existsSync(PYTHON);

/** A running harness: `send(command)` resolves with its answer; `close()` stops it. */
export class RealServer {
  /** Start the harness; `args` are its command-line options, e.g. ["--heartbeat", "0.2"]. */
  static async start(args = []) {
    const server = new RealServer(args);
    const hello = await server._next();
    if (!hello.ok) throw new Error(`the rtbridge harness failed to start: ${JSON.stringify(hello)}`);
    Object.assign(server, { port: hello.port, url: hello.url, httpUrl: hello.http_url });
    return server;
  }

  constructor(args) {
    this.process = spawn(PYTHON, [HARNESS, ...args], { cwd: JS_DIR, stdio: ["pipe", "pipe", "pipe"] });
    this.stderr = "";
    this.process.stderr.on("data", (chunk) => (this.stderr += chunk));
    this._waiting = [];
    this._lines = [];
    createInterface({ input: this.process.stdout }).on("line", (line) => {
      const answer = JSON.parse(line);
      const waiter = this._waiting.shift();
      waiter ? waiter(answer) : this._lines.push(answer);
    });
    this._exited = new Promise((resolve) => this.process.on("exit", resolve));
    this._exited.then(() => this._waiting.splice(0).forEach((waiter) => waiter({ ok: false, error: `harness exited: ${this.stderr}` })));
  }

  _next(timeout = 15000) {
    if (this._lines.length) return Promise.resolve(this._lines.shift());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from the harness: ${this.stderr}`)), timeout);
      this._waiting.push((answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
    });
  }

  async send(command) {
    this.process.stdin.write(JSON.stringify(command) + "\n");
    const answer = await this._next();
    if (!answer.ok) throw new Error(`harness: ${answer.error}`);
    return answer;
  }

  publish(channels, event, data, exclude = null) {
    return this.send({ cmd: "publish", channels: [].concat(channels), event, data, exclude });
  }

  /** Create a user (once) with a logged-in session: `{user_id, sessionid}`. */
  user(username) {
    return this.send({ cmd: "user", username });
  }

  /** Change a tests.testapp object through the ORM (the model publishes): `{id}`. */
  orm(model, op, { id, ...values } = {}) {
    return this.send({ cmd: "orm", model, op, id, values });
  }

  async close() {
    if (this.process.exitCode === null) {
      this.process.stdin.end(JSON.stringify({ cmd: "quit" }) + "\n");
      const timer = setTimeout(() => this.process.kill("SIGKILL"), 10000);
      await this._exited;
      clearTimeout(timer);
    }
  }
}
