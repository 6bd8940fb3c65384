import type { InfluxDB } from "influx";
import { type LivenessInput, liveness, livenessInputs, reportedMs, statusAt } from "../analytics/liveness.js";
import {
  AFTER_UPDATE_MS,
  expectedInterval,
  type SeenDevice,
  type SilenceOptions,
  silenceOptions,
  silenceReport,
} from "../analytics/silence.js";
import type {
  AffectingIssue,
  Device,
  DeviceDetail,
  DeviceSummaryResponse,
  EventRecord,
  PresenceRecord,
  SilenceReport,
  TelemetrySeries,
} from "../contract/api/devices.js";
import { RECENT_EVENTS, RECENT_FAULTS, RECENT_PRESENCE, RECENT_RATINGS } from "../contract/api/devices.js";
import { UNKNOWN } from "../contract/messages.js";
import type { PresenceStatus } from "../contract/presence.js";
import { err, ok, type Result } from "../contract/result.js";
import { HOUR_MS, iso, MINUTE_MS, WEEK_MS, type Window } from "../contract/time.js";
import type { Logger } from "../observe/logger.js";
import {
  type DeviceQueries,
  deviceQueries,
  type EventRow,
  type FirmwareUpdateRow,
  type LastReport,
  type TelemetryQuery,
} from "../storage/device-queries.js";
import { faultQueries } from "../storage/fault-queries.js";
import type { RollupReader } from "../storage/rollup-reader.js";
import {
  createDeviceDirectory,
  type DeviceDirectory,
  type DirectoryEntry,
  type DirectoryFilter,
  type DirectoryOptions,
} from "./device-directory.js";
import { createFaultService, faultRecord, type Page } from "./faults.js";

// Devices as the API shows them: the directory (services/device-directory.ts) for who exists, their hello
// and liveness; one device's own series in InfluxDB for its faults, events, presence and telemetry; the
// liveness rule (analytics/liveness.ts) for its status at the moment of asking.

const ceilHour = (ms: number) => Math.ceil(ms / HOUR_MS) * HOUR_MS;

/** How far back the summary looks for each metric's last value. */
export const LATEST_METRICS_SPAN_MS = WEEK_MS;

/** What the service reads; storage/device-queries.ts answers from InfluxDB, tests from memory. */
export type DeviceReads = Pick<
  DeviceQueries,
  | "ping"
  | "recentFaults"
  | "recentEvents"
  | "presence"
  | "latestMetrics"
  | "ratings"
  | "telemetryFieldTypes"
  | "telemetry"
  | "firmwareUpdates"
  | "lastReportsIn"
  | "presenceIn"
  | "activeDevices"
>;

export type DeviceListFilter = DirectoryFilter & {
  status?: PresenceStatus | undefined;
  limit: number;
  offset: number;
};

export type DeviceServiceOptions = {
  reads: DeviceReads;
  directory: DeviceDirectory;
  /** When a device counts as silent: factor, per-model intervals, floor, default, cadence window. */
  silence?: Partial<SilenceOptions>;
  /** The clock statuses are judged by; tests pin it. */
  now?: () => number;
  /**
   * The rollups' device sets: who was active in a past window without reading every device's activity
   * series. Without it the raw activity points are read.
   */
  rollups?: Pick<RollupReader, "load"> | undefined;
  /** The issue service's view of a device; without it the summary says issues are not available. */
  issuesForDevice?: ((deviceId: string) => Promise<AffectingIssue[]>) | undefined;
  pingTimeoutMs?: number;
  /** How long SHOW FIELD KEYS is reused (a metric it does not know reads it again sooner). */
  fieldTypesTtlMs?: number;
};

export type DeviceService = ReturnType<typeof createDeviceService>;

export const eventRecord = (row: EventRow): EventRecord => ({
  type: row.type ?? UNKNOWN,
  ts: iso(row.deviceMs),
  receivedAt: iso(row.receivedMs),
  data: row.data,
});

export function createDeviceService(options: DeviceServiceOptions) {
  const { reads, directory } = options;
  const silence = silenceOptions(options.silence);
  const now = options.now ?? Date.now;
  const fieldTypesTtlMs = options.fieldTypesTtlMs ?? MINUTE_MS;
  /** An instant a request took as "now" a moment ago still is: the directory knows the state then. */
  const isPresent = (atMs: number) => atMs >= now() - MINUTE_MS;

  const deviceOf = (entry: DirectoryEntry, atMs: number): Device => ({
    id: entry.id,
    ...entry.hello,
    ...liveness(entry.live, atMs, silence),
  });
  const statusOf = (live: LivenessInput, atMs: number) => statusAt(live, atMs, silence);

  let fieldTypes: { atMs: number; types: Promise<Map<string, string[]>> } | undefined;
  async function typesOf(metric: string): Promise<string[]> {
    // The cache ages by the real clock, not the one statuses are judged by (tests and bench:api pin that).
    const at = Date.now();
    const stale = (age: number) => fieldTypes === undefined || at - fieldTypes.atMs >= age;
    // A metric not seen yet may be new: read again, but not more than once a second.
    if (stale(fieldTypesTtlMs) || (!(await fieldTypes?.types)?.has(metric) && stale(1000))) {
      const types = reads.telemetryFieldTypes();
      fieldTypes = { atMs: at, types };
      types.catch(() => {
        if (fieldTypes?.types === types) fieldTypes = undefined;
      });
    }
    return (await fieldTypes?.types)?.get(metric) ?? [];
  }

  return {
    ping: () => reads.ping(options.pingTimeoutMs ?? 2000),

    /** What the first requests would otherwise wait for: the directory and the metrics' field types. */
    async warm(): Promise<void> {
      await Promise.all([directory.ready(), typesOf("")]);
    },

    /** Devices sorted by id; the filters apply to each device's latest hello, status to now. */
    async listDevices(filter: DeviceListFilter): Promise<Page<Device> & { total: number }> {
      const atMs = now();
      let matching = await directory.list(filter);
      if (filter.status !== undefined)
        matching = matching.filter((e) => statusOf(e.live, atMs) === filter.status);
      const items = matching.slice(filter.offset, filter.offset + filter.limit).map((e) => deviceOf(e, atMs));
      const end = filter.offset + items.length;
      return { items, total: matching.length, nextOffset: end < matching.length ? end : null };
    },

    /** undefined for a device the directory does not know. */
    async getDevice(id: string): Promise<DeviceDetail | undefined> {
      const entry = await directory.lookup(id);
      if (entry === undefined) return undefined;
      const faults = await reads.recentFaults(id, RECENT_FAULTS);
      return { ...deviceOf(entry, now()), recentFaults: faults.map(faultRecord) };
    },

    async telemetry(q: TelemetryQuery): Promise<Result<TelemetrySeries, "unknown_device" | "not_numeric">> {
      const entry = await directory.lookup(q.device);
      if (entry === undefined) return err("unknown_device");
      const types = await typesOf(q.metric);
      if (q.fn !== "last" && types.some((t) => t !== "float" && t !== "integer")) return err("not_numeric");
      const series = {
        device: q.device,
        metric: q.metric,
        fn: q.fn,
        from: iso(q.fromMs),
        to: iso(q.toMs),
        everyMs: q.everyMs,
      };
      if (types.length === 0) return ok({ ...series, points: [] });
      const points = (await reads.telemetry(q)).map((p) => ({ time: iso(p.timeMs), value: p.value }));
      return ok({ ...series, points });
    },

    /** Newest first; undefined for a device the directory does not know. */
    async presenceHistory(
      q: { device: string; limit: number; offset: number } & Window,
    ): Promise<Page<PresenceRecord> | undefined> {
      if ((await directory.lookup(q.device)) === undefined) return undefined;
      const found = await reads.presence(q.device, q, q.limit + 1, q.offset);
      return {
        items: found
          .slice(0, q.limit)
          .map((p) => ({ time: iso(p.atMs), state: p.state, source: p.source ?? UNKNOWN })),
        nextOffset: found.length > q.limit ? q.offset + q.limit : null,
      };
    },

    /** What the support desk sees of one device; undefined (and no query) for one the directory does not know. */
    async deviceSummary(id: string): Promise<DeviceSummaryResponse | undefined> {
      const entry = await directory.lookup(id);
      if (entry === undefined) return undefined;
      const atMs = now();
      const sinceMs = atMs - LATEST_METRICS_SPAN_MS;
      const [faults, events, presence, values, ratings, issues] = await Promise.all([
        reads.recentFaults(id, RECENT_FAULTS),
        reads.recentEvents(id, RECENT_EVENTS),
        reads.presence(id, undefined, RECENT_PRESENCE),
        reads.latestMetrics(id, sinceMs),
        reads.ratings(id, RECENT_RATINGS),
        options.issuesForDevice?.(id),
      ]);
      return {
        ...deviceOf(entry, atMs),
        recentPresence: presence.map((p) => ({
          time: iso(p.atMs),
          state: p.state,
          source: p.source ?? UNKNOWN,
        })),
        metrics: { since: iso(sinceMs), values },
        recentFaults: faults.map(faultRecord),
        recentEvents: events.map(eventRecord),
        feedback: {
          count: ratings.count,
          mean: ratings.mean,
          recent: ratings.recent.map((r) => ({
            time: iso(r.deviceMs),
            receivedAt: iso(r.receivedMs),
            rating: r.rating,
            comment: r.comment,
          })),
        },
        issues: { available: issues !== undefined, items: issues ?? [] },
      };
    },

    /**
     * Silent rates among the devices that reported in the window, judged at its end. At the present the
     * directory answers (seen: its last report falls in the window; cohort: its latest hello); for a past
     * end the raw points do (every device's series: seconds at 10,000 devices).
     */
    async silence(q: Window): Promise<SilenceReport> {
      const seen = isPresent(q.toMs) ? await seenNow(q) : await seenThen(q);
      // A silent device's last report is in the window, so its update came at most a day before the window.
      const updatesFromMs = Math.max(0, q.fromMs - 2 * HOUR_MS - AFTER_UPDATE_MS);
      const silentIds = seen.filter((d) => d.silent).map((d) => d.device);
      // Now: the directory holds each device's newest update, but for a device it has known only since an
      // upgrade (its older updates are in the events alone); a past window reads the update events.
      const held = isPresent(q.toMs) ? updatesHeld(silentIds, updatesFromMs, q.toMs) : undefined;
      const updates = [
        ...(held?.updates ?? []),
        ...(await reads.firmwareUpdates(held?.unknown ?? silentIds, updatesFromMs, q.toMs)),
      ];
      return silenceReport({
        ...q,
        factor: silence.factor,
        seen,
        updates: updates.map((u) => ({
          device: u.device,
          model: u.model ?? UNKNOWN,
          from: u.from ?? UNKNOWN,
          to: u.to ?? UNKNOWN,
          atMs: u.deviceMs,
        })),
      });
    },
  };

  /**
   * The devices' newest updates in [fromMs, toMs) on their clocks, as the directory holds them, and the
   * devices whose history it does not hold (first seen before device_state, no update since, or an update
   * kept before its device time was): their events must say.
   */
  function updatesHeld(ids: readonly string[], fromMs: number, toMs: number) {
    const updates: FirmwareUpdateRow[] = [];
    const unknown: string[] = [];
    for (const id of ids) {
      const entry = directory.get(id);
      const update = entry?.lastUpdate;
      const deviceMs = update?.deviceMs ?? null;
      if (entry === undefined || (update == null ? entry.firstMs === null : deviceMs === null))
        unknown.push(id);
      else if (update != null && deviceMs !== null && deviceMs >= fromMs && deviceMs < toMs)
        updates.push({
          device: id,
          model: entry.hello.model,
          from: update.from,
          to: update.to,
          atMs: update.atMs,
          deviceMs,
        });
    }
    return { updates, unknown };
  }

  /** Devices whose last report (on their clocks) falls in the window, judged at its end. */
  async function seenNow(q: Window): Promise<SeenDevice[]> {
    const entries = await directory.list();
    return entries.flatMap((e): SeenDevice[] => {
      const reportMs = reportedMs(e.live);
      if (reportMs === null || reportMs < q.fromMs || reportMs >= q.toMs + MINUTE_MS) return [];
      return [
        {
          device: e.id,
          model: e.hello.model,
          firmware: e.hello.firmware,
          silent: statusOf(e.live, q.toMs) === "silent",
          lastReportMs: reportMs,
        },
      ];
    });
  }

  /** Devices with an activity hour starting in the window, with the cohort of the newest one. */
  async function activeIn(
    q: Window,
  ): Promise<Array<{ device: string; model: string | null; firmware: string | null }>> {
    if (options.rollups === undefined) return reads.activeDevices(q.fromMs, q.toMs);
    const hours = { fromMs: ceilHour(q.fromMs), toMs: ceilHour(q.toMs) };
    if (hours.fromMs >= hours.toMs) return [];
    const view = await options.rollups.load([hours]);
    return [...view.members("active")].map(([device, set]) => ({
      device,
      model: set.model,
      firmware: set.firmware,
    }));
  }

  /**
   * Who was seen in a past window and whether silent at its end, from raw points. Only the span in which a
   * report still keeps a device from being overdue is read for every device (factor × the longest expected
   * interval among those seen, at least an hour); a device with no report there is silent whatever its
   * presence, and its last report is read from its own series. Cadences are the directory's (now).
   */
  async function seenThen(q: Window): Promise<SeenDevice[]> {
    const [active] = await Promise.all([activeIn(q), directory.ready()]);
    const modelOf = (id: string) => directory.get(id)?.hello.model ?? UNKNOWN;
    let spanMs = HOUR_MS;
    for (const a of active) {
      const live = directory.get(a.device)?.live;
      const configured = silence.expectedIntervals.get(modelOf(a.device));
      spanMs = Math.max(spanMs, silence.factor * expectedInterval(live?.cadence, configured, silence).ms);
    }
    // An hour before `from` covers the first activity hour of the window.
    const windowFromMs = q.fromMs - HOUR_MS;
    const recentFromMs = Math.max(windowFromMs, q.toMs - spanMs - MINUTE_MS);
    const [recent, presence] = await Promise.all([
      reads.lastReportsIn(recentFromMs, q.toMs),
      reads.presenceIn(recentFromMs, q.toMs),
    ]);
    const overdue = active.map((a) => a.device).filter((id) => !recent.has(id));
    const earlier =
      overdue.length === 0 || recentFromMs <= windowFromMs
        ? new Map<string, LastReport>()
        : await reads.lastReportsIn(windowFromMs, recentFromMs, overdue);
    const inputs = livenessInputs({
      reports: new Map([...earlier, ...recent]),
      presence,
      cadences: new Map(
        active.flatMap((a) => {
          const cadence = directory.get(a.device)?.live.cadence;
          return cadence === undefined ? [] : [[a.device, cadence] as const];
        }),
      ),
      models: new Map(active.map((a) => [a.device, modelOf(a.device)])),
      unknownModel: UNKNOWN,
    });
    return active.map((a) => {
      const input = inputs.get(a.device);
      return {
        device: a.device,
        model: a.model ?? UNKNOWN,
        firmware: a.firmware ?? UNKNOWN,
        silent: input === undefined || statusOf(input, q.toMs) === "silent",
        lastReportMs: input === undefined ? null : reportedMs(input),
      };
    });
  }
}

/** The device directory and the device and fault services over one InfluxDB, as the API process runs them. */
export function createInfluxDeviceServices(
  influx: InfluxDB,
  options: Omit<DeviceServiceOptions, "reads" | "directory"> & {
    directory?: Omit<DirectoryOptions, "load" | "logger">;
    logger?: Logger;
  } = {},
) {
  const { directory: directoryOptions, logger, ...serviceOptions } = options;
  const queries = deviceQueries(influx);
  const directory = createDeviceDirectory({
    load: queries.deviceStates,
    newest: queries.newestStateUpdate,
    ...directoryOptions,
    ...(logger === undefined ? {} : { logger }),
  });
  const devices = createDeviceService({ ...serviceOptions, reads: queries, directory });
  return {
    directory,
    devices,
    faults: createFaultService({ reads: faultQueries(influx), directory }),
    close: () => directory.close(),
  };
}
