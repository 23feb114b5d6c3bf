// Resume credentials across nodes, as an attacker and an unlucky network would present them:
// empty and malformed ones, one presented to two nodes at once, a used one replayed, a welcome
// lost on the way; and the client's messages after a resume on another node, each taken once.
// Two in-process hubs on the shared Redis (a key prefix of their own), each behind a TCP proxy.

import assert from "node:assert/strict";
import type { Session } from "../mod.ts";
import { MemoryNetwork } from "../src/brokers/memory.ts";
import { encodeReceived } from "../src/protocol.ts";
import { cleanup, type ClusterNode, eventually, rawRedis, startNode, uniquePrefix } from "./_cluster.ts";
import { deadline, test } from "./_helpers.ts";
import { Proxy } from "./_proxy.ts";
import { V1Peer } from "./_v1.ts";

interface Pair {
  a: ClusterNode;
  b: ClusterNode;
  /** A proxy in front of each node (for cuts). */
  pa: Proxy;
  pb: Proxy;
  url: (node: "a" | "b", direct?: boolean) => string;
  /** What each node's message handler took, as `node:text`, in order. */
  taken: string[];
  prefix: string;
  close(): Promise<void>;
}

async function pair(name: string): Promise<Pair> {
  const prefix = uniquePrefix(name);
  const opts = { resume: { window: 30_000 }, pingInterval: 0, presence: { keys: [], interval: 20 } };
  const a = await startNode({ prefix }, opts);
  const b = await startNode({ prefix }, opts);
  const pa = await Proxy.start(a.port);
  const pb = await Proxy.start(b.port);
  const taken: string[] = [];
  for (const [tag, node] of [["a", a], ["b", b]] as const) {
    node.hub.handleClose(() => node.signal.ping());
    node.hub.handleConnect((s) => {
      s.join("lobby");
      node.signal.ping();
    });
    node.hub.handleMessage((_s, msg) => {
      taken.push(`${tag}:${msg}`);
      node.signal.ping();
    });
  }
  return {
    a,
    b,
    pa,
    pb,
    taken,
    prefix,
    url: (node, direct = false) =>
      `ws://127.0.0.1:${direct ? (node === "a" ? a.port : b.port) : (node === "a" ? pa.port : pb.port)}/`,
    async close() {
      await pa.close();
      await pb.close();
      await a.close();
      await b.close();
      await cleanup(prefix);
    },
  };
}

/** Opens a session on node a (through its proxy), then cuts it: detached, its credential returned. */
async function detached(p: Pair): Promise<{ token: string; id: string }> {
  const { peer, welcome } = await V1Peer.open(p.url("a"));
  await p.a.signal.until(() => p.a.hub.size === 1, "a session on a");
  const s = p.a.hub.sessions()[0] as Session;
  peer.ws.send(encodeReceived([])); // confirms the welcome
  await waitSaved(p.prefix, welcome.token);
  p.pa.cut();
  await p.a.signal.until(() => !s.connected, "detached");
  return { token: welcome.token, id: s.id };
}

/** Waits until the broker indexes `token` (the state with that credential was saved). */
async function waitSaved(prefix: string, token: string): Promise<void> {
  const redis = await rawRedis();
  try {
    for (let i = 0; i < 200; i++) {
      if (await redis.exists(`${prefix}:tk:${token}`)) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`the credential was not saved in the broker`);
  } finally {
    await redis.close();
  }
}

test("credentials: an empty, short or malformed credential gets a fresh session, never someone else's; an empty one is never indexed", async () => {
  const p = await pair("cred-empty");
  try {
    const { id } = await detached(p);
    for (const token of ["", "x", "a".repeat(15), "!".repeat(22), "é".repeat(22)]) {
      for (const node of ["a", "b"] as const) {
        const { peer, welcome } = await V1Peer.resume(p.url(node, true), token, {});
        assert.equal(welcome.resumed, false, `${JSON.stringify(token)} on ${node}`);
        const hub = node === "a" ? p.a.hub : p.b.hub;
        await (node === "a" ? p.a : p.b).signal.until(
          () => hub.sessions().some((s) => s.connected),
          "the fresh session",
        );
        assert.ok(hub.sessions().filter((s) => s.connected).every((s) => s.id !== id), "not the victim's session");
        await peer.close();
      }
    }
    const redis = await rawRedis();
    try {
      assert.equal(await redis.exists(`${p.prefix}:tk:`), 0, "no index for an empty credential");
    } finally {
      await redis.close();
    }
    // the brokers themselves: an empty credential names nothing
    const network = new MemoryNetwork();
    const broker = network.broker();
    const link = {
      node: "n1",
      deliver() {},
      report() {},
      localCount: () => 0,
      rooms: () => [],
      released() {},
      presence() {},
    };
    await broker.start(link);
    const state = { id: "s1", keys: "{}", from: {}, rooms: [], received: 0, token: "" };
    await broker.streams!.saveSession(state, 10_000);
    assert.equal(await broker.streams!.claimSession(""), undefined);
    await broker.stop();
  } finally {
    await p.close();
  }
});

test("credentials: one credential presented to two nodes at once resumes once; the other is told to try later or gets a fresh session", async () => {
  const p = await pair("cred-twice");
  try {
    const { token, id } = await detached(p);
    const one = new V1Peer(p.url("a", true), { t: "resume", token, pos: {} });
    const two = new V1Peer(p.url("b", true), { t: "resume", token, pos: {} });
    const outcome = (peer: V1Peer) =>
      Promise.race([
        peer.welcome.then((w) => (w.resumed ? "resumed" : "fresh")),
        peer.closed.then((c) => `closed ${c.code}`),
      ]);
    const got = await deadline(Promise.all([outcome(one), outcome(two)]), "both answers");
    assert.equal(got.filter((g) => g === "resumed").length, 1, `exactly one resumes: ${got}`);
    for (const g of got) assert.ok(["resumed", "fresh", "closed 1013"].includes(g), g);
    const holders = [p.a.hub, p.b.hub].filter((hub) => hub.sessions().some((s) => s.id === id && s.connected));
    assert.equal(holders.length, 1, "one node holds the session");
    await one.close();
    await two.close();
  } finally {
    await p.close();
  }
});

test("credentials: a used credential replayed after the client confirmed its welcome gets a fresh session; the live one is untouched", async () => {
  const p = await pair("cred-used");
  try {
    const { token, id } = await detached(p);
    const { peer, welcome } = await V1Peer.resume(p.url("a"), token, {});
    assert.equal(welcome.resumed, true);
    peer.ws.send(encodeReceived([])); // confirms: the presented credential is retired
    await waitSaved(p.prefix, welcome.token);
    for (const node of ["a", "b"] as const) {
      const replay = await V1Peer.resume(p.url(node, true), token, {});
      assert.equal(replay.welcome.resumed, false, `replayed on ${node}`);
      await replay.peer.close();
    }
    const s = p.a.hub.sessions().find((s) => s.id === id);
    assert.ok(s?.connected, "the real client keeps its session");
    p.a.hub.sessions().find((s) => s.id === id)!.write("still here");
    await peer.until(() => peer.texts.includes("still here"), "the live session's message");
    await peer.close();
  } finally {
    await p.close();
  }
});

test("credentials: a connection displaced by its credential on another connection is closed with 1001, which the client reconnects after", async () => {
  const p = await pair("cred-displaced");
  try {
    const first = await V1Peer.open(p.url("a", true));
    await p.a.signal.until(() => p.a.hub.size === 1, "a session");
    await waitSaved(p.prefix, first.welcome.token);
    const second = await V1Peer.resume(p.url("b", true), first.welcome.token, {});
    assert.equal(second.welcome.resumed, true);
    const closed = await deadline(first.peer.closed, "the displaced connection's close");
    assert.equal(closed.code, 1001);
    await second.peer.close();
  } finally {
    await p.close();
  }
});

test("credentials: a welcome lost after a claim on another node: the client tries again with the same credential and resumes", async () => {
  const p = await pair("cred-lost-welcome");
  try {
    const { token, id } = await detached(p);
    const lost = await V1Peer.resume(p.url("b"), token, {});
    assert.equal(lost.welcome.resumed, true);
    p.pb.cut(); // the client never confirmed: for it, the welcome was lost
    await p.b.signal.until(() => p.b.hub.sessions().some((s) => s.id === id && !s.connected), "detached on b");
    await waitSaved(p.prefix, token); // saved with the credential the client surely has
    const again = await V1Peer.resume(p.url("a", true), token, {});
    assert.equal(again.welcome.resumed, true, "the same credential resumes");
    assert.ok(p.a.hub.sessions().some((s) => s.id === id && s.connected));
    await again.peer.close();
  } finally {
    await p.close();
  }
});

test("credentials: the client's messages a node took before the client left are not taken again after a resume on another node", async () => {
  const p = await pair("cred-once");
  try {
    const { peer, welcome } = await V1Peer.open(p.url("a"));
    await p.a.signal.until(() => p.a.hub.size === 1, "a session");
    for (let i = 1; i <= 10; i++) peer.send(`m${i}`);
    await p.a.signal.until(() => p.taken.length === 10, "a takes 10");
    p.pa.cut(); // before the hub acknowledged them: the client sends them again
    await p.a.signal.until(() => p.a.hub.sessions().every((s) => !s.connected), "detached");
    const again = await V1Peer.resume(p.url("b"), welcome.token, {});
    assert.equal(again.welcome.resumed, true);
    assert.equal(again.welcome.recv, 10, "b knows what a took");
    for (let i = 1; i <= 12; i++) again.peer.send(`m${i}`, i);
    await p.b.signal.until(() => p.taken.length === 12, "b takes the two new ones");
    assert.deepEqual(p.taken, [...Array.from({ length: 10 }, (_, i) => `a:m${i + 1}`), "b:m11", "b:m12"]);
    await again.peer.close();
  } finally {
    await p.close();
  }
});

test("credentials: a resume that cannot be completed on another node (a forged position) leaves no member behind on any node", async () => {
  const p = await pair("cred-ghost");
  try {
    const { token, id } = await detached(p);
    const lobby = async (node: ClusterNode) => (await node.hub.room("lobby").members()).map((m) => m.id);
    await eventually(() => lobby(p.b), (ids) => ids.includes(id), "b lists the detached member");
    // an epoch no stream ever had: the other node cannot read what was missed, so not resumed
    const { peer, welcome } = await V1Peer.resume(p.url("b", true), token, { h: ["bogus-epoch", 5] });
    assert.equal(welcome.resumed, false);
    await p.b.signal.until(() => p.b.disconnects.includes(id), "the session ended");
    const fresh = p.b.hub.sessions().find((s) => s.id !== id)!.id;
    await eventually(() => lobby(p.a), (ids) => !ids.includes(id) && ids.includes(fresh), "a: no ghost");
    await eventually(() => lobby(p.b), (ids) => !ids.includes(id) && ids.includes(fresh), "b: no ghost");
    await peer.close();
  } finally {
    await p.close();
  }
});
