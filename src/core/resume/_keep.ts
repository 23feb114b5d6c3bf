// Keeping a numbered frame for a resumable session's client until the client has it, within
// `resume.maxMessages` and `maxBufferedAmount` (past them the session ends, as its client could
// not be given everything), and letting go of what the client acknowledges. Imports the contracts' and the session core's types, the errors, the
// kept frames and the resume state's types.

import type { Stream } from "../_contracts.ts";
import type { SessionCore } from "../_session.ts";
import { MessageBufferFullError } from "../../errors.ts";
import { Kept } from "./_kept.ts";
import type { ResumeHost, ResumeState } from "./_state.ts";

/**
 * Keeps a numbered frame for `s`'s client; false when it is not kept: the session ended, the
 * frame is a live copy of one a resume here already read from the broker and sent, or one too many.
 */
export function keepFrame<K extends object>(
  host: ResumeHost<K>,
  s: SessionCore<K> & { readonly r: ResumeState },
  stream: Stream,
  offset: number,
  frame: string | Uint8Array,
  frameSize: number,
): boolean {
  if (s.ended) return false;
  const r = s.r;
  const replayed = r.replayed?.get(stream.key);
  if (replayed && replayed[0] === stream.epoch && offset <= replayed[1]) return false;
  const kept = r.kept ??= new Kept();
  kept.push(stream, offset, frame, frameSize);
  if (kept.length <= host.resume.maxMessages && kept.bytes <= host.limits.maxBufferedAmount) return true;
  host.report(
    s,
    new MessageBufferFullError(
      `Ended the session: ${kept.length} messages (${kept.bytes} bytes) wait for its client, more than resume.maxMessages (${host.resume.maxMessages}) or maxBufferedAmount (${host.limits.maxBufferedAmount}) allow`,
    ),
  );
  host.slowClient(s, 1008, `Ended session ${s.id}: too many messages kept for its client`);
  s.end(1008, "Too many messages kept for the session", false);
  return false;
}

/**
 * The client acknowledged frames: `n` data frames of this connection (the oldest kept ones), or
 * per stream id the offset it has (the kept frames it covers).
 */
export function clientHas(
  r: ResumeState,
  frame: { kind: "ack"; n: number } | { kind: "received"; at: Iterable<readonly [number, number]> },
): void {
  if (frame.kind === "ack") {
    if (frame.n <= r.ackedFrames) return;
    r.kept?.drop(frame.n - r.ackedFrames);
    r.ackedFrames = frame.n;
  } else {
    for (const [id, offset] of frame.at) r.kept?.have(id, offset);
  }
  if (r.kept?.length === 0) r.kept = undefined;
}
