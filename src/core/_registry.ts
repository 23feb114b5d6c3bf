// Who is here: a hub's sessions on this node and the rooms they are in (and, of both, the
// resumable ones), and what changes when a session comes, goes, joins or leaves. Nothing else:
// delivery, keepalive and the handshake live beside it. Imports nothing.

/** What the registry needs to know of a session. */
export interface Resident {
  /** The session's id. */
  readonly id: string;
  /** A resumable session (it gets numbered frames). */
  readonly framed: boolean;
}

/** Who hears of the registry's changes. */
export interface RegistryListener<S> {
  /** This node's count of a room's sessions (or of all, `undefined`) changed. */
  counted(room: string | undefined): void;
  /** A session joined (`true`) or left a room. */
  membership(s: S, room: string, joined: boolean): void;
  /** A room has no members left on this node. */
  roomGone(room: string): void;
}

/** The sessions and rooms of one hub on this node. */
export class Registry<S extends Resident> {
  /** Every session, by id. */
  readonly sessions: Map<string, S> = new Map();
  /** Every room that has members, with them. */
  readonly rooms: Map<string, Set<S>> = new Map();
  /** The resumable sessions, and per room. */
  readonly framed: Set<S> = new Set();
  readonly framedRooms: Map<string, Set<S>> = new Map();
  /** Resumable sessions whose client is away, the longest waiting first. */
  readonly waiting: Set<S> = new Set();
  readonly #listener: RegistryListener<S>;

  /** @param listener Who hears of the changes. */
  constructor(listener: RegistryListener<S>) {
    this.#listener = listener;
  }

  /**
   * A resumable session's client went away (`away`), or came back (or the session left).
   * @returns Past `max` waiting, the one that waited longest (for the hub to end).
   */
  away(s: S, away: boolean, max: number): S | undefined {
    if (!away) this.waiting.delete(s);
    else if (!this.waiting.has(s)) this.waiting.add(s);
    return away && this.waiting.size > max ? this.waiting.values().next().value : undefined;
  }

  /** A session comes. */
  add(s: S): void {
    this.sessions.set(s.id, s);
    if (s.framed) this.framed.add(s);
    this.#listener.counted(undefined);
  }

  /**
   * A session goes: out of the sessions and of its rooms.
   *
   * @param s The session.
   * @param rooms Its rooms.
   * @returns Whether it was here.
   */
  remove(s: S, rooms: Iterable<string> | undefined): boolean {
    if (this.sessions.get(s.id) !== s) return false;
    this.sessions.delete(s.id);
    this.framed.delete(s);
    if (rooms) { for (const room of rooms) this.leave(s, room); }
    this.#listener.counted(undefined);
    return true;
  }

  /** A session joins a room. */
  join(s: S, room: string): void {
    let members = this.rooms.get(room);
    if (!members) this.rooms.set(room, members = new Set());
    members.add(s);
    if (s.framed) {
      let framed = this.framedRooms.get(room);
      if (!framed) this.framedRooms.set(room, framed = new Set());
      framed.add(s);
    }
    this.#listener.counted(room);
    this.#listener.membership(s, room, true);
  }

  /** A session leaves a room (nothing happens if it is not in it). */
  leave(s: S, room: string): void {
    const members = this.rooms.get(room);
    if (!members?.delete(s)) return;
    if (members.size === 0) {
      this.rooms.delete(room);
      this.#listener.roomGone(room);
    }
    const framed = this.framedRooms.get(room);
    if (framed?.delete(s) && framed.size === 0) this.framedRooms.delete(room);
    this.#listener.counted(room);
    this.#listener.membership(s, room, false);
  }

  /** How many sessions this node has in a room, or in all (`undefined`). */
  count(room: string | undefined): number {
    return room === undefined ? this.sessions.size : this.rooms.get(room)?.size ?? 0;
  }
}
