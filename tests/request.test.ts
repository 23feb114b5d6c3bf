// session.request is kept as strings and rebuilt on first use: it must still carry the url,
// method and every header of the upgrade, and be the same object on every read.

import assert from "node:assert/strict";
import { deferred, RawPeer, startServer, test } from "./_helpers.ts";
import type { Session } from "../mod.ts";

test("session.request keeps the upgrade's url and headers, built once on first use", async () => {
  const t = await startServer();
  const connected = deferred<Session>();
  t.hub.handleConnect((s) => connected.resolve(s));
  const peer = await RawPeer.upgrade(t.port, "/chat?room=a%20b", {
    Cookie: "sid=1; theme=dark:blue",
    "X-Token": "abc, def",
  });
  try {
    assert.equal(peer.status, 101);
    const s = await connected.promise;
    const req = s.request;
    assert.equal(req, s.request, "the same Request on every read");
    assert.equal(new URL(req.url).pathname, "/chat");
    assert.equal(new URL(req.url).searchParams.get("room"), "a b");
    assert.equal(req.method, "GET");
    assert.equal(req.headers.get("cookie"), "sid=1; theme=dark:blue");
    assert.equal(req.headers.get("x-token"), "abc, def");
    assert.equal(req.headers.get("upgrade")?.toLowerCase(), "websocket");
  } finally {
    await peer.destroy();
    await t.signal.until(() => t.hub.size === 0, "session gone");
    await t.close();
  }
});
