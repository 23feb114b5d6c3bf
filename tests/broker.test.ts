// The broker contract without Redis: the wire format, the in-memory broker, counts without a broker.
import assert from "node:assert/strict";
import { type Broker, type BrokerMessage, BrokerMessageError, Hub } from "../mod.ts";
import { MemoryNetwork } from "../src/brokers/memory.ts";
import {
  decodeMessage,
  decodeReleased,
  encodeHead,
  encodeMessage,
  encodeReleased,
  encodeReleasedHead,
  isFromNode,
} from "../src/brokers/wire.ts";
import { fakeLink, state, until } from "./_streams.ts";
import { type Client, closeAll, deferred, openClients, startServer, test, type TestServer, utf8 } from "./_helpers.ts";

test("wire: every kind, text and binary round-trip; text stays text, bytes stay bytes", () => {
  const every = new Uint8Array(256).map((_, i) => i);
  const cases: BrokerMessage[] = [
    { node: "n1", kind: "all", payload: "héllo ✓ 🎉" },
    { node: "n1", kind: "all", payload: "" },
    { node: "n1", kind: "others", payload: new Uint8Array(0) },
    { node: "node-ü", kind: "room", room: "blue", payload: every },
    { node: "x".repeat(255), kind: "room-others", room: "r".repeat(300), payload: utf8("{}") },
    { node: "n", kind: "room", room: "é".repeat(10_000), payload: "t" },
  ];
  for (const msg of cases) {
    const bytes = encodeMessage(msg);
    assert.ok(isFromNode(bytes, utf8(msg.node)));
    assert.ok(!isFromNode(bytes, utf8(msg.node + "x")) && !isFromNode(bytes, utf8("m")));
    assert.ok(!isFromNode(Uint8Array.of(0xc7, 3, ...bytes.subarray(2)), utf8(msg.node)), "another version");
    assert.equal(bytes[1], 1, "without except and position: version 1");
    const back = decodeMessage(bytes);
    assert.deepEqual(back, msg);
    assert.equal(typeof back.payload, typeof msg.payload);
  }
  assert.equal(encodeMessage({ node: "n1", kind: "all", payload: "hi" }).length, 8, "6 bytes of header");
});

test("wire v2: except and position round-trip; a positioned message is no echo to drop", () => {
  const position = { key: "r:blue ✓", epoch: "AbCdEfGh", offset: 1, seq: 2 ** 53 - 1, time: 1_760_000_000_123 };
  const cases: BrokerMessage[] = [
    { node: "n1", kind: "others", payload: "x", except: "s-1" },
    { node: "n1", kind: "room-others", room: "blue ✓", payload: new Uint8Array([0, 255]), except: "s-1", position },
    { node: "n1", kind: "all", payload: "", position: { ...position, key: "h", offset: 300, epoch: "" } },
    {
      node: "n1",
      kind: "room",
      room: "r",
      payload: "é",
      position: { ...position, key: "", offset: 0, seq: 0, time: 0 },
    },
  ];
  for (const msg of cases) {
    const bytes = encodeMessage(msg);
    assert.equal(bytes[1], 2, "version 2");
    assert.equal(isFromNode(bytes, utf8("n1")), msg.position === undefined, "only an unpositioned message is an echo");
    const back = decodeMessage(bytes);
    assert.deepEqual(back, msg);
    assert.equal(typeof back.payload, typeof msg.payload);
    assert.equal(decodeReleased(bytes), undefined);
  }
  const plain = encodeMessage({ node: "n1", kind: "all", payload: "hi" });
  const positioned = encodeMessage({ node: "n1", kind: "all", payload: "hi", position: { ...position, key: "h" } });
  assert.ok(
    positioned.length - plain.length <= 3 + 9 + 1 + 8 + 7,
    `compact: ${positioned.length - plain.length} bytes more`,
  );
  // the head a Redis script completes: head + epoch + varints + payload
  const msg: BrokerMessage = {
    node: "n1",
    kind: "room",
    room: "r",
    payload: "p",
    position: { ...position, key: "r:r" },
  };
  const bytes = encodeMessage(msg);
  const head = encodeHead(msg, "r:r");
  assert.deepEqual(bytes.subarray(0, head.length), head);
  assert.throws(() => encodeMessage({ ...msg, position: { ...position, offset: -1 } }), RangeError);
  assert.throws(() => encodeMessage({ ...msg, position: { ...position, epoch: "e".repeat(256) } }), RangeError);
  assert.throws(() => encodeMessage({ ...msg, position: { ...position, seq: 1.5 } }), RangeError);
});

test("wire v2: a released notice round-trips and is no broadcast", () => {
  const bytes = encodeReleased("node-b", "node-a ✓", "session-1");
  assert.deepEqual(decodeReleased(bytes), { node: "node-b", from: "node-a ✓", session: "session-1" });
  assert.deepEqual(bytes.subarray(0, encodeReleasedHead("node-b").length), encodeReleasedHead("node-b"));
  assert.ok(!isFromNode(bytes, utf8("node-b")));
  assert.throws(
    () => decodeMessage(bytes),
    (err: Error) => err instanceof BrokerMessageError && /notice/.test(err.message),
  );
  assert.equal(decodeReleased(encodeMessage({ node: "n", kind: "all", payload: "x" })), undefined);
  assert.throws(
    () => decodeReleased(Uint8Array.of(0xc7, 2, 0x10, 1, 0x41, 9, 0x41)),
    (err: Error) => err instanceof BrokerMessageError,
  );
});

test("wire: malformed, foreign or other-version bytes are refused with BrokerMessageError", () => {
  const good = encodeMessage({ node: "n1", kind: "room", room: "blue", payload: "hi" });
  const bad: [Uint8Array, RegExp][] = [
    [new Uint8Array(0), /wire format/],
    [utf8("hello, a foreign publisher"), /wire format/],
    [Uint8Array.of(0xc7, 3, ...good.subarray(2)), /wire version 3/],
    [Uint8Array.of(0xc7, 1, 0x40, ...good.subarray(3)), /unknown flags/],
    [Uint8Array.of(0xc7, 1, 0x04, ...good.subarray(3)), /unknown flags/],
    [Uint8Array.of(0xc7, 2, 0x40, ...good.subarray(3)), /unknown flags/],
    [Uint8Array.of(0xc7, 2, 0x04, 1, 0x41, 5, 0x41), /bad session id length/],
    [Uint8Array.of(0xc7, 2, 0x08, 1, 0x41, 1, 0x68, 9, 0x41), /bad epoch length/],
    [Uint8Array.of(0xc7, 2, 0x08, 1, 0x41, 1, 0x68, 0, 0x81), /bad offset/],
    [
      Uint8Array.of(0xc7, 2, 0x08, 1, 0x41, 1, 0x68, 0, 1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
      /bad time/,
    ],
    [Uint8Array.of(0xc7, 1, 0, 9, 0x41), /bad node id/],
    [Uint8Array.of(0xc7, 1, 0, 0, 0x41), /bad node id/],
    [good.subarray(0, 7), /bad room length/],
    [Uint8Array.of(0xc7, 1, 2, 1, 0x41, 0x80, 0x80, 0x80, 0x80, 0x01), /bad room length/],
    [Uint8Array.of(0xc7, 1, 0, 1, 0x41, 0xff, 0xfe), /text payload is not valid UTF-8/],
    [Uint8Array.of(0xc7, 1, 0, 1, 0xff, 0x41), /node id is not valid UTF-8/],
  ];
  for (const [bytes, why] of bad) {
    assert.throws(
      () => decodeMessage(bytes),
      (err: Error) => err instanceof BrokerMessageError && why.test(err.message),
    );
  }
  assert.throws(() => encodeMessage({ node: "", kind: "all", payload: "" }), RangeError);
  assert.throws(() => encodeMessage({ node: "n", kind: "room", payload: "" }), RangeError);
});

test("without a broker, count() is the local size and ready() resolves", async () => {
  const t = await startServer();
  const clients = await openClients(t.wsUrl(), 3);
  try {
    await t.signal.until(() => t.hub.size === 3, "three sessions");
    await t.hub.ready();
    t.hub.sessions()[0].join("r");
    assert.equal(await t.hub.count(), 3);
    assert.equal(await t.hub.room("r").count(), 1);
    assert.equal(await t.hub.room("none").count(), 0);
  } finally {
    await closeAll(clients);
    await t.close();
  }
  await assert.rejects(t.hub.count(), /closed/);
});

test("a broker that is not one is refused; a broker that fails to start is reported", async () => {
  assert.throws(() => new Hub({ broker: {} as Broker }), TypeError);
  const failing: Broker = {
    start: () => Promise.reject(new Error("no server")),
    publish() {},
    changed() {},
    count: () => Promise.resolve(0),
    stop: () => Promise.resolve(),
  };
  const hub = new Hub({ broker: failing });
  const reported = deferred<Error>();
  hub.handleBrokerError((err) => reported.resolve(err));
  await assert.rejects(hub.ready(), /no server/);
  assert.equal((await reported.promise).message, "no server");
  await hub.close();
});

async function memoryCluster(network: MemoryNetwork, n: number): Promise<(TestServer<Record<string, unknown>> & {
  brokerErrors: Error[];
})[]> {
  const nodes = [];
  for (let i = 0; i < n; i++) {
    const t = await startServer({ broker: network.broker() });
    const brokerErrors: Error[] = [];
    t.hub.handleBrokerError((err) => {
      brokerErrors.push(err);
      t.signal.ping();
    });
    await t.hub.ready();
    nodes.push(Object.assign(t, { brokerErrors }));
  }
  return nodes;
}

test("memory broker: broadcasts of every kind cross hubs; counts sum; foreign bytes and oversize are refused", async () => {
  const network = new MemoryNetwork({ maxMessageSize: 512 });
  const [a, b] = await memoryCluster(network, 2);
  const clients: Client[] = [];
  try {
    clients.push(...await openClients(a.wsUrl(), 2), ...await openClients(b.wsUrl(), 1));
    const [a1, a2, b1] = clients;
    await a.signal.until(() => a.hub.size === 2, "two on a");
    await b.signal.until(() => b.hub.size === 1, "one on b");
    const [sa1] = a.hub.sessions();
    assert.equal(await a.hub.count(), 3);

    a.hub.broadcastOthers("others", sa1);
    assert.deepEqual([await a2.next(), await b1.next()], ["others", "others"]);
    sa1.join("g");
    b.hub.sessions()[0].join("g");
    assert.equal(await b.hub.room("g").count(), 2);
    a.hub.room("g").broadcastOthers(new Uint8Array([5]), sa1);
    assert.deepEqual(await b1.next(), new Uint8Array([5]));
    b.hub.room("g").broadcast("g");
    assert.deepEqual([await a1.next(), await b1.next()], ["g", "g"]);

    network.inject(utf8("not chorus"));
    network.inject(new Uint8Array(600));
    await b.signal.until(() => b.brokerErrors.length === 2, "two refusals on b");
    assert.ok(b.brokerErrors.every((e) => e instanceof BrokerMessageError));
    assert.throws(() => a.hub.broadcast("x".repeat(600)), RangeError);
    a.hub.broadcast("after");
    assert.deepEqual([await a1.next(), await a2.next(), await b1.next()], ["after", "after", "after"]);
    assert.equal(a1.pending + a2.pending + b1.pending, 0, "nothing delivered twice");

    await b.close();
    assert.equal(network.size, 1);
    assert.equal(await a.hub.count(), 2);
  } finally {
    await closeAll(clients);
    await Promise.all([a.close(), b.close()]);
  }
  assert.equal(network.size, 0);
});

test("memory streams: append reaches every broker, the publisher too, in order with offsets; read, trim, seq, lost stream", async () => {
  const network = new MemoryNetwork({ maxMessageSize: 256 });
  const brokers = [network.broker(), network.broker()];
  const [a, b] = [fakeLink("node-0"), fakeLink("node-1")];
  await brokers[0].start(a);
  await brokers[1].start(b);
  const [sa, sb] = brokers.map((x) => x.streams!);
  try {
    const appended = sa.append({ node: "node-0", kind: "all", payload: "m1" }, 3);
    assert.equal(a.got.length, 0, "asynchronous, as through Redis");
    await appended;
    for (let i = 2; i <= 4; i++) await sa.append({ node: "node-0", kind: "all", payload: `m${i}` }, 3);
    await sb.append(
      { node: "node-1", kind: "room-others", room: "blue", except: "s-1", payload: new Uint8Array([9]) },
      3,
    );
    await until(() => a.got.length === 5 && b.got.length === 5, "five on each");
    for (const link of [a, b]) {
      assert.deepEqual(link.got.slice(0, 4).map((m) => [m.payload, m.position!.offset]), [
        ["m1", 1],
        ["m2", 2],
        ["m3", 3],
        ["m4", 4],
      ]);
      assert.equal(new Set(link.got.slice(0, 4).map((m) => m.position!.epoch)).size, 1);
      const last = link.got[4];
      assert.deepEqual([last.room, last.except, last.payload, last.position!.key, last.position!.offset], [
        "blue",
        "s-1",
        new Uint8Array([9]),
        "r:blue",
        1,
      ]);
    }
    const seqs = a.got.map((m) => m.position!.seq);
    assert.deepEqual(seqs, [1, 2, 3, 4, 5], "seq across streams");
    const epoch = a.got[0].position!.epoch;
    const page = await sb.read("h", 0, 10);
    assert.deepEqual([page.epoch, page.top], [epoch, 4]);
    assert.deepEqual(page.entries.map((e) => e.offset), [2, 3, 4], "trimmed to the limit");
    assert.deepEqual(page.entries[0], { ...a.got[1].position!, kind: "all", payload: "m2" });
    assert.deepEqual((await sb.read("h", 2, 1)).entries.map((e) => e.payload), ["m3"]);
    assert.deepEqual((await sa.read("r:blue", 0, 10)).entries[0].except, "s-1");
    assert.deepEqual(await sa.read("r:none", 0, 10), { epoch: "", top: 0, entries: [] });
    assert.throws(() => sa.append({ node: "node-0", kind: "all", payload: "x".repeat(300) }, 3), RangeError);
    assert.equal((await sa.read("h", 0, 10)).top, 4, "a refused message is not kept");

    network.forget("h");
    await sa.append({ node: "node-0", kind: "all", payload: "anew" }, 3);
    await until(() => b.got.length === 6, "the message after the loss");
    assert.equal(b.got[5].position!.offset, 1);
    assert.notEqual(b.got[5].position!.epoch, epoch);

    const own = await sa.appendOwn("sess-1", "mine", 10);
    assert.deepEqual([own.key, own.offset, own.seq], ["s:sess-1", 1, 7]);
    assert.deepEqual((await sb.read("s:sess-1", 0, 10)).entries, [{ ...own, kind: "own", payload: "mine" }]);
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(a.got.length, 6, "appendOwn publishes nothing");
    assert.deepEqual([...a.errors, ...b.errors], []);
  } finally {
    await Promise.all(brokers.map((x) => x.stop()));
  }
  await assert.rejects(sa.append({ node: "node-0", kind: "all", payload: "late" }, 3), /not running/);
});

test("memory sessions: save, claim once on another broker (the old one gets released), drop, expiry after stop", async () => {
  const network = new MemoryNetwork();
  const brokers = [network.broker(), network.broker(), network.broker()];
  const links = [fakeLink("node-0"), fakeLink("node-1"), fakeLink("node-2")];
  for (let i = 0; i < 3; i++) await brokers[i].start(links[i]);
  const [s0, s1, s2] = brokers.map((x) => x.streams!);
  try {
    const first = state("sess-1", "tok-1");
    await s0.saveSession(first, 60_000);
    const second = { ...first, token: "tok-2", received: 9 };
    await s0.saveSession(second, 60_000);
    assert.equal(await s1.claimSession("tok-1"), undefined, "an old credential claims nothing");
    assert.deepEqual(await s1.claimSession("tok-2"), second);
    await until(() => links[0].freed.length === 1, "node-0 to be told");
    assert.deepEqual(links.map((l) => l.freed), [["sess-1"], [], []]);
    assert.equal(await s2.claimSession("tok-2"), undefined, "single use");
    // the old node, not told in time, saves or drops: ignored
    await s0.saveSession({ ...second, token: "tok-stale" }, 60_000);
    await s0.dropSession("sess-1");
    assert.equal(await s2.claimSession("tok-stale"), undefined);
    const third = { ...second, token: "tok-3" };
    await s1.saveSession(third, 60_000);
    await s1.appendOwn("sess-1", "kept", 10);
    await s1.dropSession("sess-1");
    assert.equal(await s2.claimSession("tok-3"), undefined, "dropped");
    assert.deepEqual(await s2.read("s:sess-1", 0, 10), { epoch: "", top: 0, entries: [] }, "its own stream too");

    // a stopped broker's sessions stay claimable until their ttl passes
    await s0.saveSession(state("sess-2", "tok-a"), 60_000);
    await s0.saveSession(state("sess-3", "tok-b"), 30);
    await brokers[0].stop();
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual(await s1.claimSession("tok-a"), state("sess-2", "tok-a"));
    assert.equal(await s1.claimSession("tok-b"), undefined, "expired");
    await until(() => links[0].freed.length === 1, "");
    assert.deepEqual(links.flatMap((l) => l.errors), []);
  } finally {
    await Promise.all(brokers.map((x) => x.stop()));
  }
});
