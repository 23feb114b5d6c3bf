// Defect 10 of issue 16: what waits for a stalled Redis stays bounded however long the stall. A
// broker on the test's own node-redis client, which counts the commands it sent and Redis has
// not answered yet, against a private redis-server on a spare port, frozen with SIGSTOP.
import assert from "node:assert/strict";
import { createClient } from "redis";
import type { RedisClientLike } from "../src/brokers/redis.ts";
import { type ClusterNode, RedisServer, sparePort, startNode, uniquePrefix } from "./_cluster.ts";
import { type Client, closeAll, deadline, deferred, openClients, test } from "./_helpers.ts";

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
