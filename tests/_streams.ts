// Helpers for the streams tests: a fake hub side of a broker, polling, a session state.
import type { BrokerLink, BrokerMessage, SessionState } from "../mod.ts";

/** A hub's side of a broker, recording what the broker hands it. */
export interface FakeLink extends BrokerLink {
  got: BrokerMessage[];
  freed: string[];
  errors: unknown[];
}

/** A fake link that records. */
export function fakeLink(node: string): FakeLink {
  const link: FakeLink = {
    node,
    got: [],
    freed: [],
    errors: [],
    deliver: (msg) => link.got.push(msg),
    report: (err) => link.errors.push(err),
    localCount: () => 0,
    rooms: () => [],
    released: (id) => link.freed.push(id),
    presence: () => {},
  };
  return link;
}

/** Polls `check` until it is true. */
export async function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A session state to save. */
export const state = (id: string, token: string, extra: Partial<SessionState> = {}): SessionState => ({
  id,
  keys: JSON.stringify({ name: "ann" }),
  from: { h: ["epoch1", 3], "r:blue": ["epoch2", 0] },
  rooms: ["blue"],
  received: 7,
  token,
  ...extra,
});
