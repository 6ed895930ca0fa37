// The client against a real ringwave (RINGWAVE_BIN, or the debug build):
// every publication once and in order while a proxy cuts every connection
// each second, over WebSocket and over the SSE fallback; a restarted server
// (lost position, snapshot, new epoch); the keyed state; a token refreshed
// in band; gap events for what the server skipped; the tail command.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import net from "node:net";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

import { Client, KeyedState } from "../dist/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.RINGWAVE_BIN ?? path.join(here, "../../../target/debug/ringwave");
const servers = [];
after(() => servers.forEach((s) => s.kill("SIGKILL")));

/** ringwave on 127.0.0.1:port (0: any) with args; resolves to its port. */
function server(args, port = 0) {
  const p = spawn(BIN, ["--listen", `127.0.0.1:${port}`, "--threads", "1", "--feed-sim", "off", "--log-level", "warn", ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  servers.push(p);
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: p.stdout });
    rl.once("line", (line) => {
      // Nothing more is read from it: let it not hold the test's process.
      rl.close();
      p.stdout.destroy();
      p.unref();
      const m = /ws:\/\/127\.0\.0\.1:(\d+)/.exec(line);
      m ? resolve({ port: Number(m[1]), proc: p }) : reject(new Error(`ringwave did not start: ${line}`));
    });
    p.once("exit", (code) => reject(new Error(`ringwave exited: ${code}`)));
  });
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A TCP proxy to `target`; cut() ends every connection it carries, while
 * `refuse` is set new ones are closed at once, and pause() stops reading
 * what the server sends (until resume()). */
async function proxy(target) {
  const sockets = new Set();
  const ups = new Map();
  const p = { refuse: false, cuts: 0 };
  const srv = net.createServer((down) => {
    if (p.refuse) return down.destroy();
    const up = net.connect(target, "127.0.0.1");
    ups.set(up, down);
    up.on("close", () => ups.delete(up));
    for (const s of [down, up]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    down.pipe(up);
    up.pipe(down);
    up.on("close", () => down.destroy());
    down.on("close", () => up.destroy());
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  p.port = srv.address().port;
  p.cut = () => {
    p.cuts += 1;
    for (const s of sockets) s.destroy();
  };
  p.close = () => {
    p.cut();
    srv.close();
  };
  p.pause = () => {
    for (const [up, down] of ups) {
      up.unpipe(down);
      up.pause();
    }
  };
  p.resume = () => {
    for (const [up, down] of ups) up.pipe(down);
  };
  return p;
}

/** A plain WebSocket that publishes. */
async function publisher(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/feed`);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  return {
    publish: (topic, data, key) => ws.send(JSON.stringify(key ? { op: "publish", topic, data, key } : { op: "publish", topic, data })),
    close: () => ws.close(),
  };
}

/** The next event, within `ms`. */
async function next(sub, ms = 10_000) {
  let timer;
  const r = await Promise.race([
    sub.next(),
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("no event in time")), ms))),
  ]);
  clearTimeout(timer);
  assert.equal(r.done, false);
  return r.value;
}

async function until(pred, ms = 10_000) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function untilAsync(pred, ms = 10_000) {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function onceAndInOrder(transport) {
  const n = 3000;
  const { port } = await server(["--history", "t=100000", "--allow-client-publish"]);
  const px = await proxy(port);
  const client = new Client(`ws://127.0.0.1:${px.port}/feed`, { transport, backoffBase: 50, backoffCap: 500 });
  const sub = client.subscribe("t");
  if (transport === "websocket") await until(() => sub.subscribedOnce);
  else await until(() => sub.epoch !== undefined);
  const pub = await publisher(port);
  const cutter = setInterval(() => px.cut(), 1000);
  const publishing = (async () => {
    for (let i = 1; i <= n; i++) {
      pub.publish("t", `p${i}`);
      if (i % 100 === 0) await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const got = [];
  while (got.length < n) {
    const ev = await next(sub, 20_000);
    if (ev.type === "resubscribed") {
      assert.ok(ev.recovered, JSON.stringify(ev));
      continue;
    }
    assert.equal(ev.type, "publication", JSON.stringify(ev));
    assert.equal(ev.data, `p${ev.offset}`);
    got.push(ev.offset);
  }
  clearInterval(cutter);
  await publishing;
  assert.deepEqual(got, Array.from({ length: n }, (_, i) => i + 1), "missing or repeated offsets");
  assert.ok(px.cuts >= 2 && client.connects >= 3, `cuts ${px.cuts}, connects ${client.connects}`);
  console.log(`${transport}: ${n} publications once and in order over ${client.connects} connections`);
  client.close();
  pub.close();
  px.close();
}

test("every publication once and in order while the WebSocket is cut every second", () => onceAndInOrder("websocket"));

test("the same over the SSE fallback", () => onceAndInOrder("sse"));

test("a restarted server is a lost position, then a snapshot and the new epoch", async () => {
  const args = ["--history", "t=1000", "--allow-client-publish"];
  const port = await freePort();
  const first = await server(args, port);
  const px = await proxy(port);
  const client = new Client(`ws://127.0.0.1:${px.port}/feed`, { backoffBase: 50, backoffCap: 200 });
  const sub = client.subscribe("t", { snapshot: true });
  await until(() => sub.subscribedOnce);
  let pub = await publisher(port);
  pub.publish("t", "old", "k");
  const old = await next(sub);
  assert.deepEqual([old.data, old.offset], ["old", 1]);
  pub.close();
  px.refuse = true;
  first.proc.kill("SIGKILL");
  await new Promise((r) => first.proc.once("exit", r));
  px.cut();
  await server(args, port);
  pub = await publisher(port);
  for (const [key, value] of [["k", "new-k"], ["j", "new-j"], ["k", "newer-k"]]) pub.publish("t", value, key);
  // The three are kept before the client is back.
  await untilAsync(async () => /ringwave_history_entries 3\b/.test(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()));
  px.refuse = false;
  const resub = await next(sub);
  assert.equal(resub.type, "resubscribed");
  assert.ok(resub.lost, JSON.stringify(resub));
  assert.notEqual(resub.epoch, old.epoch);
  const state = new KeyedState();
  const snap = [await next(sub), await next(sub)];
  for (const p of snap) {
    assert.ok(p.snapshot, JSON.stringify(p));
    state.apply(p);
  }
  assert.equal(state.get("k"), "newer-k");
  assert.equal(state.get("j"), "new-j");
  pub.publish("t", "live", "j");
  const live = await next(sub);
  assert.deepEqual([live.data, live.epoch, live.snapshot], ["live", resub.epoch, false]);
  assert.ok(state.apply(live));
  assert.equal(state.get("j"), "live");
  client.close();
  pub.close();
  px.close();
});

/** An HS256 JWT (node:crypto's HMAC; the server verifies it with
 * jsonwebtoken). */
function jwt(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

test("a token refreshed in band keeps the connection past its first expiry", async () => {
  const secret = "a secret for the js client test, 32 bytes or more";
  const dir = mkdtempSync(path.join(tmpdir(), "ringwave-js-"));
  writeFileSync(path.join(dir, "hs.key"), secret);
  const { port } = await server(["--jwt-key", path.join(dir, "hs.key"), "--allow-client-publish"]);
  let issued = 0;
  const getToken = () => {
    issued += 1;
    const exp = Math.floor(Date.now() / 1000) + 3;
    return jwt(secret, { sub: "js", exp, topics: { subscribe: ["t"], publish: ["t"] } });
  };
  const client = new Client(`ws://127.0.0.1:${port}/feed`, { getToken, refreshAt: 0.5 });
  const sub = client.subscribe("t");
  await until(() => sub.subscribedOnce);
  // Past two lifetimes of the first token (3 s, and the server's 2 s of
  // leeway), publications still arrive on one connection.
  const end = Date.now() + 7000;
  for (let i = 1; Date.now() < end; i++) {
    client.publish("t", `m${i}`);
    const ev = await next(sub, 5000);
    assert.equal(ev.data, `m${i}`, JSON.stringify(ev));
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(client.connects, 1, `reconnected: ${client.connects}`);
  assert.ok(issued >= 4, `tokens issued: ${issued}`);
  client.close();
});

test("publications the server skipped (drop policy) come as gap events", async () => {
  const n = 4000;
  const { port } = await server([
    "--history", "g=100000", "--topic-policy", "g=drop", "--max-buffered", "65536", "--allow-client-publish",
  ]);
  const px = await proxy(port);
  const client = new Client(`ws://127.0.0.1:${px.port}/feed`);
  const sub = client.subscribe("g");
  await until(() => sub.subscribedOnce);
  // The subscriber's connection stops being read: its unsent bytes pass
  // --max-buffered once the socket buffers are full (16 MB published).
  px.pause();
  const pub = await publisher(port);
  const body = "x".repeat(4000);
  for (let i = 1; i <= n; i++) pub.publish("g", `${i} ${body}`);
  const drops = async () => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return Number(/^ringwave_slow_consumer_drops_total (\d+)/m.exec(text)[1]);
  };
  await untilAsync(async () => (await drops()) > 0, 20_000);
  px.resume();
  // A gap is told ahead of the next publication the subscriber gets: publish
  // "end" until one arrives (one published while it is still behind is
  // skipped too).
  const ender = setInterval(() => pub.publish("g", "end"), 100);
  const seen = new Map();
  let gaps = 0;
  let last = 0;
  for (;;) {
    const ev = await next(sub, 20_000);
    if (ev.type === "gap") {
      gaps += 1;
      assert.equal(ev.dropped, ev.to - ev.from + 1, JSON.stringify(ev));
      for (let o = ev.from; o <= ev.to; o++) seen.set(o, (seen.get(o) ?? 0) + 1);
      continue;
    }
    assert.equal(ev.type, "publication", JSON.stringify(ev));
    seen.set(ev.offset, (seen.get(ev.offset) ?? 0) + 1);
    if (ev.data === "end") {
      last = ev.offset;
      break;
    }
  }
  clearInterval(ender);
  // Every offset up to the first "end" received either arrived or was in a
  // gap, once.
  assert.ok(gaps >= 1, "no gap event");
  assert.ok(last > n, `the first end at ${last}`);
  assert.equal(seen.size, last);
  assert.ok([...seen].every(([o, c]) => c === 1 && o >= 1 && o <= last), "an offset twice or out of range");
  console.log(`drop: ${gaps} gap events; ${seen.size} offsets each received or in a gap once; ${await drops()} dropped`);
  client.close();
  pub.close();
  px.close();
});

test("ringwave-tail prints EPOCH:OFFSET<TAB>DATA", async () => {
  const { port } = await server(["--history", "t=100", "--allow-client-publish"]);
  const tail = spawn(process.execPath, [path.join(here, "../bin/ringwave-tail.mjs"), `ws://127.0.0.1:${port}/feed`, "t"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  servers.push(tail);
  const lines = [];
  const rl = readline.createInterface({ input: tail.stdout });
  rl.on("line", (l) => lines.push(l));
  const pub = await publisher(port);
  // A live feed: one publication every 50 ms (at most 200) until the tail
  // printed three lines.
  for (let i = 1; i <= 200 && lines.length < 3; i++) {
    pub.publish("t", `m${i}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  tail.kill();
  pub.close();
  assert.ok(lines.length >= 3, `printed ${lines.length} lines`);
  for (const l of lines) assert.match(l, /^[0-9a-f]{8}:\d+\tm\d+$/);
  const offsets = lines.map((l) => Number(l.split("\t")[0].split(":")[1]));
  assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b));
});
