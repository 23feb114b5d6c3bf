// Recovery of a session claimed from the broker: read what it missed from the broker's streams,
// merge it with what arrived meanwhile, and continue it, or end it when that cannot be done
// exactly. Imports the resumable session, the broker contract and the protocol.

import type { Connection } from "../_connection.ts";
import type { Stream } from "../_contracts.ts";
import type { SessionState, StreamEntry } from "../../broker.ts";
import { dataOverhead, encodeData, type Position } from "../../protocol.ts";
import { byteLength, errorText } from "../_util.ts";
import { Kept } from "./_kept.ts";
import type { ResumableSession } from "./_resumable.ts";
import type { ResumeHost } from "./_state.ts";

/**
 * Continues a claimed session: reads what it missed from the broker's streams (from the
 * client's position, else from where it started following each stream), then, with its client
 * still there, the welcome, the missed messages in order (with those that arrived meanwhile,
 * each once), and `handleResume`. What cannot be read — another epoch, trimmed, too many —
 * ends the session here, and the client gets a new one (`resumed: false`, never a gap).
 */
export async function recover<K extends object>(
  host: ResumeHost<K>,
  session: ResumableSession<K>,
  conn: Connection | undefined,
  pos: Position,
  state: SessionState,
): Promise<void> {
  const streams = host.streams!;
  const limit = host.resume.maxMessages;
  const keys = new Set([...Object.keys(state.from), "h", `s:${session.id}`, ...state.rooms.map((r) => `r:${r}`)]);
  let reads: { key: string; epoch: string; top: number; entries: StreamEntry[] }[];
  try {
    reads = await Promise.all([...keys].map(async (key) => {
      const clientKey = key.startsWith("s:") ? "s" : key;
      const had = Object.hasOwn(pos, clientKey) ? pos[clientKey] : state.from[key];
      if (!had) throw new RangeError(`no position in stream ${key}`);
      const [epoch, after] = had;
      if (epoch === "") {
        // Its node had seen none of the stream when the session began following it: what came
        // after the `seq` that node had seen is the session's, in whatever epoch.
        const seen = (had as [string, number, number?])[2] ?? 0;
        const { top } = await streams.read(key, Number.MAX_SAFE_INTEGER, 0);
        const read = await streams.read(key, Math.max(0, top - limit - 1), limit + 1);
        const entries = read.entries.filter((e) => e.seq > seen);
        if (entries.length > limit) throw new RangeError(`more than resume.maxMessages missed in ${key}`);
        // complete: the oldest entry read is older than `seen`, or is the stream's first
        const oldest = read.entries[0];
        const complete = oldest ? oldest.seq <= seen || oldest.offset === 1 : read.top === 0;
        if (!complete) throw new RangeError(`stream ${key} was trimmed`);
        return { key, epoch: read.epoch, top: read.top, entries };
      }
      const read = await streams.read(key, after, limit + 1);
      if (read.epoch !== epoch && !(read.top === 0 && after === 0)) {
        throw new RangeError(`stream ${key} is in another epoch`);
      }
      if (read.entries.length > limit) throw new RangeError(`more than resume.maxMessages missed in ${key}`);
      const first = read.entries[0]?.offset;
      if (first !== undefined ? first !== after + 1 : read.top > after) {
        throw new RangeError(`stream ${key} was trimmed`);
      }
      return { key, ...read };
    }));
  } catch (err) {
    if (session.ended) return;
    host.report(
      session,
      new Error(`Session ${session.id} could not be resumed here: ${errorText(err)}`, { cause: err }),
    );
    session.end(1000, "Could not be resumed", false); // its disconnect hook runs here
    if (conn) host.openFresh(conn, session.init);
    return;
  }
  if (session.ended) {
    if (conn) host.openFresh(conn, session.init);
    return;
  }
  const r = session.r;
  // What was missed, in the order it was written, then what arrived while reading, each once.
  const missed: { stream: Stream; entry: StreamEntry }[] = [];
  const last = new Map<string, number>();
  const replayed = new Map<string, [string, number]>();
  for (const { key, epoch, top, entries } of reads) {
    const stream = key.startsWith("s:")
      ? (r.own = { id: 1, key: "s", epoch, offset: top })
      : host.book.at(key, epoch, top);
    for (const entry of entries) if (entry.except !== session.id) missed.push({ stream, entry });
    last.set(stream.key, top);
    replayed.set(stream.key, [epoch, top]);
  }
  missed.sort((a, b) => a.entry.seq - b.entry.seq);
  const kept = new Kept();
  for (const { stream, entry } of missed) {
    const size = byteLength(entry.payload);
    kept.push(
      stream,
      entry.offset,
      encodeData(stream.id, entry.offset, entry.payload),
      size + dataOverhead(stream.id, entry.offset),
    );
  }
  const meanwhile = r.kept;
  if (meanwhile) {
    for (let i = meanwhile.head; i < meanwhile.offsets.length; i++) {
      const stream = meanwhile.streams[i]!;
      if (meanwhile.offsets[i] <= (last.get(stream.key) ?? 0)) continue;
      kept.push(stream, meanwhile.offsets[i], meanwhile.frames[i]!, meanwhile.sizes[i]);
    }
  }
  r.kept = kept.length ? kept : undefined;
  r.replayed = replayed;
  session.continueOn(conn);
}
