// The chorus.v1 handshake's own frames (the client's new or resume request) are held to
// maxMessageSize like every other frame, on both runtimes (Deno has no message limit of its own).

import assert from "node:assert/strict";
import { encodeControl, PROTOCOL } from "../src/protocol.ts";
import { deadline, deferred, startServer, test } from "./_helpers.ts";

test("handshake: a resume request larger than maxMessageSize closes the connection with 1009 and makes no session", async () => {
  const t = await startServer({ resume: {}, maxMessageSize: 1024 });
  const pos: Record<string, [string, number]> = {};
  for (let i = 0; i < 60; i++) pos[`r:room-with-a-long-name-${i}`] = ["epoch", i];
  const request = encodeControl({ t: "resume", token: "A".repeat(22), pos });
  assert.ok(request.length > 1024);
  const ws = new WebSocket(t.wsUrl(), [PROTOCOL]);
  const closed = deferred<number>();
  ws.onmessage = () => ws.send(request); // the hub's hello
  ws.onclose = (e) => closed.resolve(e.code);
  try {
    assert.equal(await deadline(closed.promise, "the close"), 1009);
    assert.equal(t.hub.size, 0);
    assert.equal(t.hub.metrics().connects, 0);
  } finally {
    ws.close();
    await t.close();
  }
});
