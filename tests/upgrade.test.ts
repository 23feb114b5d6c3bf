// The same upgrade request gets the same answer on every path that serves a hub — serve(),
// Hono's upgrade() (served by serveApp, or in-process by app.request), bunAdapter().upgrade in
// Bun.serve, hub.handleRequest in Deno.serve — and on both runtimes: the same refusals, and the
// same subprotocol and extra headers when the upgrade is accepted.
import assert from "node:assert/strict";
import * as net from "node:net";
import { Hono } from "hono";
import { Hub } from "../mod.ts";
import { serve, type Upgrade } from "../src/serve.ts";
import { serveApp, upgrade } from "../src/hono.ts";
import { bunAdapter, type BunServer } from "../src/adapters/bun.ts";
import { Client, deadline, deferred, RawPeer, runtime, Signal, test } from "./_helpers.ts";

/** What a path's hook does with the upgrade: pick a subprotocol, add headers. */
type Choose = (upgrade: Upgrade) => void;

interface Served {
  port: number;
  stop(): Promise<void>;
}

interface Path {
  name: string;
  /** Why this runtime cannot run the path. */
  skip?: string | false;
  /** Serves `hub` on a free loopback port; `choose` (if any) answers each upgrade. */
  start(hub: Hub, choose?: Choose): Served | Promise<Served>;
}

interface BunRuntime {
  serve(options: {
    port: number;
    hostname: string;
    fetch: (req: Request, server: BunServer) => Response | undefined;
    error: (err: Error) => Response;
    websocket: unknown;
  }): { port: number; stop(force?: boolean): Promise<void> | void };
}

interface DenoRuntime {
  serve(
    options: { port: number; hostname: string; onListen(): void },
    handler: (req: Request) => Response | Promise<Response>,
  ): { addr: { port: number }; shutdown(): Promise<void> };
}

const loopback = { port: 0, hostname: "127.0.0.1" };

const paths: Path[] = [
  {
    name: "serve() onUpgrade",
    start: async (hub, choose) => {
      const server = await serve(hub, {
        ...loopback,
        onUpgrade: choose && ((_req, upgrade) => void choose(upgrade)),
      });
      return { port: server.port, stop: () => server.shutdown() };
    },
  },
  {
    name: "serveApp + Hono upgrade() keys",
    start: async (hub, choose) => {
      const app = new Hono();
      app.get("/ws", upgrade(hub, { keys: choose && ((_c, upgrade) => void choose(upgrade)) }));
      app.onError((err, c) => c.text(err.message, 500));
      const server = await serveApp(hub, app, loopback);
      return { port: server.port, stop: () => server.shutdown() };
    },
  },
  {
    name: "Bun.serve + bunAdapter().upgrade",
    skip: runtime !== "bun" && "Bun.serve is Bun's own API",
    start: (hub, choose) => {
      const chorus = bunAdapter(hub);
      const server = (globalThis as unknown as { Bun: BunRuntime }).Bun.serve({
        ...loopback,
        fetch: (req, server) => chorus.upgrade(req, server, choose && ((upgrade) => void choose(upgrade))),
        error: (err) => new Response(err.message, { status: 500 }), // a bad choice throws from upgrade()
        websocket: chorus.websocket,
      });
      return { port: server.port, stop: async () => void await Promise.all([hub.close(), server.stop(true)]) };
    },
  },
  {
    name: "Deno.serve + hub.handleRequest",
    skip: runtime !== "deno" &&
      "hub.handleRequest upgrades with Deno.upgradeWebSocket (Bun's upgrade needs its server)",
    start: (hub, choose) => {
      if (choose) throw new Error("hub.handleRequest has no upgrade hook");
      const server = (globalThis as unknown as { Deno: DenoRuntime }).Deno.serve(
        { ...loopback, onListen() {} },
        (req) => hub.handleRequest(req),
      );
      return {
        port: server.addr.port,
        stop: async () => {
          await hub.close();
          await server.shutdown();
        },
      };
    },
  },
];

/** Sends a raw HTTP request head and returns the response head (status line and headers). */
async function exchange(port: number, lines: string[]): Promise<string> {
  const socket = net.connect({ port, host: "127.0.0.1" });
  const closed = new Promise<void>((res) => socket.once("close", () => res()));
  socket.on("error", () => {});
  const head = deferred<string>();
  let buf = "";
  socket.on("data", (chunk: Uint8Array) => {
    buf += new TextDecoder().decode(chunk);
    const end = buf.indexOf("\r\n\r\n");
    if (end >= 0) head.resolve(buf.slice(0, end));
  });
  socket.once("close", () => head.reject(new Error("closed before a response")));
  try {
    await deadline(new Promise<void>((res) => socket.once("connect", () => res())), "tcp connect");
    socket.write([...lines, "", ""].join("\r\n"));
    return await deadline(head.promise, "a response head");
  } finally {
    socket.destroy();
    await deadline(closed, "raw socket close");
  }
}

const status = (head: string): number => Number(head.split(" ")[1]);

/** The head of an upgrade request to `/ws`, with `extra` headers, without those named in `drop`. */
function upgradeHead(port: number, extra: string[] = [], drop: string[] = []): string[] {
  const base = [
    `Host: 127.0.0.1:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
  ];
  return [
    "GET /ws HTTP/1.1",
    ...base.filter((line) => !drop.includes(line.split(":")[0].toLowerCase())),
    ...extra,
  ];
}

// ---- the same refusals everywhere -------------------------------------------------------------

interface Row {
  /** What is sent. */
  request: string;
  /** The answer expected on every path. */
  status: number;
  send(port: number): Promise<string>;
}

const rows: Row[] = [
  {
    request: "a plain GET (not an upgrade)",
    status: 426,
    send: (port) => exchange(port, ["GET /ws HTTP/1.1", `Host: 127.0.0.1:${port}`, "Connection: close"]),
  },
  {
    request: "an upgrade from a foreign origin",
    status: 403,
    send: (port) => exchange(port, upgradeHead(port, ["Origin: http://evil.example"])),
  },
  {
    request: "a malformed upgrade (no Sec-WebSocket-Key)",
    status: 400,
    send: (port) => exchange(port, upgradeHead(port, [], ["sec-websocket-key"])),
  },
  {
    request: "a valid upgrade",
    status: 101,
    send: (port) => exchange(port, upgradeHead(port)),
  },
];

/** Sent last, once the hub is closed. */
const closedRow: Row = {
  request: "an upgrade to a closed hub",
  status: 503,
  send: (port) => exchange(port, upgradeHead(port)),
};

/**
 * Cells a path does not answer as the table says yet, with the reason; they are sent and
 * reported, not asserted. Keyed `path|request`.
 */
for (const path of paths) {
  test(`upgrade answers: ${path.name} answers 426, 403, 400, 101, 503 like every path`, async () => {
    const hub = new Hub();
    hub.handleError(() => {}); // the raw 101 peer hangs up without a close frame (Deno: "Unexpected EOF")
    const served = await path.start(hub);
    const got: Record<string, number> = {};
    const want: Record<string, number> = {};
    try {
      for (const row of rows) got[row.request] = status(await row.send(served.port));
      await hub.close();
      got[closedRow.request] = status(await closedRow.send(served.port));
      for (const row of [...rows, closedRow]) want[row.request] = row.status;
      assert.deepEqual(got, want);
      assert.equal(hub.size, 0);
    } finally {
      await served.stop();
    }
  }, { skip: path.skip });
}

test("upgrade answers: Hono app.request() without a server answers 426, 403, 503 like every path", async () => {
  const hub = new Hub();
  const app = new Hono();
  app.get("/ws", upgrade(hub));
  const plain = await app.request("/ws");
  const foreign = await app.request("http://127.0.0.1/ws", {
    headers: { upgrade: "websocket", connection: "Upgrade", origin: "http://evil.example" },
  });
  await hub.close();
  const closed = await app.request("http://127.0.0.1/ws", { headers: { upgrade: "websocket", connection: "Upgrade" } });
  assert.deepEqual([plain.status, foreign.status, closed.status], [426, 403, 503]);
  await Promise.all([plain.body?.cancel(), foreign.body?.cancel(), closed.body?.cancel()]);
});

// ---- the same subprotocol and headers everywhere ----------------------------------------------

/** The value of a header in a response head, `undefined` when absent. */
function header(head: string, name: string): string | undefined {
  for (const line of head.split("\r\n").slice(1)) {
    const colon = line.indexOf(":");
    if (line.slice(0, colon).trim().toLowerCase() === name) return line.slice(colon + 1).trim();
  }
  return undefined;
}

/** A hub that counts its sessions (and the subprotocol each answered) and ignores the raw peers' abrupt ends. */
function countingHub(): { hub: Hub; signal: Signal; connects: string[]; protocols: string[] } {
  const hub = new Hub();
  const signal = new Signal();
  const connects: string[] = [];
  const protocols: string[] = [];
  hub.handleConnect((s) => {
    connects.push(s.id);
    protocols.push(s.protocol);
    signal.ping();
  });
  hub.handleDisconnect(() => signal.ping());
  hub.handleError(() => {});
  return { hub, signal, connects, protocols };
}

const OFFERED = ["v0.chat", "v1.chat"];

for (const path of paths) {
  const hookless = path.name === "Deno.serve + hub.handleRequest";
  test(`subprotocol: ${path.name} answers the chosen one, with the hook's headers`, async () => {
    const { hub, signal, connects } = countingHub();
    const offers: (readonly string[])[] = [];
    const served = await path.start(hub, (upgrade) => {
      offers.push(upgrade.protocols);
      upgrade.protocol = "v1.chat";
      upgrade.headers.set("x-chorus-test", "chosen");
      upgrade.headers.append("set-cookie", "a=1");
      upgrade.headers.append("set-cookie", "b=2");
    });
    try {
      const c = await Client.open(`ws://127.0.0.1:${served.port}/ws`, OFFERED);
      assert.equal(c.ws.protocol, "v1.chat");
      await signal.until(() => connects.length === 1, "the session");
      await c.close();
      const raw = await RawPeer.upgrade(served.port, "/ws", { "Sec-WebSocket-Protocol": OFFERED.join(", ") });
      assert.equal(raw.status, 101);
      assert.equal(header(raw.head, "sec-websocket-protocol"), "v1.chat");
      assert.equal(header(raw.head, "x-chorus-test"), "chosen");
      assert.deepEqual(
        raw.head.split("\r\n").filter((l) => /^set-cookie:/i.test(l)).map((l) => l.split(":")[1].trim()),
        ["a=1", "b=2"],
      );
      await raw.destroy();
      assert.deepEqual(offers, [OFFERED, OFFERED]);
      await signal.until(() => hub.size === 0, "both sessions to end");
    } finally {
      await served.stop();
    }
  }, { skip: path.skip || (hookless && "hub.handleRequest has no upgrade hook (keys and remoteAddr only)") });

  test(`subprotocol: ${path.name} answers the first offered when nothing is chosen`, async () => {
    const { hub, signal, connects, protocols } = countingHub();
    const served = await path.start(hub, hookless ? undefined : () => {});
    try {
      const c = await Client.open(`ws://127.0.0.1:${served.port}/ws`, OFFERED);
      assert.equal(c.ws.protocol, "v0.chat");
      await signal.until(() => connects.length === 1, "the first session");
      const none = await Client.open(`ws://127.0.0.1:${served.port}/ws`);
      assert.equal(none.ws.protocol, "");
      await signal.until(() => connects.length === 2, "two sessions");
      assert.deepEqual(protocols, ["v0.chat", ""], "session.protocol is the answered subprotocol");
      await Promise.all([c.close(), none.close()]);
      const raw = await RawPeer.upgrade(served.port, "/ws", { "Sec-WebSocket-Protocol": "v2.chat, v1.chat" });
      assert.equal(header(raw.head, "sec-websocket-protocol"), "v2.chat");
      await raw.destroy();
      const bare = await RawPeer.upgrade(served.port, "/ws");
      assert.equal(header(bare.head, "sec-websocket-protocol"), undefined);
      await bare.destroy();
      await signal.until(() => hub.size === 0, "every session to end");
    } finally {
      await served.stop();
    }
  }, { skip: path.skip });

  test(`subprotocol: ${path.name} fails a choice the client did not offer (500, no session)`, async () => {
    const { hub, connects } = countingHub();
    // serve() reports the hook's error as Deno.serve would, on both runtimes: collect it here
    const logged: string[] = [];
    const consoleError = console.error;
    console.error = (err: unknown) => void logged.push(String(err));
    const served = await path.start(hub, (upgrade) => {
      if (upgrade.protocols.includes("bad.header")) upgrade.headers.set("sec-websocket-accept", "forged");
      else upgrade.protocol = "v9.chat";
    });
    try {
      const notOffered = await exchange(served.port, upgradeHead(served.port, [`Sec-WebSocket-Protocol: v1.chat`]));
      assert.equal(status(notOffered), 500);
      const handshakeHeader = await exchange(
        served.port,
        upgradeHead(served.port, ["Sec-WebSocket-Protocol: bad.header"]),
      );
      assert.equal(status(handshakeHeader), 500);
      const c = new Client(`ws://127.0.0.1:${served.port}/ws`, ["v1.chat"]);
      await assert.rejects(deadline(c.opened, "the refusal"));
      await c.closed;
      assert.equal(hub.size, 0);
      assert.deepEqual(connects, []);
      if (path.name === "serve() onUpgrade") {
        assert.match(
          logged[0],
          /TypeError: Subprotocol "v9.chat" was not offered by the client \(offered: "v1.chat"\)/,
        );
        assert.match(logged[1], /TypeError: The sec-websocket-accept header belongs to the WebSocket handshake/);
      }
    } finally {
      console.error = consoleError;
      await served.stop();
    }
  }, { skip: path.skip || (hookless && "hub.handleRequest has no upgrade hook (keys and remoteAddr only)") });
}

for (const path of paths) {
  const hookless = path.name === "Deno.serve + hub.handleRequest";
  test(`subprotocol: ${path.name} answers none when the hook says null (RFC 6455 allows it)`, async () => {
    const { hub, signal, connects } = countingHub();
    const served = await path.start(hub, (upgrade) => void (upgrade.protocol = null));
    try {
      const raw = await RawPeer.upgrade(served.port, "/ws", { "Sec-WebSocket-Protocol": "chorus.v1, v1.chat" });
      assert.equal(raw.status, 101);
      assert.equal(header(raw.head, "sec-websocket-protocol"), undefined, "no subprotocol answered");
      let text = "";
      raw.socket.on("data", (chunk: Uint8Array) => {
        text += new TextDecoder().decode(chunk);
        signal.ping();
      });
      await signal.until(() => connects.length === 1, "the session");
      hub.broadcast("plain hi");
      await signal.until(() => text.includes("plain hi"), "the broadcast");
      assert.doesNotMatch(text, /hello|m\w+\.\w+;/, "a plain session: no chorus.v1 hello, no numbered frame");
      await raw.destroy();
      await signal.until(() => hub.size === 0, "the session to end");
    } finally {
      await served.stop();
    }
  }, { skip: path.skip || (hookless && "hub.handleRequest has no upgrade hook (keys and remoteAddr only)") });
}

test("options: an unknown name or a callback that is not a function is a TypeError naming it", async () => {
  const hub = new Hub();
  // deno-lint-ignore no-explicit-any
  const any = (o: unknown) => o as any;
  await assert.rejects(serve(hub, any({ port: 0, onUpgrde: () => {} })), { name: "TypeError", message: /"onUpgrde"/ });
  await assert.rejects(serve(hub, any({ port: 0, fetch: "index.html" })), { name: "TypeError", message: /fetch/ });
  await assert.rejects(serve(hub, any({ port: 0, onUpgrade: {} })), { name: "TypeError", message: /onUpgrade/ });
  await assert.rejects(serve(hub, any(42)), TypeError);
  assert.throws(() => upgrade(hub, any({ key: () => ({}) })), { name: "TypeError", message: /"key"/ });
  assert.throws(() => upgrade(hub, any({ keys: { uid: "u" } })), { name: "TypeError", message: /keys/ });
  await assert.rejects(serveApp(hub, new Hono(), any({ prot: 0 })), { name: "TypeError", message: /"prot"/ });
  assert.throws(() => bunAdapter(hub, any({ nativeFanOut: false })), { name: "TypeError", message: /"nativeFanOut"/ });
  // every known name, given: no error
  assert.equal(typeof upgrade(hub, { keys: () => undefined }), "function");
  assert.equal(typeof bunAdapter(hub, { nativeFanout: false }).upgrade, "function");
  assert.equal(hub.size, 0);
});
