/**
 * Small statistics for the benchmark: a latency histogram that merges across processes,
 * percentiles, medians.
 *
 * @module
 */

/** Histogram resolution: buckets of 10 µs. */
export const BUCKETS_PER_MS = 100;
/** Histogram range: 0 to 5 s; slower deliveries land in the last bucket. */
export const BUCKETS: number = 5000 * BUCKETS_PER_MS + 1;

/** A latency histogram as sent between processes: [bucket, count] pairs. */
export type SparseHistogram = [number, number][];

/**
 * @param ms A latency in milliseconds.
 * @returns Its bucket.
 */
export function bucketOf(ms: number): number {
  const b = Math.floor(ms * BUCKETS_PER_MS);
  return b < 0 ? 0 : b >= BUCKETS ? BUCKETS - 1 : b;
}

/**
 * @param hist A dense histogram.
 * @returns Its non-empty buckets.
 */
export function toSparse(hist: Uint32Array): SparseHistogram {
  const out: SparseHistogram = [];
  for (let i = 0; i < hist.length; i++) if (hist[i] !== 0) out.push([i, hist[i]]);
  return out;
}

/**
 * @param parts Sparse histograms.
 * @param q The quantile, 0 to 1.
 * @returns The latency in milliseconds at that quantile of all parts merged (NaN when empty).
 */
export function quantile(parts: SparseHistogram[], q: number): number {
  const merged = new Map<number, number>();
  let total = 0;
  for (const part of parts) {
    for (const [b, n] of part) {
      merged.set(b, (merged.get(b) ?? 0) + n);
      total += n;
    }
  }
  if (total === 0) return NaN;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (const b of [...merged.keys()].sort((x, y) => x - y)) {
    seen += merged.get(b)!;
    if (seen >= rank) return (b + 0.5) / BUCKETS_PER_MS;
  }
  return NaN;
}

/**
 * @param values Numbers (NaN ignored).
 * @returns Their median (NaN when none).
 */
export function median(values: number[]): number {
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** @returns Wall-clock time in milliseconds with sub-millisecond resolution, comparable across processes. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}
