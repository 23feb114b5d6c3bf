// Hubs in child processes (tests/fixtures/cluster_node.ts), each on its own port, with clients
// on each: nodes of the runtime under test, and a mixed pair (a Deno node and a Bun node).
import assert from "node:assert/strict";
import {
  type ChildNode,
  cleanup,
  type ClusterNode,
  eventually,
  type NodeRuntime,
  startChildNode,
  startNode,
  text,
  uniquePrefix,
} from "./_cluster.ts";
import { Client, closeAll, runtime, test } from "./_helpers.ts";
import { RedisCluster } from "./_redis_cluster.ts";

async function startChildren(prefix: string, runtimes: NodeRuntime[], env = {}): Promise<ChildNode[]> {
  const settled = await Promise.allSettled(runtimes.map((r) => startChildNode(r, { PREFIX: prefix, ...env })));
  const nodes = settled.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
  const failed = settled.find((s) => s.status === "rejected");
  if (failed) {
    await Promise.all(nodes.map((n) => n.child.kill()));
    throw (failed as PromiseRejectedResult).reason;
  }
  return nodes;
}

/** Sends a command and returns the reply that matches (no broadcast may be in flight). */
async function ask(c: Client, cmd: string, reply: RegExp): Promise<RegExpMatchArray> {
  c.send(cmd);
  const m = text(await c.next()).match(reply);
  assert.ok(m, `reply to ${cmd}`);
  return m;
}

const count = (c: Client, room = ""): Promise<number> =>
  ask(c, room ? `count ${room}` : "count", /^count (?:\S+ )?(\d+)$/).then((m) => Number(m[1]));

/** Every cluster-wide operation across child nodes; the first node has two clients, the others one. */
async function exercise(nodes: ChildNode[]): Promise<void> {
  const clients: Client[] = [];
  try {
    for (const node of [nodes[0], ...nodes]) clients.push(await Client.open(node.wsUrl));
    const [a1, a2, ...rest] = clients;
    const all = clients;
    const label = nodes.map((n) => n.runtime).join("+");

    await eventually(() => count(rest[0]), (n) => n === all.length, `${label}: every session counted`, 10_000);

    a1.send("all hello ✓");
    for (const c of all) assert.equal(await c.next(), "hello ✓", `${label}: broadcast reaches every node`);

    a1.send("others not for a1");
    for (const c of [a2, ...rest]) assert.equal(await c.next(), "not for a1", `${label}: broadcastOthers`);

    const last = rest[rest.length - 1];
    last.send(new Uint8Array([1, 2, 250]));
    for (const c of all) assert.deepEqual(await c.next(), new Uint8Array([1, 2, 250]), `${label}: binary stays binary`);

    // room "blue": a2 on the first node, every client of the other nodes
    for (const c of [a2, ...rest]) await ask(c, "join blue", /^joined blue$/);
    await eventually(() => count(a1, "blue"), (n) => n === rest.length + 1, `${label}: room counted`, 10_000);
    a1.send("room blue to blue");
    for (const c of [a2, ...rest]) assert.equal(await c.next(), "to blue", `${label}: room broadcast`);
    rest[0].send("roomothers blue blue but the sender");
    for (const c of [a2, ...rest.slice(1)]) {
      assert.equal(await c.next(), "blue but the sender", `${label}: room-others`);
    }

    // node-local: broadcastFilter stays on its node
    a1.send("filter local only");
    assert.equal(await a1.next(), "local only");
    assert.equal(await a2.next(), "local only");
    last.send("all marker");
    for (const c of all) assert.equal(await c.next(), "marker", `${label}: nothing else in between`);
    for (const c of all) assert.equal(c.pending, 0, `${label}: no duplicate`);

    // a burst of 10,000 from one process reaches every client of every process once, in order
    const n = 10_000;
    rest[0].send(`burst ${n} z`);
    rest[0].send("all end"); // from the same node: after the burst everywhere
    for (const c of all) {
      let got = 0;
      for (let m = text(await c.next(10_000)); m !== "end"; m = text(await c.next(10_000))) {
        assert.equal(m, `z ${got}`, `${label}: burst in order, none lost or repeated`);
        got++;
      }
      assert.equal(got, n, `${label}: the whole burst before the end marker`);
    }

    // one node closes its hub: its sessions go, the other nodes live on and stop counting them
    const gone = nodes[nodes.length - 1];
    last.send("shutdown");
    assert.equal((await last.closed).code, 1001);
    assert.equal(await gone.child.exited, 0, `${gone.runtime} node exits cleanly:\n${gone.child.output.join("\n")}`);
    assert.equal(await count(a1), all.length - 1, `${label}: a closed node leaves the count at once`);
    a1.send("all still here");
    for (const c of all.slice(0, -1)) assert.equal(await c.next(), "still here");
  } finally {
    await closeAll(clients);
  }
}

test(`redis processes: three ${runtime} nodes, every cluster-wide operation`, async () => {
  const prefix = uniquePrefix("procs");
  const nodes = await startChildren(prefix, [runtime, runtime, runtime]);
  try {
    assert.equal(new Set(nodes.map((n) => n.port)).size, 3, "each node on its own port");
    await exercise(nodes);
  } finally {
    await Promise.all(nodes.map((n) => n.child.kill()));
    await cleanup(prefix);
  }
});

test("redis processes: a Deno node and a Bun node form one cluster", async () => {
  const prefix = uniquePrefix("mixed");
  const nodes = await startChildren(prefix, ["deno", "bun"]);
  try {
    await exercise(nodes);
  } finally {
    await Promise.all(nodes.map((n) => n.child.kill()));
    await cleanup(prefix);
  }
});

// on one Redis server, then on a Redis Cluster (where a room's counts live on the room's slot)
for (const on of ["", " on a Redis Cluster"]) {
  test(`redis processes${on}: a node killed without cleanup leaves count() within presenceTtl`, async () => {
    const prefix = uniquePrefix("expiry");
    const ttl = 1000;
    const cluster = on ? await RedisCluster.start() : undefined;
    const redis = cluster ? { CLUSTER: cluster.urls.join(",") } : {};
    const children = await startChildren(prefix, [runtime], { HEARTBEAT: "200", PRESENCE_TTL: String(ttl), ...redis })
      .catch(async (err) => {
        await cluster?.stop();
        throw err;
      });
    const [child] = children;
    const clients: Client[] = [];
    let local: ClusterNode | undefined;
    try {
      const here = local = await startNode(cluster ? { prefix, cluster: cluster.urls } : { prefix });
      clients.push(await Client.open(child.wsUrl), await Client.open(child.wsUrl), await Client.open(here.wsUrl()));
      await ask(clients[0], "join r", /^joined r$/);
      await eventually(() => here.hub.count(), (n) => n === 3, "three sessions counted");
      await eventually(() => here.hub.room("r").count(), (n) => n === 1, "the child's room counted");

      // outlives several heartbeats: the counts stay while the node is alive
      await new Promise((r) => setTimeout(r, ttl * 1.5));
      assert.equal(await here.hub.count(), 3, "a live node keeps its counts past presenceTtl");

      const killed = Date.now();
      await child.child.kill("SIGKILL");
      await eventually(() => here.hub.count(), (n) => n === 1, "the killed node to drop out", ttl + 2000, 20);
      const took = Date.now() - killed;
      assert.ok(took <= ttl + 500, `dropped out after ${took} ms (presenceTtl ${ttl})`);
      assert.equal(await here.hub.room("r").count(), 0);
    } finally {
      await closeAll(clients);
      await child.child.kill();
      await local?.close();
      if (cluster) await cluster.stop();
      else await cleanup(prefix);
    }
  });
}
