// A bare WebSocket server on the runtime itself (Deno.serve or Bun.serve), no chorus: for tests
// that play a server's side by hand (a scripted chorus.v1 peer, or any plain server).

import { runtime } from "./_helpers.ts";

/** One connection of a {@linkcode RawServer}. */
export interface RawSession {
  /** Sends a frame: a string as text, bytes as binary. */
  write(data: string | Uint8Array): void;
  /** Closes with a code and reason. */
  close(code?: number, reason?: string): void;
}

/** What the test does on each event. */
export interface RawHandlers {
  open?(s: RawSession): void;
  message?(s: RawSession, data: string | Uint8Array): void;
  close?(s: RawSession, code: number): void;
}

/** A running raw server. */
export interface RawServer {
  readonly port: number;
  /** `ws://127.0.0.1:port` + path. */
  wsUrl(path?: string): string;
  /** Stops listening and drops every connection. */
  close(): Promise<void>;
}

/**
 * Starts a bare WebSocket server on port 0.
 * @param handlers The test's handlers.
 * @param protocol The subprotocol to answer, when the client offers it (none otherwise).
 */
export function rawServer(handlers: RawHandlers, protocol?: string): RawServer {
  return runtime === "deno" ? denoServer(handlers, protocol) : bunServer(handlers, protocol);
}

function offered(req: Request, protocol: string | undefined): string | undefined {
  const list = req.headers.get("sec-websocket-protocol")?.split(",").map((p) => p.trim()) ?? [];
  return protocol !== undefined && list.includes(protocol) ? protocol : undefined;
}

function denoServer(handlers: RawHandlers, protocol: string | undefined): RawServer {
  const live = new Set<WebSocket>();
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req, { protocol: offered(req, protocol) });
    socket.binaryType = "arraybuffer";
    const s: RawSession = {
      write: (data) => socket.readyState === 1 && socket.send(data as string | Uint8Array<ArrayBuffer>),
      close: (code, reason) => socket.close(code, reason),
    };
    socket.onopen = () => {
      live.add(socket);
      handlers.open?.(s);
    };
    socket.onmessage = (e) => handlers.message?.(s, typeof e.data === "string" ? e.data : new Uint8Array(e.data));
    socket.onclose = (e) => {
      live.delete(socket);
      handlers.close?.(s, e.code || 1006);
    };
    socket.onerror = () => {};
    return response;
  });
  return {
    port: server.addr.port,
    wsUrl: (path = "/") => `ws://127.0.0.1:${server.addr.port}${path}`,
    async close() {
      for (const ws of live) ws.close(1001);
      await server.shutdown();
    },
  };
}

interface BunWs {
  data: RawSession;
  send(data: string | Uint8Array): number;
  close(code?: number, reason?: string): void;
}

function bunServer(handlers: RawHandlers, protocol: string | undefined): RawServer {
  // deno-lint-ignore no-explicit-any
  const Bun = (globalThis as any).Bun;
  const live = new Set<BunWs>();
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    // deno-lint-ignore no-explicit-any
    fetch(req: Request, srv: any) {
      const answer = offered(req, protocol);
      // Without an explicit header Bun answers the first offered subprotocol itself.
      const headers = { "sec-websocket-protocol": answer ?? "" };
      return srv.upgrade(req, { data: undefined, headers: answer ? headers : undefined })
        ? undefined
        : new Response("upgrade failed", { status: 400 });
    },
    websocket: {
      open(ws: BunWs) {
        live.add(ws);
        ws.data = { write: (data) => void ws.send(data), close: (code, reason) => ws.close(code, reason) };
        handlers.open?.(ws.data);
      },
      message: (ws: BunWs, m: string | Uint8Array) => handlers.message?.(ws.data, m),
      close(ws: BunWs, code: number) {
        live.delete(ws);
        handlers.close?.(ws.data, code);
      },
    },
  });
  return {
    port: server.port,
    wsUrl: (path = "/") => `ws://127.0.0.1:${server.port}${path}`,
    async close() {
      for (const ws of live) ws.close(1001);
      await server.stop(true);
    },
  };
}
