// A resumable session whose client stops answering pings (its side of the link went silent) is a
// lost connection, not a client that left: the session waits for its client, on both runtimes
// (Deno's idleTimeout closes with 1001 "No response from ping frame."; Bun may report the close
// of a connection the hub gave up at once).

import assert from "node:assert/strict";
import { RawPeer, startServer, test } from "./_helpers.ts";

/** A client→server text frame (masked, as RFC 6455 wants). */
function maskedText(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  if (payload.length > 125) throw new RangeError("short frames only");
  const mask = [1, 2, 3, 4];
  const frame = new Uint8Array(6 + payload.length);
  frame.set([0x81, 0x80 | payload.length, ...mask]);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i] ^ mask[i % 4];
  return frame;
}

test("resume: a client that stops answering pings is given up as a lost connection: its session waits, detached, and does not end", async () => {
  // pongWait is Deno's idleTimeout (1 s): it gives up first, before the hub's own checks
  const t = await startServer({ resume: {}, pingInterval: 5000, pongWait: 1000 });
  const closes: number[] = [];
  t.hub.handleClose((_s, code) => {
    closes.push(code);
    t.signal.ping();
  });
  const peer = await RawPeer.upgrade(t.port, "/", { "Sec-WebSocket-Protocol": "chorus.v1" });
  try {
    peer.socket.write(maskedText('{"t":"new"}')); // then silence: no pong, no frame
    await t.signal.until(() => t.hub.size === 1, "a session");
    await t.signal.until(() => closes.length === 1, "the connection given up", 5000);
    assert.deepEqual(closes, [1006], "a lost connection");
    assert.deepEqual(t.disconnects, [], "the session did not end");
    assert.equal(t.hub.size, 1);
    assert.equal(t.hub.metrics().detached, 1);
  } finally {
    await peer.destroy();
    await t.close();
  }
});
