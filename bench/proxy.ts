/**
 * A TCP proxy for the `cut` scenario (run by Bun; Deno works too), on 127.0.0.1 only: it passes
 * every connection through to the server and, on `cut`, resets them all at once on both sides
 * (`socket.resetAndDestroy()`: an RST, no WebSocket close), as a network failure would.
 *
 *   bun bench/proxy.ts <server port>
 *
 * Prints `{"port":N}` when ready; on the line `cut` answers `{"t":"cut","at":<ms>,"n":<connections>}`;
 * on `target <port>` sends new connections to that port from then on (a load balancer moving
 * clients to another node) and answers `{"t":"target","port":<port>}`.
 *
 * @module
 */

import * as net from "node:net";
import process from "node:process";
import { createInterface } from "node:readline";
import { now } from "./stats.ts";

let target = Number(process.argv[process.argv.length - 1]);
const pairs = new Set<[net.Socket, net.Socket]>();
const out = (msg: unknown): void => void process.stdout.write(JSON.stringify(msg) + "\n");

const server = net.createServer((client) => {
  const upstream = net.connect(target, "127.0.0.1");
  const pair: [net.Socket, net.Socket] = [client, upstream];
  pairs.add(pair);
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
  const drop = () => {
    if (!pairs.delete(pair)) return;
    client.destroy();
    upstream.destroy();
  };
  for (const s of pair) {
    s.on("error", drop);
    s.on("close", drop);
  }
});
server.listen(0, "127.0.0.1", () => out({ port: (server.address() as net.AddressInfo).port }));

createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.startsWith("target ")) {
    target = Number(line.slice(7));
    out({ t: "target", port: target });
    return;
  }
  if (line !== "cut") return;
  const cut = [...pairs];
  pairs.clear();
  const at = now();
  for (const [client, upstream] of cut) {
    client.resetAndDestroy();
    upstream.resetAndDestroy();
  }
  out({ t: "cut", at, n: cut.length });
}).on("close", () => process.exit(0));
