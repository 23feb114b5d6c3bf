// The numbered frames a resumable session keeps for its client, in the order they were (or will
// be) sent, until the client has them. Pure: imports only the contracts' types.

import type { Stream } from "../_contracts.ts";
import type { Position } from "../../protocol.ts";

/**
 * The numbered frames a resumable session keeps, in the order they were (or will be) sent,
 * until its client acknowledges them.
 */
export class Kept {
  streams: (Stream | undefined)[] = [];
  offsets: number[] = [];
  frames: (string | Uint8Array | undefined)[] = [];
  sizes: number[] = [];
  head = 0;
  bytes = 0;

  get length(): number {
    return this.offsets.length - this.head;
  }

  push(stream: Stream, offset: number, frame: string | Uint8Array, size: number): void {
    this.streams.push(stream);
    this.offsets.push(offset);
    this.frames.push(frame);
    this.sizes.push(size);
    this.bytes += size;
  }

  /** Forgets the `count` oldest frames. */
  drop(count: number): void {
    const end = Math.min(this.head + count, this.offsets.length);
    for (let i = this.head; i < end; i++) {
      this.bytes -= this.sizes[i];
      this.frames[i] = this.streams[i] = undefined;
    }
    this.head = end;
    this.#compact();
  }

  /** Forgets the frames of stream `id` up to `offset`: the client has them. */
  have(id: number, offset: number): void {
    let w = this.head;
    for (let i = this.head; i < this.offsets.length; i++) {
      if (this.streams[i]!.id === id && this.offsets[i] <= offset) {
        this.bytes -= this.sizes[i];
        continue;
      }
      this.streams[w] = this.streams[i];
      this.offsets[w] = this.offsets[i];
      this.frames[w] = this.frames[i];
      this.sizes[w] = this.sizes[i];
      w++;
    }
    this.streams.length =
      this.offsets.length =
      this.frames.length =
      this.sizes.length =
        w;
    this.#compact();
  }

  /**
   * Forgets the frames a client's position says it has: of the same stream epoch, offset not past
   * it; of an older epoch of the same key than the one the client is at (a newer epoch is a newer
   * stream id, and frames go out in order, so the client had every frame of the older one).
   * @param pos The client's position.
   * @param idOf The id of a key's stream in an epoch, when known outside the kept frames.
   */
  forget(pos: Position, idOf: (key: string, epoch: string) => number | undefined = () => undefined): void {
    const ids = new Map<string, number>();
    for (let i = this.head; i < this.offsets.length; i++) {
      const stream = this.streams[i]!;
      const has = Object.hasOwn(pos, stream.key) ? pos[stream.key] : undefined;
      if (has !== undefined && has[0] === stream.epoch) ids.set(stream.key, stream.id);
    }
    let w = this.head;
    for (let i = this.head; i < this.offsets.length; i++) {
      const stream = this.streams[i]!;
      const has = Object.hasOwn(pos, stream.key) ? pos[stream.key] : undefined;
      const at = has === undefined ? undefined : ids.get(stream.key) ?? idOf(stream.key, has[0]);
      const older = has !== undefined && has[0] !== stream.epoch && at !== undefined && stream.id < at;
      if (older || (has !== undefined && has[0] === stream.epoch && this.offsets[i] <= has[1])) {
        this.bytes -= this.sizes[i];
        continue;
      }
      this.streams[w] = stream;
      this.offsets[w] = this.offsets[i];
      this.frames[w] = this.frames[i];
      this.sizes[w] = this.sizes[i];
      w++;
    }
    this.streams.length =
      this.offsets.length =
      this.frames.length =
      this.sizes.length =
        w;
    this.#compact();
  }

  /** The streams of the kept frames, each once, in the order of their first frame. */
  streamsKept(): Stream[] {
    const out = new Map<number, Stream>();
    for (let i = this.head; i < this.offsets.length; i++) {
      const stream = this.streams[i]!;
      if (!out.has(stream.id)) out.set(stream.id, stream);
    }
    return [...out.values()];
  }

  #compact(): void {
    const head = this.head;
    if (head === this.offsets.length) {
      this.streams = [];
      this.offsets = [];
      this.frames = [];
      this.sizes = [];
      this.head = 0;
    } else if (head > 64 && head * 2 > this.offsets.length) {
      this.streams = this.streams.slice(head);
      this.offsets = this.offsets.slice(head);
      this.frames = this.frames.slice(head);
      this.sizes = this.sizes.slice(head);
      this.head = 0;
    }
  }
}
