/**
 * The names of the Redis broker's keys and channels, in one place: what lives on the slot of
 * `{<prefix>}` and what on a room's own slot on a Redis Cluster, and how a name becomes a key
 * part ({@linkcode safeKey}). Internal to `chorus-ws/redis`.
 *
 * May import: nothing.
 *
 * @module
 */

/**
 * A stream key or session id as a Redis key part: the same text, but for the characters that
 * glob patterns, hash tags or tools treat specially (`*?[]\{}%`, spaces, control characters)
 * and lone surrogates (which UTF-8 cannot hold), written `%XX` or `%uXXXX`. Different names
 * give different keys.
 *
 * @param name The name.
 * @returns The key part.
 */
export function safeKey(name: string): string {
  let out = "";
  let from = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    let escape: string | undefined;
    if (c <= 0x20 || c === 0x7f || c === 0x25 || c === 0x2a || c === 0x3f || c === 0x5b || c === 0x5c || c === 0x5d) {
      escape = "%" + c.toString(16).padStart(2, "0");
    } else if (c === 0x7b || c === 0x7d) {
      escape = "%" + c.toString(16);
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const next = name.charCodeAt(i + 1);
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        i++; // a valid pair
        continue;
      }
      escape = "%u" + c.toString(16).padStart(4, "0");
    }
    if (escape === undefined) continue;
    out += name.slice(from, i) + escape;
    from = i + 1;
  }
  return from === 0 ? name : out + name.slice(from);
}

/**
 * The broker's key and channel names under its prefix. On one server every name starts with
 * `<prefix>`; on a Redis Cluster, with `{<prefix>}` (one slot), but for a room's keys and
 * channel, which live on the room's own slot (`{<prefix>:r:<safe room>}`).
 */
export class RedisKeys {
  /** The prefix as the user gave it. */
  readonly prefix: string;
  /** On a Redis Cluster. */
  readonly sharded: boolean;
  /** The prefix of every key but a room's on a cluster: `<prefix>`, or `{<prefix>}` on a Redis Cluster. */
  readonly home: string;
  /** The hub's channel: hub-wide broadcasts (every broadcast with `"single"` routing) and notices. */
  readonly channel: string;
  /** The set of nodes that wrote counts. */
  readonly nodes: string;
  /** The prefix of a node's count hash (`+ node id`). */
  readonly nodePrefix: string;

  /**
   * The names under one prefix.
   * @param prefix The broker's prefix.
   * @param sharded On a Redis Cluster.
   */
  constructor(prefix: string, sharded: boolean) {
    this.prefix = prefix;
    this.sharded = sharded;
    const home = this.home = sharded ? `{${prefix}}` : prefix;
    this.channel = `${home}:broadcast`;
    this.nodes = `${home}:nodes`;
    this.nodePrefix = `${home}:node:`;
  }

  /**
   * On a Redis Cluster, the hash-tagged prefix of a room's keys and channel (its stream, members,
   * counts): `{<prefix>:r:<safe room>}`, one slot per room.
   * @param room The room.
   * @returns The prefix.
   */
  roomSlot(room: string): string {
    return `{${this.prefix}:${safeKey("r:" + room)}}`;
  }

  /**
   * A room's own channel (`"rooms"` routing): on a cluster, on the slot of the room's stream.
   * @param room The room.
   * @returns The channel.
   */
  roomChannel(room: string): string {
    return this.sharded ? `${this.roomSlot(room)}:ch` : `${this.prefix}:room:${room}`;
  }

  /**
   * A room's count hash on a Redis Cluster (the room's slot).
   * @param room The room.
   * @returns The key.
   */
  roomCounts(room: string): string {
    return `${this.roomSlot(room)}:cn`;
  }

  /**
   * On a Redis Cluster, the key of a room's members, on the room's slot.
   * @param room The room.
   * @returns The key.
   */
  roomMembers(room: string): string {
    return `${this.roomSlot(room)}:pr`;
  }

  /**
   * The prefix of a stream's keys (`:st:`, `:sm:`) and of its seq (`:seq`): `home`, but on a
   * Redis Cluster a room's stream has its room's slot.
   * @param key The stream's key (`"h"`, `"r:" + room`, `"s:" + id`).
   * @returns The prefix.
   */
  streamBase(key: string): string {
    return this.sharded && key.startsWith("r:") ? this.roomSlot(key.slice(2)) : this.home;
  }
}
