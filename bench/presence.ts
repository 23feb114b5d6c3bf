// Presence through Redis: `npm run bench:presence` (Deno, then Bun), or `deno run -A
// bench/presence.ts` / `bun run bench/presence.ts`. Needs Redis at REDIS_URL.
//
// Two hubs in this process (A and B), each with its own Redis connections, `presence: { keys:
// ["name"] }` (interval 50 ms). Sessions are attached on A through `chorus-ws/adapter` with
// sockets that discard what they are sent (no network: what is measured is presence, not
// WebSocket I/O).
// 1. Join storm: STORM (1000) sessions join one room on A over about one second (in 10 waves);
//    prints the presence notices on the Redis channel (counted by a subscriber of its own),
//    notices per second, the `handlePresence` calls on B, and the time until B heard every join.
// 2. `members()`: BIG (10000) sessions in one room on A; once B lists them all, ROUNDS (20)
//    sequential `await room.members()` on B (every member from Redis) and on A (its own merged in):
//    p50 / p99 / max.

import process from "node:process";
import { createClient } from "redis";
import { Hub } from "../mod.ts";
import { attach, type HubSocket, type SocketEvents } from "../src/adapter.ts";
import { redisBroker } from "../src/brokers/redis.ts";
import { dropKeys } from "./_nodes.ts";

const env = process.env;
const STORM = Number(env.STORM ?? 1000);
const BIG = Number(env.BIG ?? 10_000);
const ROUNDS = Number(env.ROUNDS ?? 20);
const REDIS_URL = env.REDIS_URL ?? "redis://127.0.0.1:6379";
const runtime = "Bun" in globalThis ? "bun" : "deno";

type Keys = { name: string };

/** A socket that discards what it is sent and reports its close at once. */
function sink(): HubSocket & { events?: SocketEvents } {
  const socket: HubSocket & { events?: SocketEvents } = {
    bufferedAmount: 0,
    send() {},
    close(code = 1000, reason = "") {
      queueMicrotask(() => socket.events?.closed(code, reason));
    },
  };
  return socket;
}

function open(hub: Hub<Keys>, name: string): void {
  const socket = sink();
  socket.events = attach(hub, socket, {
    request: new Request("http://127.0.0.1/"),
    remoteAddr: "",
    keys: { name },
    protocol: "",
  });
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const ms = (x: number) => `${x.toFixed(1)} ms`;

async function cluster(prefix: string): Promise<[Hub<Keys>, Hub<Keys>]> {
  const make = async () => {
    const hub = new Hub<Keys>({
      broker: redisBroker({ url: REDIS_URL, prefix }),
      presence: { keys: ["name"] },
    });
    hub.handleBrokerError((err) => console.error("broker:", err.message));
    await hub.ready();
    return hub;
  };
  return [await make(), await make()];
}

async function storm(): Promise<void> {
  const prefix = `chorus-bench:presence:${crypto.randomUUID().slice(0, 8)}`;
  const [a, b] = await cluster(prefix);
  const sub = createClient({ url: REDIS_URL });
  await sub.connect();
  let notices = 0;
  await sub.subscribe(`${prefix}:broadcast`, () => notices++);
  let calls = 0;
  let heard = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => done = resolve);
  b.handlePresence((_room, { joins }) => {
    calls++;
    heard += joins.length;
    if (heard === STORM) done();
  });
  a.handleConnect((s) => s.join("storm"));
  const start = performance.now();
  for (let wave = 0; wave < 10; wave++) {
    for (let i = 0; i < STORM / 10; i++) open(a, `user-${wave}-${i}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await all;
  const took = performance.now() - start;
  await new Promise((r) => setTimeout(r, 100)); // notices still on their way to the counter
  console.log(
    `  join storm: ${STORM} joins in ${ms(took)} until B heard all; ${notices} notices on the channel ` +
      `(${(notices / (took / 1000)).toFixed(0)}/s), ${calls} handlePresence calls on B`,
  );
  await sub.close();
  await Promise.all([a.close(), b.close()]);
  await dropKeys(REDIS_URL, prefix);
}

async function members(): Promise<void> {
  const prefix = `chorus-bench:presence:${crypto.randomUUID().slice(0, 8)}`;
  const [a, b] = await cluster(prefix);
  a.handleConnect((s) => s.join("big"));
  for (let i = 0; i < BIG; i++) {
    open(a, `user-${i}`);
    if (i % 1000 === 999) await new Promise((r) => setTimeout(r, 0));
  }
  while ((await b.room("big").members()).length < BIG) await new Promise((r) => setTimeout(r, 50));
  for (const [name, hub] of [["B (all from Redis)", b], ["A (own merged in)", a]] as const) {
    const times: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const t = performance.now();
      const list = await hub.room("big").members();
      times.push(performance.now() - t);
      if (list.length !== BIG) throw new Error(`${name}: ${list.length} members, not ${BIG}`);
    }
    console.log(
      `  members() of ${BIG} on ${name}: p50 ${ms(pct(times, 0.5))}, p99 ${ms(pct(times, 0.99))}, ` +
        `max ${ms(Math.max(...times))}`,
    );
  }
  await Promise.all([a.close(), b.close()]);
  await dropKeys(REDIS_URL, prefix);
}

console.log(`presence (${runtime}), Redis at ${REDIS_URL}:`);
await storm();
await members();
process.exit(0);
