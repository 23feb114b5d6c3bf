// resume.maxDetached: a node keeps at most that many sessions waiting for their clients; past it
// the one that has waited longest ends, reported, and its client gets a new session.

import assert from "node:assert/strict";
import { startServer, test } from "./_helpers.ts";
import { Proxy } from "./_proxy.ts";
import { V1Peer } from "./_v1.ts";

test("resume: past resume.maxDetached waiting sessions, the one that waited longest ends (reported); its client gets resumed: false", async () => {
  const t = await startServer({ resume: { maxDetached: 2 }, pingInterval: 0 });
  t.hub.handleClose(() => t.signal.ping());
  const proxies: Proxy[] = [];
  const peers: V1Peer[] = [];
  const tokens: string[] = [];
  const ids: string[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const proxy = await Proxy.start(t.port);
      proxies.push(proxy);
      const { peer, welcome } = await V1Peer.open(`ws://127.0.0.1:${proxy.port}/`);
      peers.push(peer);
      tokens.push(welcome.token);
      await t.signal.until(() => t.hub.size === i + 1, `session ${i}`);
      ids.push(t.hub.sessions().find((s) => !ids.includes(s.id))!.id);
    }
    for (let i = 0; i < 3; i++) {
      proxies[i].cut();
      await t.signal.until(() => !t.hub.sessions().find((s) => s.id === ids[i])?.connected, `detached ${i}`);
    }
    await t.signal.until(() => t.disconnects.length === 1, "the longest waiting ends");
    assert.deepEqual(t.disconnects, [ids[0]]);
    assert.equal(t.hub.metrics().detached, 2);
    assert.ok(t.errors.some((e) => /maxDetached \(2\)/.test(e.message)), String(t.errors));
    const first = await V1Peer.resume(`ws://127.0.0.1:${proxies[0].port}/`, tokens[0], {});
    assert.equal(first.welcome.resumed, false, "its session ended");
    const last = await V1Peer.resume(`ws://127.0.0.1:${proxies[2].port}/`, tokens[2], {});
    assert.equal(last.welcome.resumed, true, "the others wait");
    peers.push(first.peer, last.peer);
  } finally {
    for (const p of peers) await p.close().catch(() => {});
    for (const p of proxies) await p.close();
    await t.close();
  }
});
