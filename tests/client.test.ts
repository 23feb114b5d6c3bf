// chorus-ws/client against a scripted chorus.v1 server (tests/_scripted.ts: a bare server, the test
// plays the protocol by hand): handshake, numbering, acks, resume, close codes, the offline queue,
// timeouts and heartbeats. Plain servers: tests/client_plain.test.ts. Deno and Bun.
import assert from "node:assert/strict";
import { connect } from "../src/client.ts";
import { encodeControl, encodeData } from "../src/protocol.ts";
import { test } from "./_helpers.ts";
import { texts, until, watch, withScripted } from "./_scripted.ts";

test("client: handshake, open with resumed false, messages both ways framed with numbers", async () => {
  await withScripted(async (sc, clients) => {
    const w = watch(sc.srv.wsUrl(), {}, sc.signal);
    clients.push(w);
    assert.equal(w.c.state, "connecting");
    assert.equal(w.c.send("early"), true, "send before open queues");
    await until(sc, w, () => w.opens.length === 1, "open");
    assert.deepEqual(w.opens, [false]);
    assert.equal(w.c.state, "open");
    assert.deepEqual(sc.requests, [{ t: "new" }]);
    assert.equal(w.sockets[0].protocol, "chorus.v1");
    w.c.send("two");
    w.c.send(new Uint8Array([1, 2, 3]));
    w.c.send(new Uint8Array([9, 8, 7, 6]).subarray(1, 3).buffer.slice(1, 3));
    await until(sc, w, () => sc.data.length === 4, "4 data frames at the server");
    assert.deepEqual(sc.data.map((d) => d.n), [1, 2, 3, 4]);
    assert.deepEqual(sc.data.slice(0, 2).map((d) => d.payload), ["early", "two"]);
    assert.deepEqual([...(sc.data[2].payload as Uint8Array)], [1, 2, 3]);
    assert.deepEqual([...(sc.data[3].payload as Uint8Array)], [8, 7]);
    const s = sc.sessions[0];
    s.write("m1.1;hello");
    s.write(encodeData(1, 5, new Uint8Array([4, 5])));
    s.write('m1.7;{"json":true}');
    await until(sc, w, () => w.messages.length === 3, "3 messages");
    assert.deepEqual(texts(w), ["hello", "<4,5>", '{"json":true}']);
    assert.ok(w.messages[1] instanceof ArrayBuffer);
    assert.equal((w.messages[1] as ArrayBuffer).byteLength, 2, "the payload is copied out of the frame");
  });
});

test("client: duplicates (n <= the position) are dropped; position acks after 100 ms, after 32 frames, at once on a heartbeat", async () => {
  await withScripted(async (sc, clients) => {
    const w = watch(sc.srv.wsUrl(), {}, sc.signal);
    clients.push(w);
    await until(sc, w, () => w.opens.length === 1 && sc.acks.length === 1, "open, and the welcome confirmed");
    assert.deepEqual(sc.acks, ["r"], "an empty r confirms the welcome at once");
    const s = sc.sessions[0];
    for (const n of [1, 2, 2, 1, 5, 3, 6]) s.write(`m1.${n};x${n}`);
    await until(sc, w, () => w.messages.length >= 4, "4 messages");
    await until(sc, w, () => sc.acks.length >= 2, "an ack within 100 ms");
    assert.deepEqual(w.messages, ["x1", "x2", "x5", "x6"]);
    assert.equal(sc.acks.at(-1), "r1.6", "stream 1 up to offset 6");
    s.write("p");
    await until(sc, w, () => sc.acks.length === 3, "the ack answering a heartbeat");
    assert.equal(sc.acks.at(-1), "r", "nothing moved since: an empty r");
    // 32 frames: acknowledged at once, without waiting for the timer.
    const t0 = Date.now();
    for (let n = 7; n < 7 + 32; n++) s.write(`m1.${n.toString(36)};y`);
    await until(sc, w, () => sc.acks.includes(`r1.${(38).toString(36)}`), "the ack after 32 frames");
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(w.messages.length, 4 + 32);
    // Two streams move: one ack names both, each at its highest offset.
    s.write(encodeControl({ t: "stream", id: 2, key: "r:x", epoch: "F" }));
    for (const f of ["m2.3;a", "m1.13;b", "m2.4;c"]) s.write(f);
    await until(sc, w, () => w.messages.length === 39 && sc.acks.length >= 5, "the two-stream ack");
    assert.equal(sc.acks.at(-1), `r2.4,1.${(39).toString(36)}`);
    assert.ok(sc.acks.every((a) => /^r/.test(a)), "no count ack (a<n>) any more");
  });
});

test("client: after a resumed welcome it sends again exactly the unacknowledged messages, in order, then the queue", async () => {
  await withScripted(async (sc, clients) => {
    const w = watch(sc.srv.wsUrl(), {}, sc.signal);
    clients.push(w);
    await until(sc, w, () => w.opens.length === 1, "open");
    for (const m of ["a", "b", "c", "d", "e"]) w.c.send(m);
    await until(sc, w, () => sc.data.length === 5, "5 frames");
    const s = sc.sessions[0];
    s.write("a2"); // the server has 1 and 2
    s.write("m1.4;one");
    await until(sc, w, () => w.messages.length === 1, "a message");
    // Resume: the server says it got 1..3 (3 arrived after its ack).
    sc.welcome = (req) => req.t === "resume" ? { t: "welcome", resumed: true, token: "T2", recv: 3, hb: 0 } : undefined;
    s.close(1012, "restart");
    await until(sc, w, () => w.reconnecting.length === 1, "reconnecting");
    assert.equal(w.reconnecting[0].attempt, 1);
    assert.equal(w.reconnecting[0].state, "reconnecting");
    assert.ok(w.reconnecting[0].delay >= 10 && w.reconnecting[0].delay <= 50, `delay ${w.reconnecting[0].delay}`);
    assert.equal(w.c.send("f"), true, "queued while reconnecting");
    await until(sc, w, () => w.opens.length === 2, "second open");
    assert.deepEqual(w.opens, [false, true]);
    assert.deepEqual(sc.requests[1], { t: "resume", token: "T1", pos: { s: ["E", 4] } });
    await until(sc, w, () => sc.data.length === 8, "the resent and queued frames");
    assert.deepEqual(sc.data.slice(5).map((d) => [d.s, d.n, d.payload]), [[1, 4, "d"], [1, 5, "e"], [1, 6, "f"]]);
    sc.sessions[1].write("m1.4;dup");
    sc.sessions[1].write("m1.9;two");
    await until(sc, w, () => w.messages.length === 2, "the second message");
    assert.deepEqual(w.messages, ["one", "two"], "offset 4 was a duplicate across the resume");
  });
});

test("client: a fresh session after a reconnect gets the unacknowledged and queued messages renumbered from 1", async () => {
  await withScripted(async (sc, clients) => {
    const w = watch(sc.srv.wsUrl(), {}, sc.signal);
    clients.push(w);
    await until(sc, w, () => w.opens.length === 1, "open");
    for (const m of ["a", "b", "c"]) w.c.send(m);
    await until(sc, w, () => sc.data.length === 3, "3 frames");
    sc.sessions[0].write("a1");
    sc.sessions[0].write("m1.50;old");
    await until(sc, w, () => w.messages.length === 1, "a message");
    sc.welcome = (_req, i) => ({ t: "welcome", resumed: false, token: `T${i + 1}`, recv: 0, hb: 0 });
    sc.sessions[0].close(1013);
    await until(sc, w, () => w.reconnecting.length === 1, "reconnecting");
    w.c.send("d");
    await until(sc, w, () => w.opens.length === 2, "second open");
    assert.deepEqual(w.opens, [false, false]);
    await until(sc, w, () => sc.data.length === 6, "the frames on the new session");
    assert.deepEqual(sc.data.slice(3).map((d) => [d.s, d.n, d.payload]), [[1, 1, "b"], [1, 2, "c"], [1, 3, "d"]]);
    sc.sessions[1].write("m1.2;new"); // offsets of the new session are not compared with the old one's
    await until(sc, w, () => w.messages.length === 2, "a message on the new session");
    assert.deepEqual(w.messages, ["old", "new"]);
  });
});

for (const code of [1000, 4001, 1008]) {
  test(`client: close code ${code} from the server is final`, async () => {
    await withScripted(async (sc, clients) => {
      const w = watch(sc.srv.wsUrl(), {}, sc.signal);
      clients.push(w);
      await until(sc, w, () => w.opens.length === 1, "open");
      sc.sessions[0].close(code, "bye");
      await until(sc, w, () => w.closes.length === 1, "close event");
      assert.equal(w.closes[0].code, code);
      assert.equal(w.closes[0].reason, "bye");
      assert.equal(w.c.state, "closed");
      assert.equal(w.reconnecting.length, 0);
      assert.equal(w.c.send("x"), false);
      assert.equal(w.sockets.length, 1);
    });
  });
}

test("client: shouldReconnect decides: 4001 reconnects, 1012 is final", async () => {
  await withScripted(async (sc, clients) => {
    const seen: number[] = [];
    const w = watch(sc.srv.wsUrl(), {
      shouldReconnect: (e) => {
        seen.push(e.code);
        return e.code === 4001;
      },
    }, sc.signal);
    clients.push(w);
    await until(sc, w, () => w.opens.length === 1, "open");
    sc.sessions[0].close(4001);
    await until(sc, w, () => w.opens.length === 2, "reopen after 4001");
    assert.equal(w.reconnecting.length, 1);
    sc.sessions[1].close(1012);
    await until(sc, w, () => w.closes.length === 1, "close after 1012");
    assert.deepEqual(seen, [4001, 1012]);
    assert.equal(w.closes[0].code, 1012);
    assert.equal(w.c.state, "closed");
  });
});

test("client: the offline queue is bounded (queued plus unacknowledged) and flushed in order", async () => {
  await withScripted(async (sc, clients) => {
    let release: (() => void) | undefined;
    sc.welcome = () => {
      release = () => {
        sc.sessions[0].write(encodeControl({ t: "welcome", resumed: false, token: "T", recv: 0, hb: 0 }));
        sc.sessions[0].write(encodeControl({ t: "stream", id: 1, key: "s", epoch: "E" }));
      };
      return undefined;
    };
    const w = watch(sc.srv.wsUrl(), { maxQueued: 3 }, sc.signal);
    clients.push(w);
    assert.deepEqual([w.c.send("1"), w.c.send("2"), w.c.send("3"), w.c.send("4")], [true, true, true, false]);
    await until(sc, w, () => release !== undefined, "the request");
    assert.equal(w.c.state, "connecting", "not open before welcome");
    assert.equal(w.c.send("5"), false);
    release!();
    await until(sc, w, () => sc.data.length === 3, "the queue");
    assert.deepEqual(sc.data.map((d) => d.payload), ["1", "2", "3"]);
    assert.equal(w.c.send("6"), false, "three sent, none acknowledged");
    sc.sessions[0].write("a2");
    sc.sessions[0].write("m1.1;after the ack"); // no event tells of an ack: wait for the next message
    await until(sc, w, () => w.messages.length === 1, "the message after the ack");
    assert.equal(w.c.send("7"), true, "room after the ack");
    await until(sc, w, () => sc.data.length === 4, "the fourth frame");
    assert.deepEqual(sc.data[3], { s: 0, n: 4, payload: "7" });
  });
});

test("client: close() is final and synchronous; the server sees its code", async () => {
  await withScripted(async (sc, clients) => {
    const w = watch(sc.srv.wsUrl(), {}, sc.signal);
    clients.push(w);
    await until(sc, w, () => w.opens.length === 1, "open");
    w.c.close(4002, "done");
    assert.equal(w.c.state, "closed");
    assert.equal(w.closes.length, 1);
    assert.equal(w.closes[0].code, 4002);
    assert.equal(w.closes[0].reason, "done");
    w.c.close(); // again: nothing
    assert.equal(w.closes.length, 1);
    assert.equal(w.c.send("x"), false);
    await until(sc, w, () => sc.closes.length === 1, "the server's close hook");
    assert.deepEqual(sc.closes, [4002]);
    await w.end();
    assert.equal(w.sockets.length, 1);
    assert.throws(() => w.c.close(1006), RangeError);
  });
});

test("client: close() while connecting and while waiting to reconnect", async () => {
  await withScripted(async (sc, clients) => {
    const a = watch(sc.srv.wsUrl(), {}, sc.signal);
    clients.push(a);
    a.c.close();
    assert.equal(a.closes.length, 1);
    assert.equal(a.c.state, "closed");
    const b = watch(sc.srv.wsUrl(), { minDelay: 5000, maxDelay: 5000 }, sc.signal);
    clients.push(b);
    await until(sc, b, () => b.opens.length === 1, "open");
    sc.sessions.at(-1)!.close(1001);
    await until(sc, b, () => b.reconnecting.length === 1, "reconnecting");
    b.c.close();
    assert.equal(b.closes.length, 1);
    assert.equal(b.closes[0].code, 1000);
  });
});

test("client: a connect timeout (no welcome) and a dead heartbeat are lost connections", async () => {
  await withScripted(async (sc, clients) => {
    let n = 0;
    sc.welcome = () => {
      n++;
      if (n === 1) return undefined; // the first attempt times out
      return { t: "welcome", resumed: n > 2, token: `T${n}`, recv: 0, hb: 100 };
    };
    const w = watch(sc.srv.wsUrl(), { connectTimeout: 300, minUptime: 1000 }, sc.signal);
    clients.push(w);
    await until(sc, w, () => w.opens.length === 1, "open after a timed out attempt");
    assert.equal(w.reconnecting.length, 1);
    assert.equal(sc.requests.length, 2);
    // hb 100: the server stays silent, so after 1200 ms the client gives up and reconnects.
    const t0 = Date.now();
    await until(sc, w, () => w.opens.length === 2, "reopen after a dead heartbeat", 5000);
    const took = Date.now() - t0;
    assert.ok(took >= 1100, `gave up after ${took} ms`);
    assert.deepEqual(w.opens, [false, true]);
    assert.equal(w.reconnecting.at(-1)!.attempt, 1, "the attempt count restarts after a healthy connection (1 s open)");
    await until(sc, w, () => sc.closes.length >= 2, "the server's close hooks");
    assert.ok(sc.closes.includes(1005), `a socket given up on closes without a status (${sc.closes})`);
  });
});

test("client: heartbeats keep a connection alive", async () => {
  await withScripted(async (sc, clients) => {
    sc.welcome = () => ({ t: "welcome", resumed: false, token: "T", recv: 0, hb: 100 });
    const w = watch(sc.srv.wsUrl(), {}, sc.signal);
    clients.push(w);
    await until(sc, w, () => w.opens.length === 1, "open");
    const timer = setInterval(() => sc.sessions[0].write("p"), 100);
    try {
      await until(sc, w, () => sc.acks.length >= 20, "20 heartbeats answered", 5000);
    } finally {
      clearInterval(timer);
    }
    assert.equal(w.reconnecting.length, 0);
    assert.ok(sc.acks.every((a) => a === "r"));
  });
});

test("client: options are validated", () => {
  const url = "ws://127.0.0.1:1/";
  assert.throws(() => connect(url, { minDelay: -1 }), RangeError);
  assert.throws(() => connect(url, { minDelay: 100, maxDelay: 50 }), RangeError);
  assert.throws(() => connect(url, { maxQueued: 0 }), RangeError);
  assert.throws(() => connect(url, { maxQueued: 1.5 }), RangeError);
  assert.throws(() => connect(url, { connectTimeout: Infinity }), RangeError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => connect(url, { minDelay: "1" as any }), TypeError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => connect(url, { protocols: "x" as any }), TypeError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => connect(url, { shouldReconnect: 1 as any }), TypeError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => connect(1 as any), TypeError);
});
