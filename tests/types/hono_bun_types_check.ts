// Compiled by `tsc -p tsconfig.bun.json` with bun-types (never run): proves a Hono app and
// `websocket(hub)` from the Hono integration fit Bun's real `Bun.serve` types.
import { Hono } from "hono";
import { Hub } from "../../mod.ts";
import { upgrade, type UpgradeContext, websocket } from "../../src/hono.ts";

const hub = new Hub<{ uid: string }>();
type AppEnv = { Variables: { uid: string } };
const app = new Hono<AppEnv>();
app.get("/ws", upgrade(hub, { keys: (c: UpgradeContext<AppEnv>) => ({ uid: c.get("uid") }) }));
Bun.serve({ port: 0, fetch: app.fetch, websocket: websocket(hub) });
