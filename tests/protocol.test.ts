// The chorus.v1 frames alone: encoding and decoding, and what the decoder refuses.

import assert from "node:assert/strict";
import {
  closeReason,
  type ControlMessage,
  dataOverhead,
  decodeFrame,
  encodeAck,
  encodeControl,
  encodeData,
  encodeReceived,
  PING,
  refusalCode,
} from "../src/protocol.ts";
import { test } from "./_helpers.ts";

test("protocol: received frames carry stream ids and offsets; a bare one says alive", () => {
  assert.equal(encodeReceived([]), "r");
  assert.equal(encodeReceived([[2, 35], [41, 1]]), "r2.z,15.1");
  assert.deepEqual(decodeFrame("r"), { kind: "received", at: [] });
  assert.deepEqual(decodeFrame("r2.z,15.1"), { kind: "received", at: [[2, 35], [41, 1]] });
  for (const bad of ["r.", "r2", "r2.", "r.1", "r0.1", "r2.0", "r2.1,", "r2.1,,3.1", "rZ.1", "r2.-1"]) {
    assert.equal(decodeFrame(bad), undefined, bad);
  }
  assert.equal(decodeFrame("r" + Array.from({ length: 4097 }, () => "1.1").join(",")), undefined, "too many");
});

test("protocol: acks, data and control frames round-trip", () => {
  assert.deepEqual(decodeFrame(encodeAck(70)), { kind: "ack", n: 70 });
  assert.deepEqual(decodeFrame(encodeData(3, 36, "hi")), { kind: "data", id: 3, n: 36, payload: "hi" });
  const bin = decodeFrame(encodeData(300, 2 ** 40, new Uint8Array([1, 2])));
  assert.equal(bin?.kind, "data");
  assert.deepEqual(bin?.kind === "data" && [bin.id, bin.n, [...(bin.payload as Uint8Array)]], [300, 2 ** 40, [1, 2]]);
  const welcome = { t: "welcome", resumed: true, token: "x", recv: 4, hb: 1000, max: 65536 } as const;
  assert.deepEqual(decodeFrame(encodeControl(welcome)), { kind: "control", message: welcome });
  assert.deepEqual(decodeFrame(encodeControl({ t: "end", key: "r:a" })), {
    kind: "control",
    message: { t: "end", key: "r:a" },
  });
  assert.equal(decodeFrame('{"t":"welcome","resumed":true,"token":"x","recv":4,"hb":1,"max":"9"}'), undefined);
  assert.equal(decodeFrame('{"t":"end"}'), undefined);
});

test("protocol: a data frame's bytes: text m<id>.<n>;<payload> in base 36, binary 0x6d, LEB128 id and n, payload", () => {
  assert.equal(encodeData(3, 36, "hi"), "m3.10;hi");
  assert.equal(encodeData(0, 1, ""), "m0.1;");
  assert.equal(encodeData(1, 5, "a.b;c"), "m1.5;a.b;c");
  assert.deepEqual(
    decodeFrame("m1.5;a.b;c"),
    { kind: "data", id: 1, n: 5, payload: "a.b;c" },
    "the first ; ends the head",
  );
  assert.deepEqual([...(encodeData(2, 300, Uint8Array.of(9, 8)) as Uint8Array)], [0x6d, 2, 0xac, 0x02, 9, 8]);
  assert.deepEqual([...(encodeData(128, 1, new Uint8Array(0)) as Uint8Array)], [0x6d, 0x80, 0x01, 1]);
  const bytes = encodeData(7, 2 ** 53 - 1, Uint8Array.of(1)) as Uint8Array;
  assert.equal(bytes.length, 1 + 1 + 8 + 1, "the largest offset takes 8 bytes");
  const back = decodeFrame(bytes.slice().buffer);
  assert.ok(back?.kind === "data", "an ArrayBuffer decodes too");
  assert.deepEqual([back.id, back.n, [...(back.payload as Uint8Array)]], [7, 2 ** 53 - 1, [1]]);
});

test("protocol: frame numbering: every id and offset round-trips, and dataOverhead is the text head, never short of the binary one", () => {
  const ids = [0, 1, 2, 35, 36, 127, 128, 300, 2 ** 20];
  const offsets = [1, 35, 36, 127, 128, 16383, 16384, 2 ** 31, 2 ** 53 - 1];
  const payload = Uint8Array.of(0, 255, 7);
  for (const id of ids) {
    for (const n of offsets) {
      const text = encodeData(id, n, "xyz") as string;
      assert.equal(text.length - 3, dataOverhead(id, n), `text head of ${id}.${n}`);
      assert.deepEqual(decodeFrame(text), { kind: "data", id, n, payload: "xyz" });
      const binary = encodeData(id, n, payload) as Uint8Array;
      assert.ok(binary.length - payload.length <= dataOverhead(id, n), `binary head of ${id}.${n}`);
      const got = decodeFrame(binary);
      assert.ok(got?.kind === "data");
      assert.deepEqual([got.id, got.n, [...(got.payload as Uint8Array)]], [id, n, [...payload]]);
    }
  }
});

test("protocol: data frames the decoder refuses", () => {
  const bad = [
    "m1.0;x", // offset 0: offsets and numbers start at 1
    `m1.${(2 ** 53).toString(36)};x`, // past a safe integer
    "m.1;x",
    "m1.;x",
    "m1.1", // no head end
    "mZ.1;x", // base 36 is lower case
    "m1.-1;x",
    `m1.${"1".repeat(30)};x`, // a head longer than any valid one
  ];
  for (const frame of bad) assert.equal(decodeFrame(frame), undefined, frame);
  for (
    const frame of [[0x6d, 1], [0x6d, 1, 0], [0x6e, 1, 1], [0x6d, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1]]
  ) {
    assert.equal(decodeFrame(Uint8Array.from(frame)), undefined, frame.join(","));
  }
  for (const frame of ["", "x", "pp", "a", "a-1", "{", "{}", '{"t":"nope"}', "[1]"]) {
    assert.equal(decodeFrame(frame), undefined, JSON.stringify(frame));
  }
});

test("protocol: the heartbeat and the handshake's messages round-trip; malformed ones are refused", () => {
  assert.deepEqual(decodeFrame(PING), { kind: "ping" });
  const good: ControlMessage[] = [
    { t: "hello", v: 1 },
    { t: "new" },
    { t: "resume", token: "x".repeat(64), pos: { h: ["E1", 5], "r:a": ["E2", 0], s: ["", 0] } },
    { t: "stream", id: 2, key: "h", epoch: "E", from: 0 },
    { t: "stream", id: 3, key: "r:blue ✓", epoch: "E" },
    { t: "welcome", resumed: false, token: "", recv: 0, hb: 0 },
  ];
  for (const message of good) assert.deepEqual(decodeFrame(encodeControl(message)), { kind: "control", message });
  const bad = [
    { t: "hello", v: 2 },
    { t: "resume", token: "x".repeat(65), pos: {} },
    { t: "resume", token: "x", pos: [] },
    { t: "resume", token: "x", pos: { h: ["E", -1] } },
    { t: "resume", token: "x", pos: { h: ["E", 1.5] } },
    { t: "resume", token: "x", pos: { h: ["E"] } },
    { t: "stream", id: 0, key: "h", epoch: "E" },
    { t: "stream", id: 1, key: "h", epoch: "E", from: -1 },
    { t: "stream", id: 1, key: "h" },
    { t: "welcome", resumed: "yes", token: "", recv: 0, hb: 0 },
  ];
  for (const message of bad) assert.equal(decodeFrame(JSON.stringify(message)), undefined, JSON.stringify(message));
});

test("protocol: a refused upgrade's close code is 4000 + status for a 4xx but 408, 426 and 429; reasons fit a close frame", () => {
  for (const status of [400, 401, 403, 404, 499]) assert.equal(refusalCode(status), 4000 + status);
  for (const status of [200, 302, 408, 426, 429, 500, 503]) {
    assert.equal(refusalCode(status), undefined, String(status));
  }
  assert.equal(closeReason("short"), "short");
  assert.equal(closeReason("a".repeat(200)), "a".repeat(123));
  assert.equal(closeReason("é".repeat(100)), "é".repeat(61), "never inside a character (2 bytes each)");
  const euro = closeReason("a" + "€".repeat(50));
  assert.equal(euro, "a" + "€".repeat(40), "1 + 40 × 3 = 121 bytes");
});
