/**
 * The public shapes the hub, its rooms and its sessions share: messages, session keys, room
 * members and presence events, history entries. Types only.
 *
 * @module
 */

// A leaf. May import: nothing.

/** A message: a string goes as a text frame, bytes (`Uint8Array` or `ArrayBuffer`) as a binary frame. */
export type Message = string | Uint8Array | ArrayBuffer;

/**
 * The default type of session keys: a record of the values a session carries (melody's
 * `Keys`). A hub's keys may be any object type, an interface too: `new Hub<UserKeys>()`.
 */
export type Keys = Record<string, unknown>;

/** A room member: a session, its node, and the keys named in `presence.keys` (as JSON carries them). */
export interface Member<K extends object = Keys> {
  /** The session's id. */
  id: string;
  /** The node the session is on (`hub.node` of its hub). */
  node: string;
  /** Its keys named in `presence.keys`, as JSON values (a key JSON cannot hold is left out). */
  keys: Partial<K>;
}

/** Joins and leaves of one room, as `handlePresence` gets them. */
export interface PresenceEvent<K extends object = Keys> {
  /** Members that joined (or continue here after their entries were lost: see `HubOptions.presence`). */
  joins: Member<K>[];
  /** Members that left the room, or ended (on a dead node: once it is found dead). */
  leaves: Member<K>[];
}

/** A room message from its history: its offset in the room's stream and the message. */
export interface HistoryEntry {
  /** Its offset: increasing, one per room broadcast. */
  offset: number;
  /** The message: a string was a text frame, bytes a binary frame. */
  message: string | Uint8Array;
}
