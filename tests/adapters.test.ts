// The adapters used directly, without serve(): each runs on its own runtime and is skipped,
// with the reason, on the other.
import assert from "node:assert/strict";
import { Hub, type Session } from "../mod.ts";
import { bunAdapter, type BunServer } from "../src/adapters/bun.ts";
import { Client, deferred, runtime, test } from "./_helpers.ts";

interface DenoServe {
  serve(
    options: { port: number; hostname: string; onListen: () => void },
    handler: (req: Request, info: { remoteAddr: { hostname: string } }) => Response | Promise<Response>,
  ): { addr: { port: number }; shutdown(): Promise<void> };
}

interface BunServe {
  serve(options: {
    port: number;
    hostname: string;
    fetch: (req: Request, server: BunServer) => Response | undefined;
    websocket: ReturnType<typeof bunAdapter<{ uid: string }>>["websocket"];
  }): { port: number; stop(force?: boolean): Promise<void> | void };
}

test("Deno.serve with hub.handleRequest (keys and remoteAddr from the handler)", async () => {
  const deno = (globalThis as unknown as { Deno: DenoServe }).Deno;
  const hub = new Hub<{ uid: string }>();
  const seen = deferred<Session<{ uid: string }>>();
  hub.handleConnect((s) => seen.resolve(s));
  hub.handleMessage((s, m) => s.write(`${s.get("uid")}:${m}`));
  const server = deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (req, info) => hub.handleRequest(req, { keys: { uid: "d1" }, remoteAddr: info.remoteAddr.hostname }),
  );
  const c = await Client.open(`ws://127.0.0.1:${server.addr.port}/`);
  try {
    const s = await seen.promise;
    assert.equal(s.remoteAddr, "127.0.0.1");
    c.send("hi");
    assert.equal(await c.next(), "d1:hi");
  } finally {
    await c.close();
    await hub.close();
    await server.shutdown();
  }
}, { skip: runtime !== "deno" && "Deno.serve is Deno's own API" });

test("Bun.serve with bunAdapter (upgrade helper and websocket handlers)", async () => {
  const bun = (globalThis as unknown as { Bun: BunServe }).Bun;
  const hub = new Hub<{ uid: string }>({ maxMessageSize: 100 });
  const chorus = bunAdapter(hub);
  assert.equal(chorus.websocket.maxPayloadLength, 100, "maxMessageSize maps onto Bun's maxPayloadLength");
  const seen = deferred<Session<{ uid: string }>>();
  hub.handleConnect((s) => seen.resolve(s));
  hub.handleMessage((s, m) => s.write(`${s.get("uid")}:${m}`));
  const server = bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req, server) => chorus.upgrade(req, server, { uid: "b1" }),
    websocket: chorus.websocket,
  });
  const c = await Client.open(`ws://127.0.0.1:${server.port}/`);
  try {
    const s = await seen.promise;
    assert.equal(s.remoteAddr, "127.0.0.1");
    c.send("hi");
    assert.equal(await c.next(), "b1:hi");
    const plain = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(plain.status, 426, "a plain request is not an upgrade");
    await plain.body?.cancel();
  } finally {
    await c.close();
    await hub.close();
    await server.stop(true);
  }
}, { skip: runtime !== "bun" && "Bun.serve is Bun's own API" });
