import { randomInt } from "node:crypto";
import type { InfluxDB } from "influx";
import { resolveIssueId } from "../analytics/fingerprint.js";
import { impactOf } from "../analytics/impact.js";
import { type IndexedLog, indexLog, membersByIssue } from "../analytics/issue-log.js";
import {
  breakdown,
  byDeviceValue,
  type CountRow,
  concentrationOf,
  deviceIssue,
  emptyTally,
  type FingerprintMeta,
  fold,
  halvesOf,
  historyOf,
  type IssueFacts,
  type IssueFilter,
  matches,
  modelKey,
  type Page,
  pageOf,
  rankDevices,
  sortSummaries,
  summarize,
  tallies,
} from "../analytics/issue-stats.js";
import { type IssueState, replay } from "../analytics/lifecycle.js";
import type { AlertStatus } from "../contract/api/alerts.js";
import {
  type DeviceIssue,
  type IssueDetail,
  type IssueEscalation,
  type IssueHistoryEntry,
  type IssueListItem,
  type IssueSort,
  type IssueSummary,
  MAX_AFFECTED_DEVICES,
  UNASSIGNED,
} from "../contract/api/issues.js";
import type { EscalatedEvent, IssueEvent } from "../contract/issue-events.js";
import { UNKNOWN } from "../contract/messages.js";
import {
  alignHours,
  DAY_MS,
  dayPart,
  dayStarts,
  HOUR_MS,
  iso,
  WEEK_MS,
  type Window,
} from "../contract/time.js";
import type { PointWriter } from "../storage/influx.js";
import { tagIs } from "../storage/influxql.js";
import {
  appendIssueEvents,
  issueEventPoint,
  readDeviceFingerprints,
  readDeviceFirmware,
  readFingerprints,
  readIssueEvents,
} from "../storage/issue-queries.js";
import type { RollupReader, RollupView, SumQuery } from "../storage/rollup-reader.js";
import type { SetIdentity, SetKind } from "../storage/rollup-schema.js";
import type { HelloLookup } from "./health.js";

// Issues as the API shows them: the event log replayed into each issue's state (settling is the ingest's
// runner's job, rollup/settle-issues.ts: a read never writes), fingerprints grouped by merges, and
// statistics from the rollups (counts from issue_1h/1d, distinct devices from the device sets, affected
// devices from issue_devices), so windows are whole UTC hours and no read touches the raw faults.

/** The device sets each read counts: affected devices, fleet share, and the detail's breakdowns. */
const LIST_SETS: readonly SetKind[] = ["fault", "active"];
const DETAIL_SETS: readonly SetKind[] = ["fault", "fault_fw", "fault_region", "active"];

/** The issues (most devices first) whose detail the warm-up reads. */
const WARM_DETAILS = 3;

/** Windows up to this long get an hourly trend, longer ones a daily one (UTC days). */
export const HOURLY_TREND_MAX_MS = 2 * DAY_MS;

export type IssueListInput = IssueFilter &
  Window & {
    /** Issues assigned to this person; UNASSIGNED for those assigned to nobody. */
    assignee?: string | undefined;
    /** Add each listed issue's trend. */
    withTrend?: boolean | undefined;
    sort: IssueSort;
    limit: number;
    offset: number;
  };

export type DevicesPage = { limit: number; offset: number };
const DEFAULT_DEVICES_PAGE: DevicesPage = { limit: 50, offset: 0 };

export type IssueStateView = {
  /** The issue's own state, replayed from its log. */
  state: IssueState;
  /** Where its occurrences count after manual merges: itself unless merged. */
  resolvedId: string;
};

export interface IssueService {
  list(input: IssueListInput): Promise<Page<IssueListItem>>;
  /** The issue the id resolves to after merges; undefined when no fault ever had that fingerprint. */
  detail(id: string, window: Window, devices?: DevicesPage): Promise<IssueDetail | undefined>;
  /** The id's own lifecycle state, what a change is checked against; undefined for an unknown fingerprint. */
  state(id: string): Promise<IssueStateView | undefined>;
  /** Appends a person's event to the issue's log. */
  append(id: string, event: IssueEvent): Promise<void>;
  /** The log in time order (all issues when no id is given). */
  events(id?: string): Promise<IssueHistoryEntry[]>;
  /** Issues the device had faults of that are open, or fixed in a firmware it does not run yet. */
  forDevice(deviceId: string): Promise<DeviceIssue[]>;
  /**
   * Reads into the rollup cache what the first requests after start ask most: the list over the last 7
   * (default) and 30 days, and the detail of the issues with the most devices, so they answer at once.
   */
  warm(nowMs?: number): Promise<void>;
}

export type IssueServiceDeps = {
  influx: InfluxDB;
  rollups: RollupReader;
  /** Where a person's events are written: createPointWriter(config). */
  write: PointWriter;
  /** Each device's current ISP and hardware, for the detail's breakdowns; without it they are "unknown". */
  directory?: HelloLookup;
  /** An alert's status and acknowledgement (services/alerts.ts), for the detail's escalation. */
  alertOf?: (alertId: string) => Promise<AlertView | undefined>;
  /** The clock an issue's age (its impact) is judged by. */
  now?: () => number;
};

export type AlertView = { status: AlertStatus; acknowledged: { by: string; at: string } | null };

/** Faults per fingerprint, firmware, severity and code: the sums behind every issue's tally. */
const ISSUE_COUNTS: SumQuery = {
  rollup: { hourly: "issue1h", daily: "issue1d" },
  select: `sum("n") AS "n"`,
  where: "",
  groupBy: ["fingerprint", "firmware", "severity", "code"],
};

/** An issue's own counts, with the region its breakdown needs. */
const memberCounts = (fingerprints: readonly string[]): SumQuery => ({
  rollup: { hourly: "issue1h", daily: "issue1d" },
  select: `sum("n") AS "n"`,
  where: ` AND (${fingerprints.map((f) => tagIs("fingerprint", f)).join(" OR ")})`,
  groupBy: ["fingerprint", "firmware", "region", "severity", "code"],
});

const num = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : 0);
const tag = (tags: Record<string, string>, key: string) => tags[key] || UNKNOWN;

/** The rows of a sum query in one half of a window (0 or 1), as CountRows. */
function countRows(view: RollupView, query: SumQuery, within: Window, half: 0 | 1): CountRow[] {
  return view.sums(query, within).map((g) => ({
    fingerprint: g.tags.fingerprint ?? "",
    firmware: tag(g.tags, "firmware"),
    severity: tag(g.tags, "severity"),
    code: tag(g.tags, "code"),
    n: g.rows.reduce((sum, r) => sum + num(r.n), 0),
    half,
  }));
}

/** Every row of the window, each in the half it falls in. */
const windowRows = (view: RollupView, query: SumQuery, window: Window) =>
  halvesOf(window).flatMap((half, i) => countRows(view, query, half, i === 0 ? 0 : 1));

/** The "kind/model" an active set counts towards. */
const modelOf = (s: SetIdentity) => modelKey(s.kind || UNKNOWN, s.model || UNKNOWN);

/** The trend's buckets: the window's hours, or its UTC days (the edge days partial). */
function trendBuckets(window: Window): { bucketMs: number; buckets: Window[] } {
  if (window.toMs - window.fromMs <= HOURLY_TREND_MAX_MS) {
    const buckets: Window[] = [];
    for (let t = window.fromMs; t < window.toMs; t += HOUR_MS) buckets.push({ fromMs: t, toMs: t + HOUR_MS });
    return { bucketMs: HOUR_MS, buckets };
  }
  return { bucketMs: DAY_MS, buckets: dayStarts(window).map((day) => dayPart(day, window)) };
}

const assignedAs = (assignee: string | null, wanted: string | undefined) =>
  wanted === undefined || (wanted === UNASSIGNED ? assignee === null : assignee === wanted);

/** Occurrences per issue in one bucket's sums of ISSUE_COUNTS. */
function occurrencesByIssue(
  groups: ReturnType<RollupView["sums"]>,
  issueOf: ReadonlyMap<string, string>,
): Map<string, number> {
  const result = new Map<string, number>();
  for (const g of groups) {
    const id = issueOf.get(g.tags.fingerprint ?? "");
    if (id === undefined) continue;
    result.set(id, (result.get(id) ?? 0) + g.rows.reduce((sum, r) => sum + num(r.n), 0));
  }
  return result;
}

/** The latest escalation recorded in the issue's log, with its alert's status when the alert log answers. */
async function escalationOf(
  history: readonly IssueEvent[],
  alertOf: IssueServiceDeps["alertOf"],
): Promise<IssueEscalation | null> {
  const latest = history.filter((e): e is EscalatedEvent => e.type === "escalated").at(-1);
  if (latest === undefined) return null;
  const alert = await alertOf?.(latest.alertId).catch(() => undefined);
  return {
    alertId: latest.alertId,
    rule: latest.rule,
    level: latest.level,
    levelName: latest.levelName,
    since: iso(latest.at),
    status: alert?.status ?? null,
    acknowledged: alert?.acknowledged ?? null,
  };
}

export function createIssueService(deps: IssueServiceDeps): IssueService {
  const { influx, rollups } = deps;
  // A person's event is written at its millisecond plus 1 to 999,999 ns, 0 being the settle runner's:
  // increasing, so two events of one millisecond keep their order; a random start keeps processes apart.
  let nanos = randomInt(0, 999_999);

  async function load(): Promise<{ log: IndexedLog; metas: Map<string, FingerprintMeta> }> {
    const [entries, fingerprints] = await Promise.all([readIssueEvents(influx), readFingerprints(influx)]);
    return { log: indexLog(entries), metas: new Map(fingerprints.map((f) => [f.id, f])) };
  }

  const stateOf = (log: IndexedLog, id: string) => replay(log.byIssue.get(id) ?? []);

  return {
    async list(input) {
      const window = alignHours(input);
      const trend = trendBuckets(window);
      // The trend's buckets are made of the window's own hourly and daily buckets: loading them reads nothing more.
      const [{ log, metas }, view] = await Promise.all([
        load(),
        rollups.load([window, ...halvesOf(window), ...trend.buckets], [ISSUE_COUNTS], { sets: LIST_SETS }),
      ]);
      const issueOf = new Map([...metas.keys()].map((fp) => [fp, resolveIssueId(fp, log.merges)]));
      const byIssue = fold(tallies(windowRows(view, ISSUE_COUNTS, window)), (fp) => issueOf.get(fp));
      // Fault sets are per fingerprint: counting them per issue counts a device of two merged ones once.
      const affected = view.count("fault", (s) => issueOf.get(s.fingerprint));
      const active = view.count("active", modelOf);
      const members = membersByIssue(metas.values(), log.merges);
      const found: IssueSummary[] = [];
      for (const [id, tally] of byIssue) {
        const issue: IssueFacts = {
          id,
          members: members.get(id) ?? [],
          tally,
          affected: affected.get(id) ?? 0,
          state: stateOf(log, id),
        };
        if (matches(issue, input) && assignedAs(issue.state.assignee, input.assignee))
          found.push(summarize(issue, active));
      }
      const page = pageOf(sortSummaries(found, input.sort), input.offset, input.limit);
      if (input.withTrend !== true) return page;
      const perBucket = trend.buckets.map((bucket) =>
        occurrencesByIssue(view.sums(ISSUE_COUNTS, bucket), issueOf),
      );
      return {
        ...page,
        items: page.items.map((summary) => ({
          ...summary,
          trend: {
            bucketMs: trend.bucketMs,
            occurrences: perBucket.map((counts) => counts.get(summary.id) ?? 0),
          },
        })),
      };
    },

    async detail(requested, inputWindow, page = DEFAULT_DEVICES_PAGE) {
      const window = alignHours(inputWindow);
      const [{ log, metas }] = await Promise.all([load(), deps.directory?.ready()]);
      const id = resolveIssueId(requested, log.merges);
      const group = membersByIssue(metas.values(), log.merges).get(id) ?? [];
      if (group.length === 0) return undefined;
      const fps = group.map((m) => m.id).sort();
      const members = new Set(fps);
      const ofIssue = (s: SetIdentity) => (members.has(s.fingerprint) ? id : undefined);
      const counts = memberCounts(fps);
      const trend = trendBuckets(window);
      const view = await rollups.load([window, ...halvesOf(window), ...trend.buckets], [counts], {
        sets: DETAIL_SETS,
        tallies: fps,
      });
      const tally =
        fold(tallies(windowRows(view, counts, window), members), () => id).get(id) ?? emptyTally();
      const state = stateOf(log, id);
      const escalation = escalationOf(state.history, deps.alertOf);
      const summary = summarize(
        { id, members: group, tally, affected: view.count("fault", ofIssue).get(id) ?? 0, state },
        view.count("active", modelOf),
      );
      const occurrencesBy = (key: "firmware" | "region") => {
        const result = new Map<string, number>();
        for (const g of view.sums(counts, window)) {
          const value = tag(g.tags, key);
          result.set(value, (result.get(value) ?? 0) + g.rows.reduce((sum, r) => sum + num(r.n), 0));
        }
        return result;
      };
      const devicesBy = (set: "fault_fw" | "fault_region", key: "firmware" | "region") =>
        view.count(set, (s) => (members.has(s.fingerprint) ? s[key] || UNKNOWN : undefined));
      const affected = view.deviceTallies(fps, window);
      const ranked = rankDevices(affected);
      const helloOf = (device: string) => deps.directory?.get(device)?.hello;
      const byDevice = (name: "isp" | "hardware") => {
        const { occurrences, devices } = byDeviceValue(affected, (d) => helloOf(d)?.[name] ?? UNKNOWN);
        return breakdown(name, occurrences, devices);
      };
      const shown = pageOf(ranked, page.offset, Math.min(page.limit, MAX_AFFECTED_DEVICES));
      return {
        ...summary,
        from: iso(window.fromMs),
        to: iso(window.toMs),
        closure: state.closure,
        regressions: state.regressions,
        statusSince: state.statusSince === null ? null : iso(state.statusSince),
        impact: impactOf({
          worstSeverity: summary.worstSeverity,
          affectedDevices: summary.affectedDevices,
          activeDevices: summary.activeDevices,
          firstSeenMs: Date.parse(summary.firstSeen),
          nowMs: Math.min((deps.now ?? Date.now)(), window.toMs),
        }),
        escalation: await escalation,
        byFirmware: breakdown("firmware", occurrencesBy("firmware"), devicesBy("fault_fw", "firmware")),
        byRegion: breakdown("region", occurrencesBy("region"), devicesBy("fault_region", "region")),
        byIsp: byDevice("isp"),
        byHardware: byDevice("hardware"),
        concentration: concentrationOf(affected),
        trend: {
          bucketMs: trend.bucketMs,
          buckets: trend.buckets.map((bucket) => ({
            time: iso(bucket.fromMs),
            occurrences: view
              .sums(counts, bucket)
              .reduce((sum, g) => sum + g.rows.reduce((s, r) => s + num(r.n), 0), 0),
            affectedDevices: view.count("fault", ofIssue, bucket).get(id) ?? 0,
          })),
        },
        devices: {
          total: shown.total,
          offset: page.offset,
          nextOffset: shown.nextOffset,
          items: shown.items.map((d) => ({
            id: d.device,
            occurrences: d.n,
            lastSeen: iso(d.lastMs),
            firmware: d.firmware || UNKNOWN,
          })),
        },
        history: historyOf(id, state, log.entries, members),
      };
    },

    async state(id) {
      const { log, metas } = await load();
      if (!metas.has(id)) return undefined;
      return { state: stateOf(log, id), resolvedId: resolveIssueId(id, log.merges) };
    },

    async append(id, event) {
      nanos = (nanos % 999_999) + 1;
      await appendIssueEvents(deps.write, [issueEventPoint(id, event, nanos)]);
    },

    async events(id) {
      return readIssueEvents(influx, id);
    },

    /**
     * The issues a device had faults of that the support desk should hear about (analytics deviceIssue):
     * reads only the device's own fault and activity series, the log and the fingerprints.
     */
    async forDevice(deviceId) {
      const [fingerprints, firmware, { log, metas }] = await Promise.all([
        readDeviceFingerprints(influx, deviceId),
        readDeviceFirmware(influx, deviceId),
        load(),
      ]);
      const result = new Map<string, DeviceIssue>();
      for (const fingerprint of fingerprints) {
        if (!metas.has(fingerprint)) continue;
        const id = resolveIssueId(fingerprint, log.merges);
        if (result.has(id)) continue;
        const issue = deviceIssue({ id, key: metas.get(id)?.key ?? null, state: stateOf(log, id) }, firmware);
        if (issue !== undefined) result.set(id, issue);
      }
      return [...result.values()];
    },

    async warm(nowMs = Date.now()) {
      const month = { fromMs: nowMs - 30 * DAY_MS, toMs: nowMs };
      const top = await this.list({ ...month, sort: "devices", limit: WARM_DETAILS, offset: 0 });
      await this.list({ fromMs: nowMs - WEEK_MS, toMs: nowMs, sort: "devices", limit: 1, offset: 0 });
      for (const issue of top.items) await this.detail(issue.id, month);
    },
  };
}
