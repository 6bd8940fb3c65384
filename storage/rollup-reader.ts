import type { InfluxDB } from "influx";
import { HOUR_MS, type Window } from "../contract/time.js";
import { from, type Group, influxql, queryGroups, tagIs, timeRange } from "./influxql.js";
import {
  type Bucket,
  bucketsOf,
  type CohortLabels,
  cohortKey,
  type DeviceCohortTally,
  type DeviceCohortVisitor,
  type DeviceTally,
  faultOf,
  identityKey,
  RATINGS,
  SET_KINDS,
  type SetIdentity,
  type SetKind,
  SPAN_MS,
  SPANS,
  type Span,
  storedDeviceCohortParts,
  storedDeviceCohortsStatement,
  storedParts,
  storedSetsStatement,
  storedTalliesStatement,
  storedTallyParts,
  visitDeviceCohorts,
} from "./rollup-schema.js";
import type { MeasurementKey } from "./schema.js";

// What the analytics read from the rollups (storage/rollup-schema.ts, written by rollup/), per
// hour-aligned window: sums, distinct-device counts and per-device fault tallies. A window is covered by
// buckets: the whole UTC days inside it from the day rollups, the hours at its edges from the hour ones (a
// month of cohort_1h is ~30,000 points, of cohort_1d ~1,200). Every bucket carries a revision (rollup_rev)
// that grows whenever it is recomputed. The cache keeps what it read of a bucket (its device sets, its rows
// of each sum query, its tallies of each fingerprint) while that revision stays the same, so a request
// reads the revisions and only the buckets that changed since: in live use, the current hour. InfluxDB
// counts distinct values only by reading every point, and even a sum over 30 days of day rollups costs
// ~100 ms at 10,000 devices; the cache makes both a few milliseconds.

/**
 * Sums of a rollup per group of tags. Only sums: the rows of a window's buckets add up to the window's.
 * Two queries with the same parts share their cached rows.
 */
export type SumQuery = {
  rollup: { hourly: MeasurementKey; daily: MeasurementKey };
  /** The select list, e.g. `sum("n") AS "n"`; with `raw`, fields as stored, e.g. `"hours", "reboots"`. */
  select: string;
  /** Conditions besides time, each starting with " AND "; "" for none. */
  where: string;
  groupBy: readonly string[];
  /**
   * Read the points as stored, not summed per bucket: each rollup point sits at its bucket's start, so the
   * rows still fall in their buckets (callers add them up anyway). InfluxDB 1.6 sums 18 fields of a month
   * of cohort_1d in 0.5-1.4 s and reads them as stored in 0.09-0.15 s.
   */
  raw?: boolean;
};

export interface RollupView {
  /**
   * The revisions of every bucket loaded, as one string: two views with the same version hold the same
   * data, so an answer computed from one holds for the other. Undefined when some of it was older.
   */
  readonly version: string | undefined;
  /**
   * Distinct devices per group in `within` (default: the first window loaded), over the sets of one kind;
   * groupOf names the group a set counts towards, or undefined to leave it out.
   */
  count(
    set: SetKind,
    groupOf: (identity: SetIdentity) => string | undefined,
    within?: Window,
  ): Map<string, number>;
  /**
   * The rows of a loaded sum query in `within` (default: the first window): one series per bucket and
   * group, its single row at the bucket's start. Callers add them up.
   */
  sums(query: SumQuery, within?: Window): Group[];
  /**
   * Every device in a set of this kind within `within` (default: the first window), with the identity of
   * a set holding it in the latest bucket it appears in.
   */
  members(set: SetKind, within?: Window): Map<string, SetIdentity>;
  /**
   * Per device, its faults of these fingerprints (loaded with `tallies`) added up over `within` (default:
   * the first window), with the time and firmware of its newest one; in no particular order.
   */
  deviceTallies(fingerprints: Iterable<string>, within?: Window): DeviceTally[];
  /**
   * SEAM (issue 11): per device and cohort (kind, model, firmware, region), its exposure, reboots and faults
   * by severity and code added up over `within` (default: the first window); loaded with `deviceCohorts`.
   */
  deviceCohorts(within?: Window): DeviceCohortTally[];
}

export type LoadOptions = {
  /** The set kinds count and members will ask for (default: every kind). */
  sets?: readonly SetKind[];
  /** The fingerprints whose per-device tallies (issue_devices) to read. */
  tallies?: Iterable<string>;
  /** Read the per-device cohort tallies (device_cohort) as well. */
  deviceCohorts?: boolean;
};

export interface RollupReader {
  /**
   * Reads what these hour-aligned windows need: their device sets, the sums of these queries and the
   * tallies of these fingerprints.
   */
  load(windows: readonly Window[], queries?: readonly SumQuery[], options?: LoadOptions): Promise<RollupView>;
}

type SetsEntry = { rev: number; sets: Array<{ identity: SetIdentity; members: Int32Array }> };
type SumsEntry = { rev: number; rows: Group[] };
/** One bucket's tallies of one fingerprint, column by column; firmware as an index into `firmwares`. */
type TalliesEntry = {
  rev: number;
  members: Int32Array;
  n: Float64Array;
  lastMs: Float64Array;
  firmware: Int32Array;
};

/**
 * One bucket's device_cohort entries, column by column: device and cohort as indexes into the reader's
 * tables; ratings and faults as runs (entry i's are [start[i], start[i + 1])), faults by an index into
 * the (severity, code) table. Counts as 32-bit floats: exact up to 16 million a bucket. 10,000 devices take
 * ~0.3 MB a bucket instead of ~10,000 objects.
 */
type DeviceCohortsEntry = {
  rev: number;
  members: Int32Array;
  cohorts: Int32Array;
  hours: Float32Array;
  reboots: Float32Array;
  rejections: Float32Array;
  ratingStart: Int32Array;
  rating: Uint8Array;
  ratingN: Float32Array;
  faultStart: Int32Array;
  fault: Int32Array;
  faultN: Float32Array;
};

const bucketKey = (span: Span, startMs: number) => `${span}:${startMs}`;
const setKey = (kind: SetKind, key: string) => `${kind}|${key}`;
const tallyKey = (fingerprint: string, key: string) => `${fingerprint}|${key}`;
const deviceCohortsKey = (key: string) => `device_cohort|${key}`;
const queryKey = (q: SumQuery) =>
  JSON.stringify([q.rollup.hourly, q.rollup.daily, q.select, q.where, q.groupBy, q.raw === true]);

/** Contiguous time ranges covering these bucket starts of one span. */
function runsOf(span: Span, starts: readonly number[]): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  for (const start of [...starts].sort((a, b) => a - b)) {
    const last = ranges.at(-1);
    if (last !== undefined && last[1] === start) last[1] = start + SPAN_MS[span];
    else ranges.push([start, start + SPAN_MS[span]]);
  }
  return ranges;
}

/** Keeps at most `max` entries, dropping the least recently used. */
class Lru<V> {
  readonly #entries = new Map<string, V>();
  constructor(readonly max: number) {}
  get(key: string): V | undefined {
    return this.#entries.get(key);
  }
  set(key: string, value: V): void {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    while (this.#entries.size > this.max) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }
  touch(key: string): void {
    const value = this.#entries.get(key);
    if (value !== undefined) this.set(key, value);
  }
}

export type ReaderOptions = {
  maxBuckets?: number;
  maxSumEntries?: number;
  maxTallyEntries?: number;
  /**
   * Buckets of device_cohort columns kept (default 400: a 30-day window is 30 days and up to 46 edge hours,
   * and a load must find all of its buckets here; a bucket of 10,000 devices holds 0.3-0.5 MB).
   */
  maxDeviceCohortEntries?: number;
  /**
   * How long a bucket's revision read is trusted before it is read again (default 0: every load reads the
   * revisions). A second spares a round trip to InfluxDB per request under load, and delays what a
   * recompute changed by at most that long, on top of the runner's interval.
   */
  revisionTtlMs?: number;
};

/**
 * Adds device_cohort buckets up per (device, cohort). A slot per pair met: a device's first slot by its
 * index, its others (a firmware update) chained behind it; a slot's faults and ratings are chained cells of
 * (kind, n). At module level, so every reader shares its compiled code.
 */
function addUpDeviceCohorts(
  entries: readonly DeviceCohortsEntry[],
  tables: {
    ids: readonly string[];
    cohorts: readonly CohortLabels[];
    faults: ReadonlyArray<{ severity: string; code: string }>;
  },
): DeviceCohortTally[] {
  const firstSlot = new Int32Array(tables.ids.length).fill(-1);
  const nextSlot: number[] = [];
  const slotMember: number[] = [];
  const slotCohort: number[] = [];
  const hours: number[] = [];
  const reboots: number[] = [];
  const rejections: number[] = [];
  const slotFaults: number[] = [];
  const slotRatings: number[] = [];
  const cellKind: number[] = [];
  const cellN: number[] = [];
  const cellNext: number[] = [];
  /** Adds n to the cell of this kind in the chain starting at head; the chain's new head. */
  const addCell = (head: number, kind: number, n: number) => {
    for (let c = head; c >= 0; c = cellNext[c] ?? -1) {
      if (cellKind[c] === kind) {
        cellN[c] = (cellN[c] ?? 0) + n;
        return head;
      }
    }
    cellKind.push(kind);
    cellN.push(n);
    cellNext.push(head);
    return cellKind.length - 1;
  };
  for (const entry of entries) {
    for (let i = 0; i < entry.members.length; i++) {
      const member = entry.members[i] ?? 0;
      const cohort = entry.cohorts[i] ?? 0;
      let s = firstSlot[member] ?? -1;
      while (s >= 0 && slotCohort[s] !== cohort) s = nextSlot[s] ?? -1;
      if (s < 0) {
        s = slotMember.length;
        nextSlot.push(firstSlot[member] ?? -1);
        firstSlot[member] = s;
        slotMember.push(member);
        slotCohort.push(cohort);
        hours.push(0);
        reboots.push(0);
        rejections.push(0);
        slotFaults.push(-1);
        slotRatings.push(-1);
      }
      hours[s] = (hours[s] ?? 0) + (entry.hours[i] ?? 0);
      reboots[s] = (reboots[s] ?? 0) + (entry.reboots[i] ?? 0);
      rejections[s] = (rejections[s] ?? 0) + (entry.rejections[i] ?? 0);
      for (let j = entry.ratingStart[i] ?? 0; j < (entry.ratingStart[i + 1] ?? 0); j++)
        slotRatings[s] = addCell(slotRatings[s] ?? -1, entry.rating[j] ?? 0, entry.ratingN[j] ?? 0);
      for (let j = entry.faultStart[i] ?? 0; j < (entry.faultStart[i + 1] ?? 0); j++)
        slotFaults[s] = addCell(slotFaults[s] ?? -1, entry.fault[j] ?? 0, entry.faultN[j] ?? 0);
    }
  }
  return slotMember.map((member, s) => {
    const ratings = new Array<number>(RATINGS).fill(0);
    for (let c = slotRatings[s] ?? -1; c >= 0; c = cellNext[c] ?? -1)
      ratings[cellKind[c] ?? 0] = cellN[c] ?? 0;
    const faults: DeviceCohortTally["faults"] = [];
    for (let c = slotFaults[s] ?? -1; c >= 0; c = cellNext[c] ?? -1) {
      const kind = tables.faults[cellKind[c] ?? 0];
      if (kind !== undefined) faults.push({ severity: kind.severity, code: kind.code, n: cellN[c] ?? 0 });
    }
    const cohort = tables.cohorts[slotCohort[s] ?? 0] ?? {
      kind: "",
      model: "",
      firmware: "",
      region: "",
    };
    return {
      device: tables.ids[member] ?? "",
      ...cohort,
      hours: hours[s] ?? 0,
      reboots: reboots[s] ?? 0,
      rejections: rejections[s] ?? 0,
      ratings,
      faults,
    };
  });
}

export function createRollupReader(influx: InfluxDB, options: ReaderOptions = {}): RollupReader {
  const revisionTtlMs = options.revisionTtlMs ?? 0;
  /** Each bucket's revision (undefined: not rolled up) and when it was read (performance.now()). */
  const checked = new Lru<{ rev: number | undefined; at: number }>(50_000);
  /** What loads are reading now, by cache key: a concurrent load waits for it rather than reading it too. */
  const inflight = new Map<string, Promise<void>>();
  const setsCache = new Lru<SetsEntry>((options.maxBuckets ?? 5_000) * SET_KINDS.length);
  const sumsCache = new Lru<SumsEntry>(options.maxSumEntries ?? 20_000);
  const talliesCache = new Lru<TalliesEntry>(options.maxTallyEntries ?? 20_000);
  const deviceCohortsCache = new Lru<DeviceCohortsEntry>(options.maxDeviceCohortEntries ?? 200);
  /**
   * Windows' per-device sums, by their buckets' revisions: a page that compares several versions and ranks
   * cohorts over one window sums its 30 days of tallies once (~0.1 s at 10,000 devices), not once per answer.
   * Callers read the tallies and never change them.
   */
  const deviceCohortSums = new Lru<DeviceCohortTally[]>(8);
  /** Device id → a small integer, for this process's bitsets; `ids` maps it back. */
  const index = new Map<string, number>();
  const ids: string[] = [];
  const indexOf = (id: string) => {
    let i = index.get(id);
    if (i === undefined) {
      i = ids.length;
      index.set(id, i);
      ids.push(id);
    }
    return i;
  };
  const firmwareIndex = new Map<string, number>();
  const firmwares: string[] = [];
  const firmwareOf = (firmware: string) => {
    let i = firmwareIndex.get(firmware);
    if (i === undefined) {
      i = firmwares.length;
      firmwareIndex.set(firmware, i);
      firmwares.push(firmware);
    }
    return i;
  };

  const cohortIndex = new Map<string, number>();
  const cohortTable: CohortLabels[] = [];
  const cohortOf = (cohort: CohortLabels) => {
    const key = cohortKey(cohort);
    let i = cohortIndex.get(key);
    if (i === undefined) {
      i = cohortTable.length;
      cohortIndex.set(key, i);
      cohortTable.push(cohort);
    }
    return i;
  };
  /** (severity, code) pairs as "severity=code", each to a small integer. */
  const faultIndex = new Map<string, number>();
  const faultTable: Array<{ severity: string; code: string }> = [];
  const faultKindOf = (faultKey: string) => {
    let i = faultIndex.get(faultKey);
    if (i === undefined) {
      i = faultTable.length;
      faultIndex.set(faultKey, i);
      faultTable.push(faultOf(faultKey));
    }
    return i;
  };

  /** The columns of one bucket's device_cohort parts. */
  function deviceCohortsColumns(
    rev: number,
    parts: ReadonlyArray<{ cohort: number; part: string }>,
  ): DeviceCohortsEntry {
    const members: number[] = [];
    const cohorts: number[] = [];
    const hours: number[] = [];
    const reboots: number[] = [];
    const rejections: number[] = [];
    const ratingStart: number[] = [0];
    const rating: number[] = [];
    const ratingN: number[] = [];
    const faultStart: number[] = [0];
    const fault: number[] = [];
    const faultN: number[] = [];
    let cohort = 0;
    const visitor: DeviceCohortVisitor = {
      entry(device, h, r, j) {
        if (members.length > 0) {
          ratingStart.push(rating.length);
          faultStart.push(fault.length);
        }
        members.push(indexOf(device));
        cohorts.push(cohort);
        hours.push(h);
        reboots.push(r);
        rejections.push(j);
      },
      rating(r, n) {
        if (r < 0 || r >= RATINGS) return;
        rating.push(r);
        ratingN.push(n);
      },
      fault(faultKey, n) {
        fault.push(faultKindOf(faultKey));
        faultN.push(n);
      },
    };
    for (const p of parts) {
      cohort = p.cohort;
      visitDeviceCohorts(p.part, visitor);
    }
    ratingStart.push(rating.length);
    faultStart.push(fault.length);
    return {
      rev,
      members: Int32Array.from(members),
      cohorts: Int32Array.from(cohorts),
      hours: Float32Array.from(hours),
      reboots: Float32Array.from(reboots),
      rejections: Float32Array.from(rejections),
      ratingStart: Int32Array.from(members.length === 0 ? [0] : ratingStart),
      rating: Uint8Array.from(rating),
      ratingN: Float32Array.from(ratingN),
      faultStart: Int32Array.from(members.length === 0 ? [0] : faultStart),
      fault: Int32Array.from(fault),
      faultN: Float32Array.from(faultN),
    };
  }

  /** Statements over the runs of these buckets, one per span and run, with what each reads. */
  const planRuns = <T>(buckets: readonly Bucket[], statement: (span: Span, a: number, b: number) => T) =>
    (["1h", "1d"] as const).flatMap((span) =>
      runsOf(
        span,
        buckets.filter((b) => b.span === span).map((b) => b.startMs),
      ).map(([a, b]) => ({ span, made: statement(span, a, b) })),
    );

  async function revisions(needed: readonly Bucket[]): Promise<Map<string, number>> {
    const revs = new Map<string, number>();
    const startedAt = performance.now();
    const toRead = needed.filter((b) => {
      const known = checked.get(bucketKey(b.span, b.startMs));
      if (known === undefined || startedAt - known.at >= revisionTtlMs) return true;
      if (known.rev !== undefined) revs.set(bucketKey(b.span, b.startMs), known.rev);
      return false;
    });
    const planned = planRuns(
      toRead,
      (span, a, b) =>
        `SELECT "rev" FROM ${from("rollupRev")} WHERE ${tagIs("span", span)} AND ${timeRange(a, b)}`,
    );
    if (planned.length === 0) return revs;
    const results = await queryGroups(
      influx,
      planned.map((p) => p.made),
    );
    const read = new Map<string, number>();
    results.forEach((groups, i) => {
      const span = planned[i]?.span ?? "1h";
      for (const row of groups.flatMap((g) => g.rows)) {
        if (typeof row.rev === "number") read.set(bucketKey(span, row.time.getTime()), row.rev);
      }
    });
    for (const b of toRead) {
      const key = bucketKey(b.span, b.startMs);
      const rev = read.get(key);
      if (rev !== undefined) revs.set(key, rev);
      if (revisionTtlMs > 0) checked.set(key, { rev, at: startedAt });
    }
    return revs;
  }

  /** Runs a read when fewer than four of this reader's reads are under way (InfluxDB has two cores here). */
  let active = 0;
  const queued: Array<() => void> = [];
  async function limit<T>(read: () => Promise<T>): Promise<T> {
    if (active >= 4) await new Promise<void>((resolve) => queued.push(resolve));
    active++;
    try {
      return await read();
    } finally {
      active--;
      queued.shift()?.();
    }
  }

  const sumStatement = (q: SumQuery, span: Span, a: number, b: number) => {
    const measurement = from(span === "1h" ? q.rollup.hourly : q.rollup.daily);
    const tags = q.groupBy.map((t) => influxql.quoted(t));
    const range = `WHERE ${timeRange(a, b)}${q.where}`;
    if (q.raw === true)
      return `SELECT ${q.select} FROM ${measurement} ${range}${tags.length > 0 ? ` GROUP BY ${tags.join(", ")}` : ""}`;
    return `SELECT ${q.select} FROM ${measurement} ${range} GROUP BY ${[`time(${span})`, ...tags].join(", ")} fill(none)`;
  };

  return {
    async load(windows, queries = [], loadOptions = {}) {
      const neededByKey = new Map<string, Bucket>();
      for (const w of windows) {
        if (w.fromMs % HOUR_MS !== 0 || w.toMs % HOUR_MS !== 0)
          throw new Error("rollup windows must start and end on whole hours");
        for (const b of bucketsOf(w)) neededByKey.set(bucketKey(b.span, b.startMs), b);
      }
      const needed = [...neededByKey.values()];
      const revs = await revisions(needed);
      const rolledUp = needed.filter((b) => revs.has(bucketKey(b.span, b.startMs)));
      const isStale = (entry: { rev: number } | undefined, b: Bucket) =>
        entry?.rev !== revs.get(bucketKey(b.span, b.startMs));
      const waits = new Set<Promise<void>>();
      /** Whether this load reads an entry itself: not while another load is reading it (a warm-up). */
      const ours = (cacheKey: string) => {
        const pending = inflight.get(cacheKey);
        if (pending === undefined) return true;
        waits.add(pending);
        return false;
      };
      /** The buckets whose entry under `keyOf` this load reads: stale, and not being read already. */
      const toFetch = (
        keyOf: (key: string) => string,
        cached: (key: string) => { rev: number } | undefined,
      ) =>
        rolledUp.filter((b) => {
          const key = keyOf(bucketKey(b.span, b.startMs));
          return isStale(cached(key), b) && ours(key);
        });

      const kinds = [...new Set(loadOptions.sets ?? SET_KINDS)];
      const staleSets = kinds.map((kind) => ({
        kind,
        buckets: toFetch(
          (key) => setKey(kind, key),
          (key) => setsCache.get(key),
        ),
      }));
      const sumQueries = [...new Map(queries.map((q) => [queryKey(q), q])).entries()];
      const staleSums = sumQueries.map(([qk, q]) => ({
        qk,
        q,
        buckets: toFetch(
          (key) => `${qk}|${key}`,
          (key) => sumsCache.get(key),
        ),
      }));
      const tallied = [...new Set(loadOptions.tallies ?? [])].sort();
      const staleTallies = tallied.map((fp) => ({
        fp,
        buckets: toFetch(
          (key) => tallyKey(fp, key),
          (key) => talliesCache.get(key),
        ),
      }));
      const staleDeviceCohorts =
        loadOptions.deviceCohorts === true
          ? toFetch(deviceCohortsKey, (key) => deviceCohortsCache.get(key))
          : [];
      /** A statement over one run of stale buckets, and how its answer fills their cache entries. */
      type Job = { statement: string; keys: string[]; apply: (groups: Group[]) => void };
      const jobsOver = (
        buckets: readonly Bucket[],
        make: (span: Span, a: number, b: number, inRun: Bucket[]) => Job,
      ): Job[] =>
        SPANS.flatMap((span) =>
          runsOf(
            span,
            buckets.filter((b) => b.span === span).map((b) => b.startMs),
          ).map(([a, b]) =>
            make(
              span,
              a,
              b,
              buckets.filter((x) => x.span === span && x.startMs >= a && x.startMs < b),
            ),
          ),
        );
      const rev = (b: Bucket) => revs.get(bucketKey(b.span, b.startMs)) ?? 0;

      const jobs: Job[] = [
        ...staleSets.flatMap(({ kind, buckets }) =>
          jobsOver(buckets, (span, a, b, inRun) => ({
            statement: storedSetsStatement(span, a, b, [kind]),
            keys: inRun.map((x) => setKey(kind, bucketKey(x.span, x.startMs))),
            apply(groups) {
              const loaded = new Map<number, Map<string, { identity: SetIdentity; ids: number[] }>>();
              for (const { identity, startMs, ids } of storedParts(groups)) {
                const sets = loaded.get(startMs) ?? new Map();
                loaded.set(startMs, sets);
                const entry = sets.get(identityKey(identity)) ?? { identity, ids: [] };
                sets.set(identityKey(identity), entry);
                for (const id of ids) entry.ids.push(indexOf(id));
              }
              for (const x of inRun) {
                const sets = [...(loaded.get(x.startMs)?.values() ?? [])].map(({ identity, ids }) => ({
                  identity,
                  members: Int32Array.from(ids),
                }));
                setsCache.set(setKey(kind, bucketKey(x.span, x.startMs)), { rev: rev(x), sets });
              }
            },
          })),
        ),
        ...staleSums.flatMap(({ qk, q, buckets }) =>
          jobsOver(buckets, (span, a, b, inRun) => ({
            statement: sumStatement(q, span, a, b),
            keys: inRun.map((x) => `${qk}|${bucketKey(x.span, x.startMs)}`),
            apply(groups) {
              const rowsByStart = new Map<number, Group[]>();
              for (const group of groups) {
                for (const row of group.rows) {
                  const rows = rowsByStart.get(row.time.getTime()) ?? [];
                  rowsByStart.set(row.time.getTime(), rows);
                  rows.push({ ...group, rows: [row] });
                }
              }
              for (const x of inRun) {
                sumsCache.set(`${qk}|${bucketKey(x.span, x.startMs)}`, {
                  rev: rev(x),
                  rows: rowsByStart.get(x.startMs) ?? [],
                });
              }
            },
          })),
        ),
        ...staleTallies.flatMap(({ fp, buckets }) =>
          jobsOver(buckets, (span, a, b, inRun) => ({
            statement: storedTalliesStatement(span, a, b, [fp]),
            keys: inRun.map((x) => tallyKey(fp, bucketKey(x.span, x.startMs))),
            apply(groups) {
              const loaded = new Map<number, Map<number, { n: number; lastMs: number; firmware: number }>>();
              for (const { startMs, tallies } of storedTallyParts(groups)) {
                const byDevice = loaded.get(startMs) ?? new Map();
                loaded.set(startMs, byDevice);
                for (const t of tallies) {
                  const member = indexOf(t.device);
                  const held = byDevice.get(member);
                  // A part left over from a longer encoding repeats a device with an older tally: keep the larger.
                  if (held === undefined || t.n > held.n || (t.n === held.n && t.lastMs > held.lastMs))
                    byDevice.set(member, { n: t.n, lastMs: t.lastMs, firmware: firmwareOf(t.firmware) });
                }
              }
              for (const x of inRun) {
                const byDevice = [...(loaded.get(x.startMs) ?? new Map())];
                talliesCache.set(tallyKey(fp, bucketKey(x.span, x.startMs)), {
                  rev: rev(x),
                  members: Int32Array.from(byDevice, ([member]) => member),
                  n: Float64Array.from(byDevice, ([, t]) => t.n),
                  lastMs: Float64Array.from(byDevice, ([, t]) => t.lastMs),
                  firmware: Int32Array.from(byDevice, ([, t]) => t.firmware),
                });
              }
            },
          })),
        ),
        ...jobsOver(staleDeviceCohorts, (span, a, b, inRun) => ({
          statement: storedDeviceCohortsStatement(span, a, b),
          keys: inRun.map((x) => deviceCohortsKey(bucketKey(x.span, x.startMs))),
          apply(groups) {
            const loaded = new Map<number, Array<{ cohort: number; part: string }>>();
            for (const { cohort, startMs, part } of storedDeviceCohortParts(groups)) {
              const parts = loaded.get(startMs) ?? [];
              loaded.set(startMs, parts);
              parts.push({ cohort: cohortOf(cohort), part });
            }
            for (const x of inRun) {
              deviceCohortsCache.set(
                deviceCohortsKey(bucketKey(x.span, x.startMs)),
                deviceCohortsColumns(rev(x), loaded.get(x.startMs) ?? []),
              );
            }
          },
        })),
      ];
      // Each statement is its own request (InfluxDB runs a request's statements one after the other), and
      // its entries are in flight until it is answered: a load waiting for them waits for that one alone.
      for (const job of jobs) {
        const reading = limit(() => queryGroups(influx, [job.statement])).then(([groups = []]) =>
          job.apply(groups),
        );
        for (const key of job.keys) inflight.set(key, reading);
        const done = () => {
          for (const key of job.keys) if (inflight.get(key) === reading) inflight.delete(key);
        };
        reading.then(done, done);
        waits.add(reading);
      }
      await Promise.all(waits);

      // Take what this request reads now, so the caches may evict meanwhile without harm.
      const setsOf = new Map<string, SetsEntry["sets"]>();
      const sumsOf = new Map<string, Group[]>();
      const talliesOf = new Map<string, TalliesEntry | undefined>();
      const deviceCohortsOf = new Map<string, DeviceCohortsEntry | undefined>();
      /** Whether every entry taken is of the revision read (not an older one another load was reading). */
      let current = true;
      const take = <E extends { rev: number }>(cache: Lru<E>, cacheKey: string, key: string) => {
        cache.touch(cacheKey);
        const entry = cache.get(cacheKey);
        if (entry?.rev !== revs.get(key)) current = false;
        return entry;
      };
      for (const [key] of neededByKey) {
        const rolled = revs.has(key);
        for (const kind of kinds) {
          const entry = rolled ? take(setsCache, setKey(kind, key), key) : undefined;
          setsOf.set(setKey(kind, key), entry?.sets ?? []);
        }
        for (const [qk] of sumQueries) {
          const entry = rolled ? take(sumsCache, `${qk}|${key}`, key) : undefined;
          sumsOf.set(`${qk}|${key}`, entry?.rows ?? []);
        }
        for (const fp of tallied) {
          talliesOf.set(tallyKey(fp, key), rolled ? take(talliesCache, tallyKey(fp, key), key) : undefined);
        }
        if (loadOptions.deviceCohorts === true) {
          const entry = rolled ? take(deviceCohortsCache, deviceCohortsKey(key), key) : undefined;
          deviceCohortsOf.set(deviceCohortsKey(key), entry);
        }
      }
      const version = current
        ? [...neededByKey.keys()].map((key) => `${key}=${revs.get(key) ?? "-"}`).join(",")
        : undefined;
      const first = windows[0];
      const bucketsWithin = (within: Window | undefined) => (within === undefined ? [] : bucketsOf(within));
      const loaded = <T>(map: Map<string, T>, key: string): T => {
        const value = map.get(key);
        if (value === undefined) throw new Error(`rollups for ${key} were not loaded`);
        return value;
      };

      return {
        version,
        count(set, groupOf, within = first) {
          // Per group, the first set's size as it is; a bitset (32 devices a word) only once a second set
          // of the group may repeat a device.
          const groups = new Map<string, { n: number; first: Int32Array | undefined; bits?: Uint32Array }>();
          const words = (index.size + 31) >>> 5;
          const mark = (bits: Uint32Array, members: Int32Array) => {
            let n = 0;
            for (const m of members) {
              const word = m >>> 5;
              const bit = 1 << (m & 31);
              const held = bits[word] ?? 0;
              if ((held & bit) === 0) {
                bits[word] = held | bit;
                n++;
              }
            }
            return n;
          };
          for (const b of bucketsWithin(within)) {
            for (const { identity, members } of loaded(setsOf, setKey(set, bucketKey(b.span, b.startMs)))) {
              const group = groupOf(identity);
              if (group === undefined) continue;
              const entry = groups.get(group);
              if (entry === undefined) {
                groups.set(group, { n: members.length, first: members });
                continue;
              }
              if (entry.bits === undefined) {
                entry.bits = new Uint32Array(words);
                mark(entry.bits, entry.first ?? new Int32Array());
                entry.first = undefined;
              }
              entry.n += mark(entry.bits, members);
            }
          }
          return new Map([...groups].map(([group, { n }]) => [group, n]));
        },
        sums(query, within = first) {
          const qk = queryKey(query);
          return bucketsWithin(within).flatMap((b) =>
            loaded(sumsOf, `${qk}|${bucketKey(b.span, b.startMs)}`),
          );
        },
        members(set, within = first) {
          const found = new Map<number, SetIdentity>();
          const buckets = bucketsWithin(within).sort((a, b) => a.startMs - b.startMs);
          for (const b of buckets) {
            for (const { identity, members } of loaded(setsOf, setKey(set, bucketKey(b.span, b.startMs)))) {
              for (const m of members) found.set(m, identity);
            }
          }
          return new Map([...found].map(([m, identity]) => [ids[m] ?? "", identity]));
        },
        deviceTallies(fingerprints, within = first) {
          const slot = new Map<number, number>();
          const members: number[] = [];
          const n: number[] = [];
          const lastMs: number[] = [];
          const firmware: number[] = [];
          for (const fp of new Set(fingerprints)) {
            for (const b of bucketsWithin(within)) {
              const key = tallyKey(fp, bucketKey(b.span, b.startMs));
              if (!talliesOf.has(key)) throw new Error(`tallies for ${key} were not loaded`);
              const entry = talliesOf.get(key);
              if (entry === undefined) continue;
              for (let i = 0; i < entry.members.length; i++) {
                const member = entry.members[i] ?? 0;
                const at = entry.lastMs[i] ?? 0;
                const fw = entry.firmware[i] ?? 0;
                const s = slot.get(member);
                if (s === undefined) {
                  slot.set(member, members.length);
                  members.push(member);
                  n.push(entry.n[i] ?? 0);
                  lastMs.push(at);
                  firmware.push(fw);
                  continue;
                }
                n[s] = (n[s] ?? 0) + (entry.n[i] ?? 0);
                const heldMs = lastMs[s] ?? 0;
                if (
                  at > heldMs ||
                  (at === heldMs && (firmwares[fw] ?? "") > (firmwares[firmware[s] ?? 0] ?? ""))
                ) {
                  lastMs[s] = at;
                  firmware[s] = fw;
                }
              }
            }
          }
          return members.map((member, s) => ({
            device: ids[member] ?? "",
            n: n[s] ?? 0,
            lastMs: lastMs[s] ?? 0,
            firmware: firmwares[firmware[s] ?? 0] ?? "",
          }));
        },
        deviceCohorts(within = first) {
          const entries: DeviceCohortsEntry[] = [];
          const revisions: string[] = [];
          for (const b of bucketsWithin(within)) {
            const key = deviceCohortsKey(bucketKey(b.span, b.startMs));
            if (!deviceCohortsOf.has(key)) throw new Error(`device cohorts for ${key} were not loaded`);
            const entry = deviceCohortsOf.get(key);
            if (entry !== undefined) {
              entries.push(entry);
              revisions.push(`${key}@${entry.rev}`);
            }
          }
          const sumKey = revisions.join(",");
          const known = deviceCohortSums.get(sumKey);
          if (known !== undefined) return known;
          const sums = addUpDeviceCohorts(entries, { ids, cohorts: cohortTable, faults: faultTable });
          deviceCohortSums.set(sumKey, sums);
          return sums;
        },
      };
    },
  };
}
