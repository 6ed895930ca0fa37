#!/usr/bin/env node
// ringwave-tail URL TOPIC [--token T] [--sse]: follow a topic and print one
// line per publication, EPOCH:OFFSET<TAB>DATA, forever, reconnecting and
// recovering as the library does. Gaps and lost positions go to stderr.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

// Node 20 has a WebSocket behind a flag (on by default from Node 22): run
// again with it, passing signals on so that no copy outlives this one.
if (typeof globalThis.WebSocket !== "function" && !process.execArgv.includes("--experimental-websocket")) {
  const child = spawn(process.execPath, ["--experimental-websocket", "--no-warnings", fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: "inherit",
    env: { ...process.env, RINGWAVE_TAIL_PARENT: String(process.pid) },
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => child.kill(sig));
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
} else {
  await main();
}

async function main() {
  // Run again by a parent that was killed outright (SIGKILL passes no
  // signal on): do not outlive it.
  const parent = Number(process.env.RINGWAVE_TAIL_PARENT);
  if (parent) setInterval(() => process.ppid !== parent && process.exit(0), 500).unref();
  const args = process.argv.slice(2);
  const flag = (name) => {
    const i = args.indexOf(name);
    return i < 0 ? undefined : args.splice(i, 2)[1];
  };
  const sse = args.includes("--sse") ? (args.splice(args.indexOf("--sse"), 1), true) : false;
  const token = flag("--token");
  const [url, topic] = args;
  if (!url || !topic || args.length !== 2) {
    console.error("usage: ringwave-tail URL TOPIC [--token T] [--sse]\n  URL: the feed, e.g. ws://127.0.0.1:9001/feed");
    process.exit(2);
  }

  const { Client } = await import("../dist/index.js");
  const client = new Client(url, { token, transport: sse ? "sse" : "websocket" });
  const stop = () => {
    client.close();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  try {
    for await (const ev of client.subscribe(topic)) {
      if (ev.type === "publication") {
        process.stdout.write(`${ev.position}\t${ev.data.replace(/\n/g, "\\n")}\n`);
      } else if (ev.type === "gap") {
        const span = ev.from === undefined ? "" : ` (offsets ${ev.from}-${ev.to})`;
        console.error(`# gap: ${ev.dropped} skipped by the server${span}`);
      } else if (ev.lost) {
        console.error(`# position lost: now at ${ev.epoch}:${ev.offset}`);
      }
    }
  } catch (e) {
    console.error(`ringwave-tail: ${e.message}`);
    process.exit(1);
  }
}
