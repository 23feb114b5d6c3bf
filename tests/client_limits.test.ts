// chorus-ws/client's bounds, timers and limits: the hub's frame limit (`max` in the welcome), a
// position that forgets the streams the session left, stream epochs, the credential kept across a
// 1013, a backoff that resets only after a healthy connection, timers within setTimeout's range,
// and the options' checks. Scripted servers and real hubs; Deno and Bun.
import assert from "node:assert/strict";
import type { Session } from "../mod.ts";
import { type ChorusDroppedEvent, connect } from "../src/client.ts";
import { encodeControl, MAX_POSITION_ENTRIES, type RequestMessage } from "../src/protocol.ts";
import { startServer, test, Watched } from "./_helpers.ts";
import { Proxy } from "./_proxy.ts";
import { fast, until, watch, withScripted } from "./_scripted.ts";

/** Records the handshake requests a client sends (the `WebSocket` option). */
function recordingRequests(requests: RequestMessage[]): typeof WebSocket {
  return class extends WebSocket {
    override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
      if (typeof data === "string" && data.startsWith('{"t":"')) requests.push(JSON.parse(data));
      super.send(data);
    }
  };
}

test("client limits: a message past the hub's maxMessageSize throws a RangeError; the connection lives on", async () => {
  const t = await startServer({ maxMessageSize: 100, resume: {}, pingInterval: 0 });
  const got: string[] = [];
  t.hub.handleMessage((_s, m) => {
    got.push(m.length > 10 ? `${m[0]}×${m.length}` : m);
    t.signal.ping();
  });
  t.hub.handleMessageBinary((_s, m) => {
    got.push(`bytes×${m.byteLength}`);
    t.signal.ping();
  });
  const dropped: ChorusDroppedEvent[] = [];
  const w = new Watched(t.wsUrl(), t.signal);
  w.c.addEventListener("dropped", (e) => {
    dropped.push(e);
    t.signal.ping();
  });
  try {
    // Before the first welcome the limit is unknown: queued, then left out with a `dropped` event.
    assert.equal(w.c.send("a".repeat(200)), true);
    assert.equal(w.c.send("ok1"), true);
    await t.signal.until(() => got.length === 1 && dropped.length === 1, "ok1, and the dropped event");
    assert.deepEqual(got, ["ok1"]);
    assert.equal(dropped[0].data, "a".repeat(200));
    assert.ok(dropped[0].error instanceof RangeError);
    assert.match(dropped[0].error.message, /205 bytes .* \(100 bytes per frame\)/, "the whole frame: m0.1; + 200");
    // Now known: refused at once, nothing sent or queued, the connection stays.
    assert.throws(() => w.c.send("b".repeat(10_000_000)), RangeError);
    // A frame of exactly 100 bytes passes: "m0.2;" + 95 (text), 0x6d 0 3 + 97 (binary).
    assert.throws(() => w.c.send("c".repeat(96)), RangeError);
    assert.throws(() => w.c.send("é".repeat(48)), RangeError, "96 bytes of UTF-8");
    assert.equal(w.c.send("c".repeat(95)), true);
    assert.throws(() => w.c.send(new Uint8Array(98)), RangeError);
    assert.equal(w.c.send(new Uint8Array(97)), true);
    assert.equal(w.c.send("ok2"), true);
    await t.signal.until(() => got.length === 4, "the two largest frames, and ok2");
    assert.deepEqual(got, ["ok1", "c×95", "bytes×97", "ok2"]);
    assert.equal(w.c.state, "open");
    assert.deepEqual(w.opens, [false], "one connection throughout: no 1009");
    assert.equal(w.closed, undefined);
  } finally {
    await w.end();
    await t.close();
  }
});

test("client limits: a hub without resume (plain frames) limits the message itself", async () => {
  const t = await startServer({ maxMessageSize: 100, pingInterval: 0 });
  const got: string[] = [];
  t.hub.handleMessage((_s, m) => {
    got.push(m);
    t.signal.ping();
  });
  const w = new Watched(t.wsUrl(), t.signal);
  try {
    await t.signal.until(() => w.opens.length === 1, "open");
    assert.throws(() => w.c.send("x".repeat(101)), RangeError);
    assert.equal(w.c.send("x".repeat(100)), true);
    await t.signal.until(() => got.length === 1, "the 100-byte message");
    assert.equal(got[0].length, 100);
    assert.equal(w.c.state, "open");
  } finally {
    await w.end();
    await t.close();
  }
});

test("client limits: a client joining and leaving 5,000 rooms keeps a small position, and resumes", async () => {
  const t = await startServer<{ n: number }>({ resume: {}, pingInterval: 0 });
  let session: Session<{ n: number }> | undefined;
  t.hub.handleConnect((s) => {
    session = s;
    t.signal.ping();
  });
  t.hub.handleResume(() => t.signal.ping());
  const proxy = await Proxy.start(t.port);
  const requests: RequestMessage[] = [];
  const w = new Watched(`ws://127.0.0.1:${proxy.port}/`, t.signal, { WebSocket: recordingRequests(requests) });
  try {
    await t.signal.until(() => w.opens.length === 1 && session !== undefined, "open");
    const rooms = MAX_POSITION_ENTRIES + 904;
    for (let i = 0; i < rooms; i++) {
      session!.join(`r${i}`);
      t.hub.room(`r${i}`).broadcast(`in r${i}`);
      session!.leave(`r${i}`);
      // the messages not yet acknowledged are kept (at most resume.maxMessages): let the client read
      if (i % 250 === 249) await t.signal.until(() => w.got.length === i + 1, `${i + 1} room messages`);
    }
    session!.join("kept");
    t.hub.room("kept").broadcast("in kept");
    await t.signal.until(() => w.got.length === rooms + 1, `${rooms + 1} room messages`, 20_000);
    proxy.cut();
    await t.signal.until(() => w.opens.length === 2, "the resume");
    assert.deepEqual(w.opens, [false, true], "resumed, not refused (1002) for a position too long");
    const resume = requests.at(-1)!;
    assert.equal(resume.t, "resume");
    const keys = Object.keys((resume as { pos: Record<string, unknown> }).pos).sort();
    assert.ok(keys.length <= 3, `position keys: ${keys.length}`);
    assert.ok(keys.includes("r:kept") && !keys.includes("r:r0"), keys.join(" "));
    t.hub.room("kept").broadcast("after");
    await t.signal.until(() => w.got.at(-1) === "after", "a room message after the resume");
  } finally {
    await w.end();
    await proxy.close();
    await t.close();
  }
});

test("client limits: a position past what a resume request may name asks for a new session", async () => {
  await withScripted(async (sc, clients) => {
    const requests: RequestMessage[] = [];
    const w = watch(sc.srv.wsUrl(), { WebSocket: recordingRequests(requests) }, sc.signal);
    clients.push(w);
    await until(sc, w, () => w.opens.length === 1, "open");
    for (let i = 2; i < MAX_POSITION_ENTRIES + 10; i++) {
      sc.sessions[0].write(encodeControl({ t: "stream", id: i, key: `r:${i}`, epoch: "E", from: 0 }));
    }
    sc.sessions[0].write("m1.1;last"); // after every declaration
    await until(sc, w, () => w.messages.length === 1, "a message");
    sc.sessions[0].close(1012);
    await until(sc, w, () => w.opens.length === 2, "reopen");
    assert.deepEqual(requests.map((r) => r.t), ["new", "new"], "no resume request the hub would refuse");
  });
});

test("client limits: epochs and ends: a new epoch's offsets start over, a duplicate is dropped, an ended stream forgotten", async () => {
  await withScripted(async (sc, clients) => {
    const w = watch(sc.srv.wsUrl(), {}, sc.signal);
    clients.push(w);
    await until(sc, w, () => w.opens.length === 1, "open");
    const s = sc.sessions[0];
    s.write(encodeControl({ t: "stream", id: 2, key: "r:x", epoch: "A", from: 0 }));
    s.write("m2.7;a7");
    s.write(encodeControl({ t: "stream", id: 3, key: "r:x", epoch: "B" })); // the same room, anew
    s.write("m3.2;b2");
    s.write("m3.2;b2 again");
    s.write("m1.1;s1");
    await until(sc, w, () => w.messages.length === 3 && sc.acks.length >= 2, "messages, and an ack");
    assert.deepEqual(w.messages, ["a7", "b2", "s1"], "b2 again was a duplicate");
    assert.equal(sc.acks.at(-1), "r2.7,3.2,1.1");
    const acks = sc.acks.length;
    s.write("m2.8;a8");
    s.write(encodeControl({ t: "end", key: "r:x" }));
    await until(sc, w, () => sc.acks.length === acks + 1, "the ack sent at once on the end");
    assert.equal(sc.acks.at(-1), "r2.8");
    // A frame of an ended stream (kept by a hub and sent again): not delivered, acknowledged.
    s.write("m3.9;after the end");
    await until(sc, w, () => sc.acks.length === acks + 2, "its ack");
    assert.equal(sc.acks.at(-1), "r3.9");
    assert.deepEqual(w.messages, ["a7", "b2", "s1", "a8"]);
    assert.equal(w.reconnecting.length, 0, "not taken for a broken hub");
    // An id never declared is a broken hub: the connection is given up, the session resumes.
    s.write("m7.1;from nowhere");
    await until(sc, w, () => w.reconnecting.length === 1 && sc.requests.length === 2, "the resume request");
    assert.ok(!w.messages.includes("from nowhere"));
    const pos = (sc.requests[1] as { pos: Record<string, unknown> }).pos;
    assert.deepEqual(Object.keys(pos), ["s"], "the room's position is forgotten");
  });
});

test("client limits: a 1013 during the handshake is retried with the same credential", async () => {
  await withScripted(async (sc, clients) => {
    let refused = 0;
    sc.welcome = (req, i) => {
      if (req.t === "resume" && refused < 2) {
        refused++;
        sc.sessions.at(-1)!.close(1013, "Try again later");
        return undefined;
      }
      return { t: "welcome", resumed: req.t === "resume", token: `T${i + 1}`, recv: 0, hb: 0 };
    };
    const w = watch(sc.srv.wsUrl(), {}, sc.signal);
    clients.push(w);
    await until(sc, w, () => w.opens.length === 1, "open");
    sc.sessions[0].close(1012);
    await until(sc, w, () => w.opens.length === 2, "resumed after two 1013s");
    assert.deepEqual(w.opens, [false, true]);
    assert.deepEqual(sc.requests.map((r) => r.t === "resume" ? r.token : r.t), ["new", "T1", "T1", "T1"]);
    assert.deepEqual(w.reconnecting.map((r) => r.attempt), [1, 2, 3], "backoff grows: no healthy connection");
  });
});

test("client limits: a server that accepts and drops at once: the backoff grows, it resets only after a healthy connection", async () => {
  await withScripted(async (sc, clients) => {
    let drop = true;
    sc.welcome = (req, i) => {
      if (drop) setTimeout(() => sc.sessions[i].close(1011), 0);
      return { t: "welcome", resumed: req.t === "resume", token: `T${i + 1}`, recv: 0, hb: 0 };
    };
    const w = watch(sc.srv.wsUrl(), { minDelay: 5, maxDelay: 40, minUptime: 300 }, sc.signal);
    clients.push(w);
    await until(sc, w, () => w.reconnecting.length === 6, "6 reconnects");
    assert.deepEqual(w.reconnecting.map((r) => r.attempt), [1, 2, 3, 4, 5, 6], "no reset on open");
    assert.ok(w.reconnecting.every((r) => r.delay >= 5 && r.delay <= 40));
    drop = false; // the next connection stays: healthy after 300 ms
    const opens = w.opens.length;
    await until(sc, w, () => w.opens.length === opens + 1, "a connection that stays");
    await new Promise((r) => setTimeout(r, 400));
    sc.sessions.at(-1)!.close(1011);
    await until(sc, w, () => w.reconnecting.length === 7, "the reconnect after a healthy connection");
    assert.equal(w.reconnecting[6].attempt, 1, "the backoff starts over");
  });
});

test("client limits: a heartbeat interval past setTimeout's range arms no timer that fires at once", async () => {
  await withScripted(async (sc, clients) => {
    sc.welcome = () => ({ t: "welcome", resumed: false, token: "T", recv: 0, hb: 2 ** 40 });
    const delays: number[] = [];
    const original = globalThis.setTimeout;
    globalThis.setTimeout = ((fn: () => void, ms?: number) => {
      delays.push(ms ?? 0);
      return original(fn, ms);
    }) as typeof setTimeout;
    try {
      const w = watch(sc.srv.wsUrl(), {}, sc.signal);
      clients.push(w);
      await until(sc, w, () => w.opens.length === 1, "open");
      const before = delays.length;
      await new Promise((r) => original(r, 200));
      // a delay past the limit fires at once, and the watchdog would re-arm it every millisecond
      assert.ok(delays.length - before < 20, `${delays.length - before} timers in 200 ms: ${delays.slice(before)}`);
      assert.ok(delays.every((ms) => ms <= 2 ** 31 - 1), `a delay past the limit: ${Math.max(...delays)}`);
      assert.equal(w.c.state, "open");
    } finally {
      globalThis.setTimeout = original;
    }
  });
});

test("client limits: options: unknown names, callbacks that are not functions, delays past setTimeout's range", () => {
  const url = "ws://127.0.0.1:1/";
  // deno-lint-ignore no-explicit-any
  const bad = (o: any) => () => connect(url, o);
  assert.throws(bad({ minDelai: 5 }), { name: "TypeError", message: /"minDelai"/ });
  assert.throws(bad({ ...fast, reconnect: false }), { name: "TypeError", message: /"reconnect"/ });
  assert.throws(bad({ shouldReconnect: "yes" }), TypeError);
  assert.throws(bad({ WebSocket: 1 }), TypeError);
  assert.throws(bad("fast"), TypeError);
  assert.throws(bad({ maxDelay: 2 ** 31 }), { name: "RangeError", message: /2147483647/ });
  assert.throws(bad({ minDelay: 2 ** 31, maxDelay: 2 ** 32 }), RangeError);
  assert.throws(bad({ connectTimeout: 2 ** 31 }), RangeError);
  assert.throws(bad({ minUptime: 2 ** 31 }), RangeError);
  assert.throws(bad({ minUptime: -1 }), RangeError);
  assert.throws(bad({ maxQueued: 2 ** 53 }), RangeError);
  const c = connect(url, { maxDelay: 2 ** 31 - 1, minUptime: 0, connectTimeout: 2 ** 31 - 1, protocols: undefined });
  c.close();
});
