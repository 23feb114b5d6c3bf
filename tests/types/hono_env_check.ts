// Compiled by `tsc -p tsconfig.json` and `deno check` (never run): `upgrade()`'s `keys` reads the
// context with the app's own Env, so a variable the app never declared is a compile error, as in
// Hono's own handlers. Each @ts-expect-error fails the check if the line compiles.
import { Hono } from "hono";
import type { JwtVariables } from "hono/jwt";
import { Hub } from "../../mod.ts";
import { upgrade, type UpgradeContext } from "../../src/hono.ts";

type Keys = { uid: string };
type AppEnv = { Variables: { uid: string } };
const hub = new Hub<Keys>();
const app = new Hono<AppEnv>();

// The app's Env by annotation: declared variables are typed, undeclared ones are errors.
app.get("/a", upgrade(hub, { keys: (c: UpgradeContext<AppEnv>) => ({ uid: c.get("uid") }) }));
// @ts-expect-error: "usr" is not a variable of AppEnv
app.get("/b", upgrade(hub, { keys: (c: UpgradeContext<AppEnv>) => ({ uid: c.get("usr") }) }));
// By type arguments.
app.get("/c", upgrade<Keys, AppEnv>(hub, { keys: (c) => ({ uid: c.get("uid") }) }));
// @ts-expect-error: "usr" is not a variable of AppEnv
app.get("/d", upgrade<Keys, AppEnv>(hub, { keys: (c) => ({ uid: c.get("usr") }) }));
// Inline without a hint: no variables at all (as in `new Hono()`), so no typo slips through as `any`.
// @ts-expect-error: nothing is declared
app.get("/e", upgrade(hub, { keys: (c) => ({ uid: c.get("uid") }) }));
// Variables every context has (Hono's ContextVariableMap), or an Env with hono/jwt's.
const jwtApp = new Hono<{ Variables: JwtVariables<{ sub: string }> }>();
jwtApp.get(
  "/f",
  upgrade(hub, {
    keys: (c: UpgradeContext<{ Variables: JwtVariables<{ sub: string }> }>) => ({ uid: c.get("jwtPayload").sub }),
  }),
);
// The keys must fit the hub's; a Response refuses.
// @ts-expect-error: uid is a string
app.get("/g", upgrade(hub, { keys: () => ({ uid: 1 }) }));
app.get("/h", upgrade(hub, { keys: () => new Response("no", { status: 403 }) }));
// @ts-expect-error: not an option
app.get("/i", upgrade(hub, { key: () => ({}) }));
// Hono's own Context is an UpgradeContext of the same Env.
app.get("/j", (c) => {
  const ctx: UpgradeContext<AppEnv> = c;
  return c.text(ctx.get("uid"));
});
