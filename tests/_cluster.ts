// Helpers for the cluster tests: hubs with Redis brokers, a private redis-server, child nodes.

import { type ChildProcess, spawn } from "node:child_process";
import * as net from "node:net";
import process from "node:process";
import type { Readable } from "node:stream";
import { createClient } from "redis";
import type { HubOptions, Keys } from "../mod.ts";
import { redisBroker, type RedisBrokerOptions } from "../src/brokers/redis.ts";
import { safeKey } from "../src/brokers/_redis_keys.ts";
import { deadline, deferred, startServer, type TestServer } from "./_helpers.ts";
import { runtimeCommand } from "./_examples.ts";

/** The shared Redis of the test machine (started by .ci/run when nothing answers). */
export const REDIS_URL: string = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** A prefix no other test (or concurrent run) uses. */
export function uniquePrefix(name: string): string {
  return `chorus-test:${name}:${crypto.randomUUID().slice(0, 8)}`;
}

/** A hub served on a free port with a Redis broker; broker errors are recorded. */
export interface ClusterNode<K extends Keys = Keys> extends TestServer<K> {
  /** Errors reported to handleBrokerError, in order. */
  brokerErrors: Error[];
}

/** Starts a hub with a Redis broker and waits until it receives the cluster's broadcasts. */
export async function startNode<K extends Keys = Keys>(
  broker: RedisBrokerOptions,
  hubOptions: HubOptions = {},
): Promise<ClusterNode<K>> {
  const server = broker.cluster !== undefined || broker.client !== undefined ? {} : { url: REDIS_URL };
  const t = await startServer<K>({ ...hubOptions, broker: redisBroker({ ...server, ...broker }) });
  const brokerErrors: Error[] = [];
  t.hub.handleBrokerError((err) => {
    brokerErrors.push(err);
    t.signal.ping();
  });
  t.hub.handleMessage(() => {});
  try {
    await deadline(t.hub.ready(), "the broker to subscribe", 10_000);
  } catch (err) {
    await t.close();
    throw err;
  }
  return Object.assign(t, { brokerErrors });
}

/** A plain node-redis client (for raw PUBLISH, key checks and cleanup); quit it with `.close()`. */
// deno-lint-ignore explicit-module-boundary-types
export async function rawRedis(url = REDIS_URL) {
  const client = createClient({ url });
  client.on("error", () => {});
  await client.connect();
  return client;
}

/**
 * How many nodes subscribe to each room's channel (`routing: "rooms"`), by Redis's own count
 * (PUBSUB NUMSUB).
 */
export async function subscribers(prefix: string, rooms: string[], url = REDIS_URL): Promise<number[]> {
  const client = await rawRedis(url);
  try {
    const channels = rooms.map((r) => `${prefix}:room:${r}`);
    const reply = await client.sendCommand(["PUBSUB", "NUMSUB", ...channels]) as unknown[];
    return rooms.map((_, i) => Number(reply[2 * i + 1]));
  } finally {
    await client.close();
  }
}

/** A room's shard channel (its slot is the room's: channel, stream and history together). */
export const roomChannel = (prefix: string, room: string): string => `{${prefix}:${safeKey("r:" + room)}}:ch`;

/** How many subscribers each room's shard channel has, asked of the shard that owns it. */
export async function shardSubscribers(
  cluster: { onPrimary(key: string, args: string[]): Promise<unknown> },
  prefix: string,
  rooms: string[],
): Promise<number[]> {
  return await Promise.all(rooms.map(async (room) => {
    const channel = roomChannel(prefix, room);
    const reply = await cluster.onPrimary(channel, ["PUBSUB", "SHARDNUMSUB", channel]) as unknown[];
    return Number(reply[1]);
  }));
}

/** Deletes every key under a prefix. */
export async function cleanup(prefix: string, url = REDIS_URL): Promise<void> {
  const client = await rawRedis(url);
  try {
    const keys = await client.keys(`${prefix}:*`);
    if (keys.length > 0) await client.del(keys);
  } finally {
    await client.close();
  }
}

/** Polls `read` until `check` accepts its value (for state another process writes). */
export async function eventually<T>(
  read: () => Promise<T>,
  check: (v: T) => boolean,
  what: string,
  ms = 5000,
  every = 25,
): Promise<T> {
  const end = Date.now() + ms;
  let last: T | undefined;
  while (true) {
    last = await read();
    if (check(last)) return last;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; last value ${String(last)}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** A free TCP port on the loopback. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", () => res()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((res) => server.close(() => res()));
  return port;
}

/** A child process whose stdout is read line by line. */
export class Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  readonly output: string[] = [];
  #lines: string[] = [];
  #waiting: { match: RegExp; resolve: (m: RegExpMatchArray) => void } | undefined;

  constructor(cmd: string, args: string[], env: Record<string, string>) {
    this.proc = spawn(cmd, args, { env: { ...process.env, ...env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    const exited = deferred<number | null>();
    this.exited = exited.promise;
    this.proc.on("exit", (code, signal) => exited.resolve(code ?? (signal ? -1 : null)));
    this.proc.on("error", (err) => {
      this.output.push(`spawn error: ${err.message}`);
      exited.resolve(null);
    });
    let buf = "";
    this.proc.stdout!.on("data", (chunk: Uint8Array) => {
      buf += new TextDecoder().decode(chunk);
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.output.push(line);
        this.#lines.push(line);
        this.#check();
      }
    });
    this.proc.stderr!.on("data", (chunk: Uint8Array) => this.output.push(new TextDecoder().decode(chunk)));
  }

  /** The next stdout line matching `match` (earlier lines are consumed). */
  line(match: RegExp, what: string, ms = 20_000): Promise<RegExpMatchArray> {
    const d = deferred<RegExpMatchArray>();
    this.#waiting = { match, resolve: d.resolve };
    this.#check();
    return deadline(d.promise, `${what}; output so far:\n${this.output.join("\n")}`, ms);
  }

  #check(): void {
    const w = this.#waiting;
    if (!w) return;
    while (this.#lines.length > 0) {
      const m = this.#lines.shift()!.match(w.match);
      if (m) {
        this.#waiting = undefined;
        w.resolve(m);
        return;
      }
    }
  }

  /** Kills (if still running) and waits for the exit and the end of its output. */
  async kill(signal: "SIGKILL" | "SIGTERM" = "SIGKILL"): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    await deadline(this.exited, "the child to exit", 10_000);
    await Promise.all([streamEnd(this.proc.stdout), streamEnd(this.proc.stderr)]);
  }
}

function streamEnd(stream: Readable | null): Promise<void> {
  if (!stream || stream.destroyed || stream.readableEnded) return Promise.resolve();
  return deadline(new Promise<void>((res) => stream.once("close", () => res())), "child output to close", 5000);
}

/** Which runtime runs a child node. */
export type NodeRuntime = "deno" | "bun";

const root = new URL("../", import.meta.url).pathname;

/** A hub in a child process (tests/fixtures/cluster_node.ts), on its own port. */
export interface ChildNode {
  child: Child;
  port: number;
  node: string;
  runtime: NodeRuntime;
  wsUrl: string;
}

/** Starts a child node and waits for its port. */
export async function startChildNode(
  which: NodeRuntime,
  env: {
    PREFIX: string;
    REDIS_URL?: string;
    HEARTBEAT?: string;
    PRESENCE_TTL?: string;
    WINDOW?: string;
    PRESENCE_KEYS?: string;
    ROUTING?: string;
    CLUSTER?: string;
  },
  fixture = "cluster_node.ts",
): Promise<ChildNode> {
  const [cmd, args] = runtimeCommand(which, `${root}tests/fixtures/${fixture}`);
  const child = new Child(cmd, args, { REDIS_URL, PORT: "0", ...env });
  try {
    const m = await child.line(/^listening (\d+) node (\w+)$/, `${which} node to listen`, 30_000);
    const port = Number(m[1]);
    return { child, port, node: m[2], runtime: which, wsUrl: `ws://127.0.0.1:${port}/` };
  } catch (err) {
    await child.kill();
    throw err;
  }
}

/** A free TCP port on the loopback between `from` and `to` (inclusive), tried in random order. */
export async function sparePort(from: number, to: number): Promise<number> {
  const ports = Array.from({ length: to - from + 1 }, (_, i) => from + i).sort(() => Math.random() - 0.5);
  for (const port of ports) {
    const server = net.createServer();
    const ok = await new Promise<boolean>((res) => {
      server.once("error", () => res(false));
      server.listen(port, "127.0.0.1", () => res(true));
    });
    if (!ok) continue;
    await new Promise<void>((res) => server.close(() => res()));
    return port;
  }
  throw new Error(`no free port between ${from} and ${to}`);
}

/** A private redis-server on a spare port, that a test may stop and start again, or freeze. */
export class RedisServer {
  readonly port: number;
  #child: Child | undefined;
  #paused = false;

  private constructor(port: number) {
    this.port = port;
  }

  /** Starts one on `port`, or on a free port. */
  static async start(port?: number): Promise<RedisServer> {
    const server = new RedisServer(port ?? await freePort());
    await server.restart();
    return server;
  }

  /** Freezes it (SIGSTOP): connections stay open, nothing is answered, as in a stall. */
  pause(): void {
    // process.kill, not ChildProcess.kill: on Deno the latter sends one signal per child only
    const pid = this.#child?.proc.pid;
    if (pid === undefined) return;
    process.kill(pid, "SIGSTOP");
    this.#paused = true;
  }

  /** Lets a frozen server go on (SIGCONT). */
  resume(): void {
    const pid = this.#child?.proc.pid;
    if (this.#paused && pid !== undefined) process.kill(pid, "SIGCONT");
    this.#paused = false;
  }

  /** Its URL. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it (again) on the same port and waits until it accepts connections. */
  async restart(): Promise<void> {
    const child = new Child("redis-server", [
      "--port",
      String(this.port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
    ], {});
    this.#child = child;
    try {
      await child.line(/Ready to accept connections/, "redis-server to start", 10_000);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Kills it (as a crash would) and waits for its exit. */
  async stop(): Promise<void> {
    this.resume();
    const child = this.#child;
    this.#child = undefined;
    await child?.kill("SIGKILL");
  }
}

/** Text of a received message (binary ones decoded). */
export function text(m: string | Uint8Array): string {
  return typeof m === "string" ? m : `bytes:${[...m].join(",")}`;
}
