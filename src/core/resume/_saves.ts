// The state saves of a resumable session in the broker, for any node to continue it: soon (once
// per turn, however many changes) or now, with what the handlers took and the credential its
// client surely has; and the acknowledgements of the client's messages, sent once saved. Imports
// the broker's types, the protocol and the resume state's types.

import type { SessionState } from "../../broker.ts";
import { encodeAck } from "../../protocol.ts";
import type { ResumeHost, ResumeState } from "./_state.ts";

/** What a save reads of its session. */
export interface Saved {
  readonly id: string;
  readonly ended: boolean;
  /** The current connection, if any. */
  readonly conn: { sendControl(frame: string): void } | undefined;
  readonly rooms: ReadonlySet<string> | undefined;
  readonly keys: unknown;
  readonly r: ResumeState;
  /** The last of the client's numbers a handler took. */
  taken(): number;
  /** Another node has the session now (a claim this node did not hear of): it leaves this node. */
  leaveNode(reason: string, code?: number): void;
}

/** Saves the state in the broker soon (once per turn, however many changes). */
// deno-lint-ignore no-explicit-any
export function saveSoon(host: ResumeHost<any>, s: Saved): void {
  const r = s.r;
  if (!r.from || r.saveTimer !== undefined || !host.streams) return;
  r.saveTimer = setTimeout(() => {
    r.saveTimer = undefined;
    saveNow(host, s).catch((err) => host.book.failed(err));
  }, 0);
}

/** Saves the state in the broker now. */
// deno-lint-ignore no-explicit-any
export function saveNow(host: ResumeHost<any>, s: Saved): Promise<void> {
  const r = s.r;
  const streams = host.streams;
  // While this node claims the session (its client is back), a save would index again the
  // credential the claim retires: the claim's answer saves.
  if (!r.from || !streams || s.ended || (r.token !== undefined && host.handshakes.claiming(r.token))) {
    return Promise.resolve();
  }
  clearTimeout(r.saveTimer);
  r.saveTimer = undefined;
  let keys = "{}";
  try {
    keys = JSON.stringify(s.keys ?? {});
  } catch {
    // keys JSON cannot hold (a cycle, a BigInt) stay on this node
  }
  const state: SessionState = {
    id: s.id,
    keys,
    from: r.from,
    rooms: s.rooms ? [...s.rooms] : [],
    received: s.taken(),
    // Connected: the new credential only (the one presented is not claimable while its
    // connection may be alive, so a copy presented elsewhere meanwhile gets nothing). Detached
    // before the client confirmed the new one: the one presented, the credential it surely has.
    token: (s.conn ? r.token : r.usedToken ?? r.token) ?? "",
  };
  return streams.saveSession(state, host.resume.window).then(
    (kept) => {
      if (kept === false) s.leaveNode("Resumed on another node", 1001);
    },
    (err) => {
      // Not saved (Redis away): tried again in a second, while the session is here, so a resume
      // elsewhere finds what the handlers took, and a claim this node missed is found out.
      if (r.retry === undefined && !s.ended) {
        r.retry = setTimeout(() => {
          r.retry = undefined;
          saveSoon(host, s);
        }, SAVE_RETRY);
      }
      throw err;
    },
  );
}

/** How long after a failed save it is tried again (ms). */
const SAVE_RETRY = 1000;

/**
 * Acknowledges the client's messages the handlers took (those queued behind a busy handler are
 * sent again if this node goes away); with a broker's streams, once the state with them is saved.
 */
// deno-lint-ignore no-explicit-any
export function ack(host: ResumeHost<any>, s: Saved): void {
  const r = s.r;
  clearTimeout(r.ackTimer);
  r.ackTimer = undefined;
  r.unacked = 0;
  const received = s.taken();
  if (!host.streams) {
    s.conn?.sendControl(encodeAck(received));
    return;
  }
  saveNow(host, s).then(() => s.conn?.sendControl(encodeAck(received)), (err) => host.book.failed(err));
}
