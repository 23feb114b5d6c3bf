// Compiled by `tsc -p tsconfig.bun.json` with bun-types (never run): proves a Hono app and
// `websocket(hub)` from the Hono integration fit Bun's real `Bun.serve` types.
import { Hono } from "hono";
import { Hub } from "../../mod.ts";
import { upgrade, websocket } from "../../src/hono.ts";

const hub = new Hub<{ uid: string }>();
const app = new Hono<{ Variables: { uid: string } }>();
app.get("/ws", upgrade(hub, { keys: (c) => ({ uid: String(c.get("uid")) }) }));
Bun.serve({ port: 0, fetch: app.fetch, websocket: websocket(hub) });
