/**
 * The Node.js peers for `npm run bench:peers`: `ws` 8 or Socket.IO 4.8, each doing the fan-out job of
 * `bench/server.ts hub`: a text message that starts with `b` goes to every connected client. `ws`
 * sends it to each of `wss.clients`; Socket.IO gets it as the event `m` and emits it to everyone
 * (`io.emit`, WebSocket transport only, as bench/_engine_io.ts speaks it). Prints `{"port":N}` when
 * ready; `GET /quit` exits, and so does the end of stdin (the orchestrator is gone).
 *
 *   node bench/node_server.mjs ws      node bench/node_server.mjs socket.io
 *
 * JavaScript, since Node 20 runs no TypeScript.
 *
 * @module
 */

import { createServer } from "node:http";
import process from "node:process";

const which = process.argv[2];
if (which !== "ws" && which !== "socket.io") throw new Error("usage: node_server.mjs ws|socket.io");

process.stdin.on("end", () => process.exit(0));
process.stdin.resume();

const http = createServer((req, res) => {
  if (req.url === "/quit") {
    res.end("bye");
    setTimeout(() => process.exit(0), 20);
  } else if (which === "ws" || !req.url?.startsWith("/socket.io/")) {
    res.writeHead(404).end("not found");
  }
});

if (which === "ws") {
  const { WebSocketServer } = await import("ws");
  const wss = new WebSocketServer({ server: http });
  wss.on("connection", (ws) => {
    ws.on("message", (data, isBinary) => {
      if (isBinary || data[0] !== 98) return;
      for (const client of wss.clients) client.send(data, { binary: false });
    });
  });
} else {
  const { Server } = await import("socket.io");
  const io = new Server(http, { transports: ["websocket"], serveClient: false });
  io.on("connection", (socket) => {
    socket.on("m", (text) => {
      if (typeof text === "string" && text.charCodeAt(0) === 98) io.emit("m", text);
    });
  });
}

http.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: http.address().port })));
