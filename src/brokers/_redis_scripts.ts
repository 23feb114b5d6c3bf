/**
 * The Redis broker's Lua scripts: the one table of every script ({@linkcode SCRIPTS}), with the
 * texts it runs on one server and on a Redis Cluster, and the runner that sends them
 * ({@linkcode Scripts}). The texts themselves are written out in `_lua/`. Internal to
 * `chorus-ws/redis`.
 *
 * May import: `_lua/*` (the texts), `_redis_client.ts` (types), `_redis_cluster.ts`, `node:*`.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import type { RedisClientLike } from "./_redis_client.ts";
import { ClusterClient } from "./_redis_cluster.ts";
import * as counts from "./_lua/counts.ts";
import * as presence from "./_lua/presence.ts";
import * as streams from "./_lua/streams.ts";

/** A script's text as Redis runs it, with its SHA-1 (for EVALSHA). */
export interface ScriptText {
  /** The Lua text. */
  readonly src: string;
  /** Its SHA-1, in hex. */
  readonly sha: string;
}

/**
 * One Lua script: its text on one server and its text on a Redis Cluster, each given in full
 * (the same text where the script runs unchanged on both; none where it never runs there).
 */
export class Script {
  /** Its name, for errors. */
  readonly name: string;
  /** Its text on one Redis server, or `undefined` if it runs on a Redis Cluster only. */
  readonly single: ScriptText | undefined;
  /** Its text on a Redis Cluster, or `undefined` if it runs on one server only. */
  readonly cluster: ScriptText | undefined;

  /**
   * A script, by its texts.
   * @param name Its name, for errors.
   * @param texts Its text on one server (`single`) and on a Redis Cluster (`cluster`).
   */
  constructor(name: string, texts: { single?: string; cluster?: string }) {
    this.name = name;
    this.single = texts.single === undefined ? undefined : hashed(texts.single);
    this.cluster = texts.cluster === undefined ? undefined : hashed(texts.cluster);
  }

  /**
   * Its text for one server or for a Redis Cluster.
   * @param sharded On a Redis Cluster.
   * @returns The text.
   * @throws {Error} If the script has no text there (a broker bug, never silent).
   */
  text(sharded: boolean): ScriptText {
    const text = sharded ? this.cluster : this.single;
    if (!text) throw new Error(`The script ${this.name} does not run on ${sharded ? "a Redis Cluster" : "one server"}`);
    return text;
  }
}

function hashed(src: string): ScriptText {
  return { src, sha: createHash("sha1").update(src).digest("hex") };
}

/** Every script of the broker, and where it runs. */
export const SCRIPTS = {
  // session counts (_redis_counts.ts)
  writeCounts: new Script("writeCounts", { single: counts.WRITE_COUNTS, cluster: counts.WRITE_COUNTS }),
  sumCounts: new Script("sumCounts", { single: counts.SUM_COUNTS, cluster: counts.SUM_COUNTS }),
  writeRoomCount: new Script("writeRoomCount", { cluster: counts.WRITE_ROOM_COUNT }),
  sumRoomCounts: new Script("sumRoomCounts", { cluster: counts.SUM_ROOM_COUNTS }),
  // streams and session states (_redis_streams.ts)
  append: new Script("append", { single: streams.APPEND, cluster: streams.APPEND_CLUSTER }),
  read: new Script("read", { single: streams.READ, cluster: streams.READ }),
  save: new Script("save", { single: streams.SAVE, cluster: streams.SAVE }),
  claim: new Script("claim", { single: streams.CLAIM, cluster: streams.CLAIM_CLUSTER }),
  drop: new Script("drop", { single: streams.DROP, cluster: streams.DROP }),
  refresh: new Script("refresh", { single: streams.REFRESH, cluster: streams.REFRESH }),
  // presence (_redis_presence.ts): one script per step on one server, several on a cluster
  update: new Script("update", { single: presence.UPDATE }),
  beat: new Script("beat", { single: presence.BEAT }),
  list: new Script("list", { single: presence.LIST }),
  roomUpdate: new Script("roomUpdate", { cluster: presence.ROOM_UPDATE }),
  nodeUpdate: new Script("nodeUpdate", { cluster: presence.NODE_UPDATE }),
  claimDead: new Script("claimDead", { cluster: presence.CLAIM_DEAD }),
  sweepRoom: new Script("sweepRoom", { cluster: presence.SWEEP_ROOM }),
  forgetDead: new Script("forgetDead", { cluster: presence.FORGET_DEAD }),
  live: new Script("live", { cluster: presence.LIVE }),
} as const satisfies Record<string, Script>;

/** Replies with bulk strings as bytes (for binary payloads). */
const AS_BYTES = { typeMapping: { 36: Buffer } };

/**
 * Runs the broker's scripts on its connection: by EVAL the first time on each server, and by
 * EVALSHA after it. Redis runs a connection's commands in order, so the EVALSHAs sent behind the
 * EVAL find the script loaded. Falling back to EVAL on NOSCRIPT instead would reorder a burst
 * (the calls sent before the reload fail and are sent again after later ones), and a stream's
 * offsets would no longer follow the order of its broadcasts. A reconnect or a failover may bring
 * a server without the script: `reset()` makes the next call on each server an EVAL again.
 */
export class Scripts {
  #client: () => RedisClientLike;
  #sharded: boolean;
  /** `<sha>@<server>` for each script sent (by EVAL) on the connection to that server. */
  #sent = new Set<string>();

  /**
   * The runner of one broker's connection.
   * @param client The connection.
   * @param sharded On a Redis Cluster: the cluster texts, each server apart.
   */
  constructor(client: () => RedisClientLike, sharded: boolean) {
    this.#client = client;
    this.#sharded = sharded;
  }

  /** The servers may have lost their scripts (a reconnect, a failover). */
  reset(): void {
    this.#sent.clear();
  }

  /**
   * Runs a script.
   * @param script The script.
   * @param keys Its KEYS.
   * @param args Its ARGV.
   * @param bytes Bulk strings in the reply as bytes.
   * @returns The script's reply.
   */
  async run(script: Script, keys: string[], args: (string | Buffer)[], bytes = false): Promise<unknown> {
    const client = this.#client();
    const s = script.text(this.#sharded);
    const server = client instanceof ClusterClient ? client.serverOf(keys[0]) : "";
    const id = `${s.sha}@${server}`;
    const rest = [String(keys.length), ...keys, ...args];
    const options = bytes ? AS_BYTES : undefined;
    if (!this.#sent.has(id)) {
      this.#sent.add(id);
      try {
        return await client.sendCommand(["EVAL", s.src, ...rest], options);
      } catch (err) {
        this.#sent.delete(id);
        throw err;
      }
    }
    try {
      return await client.sendCommand(["EVALSHA", s.sha, ...rest], options);
    } catch (err) {
      // the server lost its scripts without a reconnect (SCRIPT FLUSH): this call is not
      // reordered behind later ones only if none was in flight
      if (!(err instanceof Error) || !err.message.includes("NOSCRIPT")) throw err;
      this.#sent.delete(id);
      return await this.run(script, keys, args, bytes);
    }
  }
}
