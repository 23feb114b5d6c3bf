// The chorus.v1 frames alone: encoding and decoding, and what the decoder refuses.

import assert from "node:assert/strict";
import { decodeFrame, encodeAck, encodeControl, encodeData, encodeReceived } from "../src/protocol.ts";
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
