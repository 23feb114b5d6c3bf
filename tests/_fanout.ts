// Helpers for the fan-out and scale tests: named sessions, and draining clients up to a marker.

import { hubCore } from "../src/hub.ts";
import type { Hub, Keys, Session } from "../mod.ts";
import { Client, runtime, type TestServer } from "./_helpers.ts";

/** Whether broadcasts are expected to take the native path (Bun serves with native fan-out). */
export const nativeRuntime: boolean = runtime === "bun";

/** How many broadcasts of `hub` went out as one native publish. */
export function nativePublishes(hub: Hub<Keys>): number {
  return hubCore(hub).fanout.publishes;
}

/**
 * Names each session after the `name` query parameter of its URL (kept in the "name" key),
 * and keeps the server's signal pinged on connect.
 */
export function nameSessions(t: TestServer<Keys>): void {
  t.hub.handleConnect((s) => {
    s.set("name", new URL(s.request.url).searchParams.get("name") ?? "");
    t.signal.ping();
  });
}

/** Opens one client per name and waits until the hub holds a session for each. */
export async function openNamed(t: TestServer<Keys>, names: string[]): Promise<Map<string, Client>> {
  const clients = new Map<string, Client>();
  for (const name of names) clients.set(name, await Client.open(t.wsUrl(`/?name=${name}`)));
  await t.signal.until(() => names.every((n) => sessionNamed(t.hub, n)), "every named session");
  return clients;
}

/** The open session with this name. */
export function sessionNamed(hub: Hub<Keys>, name: string): Session<Keys> | undefined {
  return hub.sessions().find((s) => s.get("name") === name);
}

/** Everything a client receives up to (not including) the text message `marker`. */
export async function until(client: Client, marker: string): Promise<(string | number[])[]> {
  const got: (string | number[])[] = [];
  for (;;) {
    const m = await client.next();
    if (m === marker) return got;
    got.push(typeof m === "string" ? m : [...m]);
  }
}
