// Presence on Redis: a node in this process, a Deno child node and a Bun child node
// (tests/fixtures/cluster_node.ts with PRESENCE_KEYS): member lists across the three, join and
// leave events on every node, only the named keys, a SIGKILLed node's members leave within
// presenceTtl + one heartbeat, a join storm's notices counted on the channel, and a detached
// resumable session that stays a member.

import assert from "node:assert/strict";
import type { Member, PresenceEvent } from "../mod.ts";
import { redisBroker } from "../src/brokers/redis.ts";
import {
  type Child,
  type ChildNode,
  cleanup,
  type ClusterNode,
  rawRedis,
  REDIS_URL,
  startChildNode,
  startNode,
  text,
  uniquePrefix,
} from "./_cluster.ts";
import { FakeSocket } from "./_fake.ts";
import { Client, deadline, startServer, test } from "./_helpers.ts";
import { Proxy } from "./_proxy.ts";
import { RedisCluster } from "./_redis_cluster.ts";
import { V1Peer } from "./_v1.ts";

const HEARTBEAT = 200;
const TTL = 800;

/** A node in this process with presence on, recording its events. */
async function localNode(
  prefix: string,
  cluster?: RedisCluster,
): Promise<{ node: ClusterNode; events: [string, PresenceEvent][] }> {
  const redis = cluster ? { cluster: cluster.urls } : {};
  const node = await startNode({ prefix, heartbeatInterval: HEARTBEAT, presenceTtl: TTL, ...redis }, {
    presence: { keys: ["name"] },
  });
  const events: [string, PresenceEvent][] = [];
  // the fixture's commands that presence needs
  node.hub.handleMessage(async (s, msg) => {
    const [op, a, ...rest] = msg.split(" ");
    if (op === "set") s.set(a, rest.join(" "));
    else if (op === "join") s.join(a);
    else if (op === "leave") s.leave(a);
    else if (op === "members") return s.write(`members ${JSON.stringify(await node.hub.room(a).members())}`);
    s.write(op === "set" ? "set" : `${op}ed ${a}`);
  });
  node.hub.handlePresence((room, change) => {
    events.push([room, change]);
    node.signal.ping();
  });
  return { node, events };
}

async function ask(c: Client, cmd: string, reply: RegExp): Promise<RegExpMatchArray> {
  c.send(cmd);
  const m = text(await c.next()).match(reply);
  assert.ok(m, `reply to ${cmd}`);
  return m;
}

const names = (members: Member[]) => members.map((m) => `${m.keys.name}@${m.node}`).sort();

/** Reads a child's presence lines until `check` holds for the events so far. */
async function childEvents(child: Child, seen: PresenceEvent[], check: () => boolean, what: string, ms = 10_000) {
  const end = Date.now() + ms;
  while (!check()) {
    const m = await child.line(/^presence (\S+) (.*)$/, what, Math.max(1, end - Date.now()));
    seen.push(JSON.parse(m[2]));
  }
}

// on one Redis server, then on a Redis Cluster (a room's members on the room's slot, the sweep in steps)
for (const on of ["", " on a Redis Cluster"]) {
  test(`redis presence${on}: lists across 3 nodes (this process, Deno, Bun), events on every node, only the named keys, a SIGKILLed node's members leave within presenceTtl + one heartbeat`, async () => {
    const prefix = uniquePrefix("presence");
    const cluster = on ? await RedisCluster.start() : undefined;
    const env = {
      PREFIX: prefix,
      HEARTBEAT: String(HEARTBEAT),
      PRESENCE_TTL: String(TTL),
      PRESENCE_KEYS: "name",
      ...(cluster ? { CLUSTER: cluster.urls.join(",") } : {}),
    };
    const children: ChildNode[] = [];
    const clients: Client[] = [];
    let here: ClusterNode | undefined;
    try {
      const local = await localNode(prefix, cluster);
      here = local.node;
      const events = local.events;
      children.push(await startChildNode("deno", env), await startChildNode("bun", env));
      const [deno, bun] = children;
      const urls = [here.wsUrl(), deno.wsUrl, bun.wsUrl];
      const who = ["here", "deno", "bun"];
      for (const [i, url] of urls.entries()) {
        const c = await Client.open(url);
        clients.push(c);
        await ask(c, `set name ${who[i]}`, /^set$/);
        await ask(c, "set secret s3cret", /^set$/);
        await ask(c, "join lobby", /^joined lobby$/);
      }
      const nodeIds = [here.hub.node, deno.node, bun.node];
      const expected = who.map((w, i) => `${w}@${nodeIds[i]}`).sort();

      // join events everywhere, this node's own too
      const joinsHere = () => events.flatMap(([, e]) => e.joins.map((m) => `${m.keys.name}@${m.node}`));
      await here.signal.until(() => joinsHere().length === 3, "3 joins here", 10_000);
      assert.deepEqual(joinsHere().sort(), expected);
      for (const child of children) {
        const seen: PresenceEvent[] = [];
        const joins = () => seen.flatMap((e) => e.joins.map((m) => `${m.keys.name}@${m.node}`));
        await childEvents(child.child, seen, () => joins().length >= 3, `3 joins on ${child.runtime}`);
        assert.deepEqual(joins().sort(), expected, `${child.runtime} hears every join`);
      }

      // the same list from every node, with only the named keys
      assert.deepEqual(names(await here.hub.room("lobby").members()), expected);
      for (const c of clients) {
        const m = await ask(c, "members lobby", /^members (.*)$/);
        const members: Member[] = JSON.parse(m[1]);
        assert.deepEqual(names(members), expected);
        for (const member of members) assert.deepEqual(Object.keys(member.keys), ["name"], "secret stays on its node");
      }

      // a leave reaches every node
      await ask(clients[1], "leave lobby", /^leaveed lobby$/);
      const leavesHere = () => events.flatMap(([, e]) => e.leaves.map((m) => `${m.keys.name}@${m.node}`));
      await here.signal.until(() => leavesHere().length === 1, "deno's leave here", 10_000);
      assert.deepEqual(leavesHere(), [`deno@${deno.node}`]);
      const bunSeen: PresenceEvent[] = [];
      await childEvents(bun.child, bunSeen, () => bunSeen.some((e) => e.leaves.length > 0), "the leave on bun");
      await ask(clients[1], "join lobby", /^joined lobby$/);
      await here.signal.until(() => joinsHere().length === 4, "deno back", 10_000);

      // SIGKILL the Bun node: its member leaves within presenceTtl + one heartbeat (+ slack)
      const killed = Date.now();
      await bun.child.kill("SIGKILL");
      await here.signal.until(() => leavesHere().length === 2, "the dead node's member to leave", 10_000);
      const took = Date.now() - killed;
      assert.equal(leavesHere()[1], `bun@${bun.node}`);
      assert.ok(took <= TTL + HEARTBEAT + 500, `left after ${took} ms (bound ${TTL + HEARTBEAT} ms)`);
      assert.deepEqual(names(await here.hub.room("lobby").members()), expected.filter((n) => !n.startsWith("bun@")));
      const denoSeen: PresenceEvent[] = [];
      await childEvents(
        deno.child,
        denoSeen,
        () => denoSeen.some((e) => e.leaves.some((m) => m.node === bun.node)),
        "the dead node's leave on deno",
      );
    } finally {
      for (const c of clients) await c.close().catch(() => {});
      await Promise.all(children.map((c) => c.child.kill()));
      await here?.close();
      if (cluster) await cluster.stop();
      else await cleanup(prefix);
    }
  });
}

test("redis presence: a join storm (1,000 joins within a second) costs a bounded number of notices on the channel", async () => {
  const prefix = uniquePrefix("presence-storm");
  const sub = (await rawRedis()).duplicate();
  await sub.connect();
  let notices = 0;
  await sub.subscribe(`${prefix}:broadcast`, (msg: Buffer) => {
    if (msg[0] === 0xc7 && msg[1] === 2 && msg[2] === 0x11) notices++;
  }, true);
  const a = await localNode(prefix);
  const b = await localNode(prefix);
  try {
    a.node.hub.handleConnect((s) => s.join("lobby"));
    const start = Date.now();
    for (let i = 0; i < 1000; i++) {
      new FakeSocket({ name: `u${i}` }).attach(a.node.hub, undefined, { name: `u${i}` });
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20));
    }
    const joins = () => b.events.reduce((n, [, e]) => n + e.joins.length, 0);
    await b.node.signal.until(() => joins() === 1000, "1,000 joins on the other node", 10_000);
    const took = Date.now() - start;
    assert.ok(notices <= Math.ceil(took / 50) + 2, `${notices} notices in ${took} ms`);
    assert.ok(b.events.length <= Math.ceil(took / 50) + 2, `${b.events.length} events in ${took} ms`);
    assert.equal((await b.node.hub.room("lobby").members()).length, 1000);
    assert.equal((await a.node.hub.room("lobby").members()).length, 1000);
  } finally {
    await a.node.close();
    await b.node.close();
    await sub.close();
    await cleanup(prefix);
  }
});

test("redis presence: a detached resumable session stays a member on every node, and leaves when its window passed", async () => {
  const prefix = uniquePrefix("presence-detached");
  const broker = { url: REDIS_URL, prefix, heartbeatInterval: HEARTBEAT, presenceTtl: TTL };
  const t = await startServer({ broker: redisBroker(broker), resume: { window: 1500 }, presence: { keys: ["name"] } });
  const other = await localNode(prefix);
  t.hub.handleConnect((s) => {
    s.set("name", "dee");
    s.join("lobby");
  });
  t.hub.handleClose(() => t.signal.ping());
  await t.hub.ready();
  const proxy = await Proxy.start(t.port);
  const { peer } = await V1Peer.open(`ws://127.0.0.1:${proxy.port}/`);
  try {
    const events = other.events;
    await other.node.signal.until(() => events.length === 1, "the join", 5000);
    const s = t.hub.sessions()[0];
    proxy.cut();
    await t.signal.until(() => !s.connected, "detached");
    assert.deepEqual(names(await other.node.hub.room("lobby").members()), [`dee@${t.hub.node}`]);
    assert.deepEqual(names(await t.hub.room("lobby").members()), [`dee@${t.hub.node}`]);
    await other.node.signal.until(() => events.some(([, e]) => e.leaves.length === 1), "the leave", 5000);
    assert.deepEqual(await other.node.hub.room("lobby").members(), []);
  } finally {
    await deadline(peer.close().catch(() => {}), "peer close").catch(() => {});
    await proxy.close();
    await t.close();
    await other.node.close();
    await cleanup(prefix);
  }
});
