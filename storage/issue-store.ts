import { randomInt } from "node:crypto";
import type { InfluxDB } from "influx";
import { z } from "zod";
import { resolveIssueId } from "../analytics/fingerprint.js";
import {
  applyEvent,
  checkVerification,
  type IssueState,
  onOccurrence,
  replay,
} from "../analytics/lifecycle.js";
import { isAtLeast } from "../analytics/versions.js";
import { DeviceId, IssueId, MAX_PAGE } from "../contract/api/common.js";
import {
  type DeviceIssue,
  type IssueDetail,
  type IssueHistoryEntry,
  IssueSort,
  type IssueSummary,
  MAX_AFFECTED_DEVICES,
} from "../contract/api/issues.js";
import { IssueEvent, IssueStatus } from "../contract/issue-events.js";
import { Label, SEVERITIES, Severity } from "../contract/messages.js";
import { DAY_MS, HOUR_MS, type SetIdentity } from "../rollup/sets.js";
import type { PointWriter } from "./influx.js";
import {
  from,
  type Group,
  iso,
  isUnreachable,
  queryGroups,
  StoreUnavailable,
  tagIs,
  text,
  timeRange,
} from "./influxql.js";
import {
  alignHours,
  createRollupCache,
  type RollupCache,
  type RollupView,
  type SumQuery,
  type Window,
} from "./rollup-cache.js";
import { MEASUREMENTS, type Point, pointTimeNs, UNKNOWN } from "./schema.js";

// Issues: faults grouped by their fingerprint, with manual merges resolved at read time (so they hold for
// faults that arrive later), and a lifecycle replayed from the append-only "long"."issue_event" log.
// Statistics come from the rollups (rollup/): fingerprints from "fingerprint", occurrences from "issue_1h",
// distinct devices from the device sets, so windows are whole UTC hours. Only an issue's detail reads the
// issue's own raw faults, for what is per device, firmware or region and for its trend. Reading an issue
// that relies on a released fix also derives what the field data says about that fix (regression,
// verifying, closed as effective) and appends it to the log once, as actor "system".

export const DEFAULT_VERIFY_DEVICE_HOURS = 500;

/** Windows up to this long get an hourly trend, longer ones a daily one. */
export const HOURLY_TREND_MAX_MS = 2 * DAY_MS;

const epochMs = z.number().int().min(0);

export const IssueFilter = z
  .object({
    fromMs: epochMs,
    toMs: epochMs,
    kind: Label.optional(),
    model: Label.optional(),
    firmware: Label.optional(),
    status: IssueStatus.optional(),
    severity: Severity.optional(),
    sort: IssueSort,
    limit: z.number().int().min(1).max(MAX_PAGE),
    offset: z.number().int().min(0),
  })
  .refine((q) => q.fromMs < q.toMs, "fromMs must be before toMs");
export type IssueFilter = z.input<typeof IssueFilter>;

export const IssueWindow = z
  .object({ fromMs: epochMs, toMs: epochMs })
  .refine((q) => q.fromMs < q.toMs, "fromMs must be before toMs");
export type IssueWindow = z.infer<typeof IssueWindow>;

export type IssuePage = { items: IssueSummary[]; total: number; nextOffset: number | null };

export type IssueStateView = {
  /** The issue's own state, after the derivation from field data. */
  state: IssueState;
  /** Where its occurrences count after manual merges: itself unless merged. */
  resolvedId: string;
};

export interface IssueStore {
  /** Appends one event to the issue's log. */
  appendEvent(issueId: string, event: IssueEvent): Promise<void>;
  /** The log in time order (all issues when no id is given). */
  events(issueId?: string): Promise<IssueHistoryEntry[]>;
  /** Issues with at least one occurrence in the window. */
  listIssues(filter: IssueFilter): Promise<IssuePage>;
  /** The issue the id resolves to after merges; undefined when no fault ever had that fingerprint. */
  getIssue(id: string, window: IssueWindow): Promise<IssueDetail | undefined>;
  /** The id's own lifecycle state; undefined for an unknown fingerprint. */
  issueState(id: string): Promise<IssueStateView | undefined>;
  /** Issues the device had faults of that are open, or fixed in a firmware it does not run yet. */
  issuesForDevice(deviceId: string): Promise<DeviceIssue[]>;
}

export type IssueStoreOptions = {
  /** Default: node-influx's writePoints. createPointWriter(config) fits too. */
  writeEvent?: PointWriter;
  now?: () => number;
  /** Device-hours on the fixing firmware, without a recurrence, that close an issue as effective. */
  verifyDeviceHours?: number;
  /** Where rollups are read and cached; pass the HealthStore's to share one cache. */
  rollups?: RollupCache;
};

const anyOf = (tag: string, values: readonly string[]) =>
  `(${values.map((v) => tagIs(tag, v)).join(" OR ")})`;
const num = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : 0);
/** A group's tag; a series without it reads as UNKNOWN, as the ingest writes a missing one. */
const tagOf = (g: Group, key: string) => g.tags[key] || UNKNOWN;

/** The first half of an hour-aligned window: ceil(hours / 2) whole hours. */
const firstHalfMs = (w: Window) => Math.ceil((w.toMs - w.fromMs) / HOUR_MS / 2) * HOUR_MS;

type FingerprintMeta = {
  id: string;
  key: string;
  kind: string;
  model: string;
  firstMs: number;
  lastMs: number;
};

const SEVERITY_RANK = new Map<string, number>(SEVERITIES.map((s, i) => [s, i]));
const worst = (severities: Iterable<string>): Severity | null => {
  let best: Severity | null = null;
  for (const s of severities) {
    const rank = SEVERITY_RANK.get(s);
    if (rank !== undefined && (best === null || rank > (SEVERITY_RANK.get(best) ?? -1)))
      best = SEVERITIES[rank] ?? null;
  }
  return best;
};

/** Occurrences of one fingerprint, or of one issue, in the window. */
type Tally = {
  occurrences: number;
  halves: [number, number];
  severities: Set<string>;
  codes: Set<string>;
  firmwares: Set<string>;
};

const emptyTally = (): Tally => ({
  occurrences: 0,
  halves: [0, 0],
  severities: new Set(),
  codes: new Set(),
  firmwares: new Set(),
});

/** The fingerprints' tallies added up per issue; issueOf leaves a fingerprint out with undefined. */
function fold(
  byFingerprint: ReadonlyMap<string, Tally>,
  issueOf: (fingerprint: string) => string | undefined,
) {
  const result = new Map<string, Tally>();
  for (const [fingerprint, t] of byFingerprint) {
    const id = issueOf(fingerprint);
    if (id === undefined) continue;
    const tally = result.get(id) ?? emptyTally();
    result.set(id, tally);
    tally.occurrences += t.occurrences;
    tally.halves[0] += t.halves[0];
    tally.halves[1] += t.halves[1];
    for (const s of t.severities) tally.severities.add(s);
    for (const c of t.codes) tally.codes.add(c);
    for (const f of t.firmwares) tally.firmwares.add(f);
  }
  return result;
}

/** Occurrences and devices per firmware or region. */
type Counted = Map<string, { occurrences: number; devices: Set<string> }>;

function addTo(map: Counted, key: string, device: string, n: number) {
  const entry = map.get(key) ?? { occurrences: 0, devices: new Set<string>() };
  entry.occurrences += n;
  entry.devices.add(device);
  map.set(key, entry);
}

const breakdown = <K extends "firmware" | "region">(name: K, map: Counted) =>
  [...map]
    .map(([value, e]) => ({ [name]: value, occurrences: e.occurrences, affectedDevices: e.devices.size }))
    .sort(
      (a, b) =>
        b.affectedDevices - a.affectedDevices ||
        b.occurrences - a.occurrences ||
        String(a[name]).localeCompare(String(b[name])),
    ) as Array<Record<K, string> & { occurrences: number; affectedDevices: number }>;

/** Whether a recurrence on the fix would make this issue regress (lifecycle.ts reliesOnFix). */
const reliesOnFix = (state: IssueState) =>
  state.status === "fix_released" ||
  state.status === "verifying" ||
  (state.status === "closed" && (state.closure === "effective" || state.closure === "fixed"));

const modelKey = (kind: string, model: string) => `${kind}/${model}`;
/** The "kind/model" an active set counts towards. */
const modelOf = (s: SetIdentity) => modelKey(s.kind || UNKNOWN, s.model || UNKNOWN);

export function createInfluxIssueStore(influx: InfluxDB, options: IssueStoreOptions = {}): IssueStore {
  const now = options.now ?? Date.now;
  const requiredHours = options.verifyDeviceHours ?? DEFAULT_VERIFY_DEVICE_HOURS;
  const rollups = options.rollups ?? createRollupCache(influx);
  const write: PointWriter =
    options.writeEvent ??
    (async (points) => {
      for (const p of points) {
        await influx.writePoints(
          [
            {
              measurement: p.measurement,
              tags: p.tags,
              fields: p.fields as Record<string, string>,
              timestamp: p.timeNs,
            },
          ],
          { retentionPolicy: p.rp, precision: "n" },
        );
      }
    });
  // Nanoseconds added to an event's millisecond: increasing, so two events of one ms keep their order and
  // never overwrite each other; a random start keeps two processes apart.
  let discriminator = randomInt(0, 1_000_000);
  // Derivations of one issue run one at a time, so a system event is appended once per process.
  const locks = new Map<string, Promise<unknown>>();

  async function serialized<T>(id: string, task: () => Promise<T>): Promise<T> {
    const previous = locks.get(id) ?? Promise.resolve();
    const run = previous.then(task, task);
    const settled = run.catch(() => undefined);
    locks.set(id, settled);
    try {
      return await run;
    } finally {
      if (locks.get(id) === settled) locks.delete(id);
    }
  }

  const groups = async (query: string) => (await queryGroups(influx, [query]))[0] ?? [];
  const rows = async (query: string) => (await groups(query)).flatMap((g) => g.rows);

  async function appendEvent(issueId: string, input: IssueEvent): Promise<void> {
    const issue = IssueId.parse(issueId);
    const event = IssueEvent.parse(input);
    discriminator = (discriminator + 1) % 1_000_000;
    const point: Point = {
      measurement: MEASUREMENTS.issueEvent.name,
      rp: MEASUREMENTS.issueEvent.rp,
      tags: { issue, type: event.type },
      fields: { event: JSON.stringify(event), actor: event.actor },
      timeNs: pointTimeNs(event.at, discriminator),
    };
    try {
      await write([point]);
    } catch (cause) {
      if (isUnreachable(cause)) throw new StoreUnavailable({ cause });
      throw cause;
    }
  }

  async function events(issueId?: string): Promise<IssueHistoryEntry[]> {
    const where = issueId === undefined ? "" : ` WHERE ${tagIs("issue", IssueId.parse(issueId))}`;
    const found = await rows(`SELECT "event", "issue" FROM ${from("issueEvent")}${where}`);
    const log: IssueHistoryEntry[] = [];
    for (const row of found) {
      const issue = text(row.issue);
      const json = text(row.event);
      if (issue === null || json === null) continue;
      let parsed: ReturnType<typeof IssueEvent.safeParse>;
      try {
        parsed = IssueEvent.safeParse(JSON.parse(json));
      } catch {
        continue;
      }
      if (parsed.success) log.push({ issue, event: parsed.data });
    }
    return log;
  }

  type Log = {
    byIssue: Map<string, IssueEvent[]>;
    merges: Map<string, string>;
    entries: IssueHistoryEntry[];
  };

  async function loadLog(): Promise<Log> {
    const entries = await events();
    const byIssue = new Map<string, IssueEvent[]>();
    for (const { issue, event } of entries) byIssue.set(issue, [...(byIssue.get(issue) ?? []), event]);
    const merges = new Map<string, string>();
    for (const [issue, log] of byIssue) {
      const into = replay(log).mergedInto;
      if (into !== null) merges.set(issue, into);
    }
    return { byIssue, merges, entries };
  }

  /** Every fingerprint ever seen, with its first and last occurrence over all time. */
  async function fingerprints(): Promise<Map<string, FingerprintMeta>> {
    const found = await groups(
      `SELECT "key", "kind", "model", "first_ms", "last_ms" FROM ${from("fingerprint")} GROUP BY "fingerprint"`,
    );
    const metas = new Map<string, FingerprintMeta>();
    for (const g of found) {
      const id = g.tags.fingerprint;
      const row = g.rows[0];
      if (id === undefined || id === "" || row === undefined) continue;
      const firstMs = num(row.first_ms);
      metas.set(id, {
        id,
        key: text(row.key) || id,
        kind: text(row.kind) || UNKNOWN,
        model: text(row.model) || UNKNOWN,
        firstMs,
        lastMs: Math.max(firstMs, num(row.last_ms)),
      });
    }
    return metas;
  }

  /** Faults per fingerprint, firmware, severity and code: the sums behind every issue's tally. */
  const ISSUE_COUNTS: SumQuery = {
    rollup: { hourly: "issue1h", daily: "issue1d" },
    select: `sum("n") AS "n"`,
    where: "",
    groupBy: ["fingerprint", "firmware", "severity", "code"],
  };

  /** The two halves of an hour-aligned window, growth's comparison; a one-hour window has no second. */
  const halvesOf = (window: Window): Window[] => {
    const middle = window.fromMs + firstHalfMs(window);
    return [
      { fromMs: window.fromMs, toMs: middle },
      { fromMs: middle, toMs: window.toMs },
    ].filter((w) => w.fromMs < w.toMs);
  };

  /** Loads the rollups behind issue statistics in this window: device sets and ISSUE_COUNTS by half. */
  const loadIssueRollups = (window: Window) => rollups.load([window, ...halvesOf(window)], [ISSUE_COUNTS]);

  /**
   * Per fingerprint (all, or those `wanted`), occurrences in a window loaded by loadIssueRollups, counted
   * per half of it.
   */
  function tallies(view: RollupView, window: Window, wanted?: ReadonlySet<string>): Map<string, Tally> {
    const found = halvesOf(window).map((half) => view.sums(ISSUE_COUNTS, half));
    const result = new Map<string, Tally>();
    for (const g of found.flatMap((series, i) =>
      series.map((s) => ({ ...s, half: i === 0 ? (0 as const) : (1 as const) })),
    )) {
      const fingerprint = g.tags.fingerprint;
      if (fingerprint === undefined || fingerprint === "" || wanted?.has(fingerprint) === false) continue;
      const tally = result.get(fingerprint) ?? emptyTally();
      result.set(fingerprint, tally);
      for (const row of g.rows) {
        const n = num(row.n);
        if (n === 0) continue;
        tally.occurrences += n;
        tally.halves[g.half] += n;
        tally.severities.add(tagOf(g, "severity"));
        tally.codes.add(tagOf(g, "code"));
        tally.firmwares.add(tagOf(g, "firmware"));
      }
    }
    return result;
  }

  const modelCondition = (members: readonly FingerprintMeta[]) => {
    const pairs = new Map(members.map((m) => [modelKey(m.kind, m.model), m]));
    return `(${[...pairs.values()].map((m) => `(${tagIs("kind", m.kind)} AND ${tagIs("model", m.model)})`).join(" OR ")})`;
  };

  /**
   * What the field says about a released fix, appended to the log once: a recurrence on firmware at or
   * above fixVersion since fixReleasedAt is a regression; otherwise device-hours on such firmware move
   * fix_released to verifying and, once they reach the required hours, close the issue as effective.
   * Used by list, detail and the state the routes check requests against.
   */
  async function settle(
    id: string,
    own: IssueState,
    members: readonly FingerprintMeta[],
  ): Promise<IssueState> {
    if (own.mergedInto !== null || own.fixVersion === null || own.fixReleasedAt === null) return own;
    if (!reliesOnFix(own) || members.length === 0) return own;
    return serialized(id, async () => {
      // Another request may have appended while this one waited.
      let state = replay((await events(id)).map((e) => e.event));
      if (!reliesOnFix(state) || state.fixVersion === null || state.fixReleasedAt === null) return state;
      const fixVersion = state.fixVersion;
      const since = state.fixReleasedAt;
      const recurrences = await groups(
        `SELECT first("seq") AS "seq" FROM ${from("fault")} WHERE ${anyOf(
          "fingerprint",
          members.map((m) => m.id),
        )} AND time >= ${since}ms GROUP BY "firmware"`,
      );
      const onFix = recurrences
        .flatMap((g) => g.rows.map((r) => ({ firmware: g.tags.firmware ?? UNKNOWN, at: r.time.getTime() })))
        .filter((o) => isAtLeast(o.firmware, fixVersion))
        .sort((a, b) => a.at - b.at)[0];
      if (onFix !== undefined) {
        // Dated after the latest event (and not in the future of a fast device clock), so replaying the
        // log keeps it last even when the fault came late.
        const at = Math.max(Math.min(onFix.at, now()), (state.updatedAt ?? 0) + 1);
        const regression = onOccurrence(state, { firmware: onFix.firmware, at });
        if (regression !== undefined) {
          await appendEvent(id, regression);
          return applyEvent(state, regression);
        }
      }
      if (state.status !== "fix_released" && state.status !== "verifying") return state;
      const exposure = await groups(
        `SELECT sum("hours") AS "hours" FROM ${from("activity")} WHERE ${modelCondition(members)} ` +
          `AND time >= ${since}ms GROUP BY "firmware"`,
      );
      const hours = exposure
        .filter((g) => isAtLeast(g.tags.firmware ?? UNKNOWN, fixVersion))
        .reduce((sum, g) => sum + num(g.rows[0]?.hours), 0);
      // fix_released → verifying → closed can happen in one read when the hours are already there.
      for (let step = 0; step < 2; step++) {
        const event = checkVerification(state, {
          exposureHoursOnFix: hours,
          at: Math.max(now(), state.updatedAt ?? 0),
          requiredHours,
        });
        if (event === undefined) break;
        await appendEvent(id, event);
        state = applyEvent(state, event);
      }
      return state;
    });
  }

  type Assembled = {
    id: string;
    members: FingerprintMeta[];
    tally: Tally;
    /** Distinct devices with a fault of any member in the window. */
    affected: number;
    state: IssueState;
  };

  function summarize(issue: Assembled, active: ReadonlyMap<string, number>): IssueSummary {
    const { id, members, tally, affected, state } = issue;
    const primary = members.find((m) => m.id === id) ?? members[0];
    const models = [...new Set(members.map((m) => modelKey(m.kind, m.model)))].sort();
    const activeCount = models.reduce((sum, m) => sum + (active.get(m) ?? 0), 0);
    return {
      id,
      key: primary?.key ?? id,
      kind: primary?.kind ?? UNKNOWN,
      model: primary?.model ?? UNKNOWN,
      models,
      codes: [...tally.codes].sort(),
      mergedIds: members
        .map((m) => m.id)
        .filter((m) => m !== id)
        .sort(),
      status: state.status,
      assignee: state.assignee,
      fixVersion: state.fixVersion,
      firstSeen: iso(Math.min(...members.map((m) => m.firstMs))),
      lastSeen: iso(Math.max(...members.map((m) => m.lastMs))),
      occurrences: tally.occurrences,
      affectedDevices: affected,
      activeDevices: activeCount,
      fleetShare: activeCount > 0 ? affected / activeCount : null,
      worstSeverity: worst(tally.severities),
      growth: {
        firstHalf: tally.halves[0],
        secondHalf: tally.halves[1],
        delta: tally.halves[1] - tally.halves[0],
      },
    };
  }

  function membersByIssue(metas: ReadonlyMap<string, FingerprintMeta>, merges: ReadonlyMap<string, string>) {
    const result = new Map<string, FingerprintMeta[]>();
    for (const meta of metas.values()) {
      const id = resolveIssueId(meta.id, merges);
      result.set(id, [...(result.get(id) ?? []), meta]);
    }
    return result;
  }

  const SORTS: Record<IssueSort, (s: IssueSummary) => number> = {
    devices: (s) => s.affectedDevices,
    occurrences: (s) => s.occurrences,
    last_seen: (s) => Date.parse(s.lastSeen),
    growth: (s) => s.growth.delta,
  };

  async function issueState(inputId: string): Promise<IssueStateView | undefined> {
    const id = IssueId.parse(inputId);
    const [log, metas] = await Promise.all([loadLog(), fingerprints()]);
    if (!metas.has(id)) return undefined;
    const resolvedId = resolveIssueId(id, log.merges);
    const own = replay(log.byIssue.get(id) ?? []);
    if (resolvedId !== id) return { state: own, resolvedId };
    const group = membersByIssue(metas, log.merges).get(id) ?? [];
    return { state: await settle(id, own, group), resolvedId };
  }

  return {
    appendEvent,
    events,

    async listIssues(input) {
      const filter = IssueFilter.parse(input);
      const window = alignHours(filter);
      const [log, metas, view] = await Promise.all([loadLog(), fingerprints(), loadIssueRollups(window)]);
      const byFingerprint = tallies(view, window);
      const issueOf = new Map([...metas.keys()].map((fp) => [fp, resolveIssueId(fp, log.merges)]));
      const found = fold(byFingerprint, (fp) => issueOf.get(fp));
      // Fault sets are per fingerprint: counting them per issue counts a device of two merged ones once.
      const affected = view.count("fault", (s) => issueOf.get(s.fingerprint));
      const active = view.count("active", modelOf);
      const members = membersByIssue(metas, log.merges);
      const issues: Assembled[] = [];
      for (const [id, tally] of found) {
        const group = members.get(id) ?? [];
        if (group.length === 0) continue;
        if (filter.kind !== undefined && !group.some((m) => m.kind === filter.kind)) continue;
        if (filter.model !== undefined && !group.some((m) => m.model === filter.model)) continue;
        if (filter.firmware !== undefined && !tally.firmwares.has(filter.firmware)) continue;
        if (filter.severity !== undefined) {
          const w = worst(tally.severities);
          const floor = SEVERITY_RANK.get(filter.severity) ?? 0;
          if (w === null || (SEVERITY_RANK.get(w) ?? -1) < floor) continue;
        }
        issues.push({
          id,
          members: group,
          tally,
          affected: affected.get(id) ?? 0,
          state: replay(log.byIssue.get(id) ?? []),
        });
      }
      const settled = await Promise.all(
        issues.map(async (issue) => ({
          ...issue,
          state: await settle(issue.id, issue.state, issue.members),
        })),
      );
      const by = SORTS[filter.sort];
      const matching = settled
        .filter((issue) => filter.status === undefined || issue.state.status === filter.status)
        .map((issue) => summarize(issue, active))
        .sort((a, b) => by(b) - by(a) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const items = matching.slice(filter.offset, filter.offset + filter.limit);
      const end = filter.offset + items.length;
      return { items, total: matching.length, nextOffset: end < matching.length ? end : null };
    },

    async getIssue(inputId, inputWindow) {
      const requested = IssueId.parse(inputId);
      const window = alignHours(IssueWindow.parse(inputWindow));
      const [log, metas] = await Promise.all([loadLog(), fingerprints()]);
      const id = resolveIssueId(requested, log.merges);
      const group = membersByIssue(metas, log.merges).get(id) ?? [];
      if (group.length === 0) return undefined;
      const fps = group.map((m) => m.id);
      const members = new Set(fps);
      const ofIssue = (fingerprint: string) => (members.has(fingerprint) ? id : undefined);
      const span = window.toMs - window.fromMs;
      const bucketMs = span <= HOURLY_TREND_MAX_MS ? HOUR_MS : DAY_MS;
      // What is per device (and distinct per bucket of the trend) comes from the issue's own raw faults:
      // the device sets hold no firmware or region, and a daily trend not aligned on UTC days would need
      // every hour's sets.
      const raw = `FROM ${from("fault")} WHERE ${timeRange(window.fromMs, window.toMs)} AND ${anyOf("fingerprint", fps)}`;
      const [view, trend, perDevice, lastPerDevice, state] = await Promise.all([
        loadIssueRollups(window),
        rows(
          `SELECT count("seq") AS "occurrences", count(distinct("device_id")) AS "devices" ${raw} ` +
            `GROUP BY time(${bucketMs}ms, ${window.fromMs % bucketMs}ms) fill(0)`,
        ),
        groups(`SELECT count("seq") AS "n" ${raw} GROUP BY "device", "firmware", "region"`),
        groups(`SELECT last("seq") AS "seq", "firmware" ${raw} GROUP BY "device"`),
        settle(id, replay(log.byIssue.get(id) ?? []), group),
      ]);
      const tally = fold(tallies(view, window, members), ofIssue).get(id) ?? emptyTally();
      const affected = view.count("fault", (s) => ofIssue(s.fingerprint)).get(id) ?? 0;
      const summary = summarize(
        { id, members: group, tally, affected, state },
        view.count("active", modelOf),
      );
      const occurrences = new Map<string, number>();
      const byFirmware: Counted = new Map();
      const byRegion: Counted = new Map();
      for (const g of perDevice) {
        const device = g.tags.device;
        const n = num(g.rows[0]?.n);
        if (device === undefined || device === "" || n === 0) continue;
        occurrences.set(device, (occurrences.get(device) ?? 0) + n);
        addTo(byFirmware, tagOf(g, "firmware"), device, n);
        addTo(byRegion, tagOf(g, "region"), device, n);
      }
      const devices = lastPerDevice
        .flatMap((g) => {
          const row = g.rows[0];
          const device = g.tags.device;
          if (row === undefined || device === undefined) return [];
          return [
            {
              id: device,
              occurrences: occurrences.get(device) ?? 0,
              lastMs: row.time.getTime(),
              firmware: text(row.firmware) ?? UNKNOWN,
            },
          ];
        })
        .sort((a, b) => b.occurrences - a.occurrences || b.lastMs - a.lastMs || (a.id < b.id ? -1 : 1));
      // The history holds this issue's events and those of the issues merged into it; system events
      // appended by settle() are in the state's history already.
      const history: IssueHistoryEntry[] = [
        ...state.history.map((event) => ({ issue: id, event })),
        ...log.entries.filter((e) => e.issue !== id && members.has(e.issue)),
      ].sort((a, b) => a.event.at - b.event.at);
      return {
        ...summary,
        from: iso(window.fromMs),
        to: iso(window.toMs),
        closure: state.closure,
        regressions: state.regressions,
        statusSince: state.statusSince === null ? null : iso(state.statusSince),
        byFirmware: breakdown("firmware", byFirmware),
        byRegion: breakdown("region", byRegion),
        trend: {
          bucketMs,
          buckets: trend.map((r) => ({
            time: iso(r.time.getTime()),
            occurrences: num(r.occurrences),
            affectedDevices: num(r.devices),
          })),
        },
        devices: {
          total: devices.length,
          items: devices
            .slice(0, MAX_AFFECTED_DEVICES)
            .map(({ lastMs, ...d }) => ({ ...d, lastSeen: iso(lastMs) })),
        },
        history,
      };
    },

    issueState,

    async issuesForDevice(input) {
      const deviceId = DeviceId.parse(input);
      const [found, latest, metas] = await Promise.all([
        rows(
          `SHOW TAG VALUES FROM ${from("fault")} WITH KEY = "fingerprint" WHERE ${tagIs("device", deviceId)}`,
        ),
        rows(
          `SELECT last("hours") AS "hours", "firmware" FROM ${from("activity")} WHERE ${tagIs("device", deviceId)}`,
        ),
        fingerprints(),
      ]);
      const firmware = text(latest[0]?.firmware);
      const log = await loadLog();
      const members = membersByIssue(metas, log.merges);
      const affecting = new Map<string, DeviceIssue>();
      for (const fingerprint of new Set(found.map((r) => text(r.value)).filter((v) => v !== null))) {
        if (!metas.has(fingerprint)) continue;
        const id = resolveIssueId(fingerprint, log.merges);
        if (affecting.has(id)) continue;
        const state = await settle(id, replay(log.byIssue.get(id) ?? []), members.get(id) ?? []);
        // Fixed in a version the device does not run yet: the support desk should advise the update.
        const fixAhead =
          state.fixVersion !== null &&
          firmware !== null &&
          reliesOnFix(state) &&
          !isAtLeast(firmware, state.fixVersion);
        const open = state.status !== "closed" && state.status !== "muted";
        if (!open && !fixAhead) continue;
        affecting.set(id, {
          id,
          key: metas.get(id)?.key ?? null,
          status: state.status,
          fixVersion: state.fixVersion,
          advice: fixAhead ? `fixed in firmware ${state.fixVersion}: advise the update` : null,
        });
      }
      return [...affecting.values()];
    },
  };
}
