// Defect 10 of issue 16: what waits for a stalled Redis stays bounded however long the stall. A
// broker on the test's own node-redis client, which counts the commands it sent and Redis has
// not answered yet, against a private redis-server on a spare port, frozen with SIGSTOP.
import assert from "node:assert/strict";
import { createClient } from "redis";
import { redisBroker, type RedisClientLike } from "../src/brokers/redis.ts";
import { type ClusterNode, rawRedis, RedisServer, sparePort, startNode, uniquePrefix } from "./_cluster.ts";
import { type Client, closeAll, deadline, deferred, openClients, test } from "./_helpers.ts";
import { fakeLink, state } from "./_streams.ts";

/** A node-redis client that counts its commands sent and not answered yet (its subscriber is not counted). */
function countingClient(url: string) {
  const client = createClient({ url });
  client.on("error", () => {});
  const counts = { waiting: 0, most: 0, bytes: 0, mostBytes: 0, sent: 0 };
  let idle = deferred();
  const track = <T>(promise: Promise<T>, size: number): Promise<T> => {
    counts.sent++;
    counts.waiting++;
    counts.bytes += size;
    counts.most = Math.max(counts.most, counts.waiting);
    counts.mostBytes = Math.max(counts.mostBytes, counts.bytes);
    const settled = () => {
      counts.waiting--;
      counts.bytes -= size;
      if (counts.waiting === 0) idle.resolve();
    };
    promise.then(settled, settled);
    return promise;
  };
  const size = (args: ReadonlyArray<string | Uint8Array>) =>
    args.reduce((n, a) => n + (typeof a === "string" ? a.length : a.byteLength), 0);
  const like = client as unknown as RedisClientLike;
  const sendCommand = like.sendCommand.bind(like);
  like.sendCommand = (args, options) => track(sendCommand(args, options), size(args));
  const publish = like.publish.bind(like);
  like.publish = (channel, message) => track(publish(channel, message), channel.length + message.byteLength);
  return {
    client: like,
    counts,
    /** Resolves once no command waits for an answer. */
    idle(): Promise<void> {
      if (counts.waiting === 0) return Promise.resolve();
      idle = deferred();
      return idle.promise;
    },
    /** Starts counting the most waiting afresh. */
    reset(): void {
      counts.most = counts.waiting;
      counts.mostBytes = counts.bytes;
      counts.sent = 0;
    },
  };
}

const ROOMS = 3000;
const INTERVAL = 50;
const BEATS = 40;

test(`redis stall: ${ROOMS} rooms, a ${INTERVAL} ms heartbeat, a stall of ${BEATS} heartbeats: a handful of commands wait, not one batch per beat`, async () => {
  const redis = await RedisServer.start(await sparePort(16400, 16499));
  const counting = countingClient(redis.url);
  let node: ClusterNode | undefined;
  const clients: Client[] = [];
  try {
    node = await startNode({
      client: counting.client,
      prefix: uniquePrefix("stall-bounded"),
      heartbeatInterval: INTERVAL,
      presenceTtl: 60_000,
      commandTimeout: 200,
    }, { resume: {} });
    node.hub.handleMessage((s) => {
      for (let i = 0; i < ROOMS; i++) s.join(`room-${i}`);
      s.write("joined");
    });
    const [c] = await openClients(node.wsUrl(), 1);
    clients.push(c);
    c.send("join");
    assert.equal(await c.next(), "joined");
    await deadline(counting.idle(), "the joins' count writes to be answered");

    redis.pause();
    counting.reset();
    // the stall: Redis answers nothing for BEATS heartbeat intervals
    await new Promise((resolve) => setTimeout(resolve, BEATS * INTERVAL));
    const { most, mostBytes, sent } = counting.counts;
    assert.ok(sent > 0, "the heartbeat went on during the stall");
    // one count write (every room's count), one session refresh, one presence beat: never one
    // batch per beat (the code before the fix had 117 to 120 here, 1.1 MB of arguments)
    assert.ok(
      most <= 3,
      `at most 3 commands wait for the frozen Redis after ${BEATS} heartbeats, not ${most} ` +
        `(${mostBytes} bytes of arguments; ${sent} sent during the stall)`,
    );

    redis.resume();
    await deadline(counting.idle(), "every waiting command to be answered once Redis is back", 10_000);
    assert.equal(await node.hub.room("room-0").count(), 1, "counts work again");
    assert.ok(node.brokerErrors.length >= 1, "the stall was reported");
  } finally {
    await closeAll(clients);
    redis.resume();
    await node?.close();
    await counting.client.close().catch(() => {});
    await redis.stop();
  }
});

const SESSIONS = 20;
const ROUNDS = 10;

test(`redis stall: saves of ${SESSIONS} sessions, counts and member lists asked ${ROUNDS} times during a stall wait as one each; the latest states are kept`, async () => {
  const redis = await RedisServer.start(await sparePort(16400, 16499));
  const counting = countingClient(redis.url);
  const prefix = uniquePrefix("stall-saves");
  const options = {
    client: counting.client,
    prefix,
    commandTimeout: 100,
    heartbeatInterval: 60_000,
    presenceTtl: 120_000,
  };
  const broker = redisBroker(options);
  try {
    await broker.start(fakeLink("n1"));
    await deadline(counting.idle(), "the first heartbeat to be answered");
    const streams = broker.streams!;

    redis.pause();
    counting.reset();
    for (let round = 0; round < ROUNDS; round++) {
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < SESSIONS; i++) {
        calls.push(streams.saveSession(state(`s${i}`, `tok-${i}-${round}`, { received: round }), 60_000));
      }
      calls.push(broker.count(), broker.count("blue"), broker.presence!.list("blue"));
      // each call settles within commandTimeout, its command left waiting for Redis
      for (const result of await deadline(Promise.allSettled(calls), `round ${round} to settle`, 3000)) {
        assert.equal(result.status, "rejected");
        assert.match(String((result as PromiseRejectedResult).reason), /Redis did not answer/);
      }
    }
    const { most, sent } = counting.counts;
    assert.ok(
      most <= SESSIONS + 3,
      `one save per session, one read of each kind wait: at most ${SESSIONS + 3}, not ${most} (${sent} sent)`,
    );

    redis.resume();
    await deadline(counting.idle(), "the waiting saves to be sent and answered once Redis is back", 10_000);
    const raw = await rawRedis(redis.url);
    try {
      for (let i = 0; i < SESSIONS; i++) {
        const saved = await raw.hGetAll(`${prefix}:ss:s${i}`);
        assert.equal(saved.token, `tok-${i}-${ROUNDS - 1}`, `s${i}: its latest state`);
        assert.equal(saved.received, String(ROUNDS - 1));
      }
    } finally {
      await raw.close();
    }
    assert.deepEqual(
      await streams.claimSession(`tok-3-${ROUNDS - 1}`),
      state("s3", `tok-3-${ROUNDS - 1}`, { received: ROUNDS - 1 }),
    );
  } finally {
    redis.resume();
    await broker.stop();
    await counting.client.close().catch(() => {});
    await redis.stop();
  }
});
