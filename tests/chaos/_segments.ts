// The checker's shared parts: its options, a violation, and a client's history split into segments
// at its `resumed: false` opens (within a segment nothing may be lost, repeated or reordered).

import type { ClientSpec, Ev } from "./_events.ts";

/** What the checker needs besides the log. */
export interface CheckOptions {
  clients: ClientSpec[];
  /** The resume window: a session its client gave up may stay (detached, a member) this long. */
  window: number;
  /** A broadcast requested this long after a new session opened must reach it. */
  headSlack: number;
  /** Most heap growth of a node process over its first reading, in bytes. */
  heapBound: number;
}

/** A broken invariant. */
export interface Violation {
  inv: 1 | 2 | 3 | 4 | 5;
  /** A short name of the kind of violation ("gap", "duplicate", …), for grouping. */
  kind: string;
  /** What happened, readable. */
  text: string;
  /** When (the event that shows it). */
  t: number;
}

export type Of<K extends Ev["k"]> = Extract<Ev, { k: K }>;

/** One stretch of a client's history between `resumed: false` opens. */
export interface Segment {
  c: string;
  index: number;
  start: number;
  end: number;
  sids: string[];
  /** Per stream, what arrived, in order. */
  got: Map<string, Of<"msg">[]>;
  /** Times of `resumed: true` opens in it. */
  resumes: number[];
  last: boolean;
}

/** Splits a client's history at its `resumed: false` opens. */
export function segments(events: readonly Ev[], c: string): Segment[] {
  const out: Segment[] = [];
  let seg: Segment | undefined;
  for (const e of events) {
    if (!("c" in e) || e.c !== c) continue;
    if (e.k === "open" && (!e.resumed || !seg)) {
      if (seg) seg.end = e.t;
      seg = { c, index: out.length, start: e.t, end: Infinity, sids: [], got: new Map(), resumes: [], last: false };
      out.push(seg);
    } else if (!seg) continue;
    else if (e.k === "open") seg.resumes.push(e.t);
    else if (e.k === "sid" && !seg.sids.includes(e.sid)) seg.sids.push(e.sid);
    else if (e.k === "msg") {
      const list = seg.got.get(e.s) ?? [];
      list.push(e);
      seg.got.set(e.s, list);
    }
  }
  if (out.length > 0) out[out.length - 1].last = true;
  return out;
}

/** "3–5, 9" for [3, 4, 5, 9]. */
export function ranges(ns: readonly number[]): string {
  const sorted = [...new Set(ns)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}–${sorted[j]}`);
    i = j + 1;
  }
  return parts.length > 8 ? `${parts.slice(0, 8).join(", ")}, … (${sorted.length} in all)` : parts.join(", ");
}
