// Presence after Redis lost its members: restarted empty, or frozen while a join was written.
// Each node writes its own members again, so `room.members()` converges to the live sessions on
// every node. A redis-server of the test's own.

import { eventually, RedisServer, startNode, uniquePrefix } from "./_cluster.ts";
import { closeAll, openClients, test } from "./_helpers.ts";

const ids = async (hub: { room(name: string): { members(): Promise<{ id: string }[]> } }) =>
  (await hub.room("lobby").members()).map((m) => m.id).sort().join(",");

test("redis presence: after Redis restarts empty, and after a join written while it was frozen, every node lists every live member", async () => {
  const redis = await RedisServer.start();
  const prefix = uniquePrefix("presence-restart");
  const options = { prefix, url: redis.url, heartbeatInterval: 200, presenceTtl: 1000, commandTimeout: 300 };
  const hubOptions = { presence: { keys: [], interval: 20 } };
  const a = await startNode(options, hubOptions);
  const b = await startNode(options, hubOptions);
  const clients = [...await openClients(a.wsUrl(), 2), ...await openClients(b.wsUrl(), 1)];
  try {
    await a.signal.until(() => a.hub.size === 2, "2 sessions on a");
    await b.signal.until(() => b.hub.size === 1, "1 session on b");
    for (const s of [...a.hub.sessions(), ...b.hub.sessions()]) s.join("lobby");
    const all = [...a.hub.sessions(), ...b.hub.sessions()].map((s) => s.id).sort().join(",");
    await eventually(() => ids(b.hub), (x) => x === all, "b lists everyone");

    await redis.stop();
    await a.signal.until(() => a.brokerErrors.length > 0, "a to report the lost connection");
    await redis.restart(); // empty: no member is recorded any more
    await eventually(() => ids(b.hub).catch(() => ""), (x) => x === all, "b lists a's members again", 10_000);
    await eventually(() => ids(a.hub).catch(() => ""), (x) => x === all, "a lists b's member again", 10_000);

    // frozen: a join on b is not written; once Redis answers, it is
    redis.pause();
    const [late] = await openClients(b.wsUrl(), 1);
    clients.push(late);
    await b.signal.until(() => b.hub.size === 2, "the late session");
    const newcomer = b.hub.sessions().find((s) => !s.rooms.has("lobby"))!;
    newcomer.join("lobby");
    await b.signal.until(
      () => b.brokerErrors.some((e) => /Presence/.test(e.message)),
      "b to report the failed write",
      10_000,
    );
    redis.resume();
    const now = [...all.split(","), newcomer.id].sort().join(",");
    await eventually(() => ids(a.hub).catch(() => ""), (x) => x === now, "a lists the late member", 10_000);
  } finally {
    await closeAll(clients);
    await Promise.all([a.close(), b.close()]);
    await redis.stop();
  }
});
