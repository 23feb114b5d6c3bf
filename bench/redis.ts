// Cross-node fan-out through Redis, against one node alone. Run: `npm run bench:redis`
// (Deno), or `bun run bench/redis.ts`. Hubs run in child processes of the same runtime; the
// clients run here. Needs Redis at REDIS_URL (default redis://127.0.0.1:6379).
//
// 1. Deliveries per second: CLIENTS clients get MESSAGES broadcasts of SIZE bytes; once all on
//    one node without a broker, once split over two nodes with the broadcasts sent from one.
// 2. Latency: ROUNDS sequential broadcasts from node A; the time until a client on A (local)
//    and a client on B (through Redis) receive each; the added latency is their difference.
//
// Env: CLIENTS (200), MESSAGES (2000), SIZE (64), ROUNDS (2000).

import { spawn } from "node:child_process";
import process from "node:process";
import { createClient } from "redis";

const env = process.env;
const CLIENTS = Number(env.CLIENTS ?? 200);
const MESSAGES = Number(env.MESSAGES ?? 2000);
const SIZE = Number(env.SIZE ?? 64);
const ROUNDS = Number(env.ROUNDS ?? 2000);
const REDIS_URL = env.REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `chorus-bench:${crypto.randomUUID().slice(0, 8)}`;
const isBun = "Bun" in globalThis;
const nodeScript = new URL("./redis_node.ts", import.meta.url).pathname;

interface Node {
  port: number;
  stop(): Promise<void>;
}

function startNode(noBroker: boolean): Promise<Node> {
  const [cmd, args] = isBun
    ? [process.execPath, ["run", nodeScript]]
    : [(globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath(), ["run", "-A", nodeScript]];
  const child = spawn(cmd, args, {
    env: { ...process.env, REDIS_URL, PREFIX, PORT: "0", ...(noBroker ? { NO_BROKER: "1" } : {}) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((res) => child.on("exit", () => res()));
  return new Promise((resolve, reject) => {
    let out = "";
    child.on("exit", () => reject(new Error(`node exited early: ${out}`)));
    child.stdout!.on("data", (chunk: Uint8Array) => {
      out += new TextDecoder().decode(chunk);
      const m = out.match(/ready (\d+)/);
      if (m) {
        resolve({
          port: Number(m[1]),
          stop: () => {
            child.kill("SIGTERM");
            return exited;
          },
        });
      }
    });
  });
}

/** A client that counts what it receives and can wait for a count or a given message. */
class Counter {
  ws: WebSocket;
  received = 0;
  #want = 0;
  #done: (() => void) | undefined;
  onText: ((data: string) => void) | undefined;

  constructor(port: number) {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    this.ws.onmessage = (e) => {
      this.received++;
      this.onText?.(e.data as string);
      if (this.#done && this.received >= this.#want) {
        const done = this.#done;
        this.#done = undefined;
        done();
      }
    };
  }

  opened(): Promise<void> {
    return new Promise((res, rej) => {
      this.ws.onopen = () => res();
      this.ws.onerror = () => rej(new Error("client failed to connect"));
    });
  }

  until(n: number): Promise<void> {
    if (this.received >= n) return Promise.resolve();
    this.#want = n;
    return new Promise((res) => this.#done = res);
  }

  close(): void {
    this.ws.close();
  }
}

/** Fails after `ms` with a report of what each client received, so a lost message never hangs the bench. */
function watchdog<T>(what: string, work: Promise<T>, clients: Counter[], ms = 120_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const counts = new Map<number, number>();
      for (const c of clients) counts.set(c.received, (counts.get(c.received) ?? 0) + 1);
      reject(new Error(`${what}: timed out; clients by messages received: ${JSON.stringify([...counts])}`));
    }, ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

async function connect(port: number, n: number): Promise<Counter[]> {
  const clients = Array.from({ length: n }, () => new Counter(port));
  await watchdog("connect", Promise.all(clients.map((c) => c.opened())), clients, 30_000);
  return clients;
}

/** Waits until the node of `probe` has attached `n` sessions (a client may see its open first). */
async function attached(probe: Counter, n: number): Promise<void> {
  for (let tries = 0; tries < 1000; tries++) {
    const size = await new Promise<number>((res) => {
      probe.onText = (d) => d.startsWith("size ") && res(Number(d.slice(5)));
      probe.ws.send("size");
    });
    probe.onText = undefined;
    if (size === n) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`the node never attached ${n} sessions`);
}

async function fanOut(sender: Counter, clients: Counter[]): Promise<number> {
  // warm up: one message to everyone
  const base = clients.map((c) => c.received);
  sender.ws.send("warmup");
  await watchdog("warm-up", Promise.all(clients.map((c, i) => c.until(base[i] + 1))), clients);
  const start = performance.now();
  sender.ws.send(`burst ${MESSAGES} ${SIZE}`);
  await watchdog("burst", Promise.all(clients.map((c, i) => c.until(base[i] + 1 + MESSAGES))), clients);
  const seconds = (performance.now() - start) / 1000;
  return (clients.length * MESSAGES) / seconds;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const ms = (n: number) => `${n.toFixed(3)} ms`;
const runtimeName = isBun
  ? `bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`;
console.log(`chorus redis bench on ${runtimeName}: ${CLIENTS} clients, ${MESSAGES} messages of ${SIZE} bytes`);

// 1a. one node, no broker
{
  const node = await startNode(true);
  const clients = await connect(node.port, CLIENTS);
  await attached(clients[0], CLIENTS);
  const rate = await fanOut(clients[0], clients);
  console.log(`single node:           ${fmt(rate)} deliveries/s`);
  clients.forEach((c) => c.close());
  await node.stop();
}

// 1b. two nodes through Redis, broadcasts from node A, half of the clients on each
const [a, b] = [await startNode(false), await startNode(false)];
try {
  const onA = await connect(a.port, CLIENTS / 2);
  const onB = await connect(b.port, CLIENTS - CLIENTS / 2);
  await attached(onA[0], onA.length);
  await attached(onB[0], onB.length);
  const rate = await fanOut(onA[0], [...onA, ...onB]);
  console.log(`two nodes via Redis:   ${fmt(rate)} deliveries/s (half of them cross-node)`);
  [...onA, ...onB].forEach((c) => c.close());

  // 2. latency of one broadcast, local vs cross-node
  const [sender, local] = await connect(a.port, 2);
  const [remote] = await connect(b.port, 1);
  await attached(sender, 2);
  await attached(remote, 1);
  const localMs: number[] = [];
  const remoteMs: number[] = [];
  const added: number[] = [];
  for (let i = 0; i < ROUNDS + 100; i++) {
    const tag = `lat ${i}`;
    const t0 = performance.now();
    let tl = 0;
    let tr = 0;
    await watchdog(
      `latency round ${i}`,
      new Promise<void>((res) => {
        local.onText = (d) => {
          if (d === tag) tl = performance.now();
          if (tl && tr) res();
        };
        remote.onText = (d) => {
          if (d === tag) tr = performance.now();
          if (tl && tr) res();
        };
        sender.ws.send(tag);
      }),
      [sender, local, remote],
      10_000,
    );
    if (i < 100) continue; // warm-up rounds
    localMs.push(tl - t0);
    remoteMs.push(tr - t0);
    added.push(tr - tl);
  }
  for (const xs of [localMs, remoteMs, added]) xs.sort((x, y) => x - y);
  console.log(`local delivery:        p50 ${ms(percentile(localMs, 50))}, p99 ${ms(percentile(localMs, 99))}`);
  console.log(`cross-node delivery:   p50 ${ms(percentile(remoteMs, 50))}, p99 ${ms(percentile(remoteMs, 99))}`);
  console.log(`added by Redis:        p50 ${ms(percentile(added, 50))}, p99 ${ms(percentile(added, 99))}`);
  [sender, local, remote].forEach((c) => c.close());
} finally {
  await Promise.all([a.stop(), b.stop()]);
  const client = createClient({ url: REDIS_URL });
  client.on("error", () => {});
  await client.connect();
  const keys = await client.keys(`${PREFIX}:*`);
  if (keys.length) await client.del(keys);
  await client.close();
}
process.exit(0);
