// Compiled by `tsc -p tsconfig.json` and `deno check` (never run): `upgrade()`'s `keys` reads the
// context with the app's own Env, so a variable the app never declared is a compile error, as in
// Hono's own handlers. Each @ts-expect-error fails the check if the line compiles.
import { type Context, type Handler, Hono } from "hono";
import { Hub } from "../../mod.ts";
import { upgrade } from "../../src/hono.ts";

type Keys = { uid: string };
type AppEnv = { Variables: { uid: string } };
const hub = new Hub<Keys>();
const app = new Hono<AppEnv>();

// The app's Env by annotation: declared variables are typed, undeclared ones are errors.
app.get("/a", upgrade(hub, { keys: (c: Context<AppEnv>) => ({ uid: c.get("uid") }) }));
// @ts-expect-error: "usr" is not a variable of AppEnv
app.get("/b", upgrade(hub, { keys: (c: Context<AppEnv>) => ({ uid: c.get("usr") }) }));
// By type arguments.
app.get("/c", upgrade<Keys, AppEnv>(hub, { keys: (c) => ({ uid: c.get("uid") }) }));
// @ts-expect-error: "usr" is not a variable of AppEnv
app.get("/d", upgrade<Keys, AppEnv>(hub, { keys: (c) => ({ uid: c.get("usr") }) }));
// From where the handler goes: a handler of the app's Env.
const e: Handler<AppEnv> = upgrade(hub, { keys: (c) => ({ uid: c.get("uid") }) });
// @ts-expect-error: "usr" is not a variable of AppEnv
const f: Handler<AppEnv> = upgrade(hub, { keys: (c) => ({ uid: c.get("usr") }) });
app.get("/e", e).get("/f", f);
// Inline without a hint: no variables at all (as in `new Hono()`), so no typo slips through.
// @ts-expect-error: nothing is declared
app.get("/g", upgrade(hub, { keys: (c) => ({ uid: c.get("usr") }) }));
// The keys must fit the hub's; a Response refuses.
// @ts-expect-error: uid is a string
app.get("/h", upgrade(hub, { keys: () => ({ uid: 1 }) }));
app.get("/i", upgrade(hub, { keys: () => new Response("no", { status: 403 }) }));
// @ts-expect-error: not an option
app.get("/j", upgrade(hub, { key: () => ({}) }));
