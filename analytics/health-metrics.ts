import { GROUP_TAGS, type GroupTag, type HealthMetrics, RATINGS } from "../contract/api/fleet.js";
import { SEVERITIES, type Severity, UNKNOWN } from "../contract/messages.js";
import { floorDay } from "../contract/time.js";

// Fleet health: the sums a selection's cohorts add up to, and the KPIs derived from them. Distinct-device
// counts (devices, faultyDevices) never add up across hours or groups: the caller sets them from the
// device sets.

/** What the metrics are computed from. */
export type Counts = {
  devices: number;
  exposureHours: number;
  faults: Record<Severity, number>;
  faultyDevices: number;
  reboots: number;
  rejections: number;
  ratings: number[];
};

/** The additive part of Counts for one cohort and bucket, as the rollups store it. */
export type CohortSums = {
  hours: number;
  faults: Record<Severity, number>;
  reboots: number;
  rejections: number;
  /** Index = rating. */
  ratings: readonly number[];
};

/** One cohort's sums in one bucket: its tags (those grouped by) and the bucket's start. */
export type CohortSumRow = { tags: Readonly<Record<string, string>>; startMs: number; sums: CohortSums };

export type Selection = Partial<Record<GroupTag, string>>;

export const emptyCounts = (): Counts => ({
  devices: 0,
  exposureHours: 0,
  faults: { info: 0, warning: 0, error: 0, critical: 0 },
  faultyDevices: 0,
  reboots: 0,
  rejections: 0,
  ratings: Array.from({ length: RATINGS }, () => 0),
});

/** Adds a cohort's sums into `into`. */
export function addSums(into: Counts, sums: CohortSums): void {
  into.exposureHours += sums.hours;
  for (const s of SEVERITIES) into.faults[s] += sums.faults[s];
  into.reboots += sums.reboots;
  into.rejections += sums.rejections;
  for (let rating = 0; rating < RATINGS; rating++)
    into.ratings[rating] = (into.ratings[rating] ?? 0) + (sums.ratings[rating] ?? 0);
}

/** Adds the additive counts of `from` into `into`; the distinct-device counts are left alone. */
export const addCounts = (into: Counts, from: Counts): void =>
  addSums(into, { ...from, hours: from.exposureHours });

export function toMetrics(c: Counts): HealthMetrics {
  const perExposure = (n: number) => ({
    count: n,
    per1000h: c.exposureHours > 0 ? (n / c.exposureHours) * 1000 : null,
  });
  const faults = SEVERITIES.reduce((sum, s) => sum + c.faults[s], 0);
  const ratings = c.ratings.reduce((sum, n) => sum + n, 0);
  const ratingSum = c.ratings.reduce((sum, n, rating) => sum + n * rating, 0);
  return {
    devices: c.devices,
    exposureHours: c.exposureHours,
    faults: {
      ...perExposure(faults),
      bySeverity: {
        info: perExposure(c.faults.info),
        warning: perExposure(c.faults.warning),
        error: perExposure(c.faults.error),
        critical: perExposure(c.faults.critical),
      },
    },
    faultyDevices: c.faultyDevices,
    faultFreeShare: c.devices > 0 ? Math.max(0, c.devices - c.faultyDevices) / c.devices : null,
    reboots: {
      count: c.reboots,
      perDeviceDay: c.exposureHours > 0 ? c.reboots / (c.exposureHours / 24) : null,
    },
    rejections: perExposure(c.rejections),
    feedback: {
      count: ratings,
      mean: ratings > 0 ? ratingSum / ratings : null,
      distribution: [...c.ratings],
    },
  };
}

/** One group's key: its tag values in GROUP_TAGS order, then the bucket's time (0 when not by time). */
export function groupKey(group: Readonly<Record<string, string>>, timeMs = 0): string {
  return `${GROUP_TAGS.map((t) => group[t] ?? "").join("\u0000")}\u0000${String(timeMs).padStart(16, "0")}`;
}

/** The group of `tags` a set or row belongs to: its values of those tags ("" when it has none). */
export const groupOf = (
  values: Readonly<Record<string, string | undefined>>,
  tags: readonly GroupTag[],
): Record<string, string> => Object.fromEntries(tags.map((t) => [t, values[t] ?? ""]));

/** Whether a cohort (a set's identity, a row's tags) is inside the selection. */
export const inSelection = (selection: Selection, cohort: Readonly<Record<string, string | undefined>>) =>
  GROUP_TAGS.every((t) => selection[t] === undefined || cohort[t] === selection[t]);

/** The selection's fixed tags alone (a query carries its window and more beside them). */
export function selectionOf(q: Readonly<Partial<Record<GroupTag, string | undefined>>>): Selection {
  const selection: Selection = {};
  for (const tag of GROUP_TAGS) {
    const value = q[tag];
    if (value !== undefined) selection[tag] = value;
  }
  return selection;
}

/**
 * Rows added up per group of `tags` (and per UTC day when daily), keyed by groupKey(group, day); the
 * distinct-device counts are left at 0 for the caller.
 */
export function sumsBy(
  rows: Iterable<CohortSumRow>,
  tags: readonly GroupTag[],
  daily: boolean,
): Map<string, { group: Record<string, string>; counts: Counts }> {
  const result = new Map<string, { group: Record<string, string>; counts: Counts }>();
  for (const row of rows) {
    const group = groupOf(row.tags, tags);
    const key = groupKey(group, daily ? floorDay(row.startMs) : 0);
    let entry = result.get(key);
    if (entry === undefined) {
      entry = { group, counts: emptyCounts() };
      result.set(key, entry);
    }
    addSums(entry.counts, row.sums);
  }
  return result;
}

/** Groups sorted by their key, for a stable answer. */
export const sortedGroups = <T>(grouped: Map<string, T>): T[] =>
  [...grouped].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);

/**
 * One device's sums in one cohort over a window (storage/rollup-schema.ts DeviceCohortTally fits): what
 * grouping by what only the device's hello says (ISP, hardware) is computed from.
 */
export type DeviceCohortSums = {
  device: string;
  kind: string;
  model: string;
  firmware: string;
  region: string;
  hours: number;
  reboots: number;
  rejections: number;
  ratings: readonly number[];
  faults: ReadonlyArray<{ severity: string; n: number }>;
};

const SEVERITY_SET: ReadonlySet<string> = new Set(SEVERITIES);

/**
 * The per-device tallies added up per group of `tags` within the selection, with the distinct devices
 * (devices: with an hour of exposure; faultyDevices: with a fault) of each group and of the whole selection.
 * ISP and hardware are the device's current ones (attributesOf, "unknown" when it has none).
 */
export function deviceSumsBy(
  rows: Iterable<DeviceCohortSums>,
  attributesOf: (device: string) => { isp?: string | null; hardware?: string | null } | undefined,
  selection: Selection,
  tags: readonly GroupTag[],
): { groups: Map<string, { group: Record<string, string>; counts: Counts }>; total: Counts } {
  const groups = new Map<
    string,
    { group: Record<string, string>; counts: Counts; active: Set<string>; faulty: Set<string> }
  >();
  const total = { counts: emptyCounts(), active: new Set<string>(), faulty: new Set<string>() };
  for (const row of rows) {
    const attributes = attributesOf(row.device);
    const values: Record<GroupTag, string> = {
      kind: row.kind || UNKNOWN,
      model: row.model || UNKNOWN,
      firmware: row.firmware || UNKNOWN,
      region: row.region || UNKNOWN,
      isp: attributes?.isp || UNKNOWN,
      hardware: attributes?.hardware || UNKNOWN,
    };
    if (!inSelection(selection, values)) continue;
    const group = groupOf(values, tags);
    const key = groupKey(group);
    let entry = groups.get(key);
    if (entry === undefined) {
      entry = { group, counts: emptyCounts(), active: new Set(), faulty: new Set() };
      groups.set(key, entry);
    }
    const faults = { info: 0, warning: 0, error: 0, critical: 0 };
    for (const f of row.faults) if (SEVERITY_SET.has(f.severity)) faults[f.severity as Severity] += f.n;
    const sums: CohortSums = { ...row, faults };
    for (const into of [entry, total]) {
      addSums(into.counts, sums);
      if (row.hours > 0) into.active.add(row.device);
      if (SEVERITIES.some((s) => faults[s] > 0)) into.faulty.add(row.device);
    }
  }
  const counted = (e: { counts: Counts; active: Set<string>; faulty: Set<string> }) => {
    e.counts.devices = e.active.size;
    e.counts.faultyDevices = e.faulty.size;
    return e.counts;
  };
  return {
    groups: new Map([...groups].map(([key, e]) => [key, { group: e.group, counts: counted(e) }])),
    total: counted(total),
  };
}
