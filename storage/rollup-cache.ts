import type { InfluxDB } from "influx";
import {
  bucketsOf,
  identityKey,
  type SetIdentity,
  type SetKind,
  SPAN_MS,
  type Span,
  storedParts,
  storedSetsStatement,
} from "../rollup/sets.js";
import { from, queryGroups, tagIs, timeRange } from "./influxql.js";
import type { Window } from "./rollup-ranges.js";

// Distinct-device counts over any hour-aligned window, from the rollups' device sets (rollup/): the whole
// UTC days inside the window from day sets, the hours at its edges from hour sets. InfluxDB 1.x counts
// distinct values only by reading every point, which takes seconds at 10,000 devices × 30 days; the sets
// are read once per bucket and kept while the bucket's revision (rollup_rev) stays the same, so a request
// reads only the revisions and the buckets that changed since.

type CachedBucket = { rev: number; sets: Array<{ identity: SetIdentity; members: Int32Array }> };

export interface SetsView {
  /**
   * Distinct devices per group in `within` (default: the first window loaded), over the sets of one kind;
   * groupOf names the group a set counts towards, or undefined to leave it out.
   */
  count(
    set: SetKind,
    groupOf: (identity: SetIdentity) => string | undefined,
    within?: Window,
  ): Map<string, number>;
}

export interface DeviceSets {
  /** Reads what these windows need (hour-aligned, as HealthStore and IssueStore use them). */
  load(windows: readonly Window[]): Promise<SetsView>;
}

const bucketKey = (span: Span, startMs: number) => `${span}:${startMs}`;

export function createDeviceSets(influx: InfluxDB, options: { maxBuckets?: number } = {}): DeviceSets {
  const maxBuckets = options.maxBuckets ?? 5_000;
  const cache = new Map<string, CachedBucket>();
  /** Device id → a small integer, for this process's bitsets. */
  const index = new Map<string, number>();
  const indexOf = (id: string) => {
    let i = index.get(id);
    if (i === undefined) {
      i = index.size;
      index.set(id, i);
    }
    return i;
  };

  /** Contiguous time ranges covering these bucket starts of one span. */
  const runsOf = (span: Span, starts: number[]) => {
    const ranges: Array<[number, number]> = [];
    for (const start of [...starts].sort((a, b) => a - b)) {
      const last = ranges.at(-1);
      if (last !== undefined && last[1] === start) last[1] = start + SPAN_MS[span];
      else ranges.push([start, start + SPAN_MS[span]]);
    }
    return ranges;
  };

  return {
    async load(windows) {
      const needed = new Map<string, { span: Span; startMs: number }>();
      for (const w of windows) for (const b of bucketsOf(w)) needed.set(bucketKey(b.span, b.startMs), b);
      const bySpan = (span: Span) =>
        [...needed.values()].filter((b) => b.span === span).map((b) => b.startMs);
      const revQueries = (["1h", "1d"] as const).flatMap((span) =>
        runsOf(span, bySpan(span)).map(([a, b]) => ({
          span,
          statement: `SELECT "rev" FROM ${from("rollupRev")} WHERE ${tagIs("span", span)} AND ${timeRange(a, b)}`,
        })),
      );
      const revs = new Map<string, number>();
      if (revQueries.length > 0) {
        const results = await queryGroups(
          influx,
          revQueries.map((q) => q.statement),
        );
        results.forEach((groups, i) => {
          const span = revQueries[i]?.span ?? "1h";
          for (const row of groups.flatMap((g) => g.rows)) {
            if (typeof row.rev === "number") revs.set(bucketKey(span, row.time.getTime()), row.rev);
          }
        });
      }
      const stale = [...needed.entries()].filter(([key]) => {
        const rev = revs.get(key);
        return rev !== undefined && cache.get(key)?.rev !== rev;
      });
      if (stale.length > 0) {
        const spans = (["1h", "1d"] as const).filter((span) => stale.some(([, b]) => b.span === span));
        const statements = spans.flatMap((span) =>
          runsOf(
            span,
            stale.filter(([, b]) => b.span === span).map(([, b]) => b.startMs),
          ).map(([a, b]) => ({ span, statement: storedSetsStatement(span, a, b) })),
        );
        const results = await queryGroups(
          influx,
          statements.map((s) => s.statement),
        );
        const loaded = new Map<string, Map<string, { identity: SetIdentity; ids: number[] }>>();
        results.forEach((groups, i) => {
          const span: Span = statements[i]?.span ?? "1h";
          for (const { identity, startMs, ids } of storedParts(groups)) {
            const key = bucketKey(span, startMs);
            const sets = loaded.get(key) ?? new Map();
            loaded.set(key, sets);
            const entry = sets.get(identityKey(identity)) ?? { identity, ids: [] };
            sets.set(identityKey(identity), entry);
            for (const id of ids) entry.ids.push(indexOf(id));
          }
        });
        for (const [key] of stale) {
          const sets = [...(loaded.get(key)?.values() ?? [])].map(({ identity, ids }) => ({
            identity,
            members: Int32Array.from(ids),
          }));
          cache.delete(key);
          cache.set(key, { rev: revs.get(key) ?? 0, sets });
        }
      }
      // Buckets used now move to the end; the least recently used go first.
      for (const key of needed.keys()) {
        const entry = cache.get(key);
        if (entry === undefined || !revs.has(key)) continue;
        cache.delete(key);
        cache.set(key, entry);
      }
      while (cache.size > maxBuckets) {
        const oldest = cache.keys().next().value;
        if (oldest === undefined) break;
        cache.delete(oldest);
      }
      const buckets = new Map<string, CachedBucket["sets"]>();
      for (const key of needed.keys()) buckets.set(key, revs.has(key) ? (cache.get(key)?.sets ?? []) : []);
      const first = windows[0];

      return {
        count(set, groupOf, within = first) {
          const counts = new Map<string, number>();
          if (within === undefined) return counts;
          const seen = new Map<string, Uint8Array>();
          for (const b of bucketsOf(within)) {
            const sets = buckets.get(bucketKey(b.span, b.startMs));
            if (sets === undefined)
              throw new Error(`device sets for ${bucketKey(b.span, b.startMs)} were not loaded`);
            for (const { identity, members } of sets) {
              if (identity.set !== set) continue;
              const group = groupOf(identity);
              if (group === undefined) continue;
              let bits = seen.get(group);
              if (bits === undefined) {
                bits = new Uint8Array(index.size);
                seen.set(group, bits);
                counts.set(group, 0);
              }
              let n = 0;
              for (const m of members) {
                if (bits[m] === 0) {
                  bits[m] = 1;
                  n++;
                }
              }
              counts.set(group, (counts.get(group) ?? 0) + n);
            }
          }
          return counts;
        },
      };
    },
  };
}
