/**
 * Broadcast: every message a client sends goes to every client. On Bun the broadcast is one
 * native `server.publish`; on Deno a loop over the sessions. Same file on both:
 *
 *   deno run -A examples/broadcast/main.ts
 *   bun run examples/broadcast/main.ts
 *
 * @module
 */

import { Hub } from "../../mod.ts";
import { serve } from "../../src/serve.ts";

const hub = new Hub();
hub.handleMessage((_s, msg) => hub.broadcast(msg));
hub.handleMessageBinary((_s, msg) => hub.broadcast(msg));
const server = await serve(hub, { port: 8080 });
console.log(`broadcast hub on ${server.url} (WebSocket: ws://${server.url.host}/)`);
