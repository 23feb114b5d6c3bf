// What a resumable session holds beyond a plain one (its credentials, kept frames, positions,
// the client's numbers and its timers), and what it needs of its hub. Types and plain state only:
// imports the contracts, the connection's and the broker's types, and the resume pieces' types.

import type { Connection } from "../_connection.ts";
import type { ResumeLimits, SessionHost, SessionInit, Stream } from "../_contracts.ts";
import type { SessionCore } from "../_session.ts";
import type { BrokerStreams } from "../../broker.ts";
import type { Kept } from "./_kept.ts";
import type { StreamBook } from "./_streams.ts";

/** How long a handover waits for a busy handler (ms). */
export const HANDOVER_WAIT = 2000;

/** Acknowledge the client's messages after this many, or this long after the first (ms). */
export const ACK_EVERY = 32;
export const ACK_WITHIN = 100;

/** What a resumable session needs of its hub beyond a plain one's needs. */
export interface ResumeHost<K extends object> extends SessionHost<K, SessionCore<K>> {
  /** `resume`, resolved. */
  readonly resume: ResumeLimits;
  /** The broker's streams, when the hub shares them with other nodes. */
  readonly streams: BrokerStreams | undefined;
  /** The streams this node numbers frames in. */
  readonly book: StreamBook;
  /** Resume credentials, each naming its session. */
  readonly tokens: Map<string, SessionCore<K>>;
  /** How many resumable sessions wait for their client (one more, or one less). */
  detached(s: SessionCore<K>, away: boolean): void;
  /** A connection now carries a session: count it for native fan-out, subscribe it to its topics. */
  adopt(conn: Connection, s: SessionCore<K>): void;
  /** A connection no longer carries a session. */
  release(conn: Connection): void;
  /** A connection becomes a new session (a claimed session could not be continued). */
  openFresh(conn: Connection, init: SessionInit<K>): void;
  /** The handshakes: whether this node is claiming the session a credential names now. */
  readonly handshakes: { claiming(token: string): boolean };
}

/** What a resumable session has beyond a plain one; shared with recovery. */
export class ResumeState {
  /** What it keeps for its client (until acknowledged, or while away); `undefined` when nothing. */
  kept: Kept | undefined;
  /** The credential for the next resume. */
  token: string | undefined;
  /** The credential just used to resume: valid until the client shows it got the new one. */
  usedToken: string | undefined;
  /** The session's own stream, once it has a message. */
  own: Stream | undefined;
  /** Data frames of the current connection the client acknowledged. */
  ackedFrames = 0;
  /** When the last heartbeat frame went. */
  beatAt = 0;
  /** With a broker's streams: where the session follows each stream from (for another node to continue it). */
  from: Record<string, [epoch: string, offset: number, seq?: number]> | undefined;
  /** Claimed from another node: its first message may skip numbers the node before took. */
  claimed = false;
  /** After a resume on this node: per stream, up to where the broker's messages were read and sent. */
  replayed: Map<string, [epoch: string, offset: number]> | undefined;
  /** Being handed over to another node (`hub.close()`): the client's messages are left to it. */
  handingOver = false;
  whenIdle: (() => void) | undefined;
  saveTimer: ReturnType<typeof setTimeout> | undefined;
  /** A failed save's retry. */
  retry: ReturnType<typeof setTimeout> | undefined;
  /** The client's last message number received, and how many are not acknowledged yet. */
  received = 0;
  unacked = 0;
  ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** While detached: the end of the resume window. */
  expiry: ReturnType<typeof setTimeout> | undefined;
}
