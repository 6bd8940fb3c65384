import type { InfluxDB } from "influx";
import { type CohortScope, rankCohorts } from "../analytics/cohort-ranking.js";
import { assembleVersions, type Side, versionKey } from "../analytics/firmware-cohorts.js";
import {
  addCounts,
  type DeviceCohortSums,
  deviceSumsBy,
  emptyCounts,
  groupKey,
  groupOf,
  inSelection,
  type Selection,
  selectionOf,
  sortedGroups,
  sumsBy,
  toMetrics,
} from "../analytics/health-metrics.js";
import {
  type CohortDimension,
  type CohortRanking,
  DEVICE_TAGS,
  type FirmwareVersions,
  type FleetSummary,
  type FleetTrend,
  type GroupTag,
} from "../contract/api/fleet.js";
import type { Severity } from "../contract/messages.js";
import { err, ok, type Result } from "../contract/result.js";
import { alignHours, DAY_MS, dayPart, dayStarts, iso, type Window } from "../contract/time.js";
import {
  cohortSumRows,
  cohortSumsQuery,
  firstActivity,
  hoursRows,
  versionHoursQuery,
} from "../storage/health-queries.js";
import { createRollupReader, type RollupReader, type RollupView } from "../storage/rollup-reader.js";
import type { SetIdentity } from "../storage/rollup-schema.js";
import { answers } from "./answers.js";
import type { Hello } from "./device-directory.js";

// Fleet health and firmware cohorts, from the rollups (docs/storage.md "Rollups"), never from the raw
// points: exposure, faults, reboots, rejections and ratings are sums of cohort_1h/1d, fault counts by code
// come from issue_1h/1d, distinct devices from the device sets; the rollup reader caches all of them per
// bucket. Every window is widened to whole UTC hours, the rollups' grain; answers give the window used.

type Maybe<T> = T | undefined;
export type FleetSelection = {
  kind?: Maybe<string>;
  model?: Maybe<string>;
  firmware?: Maybe<string>;
  region?: Maybe<string>;
  isp?: Maybe<string>;
  hardware?: Maybe<string>;
};
export type FleetSummaryInput = Window & FleetSelection & { groupBy: readonly GroupTag[] };
export type FleetTrendInput = Window & FleetSelection;
export type FirmwareVersionsInput = Window & { model?: Maybe<string> };
/**
 * What the read side needs of the device directory (services/device-directory.ts) to name each device's
 * current ISP and hardware revision.
 */
export type HelloLookup = {
  ready(): Promise<void>;
  get(id: string): { hello: Pick<Hello, "isp" | "hardware"> } | undefined;
  /** Moves whenever a device's hello changes. */
  helloRevision(): number;
};

export type NoExposure = { reason: "no_exposure"; cohorts: Side[] };
export type CohortRankingInput = Window &
  CohortScope & {
    dimension: CohortDimension;
    severity?: Maybe<Severity>;
    code?: Maybe<string>;
  };

export interface HealthService {
  /** Metrics per group of the selection, and for the whole selection. */
  fleetSummary(q: FleetSummaryInput): Promise<FleetSummary>;
  /** The same metrics for the whole selection per UTC day (the window's edge days partial). */
  fleetTrend(q: FleetTrendInput): Promise<FleetTrend>;
  /** Versions active in the window per model, oldest first. */
  firmwareVersions(q: FirmwareVersionsInput): Promise<FirmwareVersions>;
  /**
   * Each value of a dimension within the selection (a model, a kind, the fleet) against the rest of it,
   * worst first; not ok when no device of the selection has exposure in the window.
   */
  rankCohorts(q: CohortRankingInput): Promise<Result<CohortRanking, { reason: "no_exposure" }>>;
  /** Reads what the default requests need (the last 30 days), so the first request after start is fast. */
  warm(): Promise<void>;
}

export type HealthServiceOptions = {
  /** Share one reader (and its cache) with the other services. */
  rollups?: RollupReader;
  now?: () => number;
  /** How long a version's first activity is reused before it is read again in the background. */
  firstSeenTtlMs?: number;
  /** Each device's current ISP and hardware; without it they are "unknown" to grouping and ranking. */
  directory?: HelloLookup;
};

/** The device sets the fleet reads count (firmware reads: active alone). */
const COUNTED = { sets: ["active", "faulty"] } as const;
const ACTIVE = { sets: ["active"] } as const;
/** The per-device cohort tallies alone: grouping by ISP or hardware, ranking cohorts. */
const DEVICE_COHORTS = { sets: [], deviceCohorts: true } as const;

/** Whether a request groups or filters by what only the device's hello says: the per-device path. */
const byDevice = (selection: Selection, groupBy: readonly GroupTag[]) =>
  DEVICE_TAGS.some((t) => selection[t] !== undefined || groupBy.includes(t));

const selected = <T extends { tags: Readonly<Record<string, string>> }>(rows: T[], selection: Selection) =>
  rows.filter((r) => inSelection(selection, r.tags));

/** The distinct devices of a set kind per group of `tags`, within the selection. */
const countBy = (
  view: RollupView,
  set: "active" | "faulty",
  selection: Selection,
  tags: readonly GroupTag[],
  within?: Window,
) =>
  view.count(
    set,
    (s: SetIdentity) => (inSelection(selection, s) ? groupKey(groupOf(s, tags)) : undefined),
    within,
  );

export function createHealthService(influx: InfluxDB, options: HealthServiceOptions = {}): HealthService {
  const rollups = options.rollups ?? createRollupReader(influx);
  const now = options.now ?? Date.now;
  const whole = groupKey({});
  const firstSeenTtlMs = options.firstSeenTtlMs ?? 60_000;
  const { directory } = options;
  const attributesOf = (device: string) => directory?.get(device)?.hello;
  /** The window's per-device cohort tallies, once the directory can name their ISP and hardware. */
  async function deviceView(windows: readonly Window[]): Promise<RollupView> {
    const [view] = await Promise.all([rollups.load(windows, [], DEVICE_COHORTS), directory?.ready()]);
    return view;
  }
  const deviceSums = (view: RollupView, within?: Window): DeviceCohortSums[] => view.deviceCohorts(within);
  /** An answer that names devices' ISP or hardware holds while the rollups and every hello stay the same. */
  const deviceVersion = (view: RollupView) =>
    view.version === undefined ? undefined : `${view.version}|${directory?.helloRevision() ?? 0}`;

  // A version's first activity ever reads all of cohort_1h (~0.1-0.3 s at 10,000 devices × 30 days), and
  // only changes when a new version appears or late data lands before it: it is kept, read again in the
  // background once older than the TTL, and at once when a version the answer needs is missing from it.
  let firstSeen: { readAt: number; byVersion: Map<string, number> } | undefined;
  let reading: Promise<Map<string, number>> | undefined;
  const readFirstSeen = () => {
    reading ??= firstActivity(influx)
      .then((rows) => {
        const byVersion = new Map(rows.map((r) => [versionKey(r.model, r.firmware), r.firstMs]));
        firstSeen = { readAt: performance.now(), byVersion };
        return byVersion;
      })
      .finally(() => {
        reading = undefined;
      });
    return reading;
  };
  async function firstSeenOf(versions: readonly string[]) {
    const known = firstSeen;
    if (known === undefined || versions.some((v) => !known.byVersion.has(v))) await readFirstSeen();
    else if (performance.now() - known.readAt > firstSeenTtlMs) readFirstSeen().catch(() => {});
    return firstSeen ?? { readAt: 0, byVersion: new Map<string, number>() };
  }

  // Answers kept while the rollups they were computed from stay the same (RollupView.version): a
  // dashboard asking the same thing again costs a revision check, not the month's distinct counts.
  const summaries = answers<FleetSummary>();
  const trends = answers<FleetTrend>();
  const versionLists = answers<FirmwareVersions>();
  const rankings = answers<Awaited<ReturnType<HealthService["rankCohorts"]>>>();

  const service: HealthService = {
    async fleetSummary(q) {
      const window = alignHours(q);
      const selection = selectionOf(q);
      const groupBy = [...new Set(q.groupBy)];
      if (byDevice(selection, groupBy)) {
        // Not kept as an answer: the directory's ISP and hardware may change while the rollups do not.
        const view = await deviceView([window]);
        const { groups, total } = deviceSumsBy(deviceSums(view), attributesOf, selection, groupBy);
        return {
          from: iso(window.fromMs),
          to: iso(window.toMs),
          groupBy,
          filter: selection,
          groups: sortedGroups(groups).map(({ group, counts }) => ({ group, ...toMetrics(counts) })),
          total: toMetrics(total),
        };
      }
      const query = cohortSumsQuery();
      const view = await rollups.load([window], [query], COUNTED);
      const key = JSON.stringify([window, selection, groupBy]);
      return summaries(key, view.version, () => {
        const grouped = sumsBy(selected(cohortSumRows(view.sums(query)), selection), groupBy, false);
        const [active, faulty] = [
          countBy(view, "active", selection, groupBy),
          countBy(view, "faulty", selection, groupBy),
        ];
        const total = emptyCounts();
        for (const [key, { counts }] of grouped) {
          counts.devices = active.get(key) ?? 0;
          counts.faultyDevices = faulty.get(key) ?? 0;
          addCounts(total, counts);
        }
        // Distinct devices do not add up across groups (a device that changed firmware is in two).
        total.devices = countBy(view, "active", selection, []).get(whole) ?? 0;
        total.faultyDevices = countBy(view, "faulty", selection, []).get(whole) ?? 0;
        return {
          from: iso(window.fromMs),
          to: iso(window.toMs),
          groupBy,
          filter: selection,
          groups: sortedGroups(grouped).map(({ group, counts }) => ({ group, ...toMetrics(counts) })),
          total: toMetrics(total),
        };
      });
    },

    async fleetTrend(q) {
      const window = alignHours(q);
      const selection = selectionOf(q);
      if (byDevice(selection, [])) {
        const days = dayStarts(window).map((day) => ({ day, part: dayPart(day, window) }));
        const view = await deviceView([window, ...days.map((d) => d.part)]);
        return {
          from: iso(window.fromMs),
          to: iso(window.toMs),
          filter: selection,
          days: days.map(({ day, part }) => {
            const { total } = deviceSumsBy(deviceSums(view, part), attributesOf, selection, []);
            return { day: iso(day), from: iso(part.fromMs), to: iso(part.toMs), ...toMetrics(total) };
          }),
        };
      }
      const query = cohortSumsQuery();
      const view = await rollups.load([window], [query], COUNTED);
      return trends(JSON.stringify([window, selection]), view.version, () => {
        const daily = sumsBy(selected(cohortSumRows(view.sums(query)), selection), [], true);
        return {
          from: iso(window.fromMs),
          to: iso(window.toMs),
          filter: selection,
          days: dayStarts(window).map((day) => {
            const part = dayPart(day, window);
            const counts = daily.get(groupKey({}, day))?.counts ?? emptyCounts();
            counts.devices = countBy(view, "active", selection, [], part).get(whole) ?? 0;
            counts.faultyDevices = countBy(view, "faulty", selection, [], part).get(whole) ?? 0;
            return { day: iso(day), from: iso(part.fromMs), to: iso(part.toMs), ...toMetrics(counts) };
          }),
        };
      });
    },

    async firmwareVersions(q) {
      const window = alignHours(q);
      const lastDay = { fromMs: Math.max(window.fromMs, window.toMs - DAY_MS), toMs: window.toMs };
      const query = versionHoursQuery(q.model);
      const view = await rollups.load([window, lastDay], [query], ACTIVE);
      const hours = hoursRows(view.sums(query));
      const ofModel = (s: SetIdentity) => q.model === undefined || s.model === q.model;
      const versionOf = (s: SetIdentity) => (ofModel(s) ? versionKey(s.model, s.firmware) : undefined);
      const modelOf = (s: SetIdentity) => (ofModel(s) ? s.model : undefined);
      const first = await firstSeenOf([...new Set(hours.map((r) => versionKey(r.model, r.firmware)))]);
      const version = view.version === undefined ? undefined : `${view.version}|${first.readAt}`;
      return versionLists(JSON.stringify([window, q.model ?? null]), version, () =>
        assembleVersions({
          window,
          hours,
          firstSeen: first.byVersion,
          devices: view.count("active", versionOf),
          devicesNow: view.count("active", versionOf, lastDay),
          days: dayStarts(window).map((day) => {
            const part = dayPart(day, window);
            return {
              day,
              versions: view.count("active", versionOf, part),
              models: view.count("active", modelOf, part),
            };
          }),
        }),
      );
    },

    async rankCohorts(q) {
      const window = alignHours(q);
      const view = await deviceView([window]);
      const key = JSON.stringify([window, q.model, q.kind, q.dimension, q.severity, q.code]);
      return rankings(key, deviceVersion(view), () => {
        const ranking = rankCohorts({
          model: q.model,
          kind: q.kind,
          dimension: q.dimension,
          tallies: view.deviceCohorts(),
          attributesOf,
          severity: q.severity ?? undefined,
          code: q.code ?? undefined,
          window,
        });
        return ranking.devices === 0 ? err({ reason: "no_exposure" }) : ok(ranking);
      });
    },

    async warm() {
      const at = now();
      const month = alignHours({ fromMs: at - 30 * DAY_MS, toMs: at });
      const week = alignHours({ fromMs: at - 7 * DAY_MS, toMs: at });
      const lastDay = { fromMs: month.toMs - DAY_MS, toMs: month.toMs };
      // Apart, so a request arriving meanwhile waits only for the part it reads (rollup-reader.ts).
      await Promise.all([
        rollups.load([month, week, lastDay], [cohortSumsQuery()], COUNTED),
        rollups.load([month, lastDay], [versionHoursQuery(undefined)], { sets: [] }),
        // The per-device tallies: grouping by ISP or hardware, the cohort ranking (default 30 days).
        rollups.load([month, week], [], DEVICE_COHORTS),
        readFirstSeen(),
      ]);
    },
  };
  return service;
}
