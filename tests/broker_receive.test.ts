// How a broker reads its channel (wire.ts: classify and receive), the one way for the Redis and
// memory brokers: echo, released notice, presence notice, broadcast; what reaches the hub.
import assert from "node:assert/strict";
import { BrokerMessageError } from "../mod.ts";
import {
  classify,
  encodeMessage,
  encodePresence,
  encodeReleased,
  receive,
  type ReceiveOptions,
} from "../src/brokers/wire.ts";
import { fakeLink } from "./_streams.ts";
import { test, utf8 } from "./_helpers.ts";

const entry = { id: "s1", node: "b", keys: { name: "ann" } };

test("wire classify: echo, released, presence, broadcast; an echo is only a broadcast without position of this node", () => {
  const mine = encodeMessage({ node: "a", kind: "all", payload: "hi" });
  assert.deepEqual(classify(mine, 1000, utf8("a")), { type: "echo" });
  assert.equal(classify(mine, 1000).type, "broadcast", "without the node's id, an echo is a broadcast");
  assert.equal(classify(mine, 1000, utf8("b")).type, "broadcast");
  const positioned = encodeMessage({
    node: "a",
    kind: "room",
    room: "blue",
    payload: "p",
    position: { key: "r:blue", epoch: "e", offset: 1, seq: 1, time: 1 },
  });
  assert.equal(classify(positioned, 1000, utf8("a")).type, "broadcast", "a positioned broadcast is no echo");
  assert.throws(() => classify(mine, mine.length - 1, utf8("a")), BrokerMessageError, "an oversized echo is refused");

  assert.deepEqual(classify(encodeReleased("b", "a", "sess"), 1000, utf8("a")), {
    type: "released",
    notice: { node: "b", from: "a", session: "sess" },
  });
  const presence = classify(encodePresence("b", "blue", { joins: [entry], leaves: [] }), 1000, utf8("a"));
  assert.deepEqual(presence, {
    type: "presence",
    notice: { node: "b", room: "blue", joins: [entry], leaves: [] },
  });
  assert.throws(() => classify(utf8("not chorus"), 1000), BrokerMessageError);
});

test("wire receive: the hub gets broadcasts, other nodes' presence, and releases of its own sessions; failures are reported", () => {
  const link = fakeLink("a");
  const presence: string[] = [];
  link.presence = (room, change) => presence.push(`${room}:${change.joins.length}+${change.leaves.length}`);
  const redis: ReceiveOptions = { max: 1000, echo: utf8("a") };
  receive(link, encodeMessage({ node: "a", kind: "all", payload: "echo" }), redis);
  assert.deepEqual(link.got, [], "its own echo is dropped");
  receive(link, encodeMessage({ node: "a", kind: "all", payload: "echo" }), { max: 1000 });
  assert.equal(link.got.length, 1, "without echo, the hub gets it (and drops it itself)");
  receive(link, encodeMessage({ node: "b", kind: "room", room: "blue", payload: "x" }), redis);
  assert.deepEqual(link.got[1], { node: "b", kind: "room", room: "blue", payload: "x" });

  receive(link, encodeReleased("b", "a", "s1"), redis);
  receive(link, encodeReleased("b", "c", "s2"), redis); // another node's session
  receive(link, encodeReleased("a", "a", "s3"), redis); // claimed by this node itself
  assert.deepEqual(link.freed, ["s1"]);

  receive(link, encodePresence("b", "blue", { joins: [entry], leaves: [] }), redis);
  receive(link, encodePresence("a", "blue", { joins: [entry], leaves: [] }), redis); // its own: the hub reported it
  receive(link, encodePresence("a", "red", { joins: [], leaves: [entry] }), { max: 1000, self: true });
  assert.deepEqual(presence, ["blue:1+0", "red:0+1"]);

  assert.equal(link.errors.length, 0);
  receive(link, utf8("foreign"), redis);
  receive(link, encodeMessage({ node: "b", kind: "all", payload: "x".repeat(2000) }), redis);
  link.deliver = () => {
    throw new Error("the hub failed");
  };
  receive(link, encodeMessage({ node: "b", kind: "all", payload: "y" }), redis);
  assert.equal(link.errors.length, 3);
  assert.ok(link.errors[0] instanceof BrokerMessageError);
  assert.ok(link.errors[1] instanceof BrokerMessageError, "oversized");
  assert.match(String(link.errors[2]), /the hub failed/);
});
