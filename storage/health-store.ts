import type { InfluxDB } from "influx";
import { z } from "zod";
import { compareRates } from "../analytics/rate-ratio.js";
import { compareVersions } from "../analytics/versions.js";
import {
  type FirmwareComparison,
  type FirmwareVersions,
  type FleetSummary,
  type FleetTrend,
  GROUP_TAGS,
  GroupTag,
  type HealthMetrics,
  MAX_SERIES_DAYS,
  type RateComparison,
} from "../contract/api/fleet.js";
import { Label, SEVERITIES, Severity } from "../contract/messages.js";
import { alignHours, DAY_MS, HOUR_MS, type Window } from "../contract/time.js";
import { from, type Group, iso, queryGroups, tagIs } from "./influxql.js";
import {
  createRollupReader,
  type RollupReader as RollupCache,
  type RollupView,
  type SumQuery,
} from "./rollup-reader.js";
import { COHORT_SUMS, RATINGS, type SetIdentity } from "./rollup-schema.js";

// Fleet health and firmware cohorts, read from the rollups (rollup/, docs/storage.md "Rollups"), never from
// the raw points: counting distinct devices in raw `activity` and `fault` takes seconds over a month of a
// large fleet. Exposure, faults, reboots, rejections and ratings are sums of `cohort_1h` (one point per UTC
// hour and cohort; exposure is the `activity` points, one per device and hour it reported); fault counts by
// code come from `issue_1h`; distinct devices come from the device sets, which never add up across hours
// or groups; storage/rollup-cache.ts reads and caches both. Every window is widened to whole UTC hours, the rollups' grain; the
// responses give the window actually used. Data shows up once its hour is rolled up, late data included.

export { alignHours, DAY_MS, HOUR_MS, RATINGS };

const epochMs = z.number().int().min(0);

const SELECTION_FIELDS = {
  kind: Label.optional(),
  model: Label.optional(),
  firmware: Label.optional(),
  region: Label.optional(),
};
const window = { fromMs: epochMs, toMs: epochMs };
const ordered = (q: { fromMs: number; toMs: number }) => q.fromMs < q.toMs;
const ORDER = "fromMs must be before toMs";
const notTooLong = (q: { fromMs: number; toMs: number }) => q.toMs - q.fromMs <= MAX_SERIES_DAYS * DAY_MS;
const TOO_LONG = `the window may span at most ${MAX_SERIES_DAYS} days`;

export const FleetSummaryQuery = z
  .object({ ...window, groupBy: z.array(GroupTag).max(GROUP_TAGS.length), ...SELECTION_FIELDS })
  .refine(ordered, ORDER);
export type FleetSummaryQuery = z.input<typeof FleetSummaryQuery>;

export const FleetTrendQuery = z
  .object({ ...window, ...SELECTION_FIELDS })
  .refine(ordered, ORDER)
  .refine(notTooLong, TOO_LONG);
export type FleetTrendQuery = z.input<typeof FleetTrendQuery>;

export const FirmwareVersionsQuery = z
  .object({ ...window, model: Label.optional() })
  .refine(ordered, ORDER)
  .refine(notTooLong, TOO_LONG);
export type FirmwareVersionsQuery = z.input<typeof FirmwareVersionsQuery>;

export const FirmwareCompareQuery = z
  .object({ ...window, model: Label, baseline: Label, candidate: Label, severity: Severity.optional() })
  .refine(ordered, ORDER)
  .refine((q) => q.baseline !== q.candidate, "baseline and candidate must differ");
export type FirmwareCompareQuery = z.input<typeof FirmwareCompareQuery>;

export type FirmwareComparisonResult =
  | { ok: true; comparison: FirmwareComparison }
  | { ok: false; reason: "no_exposure"; cohorts: Array<"baseline" | "candidate"> };

export interface HealthStore {
  /** Metrics per group of the selection, and for the whole selection. */
  fleetSummary(query: FleetSummaryQuery): Promise<FleetSummary>;
  /** The same metrics for the whole selection per UTC day. */
  fleetTrend(query: FleetTrendQuery): Promise<FleetTrend>;
  /** Versions active in the window per model, oldest first (compareVersions). */
  firmwareVersions(query: FirmwareVersionsQuery): Promise<FirmwareVersions>;
  /** Fault rates of two cohorts of one model; not ok when a cohort has no exposure in the window. */
  compareFirmware(query: FirmwareCompareQuery): Promise<FirmwareComparisonResult>;
}

const num = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : 0);
const dayStarts = (fromMs: number, toMs: number) => {
  const days: number[] = [];
  for (let day = Math.floor(fromMs / DAY_MS) * DAY_MS; day < toMs; day += DAY_MS) days.push(day);
  return days;
};
/** The part of the window inside the UTC day starting at `day`. */
const dayPart = (day: number, window: Window): Window => ({
  fromMs: Math.max(day, window.fromMs),
  toMs: Math.min(day + DAY_MS, window.toMs),
});

/** What the metrics are computed from; everything but the distinct-device counts adds up across groups. */
type Counts = {
  devices: number;
  exposureHours: number;
  faults: Record<Severity, number>;
  faultyDevices: number;
  reboots: number;
  rejections: number;
  ratings: number[];
};

const emptyCounts = (): Counts => ({
  devices: 0,
  exposureHours: 0,
  faults: { info: 0, warning: 0, error: 0, critical: 0 },
  faultyDevices: 0,
  reboots: 0,
  rejections: 0,
  ratings: Array.from({ length: RATINGS }, () => 0),
});

const ratingField = (rating: number) => `rating_${rating}`;
const faultField = (severity: Severity) => `faults_${severity}`;

function toMetrics(c: Counts): HealthMetrics {
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

function throwProblem(problem: { field: string; message: string }): never {
  throw new Error(`compareRates refused ${problem.field}: ${problem.message}`);
}

type TagFilter = Partial<Record<GroupTag, string | undefined>>;

/** " AND tag = value" for each tag the selection fixes. */
function tagConditions(q: TagFilter) {
  return GROUP_TAGS.flatMap((tag) => {
    const value = q[tag];
    return value === undefined ? [] : [` AND ${tagIs(tag, value)}`];
  }).join("");
}

function selectionOf(q: TagFilter) {
  const selection: Partial<Record<GroupTag, string>> = {};
  for (const tag of GROUP_TAGS) {
    const value = q[tag];
    if (value !== undefined) selection[tag] = value;
  }
  return selection;
}

/** A device set's group: keyOf its `tags`, or undefined when the set is outside the selection. */
const groupIn =
  (q: TagFilter, tags: readonly GroupTag[]) =>
  (identity: SetIdentity): string | undefined =>
    GROUP_TAGS.every((t) => q[t] === undefined || identity[t] === q[t])
      ? keyOf(Object.fromEntries(tags.map((t) => [t, identity[t]])), 0)
      : undefined;

export type HealthStoreOptions = {
  /** Where rollups are read and cached; pass the IssueStore's to share one cache. */
  rollups?: RollupCache;
};

export function createInfluxHealthStore(influx: InfluxDB, options: HealthStoreOptions = {}): HealthStore {
  const rollups = options.rollups ?? createRollupReader(influx);
  const cohorts = from("cohort1h");
  const COHORTS = { hourly: "cohort1h", daily: "cohort1d" } as const;
  const ISSUES = { hourly: "issue1h", daily: "issue1d" } as const;
  /** Several statements in one request; one list of series per statement. */
  const statements = (queries: readonly string[]) => queryGroups(influx, queries);

  /** The cohort sums behind HealthMetrics in the selection, per group of `tags`. */
  const cohortSums = (q: TagFilter, tags: readonly GroupTag[]): SumQuery => ({
    rollup: COHORTS,
    select: COHORT_SUMS,
    where: tagConditions(q),
    groupBy: tags,
  });

  /**
   * cohortSums added up per group (and per UTC day when daily), keyed by keyOf(group, day); the
   * distinct-device counts are left at 0 for the caller.
   */
  function sumsBy(
    view: RollupView,
    q: TagFilter,
    tags: readonly GroupTag[],
    daily: boolean,
  ): Map<string, { group: Record<string, string>; counts: Counts }> {
    const result = new Map<string, { group: Record<string, string>; counts: Counts }>();
    for (const g of view.sums(cohortSums(q, tags))) {
      const group = Object.fromEntries(tags.map((t) => [t, g.tags[t] ?? ""]));
      for (const row of g.rows) {
        const key = keyOf(group, daily ? Math.floor(row.time.getTime() / DAY_MS) * DAY_MS : 0);
        const c = result.get(key)?.counts ?? emptyCounts();
        result.set(key, { group, counts: c });
        c.exposureHours += num(row.hours);
        for (const s of SEVERITIES) c.faults[s] += num(row[faultField(s)]);
        c.reboots += num(row.reboots);
        c.rejections += num(row.rejections);
        c.ratings = c.ratings.map((n, rating) => n + num(row[ratingField(rating)]));
      }
    }
    return result;
  }

  return {
    async fleetSummary(input) {
      const q = FleetSummaryQuery.parse(input);
      const window = alignHours(q);
      const groupBy = [...new Set(q.groupBy)];
      const view = await rollups.load([window], [cohortSums(q, groupBy)]);
      const grouped = sumsBy(view, q, groupBy, false);
      const perGroup = groupIn(q, groupBy);
      const [active, faulty] = [view.count("active", perGroup), view.count("faulty", perGroup)];
      const total = emptyCounts();
      for (const [key, { counts: c }] of grouped) {
        c.devices = active.get(key) ?? 0;
        c.faultyDevices = faulty.get(key) ?? 0;
        total.exposureHours += c.exposureHours;
        for (const s of SEVERITIES) total.faults[s] += c.faults[s];
        total.reboots += c.reboots;
        total.rejections += c.rejections;
        c.ratings.forEach((n, rating) => {
          total.ratings[rating] = (total.ratings[rating] ?? 0) + n;
        });
      }
      // Distinct devices do not add up across groups (a device that changed firmware is in two).
      const whole = groupIn(q, []);
      total.devices = view.count("active", whole).get(keyOf({}, 0)) ?? 0;
      total.faultyDevices = view.count("faulty", whole).get(keyOf({}, 0)) ?? 0;
      const groups = [...grouped]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([, { group, counts }]) => ({ group, ...toMetrics(counts) }));
      return {
        from: iso(window.fromMs),
        to: iso(window.toMs),
        groupBy,
        filter: selectionOf(q),
        groups,
        total: toMetrics(total),
      };
    },

    async fleetTrend(input) {
      const q = FleetTrendQuery.parse(input);
      const window = alignHours(q);
      const view = await rollups.load([window], [cohortSums(q, [])]);
      const daily = sumsBy(view, q, [], true);
      const whole = groupIn(q, []);
      return {
        from: iso(window.fromMs),
        to: iso(window.toMs),
        filter: selectionOf(q),
        days: dayStarts(window.fromMs, window.toMs).map((day) => {
          const part = dayPart(day, window);
          const c = daily.get(keyOf({}, day))?.counts ?? emptyCounts();
          c.devices = view.count("active", whole, part).get(keyOf({}, 0)) ?? 0;
          c.faultyDevices = view.count("faulty", whole, part).get(keyOf({}, 0)) ?? 0;
          return { day: iso(day), from: iso(part.fromMs), to: iso(part.toMs), ...toMetrics(c) };
        }),
      };
    },

    async firmwareVersions(input) {
      const q = FirmwareVersionsQuery.parse(input);
      const window = alignHours(q);
      const { fromMs, toMs } = window;
      const lastDay = { fromMs: Math.max(fromMs, toMs - DAY_MS), toMs };
      const model = q.model === undefined ? "" : ` AND ${tagIs("model", q.model)}`;
      // Cohort points with no exposure exist for hours with only faults or events: a version is active
      // (and first seen) where it has activity hours.
      const exposure: SumQuery = {
        rollup: COHORTS,
        select: `sum("hours") AS "hours"`,
        where: ` AND "hours" > 0${model}`,
        groupBy: ["model", "firmware"],
      };
      const [[first = []], view] = await Promise.all([
        statements([
          // first() of all history up to `to`: when the version first reported, wherever the window starts.
          `SELECT first("hours") AS "hours" FROM ${cohorts} WHERE time < ${toMs}ms AND "hours" > 0${model} GROUP BY "model", "firmware"`,
        ]),
        rollups.load([window, lastDay], [exposure]),
      ]);
      const perVersion = view.sums(exposure);
      const versionKey = (tags: Record<string, string | undefined>) =>
        keyOf({ model: tags.model ?? "", firmware: tags.firmware ?? "" }, 0);
      const ofModel = (identity: SetIdentity) => q.model === undefined || identity.model === q.model;
      const versionOf = (identity: SetIdentity) => (ofModel(identity) ? versionKey(identity) : undefined);
      const modelOf = (identity: SetIdentity) => (ofModel(identity) ? identity.model : undefined);
      const devices = view.count("active", versionOf);
      const devicesNow = view.count("active", versionOf, lastDay);
      const firstByVersion = new Map(
        first.map((g) => [versionKey(g.tags), g.rows[0]?.time.getTime() ?? fromMs]),
      );
      const days = dayStarts(fromMs, toMs).map((day) => {
        const part = dayPart(day, window);
        return {
          day,
          versions: view.count("active", versionOf, part),
          models: view.count("active", modelOf, part),
        };
      });

      const models = new Map<string, FirmwareVersions["models"][number]>();
      // A version's exposure, from each range of the window that read it.
      const hoursByVersion = new Map<string, { tags: Record<string, string>; hours: number }>();
      for (const g of perVersion) {
        const key = versionKey(g.tags);
        const entry = hoursByVersion.get(key) ?? { tags: g.tags, hours: 0 };
        entry.hours += num(g.rows[0]?.hours);
        hoursByVersion.set(key, entry);
      }
      for (const [key, g] of hoursByVersion) {
        const modelName = g.tags.model ?? "";
        const entry = models.get(modelName) ?? {
          model: modelName,
          devicesByDay: days.map((d) => ({ day: iso(d.day), devices: d.models.get(modelName) ?? 0 })),
          versions: [],
        };
        models.set(modelName, entry);
        entry.versions.push({
          firmware: g.tags.firmware ?? "",
          firstSeen: iso(firstByVersion.get(key) ?? fromMs),
          devicesNow: devicesNow.get(key) ?? 0,
          devices: devices.get(key) ?? 0,
          exposureHours: g.hours,
          adoption: days.map((d) => {
            const onVersion = d.versions.get(key) ?? 0;
            const all = d.models.get(modelName) ?? 0;
            return { day: iso(d.day), devices: onVersion, share: all > 0 ? onVersion / all : null };
          }),
        });
      }
      for (const entry of models.values()) {
        entry.versions.sort((a, b) => compareVersions(a.firmware, b.firmware));
      }
      return {
        from: iso(fromMs),
        to: iso(toMs),
        models: [...models.values()].sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0)),
      };
    },

    async compareFirmware(input) {
      const q = FirmwareCompareQuery.parse(input);
      const window = alignHours(q);
      const cohortsOf =
        ` AND ${tagIs("model", q.model)} AND ` +
        `(${tagIs("firmware", q.baseline)} OR ${tagIs("firmware", q.candidate)})`;
      const hours: SumQuery = {
        rollup: COHORTS,
        select: `sum("hours") AS "hours"`,
        where: cohortsOf,
        groupBy: ["firmware"],
      };
      const counts: SumQuery = {
        rollup: ISSUES,
        select: `sum("n") AS "n"`,
        where: cohortsOf,
        groupBy: ["firmware", "severity", "code"],
      };
      const view = await rollups.load([window], [hours, counts]);
      const [exposure, faults] = [view.sums(hours), view.sums(counts)];
      const devices = view.count("active", (identity) =>
        identity.model === q.model && (identity.firmware === q.baseline || identity.firmware === q.candidate)
          ? identity.firmware
          : undefined,
      );
      const cohort = (firmware: string) => {
        const hours = exposure
          .filter((g) => g.tags.firmware === firmware)
          .reduce((sum, g) => sum + num(g.rows[0]?.hours), 0);
        return { firmware, devices: devices.get(firmware) ?? 0, exposureHours: hours };
      };
      const baseline = cohort(q.baseline);
      const candidate = cohort(q.candidate);
      const missing = (["baseline", "candidate"] as const).filter(
        (side) => (side === "baseline" ? baseline : candidate).exposureHours === 0,
      );
      if (missing.length > 0) return { ok: false, reason: "no_exposure", cohorts: missing };

      const tally = (keep: (g: Group) => boolean) => {
        const counts = { baseline: 0, candidate: 0 };
        for (const g of faults) {
          if (!keep(g)) continue;
          const n = num(g.rows[0]?.n);
          if (g.tags.firmware === q.baseline) counts.baseline += n;
          else if (g.tags.firmware === q.candidate) counts.candidate += n;
        }
        return counts;
      };
      const compare = (counts: { baseline: number; candidate: number }): RateComparison => {
        const result = compareRates({
          baseline: { count: counts.baseline, exposureHours: baseline.exposureHours },
          candidate: { count: counts.candidate, exposureHours: candidate.exposureHours },
        });
        return result.ok ? result.comparison : throwProblem(result.problem);
      };
      const severityMatches = (g: Group) => q.severity === undefined || g.tags.severity === q.severity;
      const codes = [...new Set(faults.filter(severityMatches).map((g) => g.tags.code ?? ""))];
      const byCode = codes
        .map((code) => {
          const counts = tally((g) => severityMatches(g) && g.tags.code === code);
          return { code, total: counts.baseline + counts.candidate, comparison: compare(counts) };
        })
        .sort((a, b) => b.total - a.total || (a.code < b.code ? -1 : a.code > b.code ? 1 : 0))
        .map(({ code, comparison }) => ({ code, comparison }));
      return {
        ok: true,
        comparison: {
          model: q.model,
          from: iso(window.fromMs),
          to: iso(window.toMs),
          severity: q.severity ?? null,
          baseline,
          candidate,
          overall: compare(tally(severityMatches)),
          critical: compare(tally((g) => g.tags.severity === "critical")),
          byCode,
        },
      };
    },
  };
}

/** One group's key: its tag values in GROUP_TAGS order, then the bucket's time. */
function keyOf(selection: Record<string, string>, timeMs: number): string {
  return `${GROUP_TAGS.map((t) => selection[t] ?? "").join("\u0000")}\u0000${String(timeMs).padStart(16, "0")}`;
}
