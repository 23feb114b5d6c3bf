// The kept frames of a resumable session (src/core/resume/_kept.ts), alone: what a client's
// position, its acknowledgements and its count of frames let go, across epochs of one key.

import assert from "node:assert/strict";
import type { Stream } from "../src/core/_contracts.ts";
import { Kept } from "../src/core/resume/_kept.ts";
import { test } from "./_helpers.ts";

const e1: Stream = { id: 4, key: "r:a", epoch: "E1", offset: 0 };
const e2: Stream = { id: 7, key: "r:a", epoch: "E2", offset: 0 };
const hub: Stream = { id: 2, key: "h", epoch: "H", offset: 0 };

function kept(): Kept {
  const k = new Kept();
  k.push(e1, 1, "a1", 2);
  k.push(hub, 1, "h1", 2);
  k.push(e1, 2, "a2", 2);
  k.push(e2, 1, "b1", 2);
  k.push(e2, 2, "b2", 2);
  k.push(hub, 2, "h2", 2);
  return k;
}

const frames = (k: Kept) => k.frames.slice(k.head);

test("kept frames: a position in the newer epoch of a key covers every frame of the older one", () => {
  const k = kept();
  k.forget({ "r:a": ["E2", 1], h: ["H", 1] });
  assert.deepEqual(frames(k), ["b2", "h2"]);
  assert.equal(k.bytes, 4);
});

test("kept frames: a position in the older epoch covers its own frames only; the newer epoch's stay", () => {
  const k = kept();
  k.forget({ "r:a": ["E1", 2] });
  assert.deepEqual(frames(k), ["h1", "b1", "b2", "h2"]);
});

test("kept frames: an epoch not among the kept frames is placed by idOf, or else left alone", () => {
  const k = kept();
  k.forget({ "r:a": ["E3", 5] }); // unknown: nothing of r:a can be said to be had
  assert.deepEqual(frames(k), ["a1", "h1", "a2", "b1", "b2", "h2"]);
  k.forget({ "r:a": ["E3", 5] }, (_key, epoch) => (epoch === "E3" ? 9 : undefined)); // newer than both
  assert.deepEqual(frames(k), ["h1", "h2"]);
});

test("kept frames: acknowledgements by id and offset, by count, and the streams still kept", () => {
  const k = kept();
  assert.deepEqual(k.streamsKept().map((s) => s.id), [4, 2, 7]);
  k.have(4, 2);
  assert.deepEqual(frames(k), ["h1", "b1", "b2", "h2"]);
  k.drop(2);
  assert.deepEqual(frames(k), ["b2", "h2"]);
  assert.deepEqual(k.streamsKept().map((s) => s.id), [7, 2]);
  assert.equal(k.length, 2);
});
