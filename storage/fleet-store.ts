import { type InfluxDB, escape as influxql } from "influx";
import { z } from "zod";
import {
  type Cadence,
  expectedInterval,
  type PresenceState,
  presenceStatus,
  type SilenceOptions,
  silenceOptions,
} from "../analytics/silence.js";
import { DeviceId, MAX_PAGE } from "../contract/api/common.js";
import {
  type Device,
  type DeviceDetail,
  type DeviceSummary,
  type EventRecord,
  type PresenceRecord,
  PresenceStatus,
  RECENT_EVENTS,
  RECENT_FAULTS,
  RECENT_PRESENCE,
  RECENT_RATINGS,
  type SilenceReport,
  type SilentAfterUpdate,
  TelemetryFn,
  type TelemetrySeries,
} from "../contract/api/devices.js";
import { FAULT_FILTER_FIELDS, type FaultRecord } from "../contract/api/faults.js";
import { Context, Label, MetricName, RESERVED_FIELDS } from "../contract/messages.js";
import { from, iso, queryGroups, type Row, tagIs, text, timeRange } from "./influxql.js";
import { DEVICE_TAGS, type MeasurementKey, SEQ_HI_TAG, UNKNOWN } from "./schema.js";

// The API's read side of InfluxDB. Every value that reaches InfluxQL is validated by one of the schemas
// below first and escaped as it is spliced in; docs/storage.md describes the measurements queried here.

export const LATEST_METRICS_SPAN_MS = 7 * 86_400_000;
/** "Went silent within 24 hours of a firmware update". */
export const AFTER_UPDATE_MS = 86_400_000;

const epochMs = z.number().int().min(0);
const page = { limit: z.number().int().min(1).max(MAX_PAGE), offset: z.number().int().min(0) };

export const DeviceFilter = z.object({
  kind: Label.optional(),
  model: Label.optional(),
  firmware: Label.optional(),
  status: PresenceStatus.optional(),
  ...page,
});
export type DeviceFilter = z.infer<typeof DeviceFilter>;

export const TelemetryQuery = z
  .object({
    device: DeviceId,
    metric: MetricName,
    fn: TelemetryFn,
    fromMs: epochMs,
    toMs: epochMs,
    everyMs: z.number().int().positive(),
  })
  .refine((q) => q.fromMs < q.toMs, "fromMs must be before toMs");
export type TelemetryQuery = z.infer<typeof TelemetryQuery>;

export const FaultFilter = z
  .object({ fromMs: epochMs, toMs: epochMs, ...FAULT_FILTER_FIELDS, ...page })
  .refine((q) => q.fromMs < q.toMs, "fromMs must be before toMs");
export type FaultFilter = z.infer<typeof FaultFilter>;

export const PresenceQuery = z
  .object({ device: DeviceId, fromMs: epochMs, toMs: epochMs, ...page })
  .refine((q) => q.fromMs < q.toMs, "fromMs must be before toMs");
export type PresenceQuery = z.infer<typeof PresenceQuery>;

export const SilenceQuery = z
  .object({ fromMs: epochMs, toMs: epochMs })
  .refine((q) => q.fromMs < q.toMs, "fromMs must be before toMs");
export type SilenceQuery = z.infer<typeof SilenceQuery>;

export type Page<T> = { items: T[]; total?: number; nextOffset: number | null };

export type TelemetryResult =
  | { ok: true; series: TelemetrySeries }
  | { ok: false; reason: "unknown_device" | "not_numeric" };

export interface FleetStore {
  ping(): Promise<{ ok: boolean; latencyMs: number }>;
  /** Devices sorted by id; the filters apply to each device's latest hello. */
  listDevices(filter: DeviceFilter): Promise<Page<Device> & { total: number }>;
  /** undefined for a device that never sent anything. */
  getDevice(id: string): Promise<DeviceDetail | undefined>;
  telemetry(query: TelemetryQuery): Promise<TelemetryResult>;
  /** Newest first. */
  listFaults(filter: FaultFilter): Promise<Page<FaultRecord>>;
  /** Newest first; undefined for a device that never sent anything. */
  presenceHistory(query: PresenceQuery): Promise<Page<PresenceRecord> | undefined>;
  /** What the support desk sees of one device; undefined for a device that never sent anything. */
  deviceSummary(id: string): Promise<DeviceSummary | undefined>;
  silence(query: SilenceQuery): Promise<SilenceReport>;
}

/**
 * The device tag, cast: InfluxQL takes a bare "device" for a field of that name where one exists (a metric
 * stored before tag keys were reserved), which would hide every device's telemetry.
 */
const deviceIs = (id: string) => `${influxql.quoted("device")}::tag = ${influxql.stringLit(id)}`;
const anyDevice = (ids: readonly string[]) => `(${ids.map(deviceIs).join(" OR ")})`;

/** Measurements whose points show that a device exists and when it was last heard from. */
const ACTIVITY: readonly MeasurementKey[] = ["device", "telemetry", "fault", "event", "presence"];
/** Messages a device sends itself: its reports. Presence is read apart, as only source=device counts. */
const REPORTS: readonly MeasurementKey[] = ["device", "telemetry", "fault", "event", "command"];
/** Written with every message: not metrics, not event data. */
const BOOKKEEPING: ReadonlySet<string> = new Set(RESERVED_FIELDS);
const EVENT_COLUMNS: ReadonlySet<string> = new Set([...DEVICE_TAGS, SEQ_HI_TAG, "type", "time"]);

type Liveness = Pick<
  Device,
  "lastSeen" | "online" | "lastReport" | "status" | "expectedIntervalS" | "intervalSource"
> & { lastReportMs: number | null };

function deviceLiveness(seen: Liveness | undefined): Omit<Liveness, "lastReportMs"> {
  if (seen === undefined) {
    return {
      lastSeen: null,
      online: null,
      lastReport: null,
      status: "silent",
      expectedIntervalS: 0,
      intervalSource: "default",
    };
  }
  const { lastReportMs: _, ...rest } = seen;
  return rest;
}

const integer = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : null);

type Hello = Pick<Device, "kind" | "model" | "firmware" | "hardware" | "serial" | "region" | "isp">;
const UNKNOWN_HELLO: Hello = {
  kind: UNKNOWN,
  model: UNKNOWN,
  firmware: UNKNOWN,
  hardware: null,
  serial: null,
  region: UNKNOWN,
  isp: null,
};

function parseContext(value: unknown): FaultRecord["context"] {
  if (typeof value !== "string") return {};
  try {
    const parsed = Context.safeParse(JSON.parse(value));
    return parsed.success ? parsed.data : {};
  } catch {
    return {};
  }
}

const FAULT_COLUMNS = [
  "device",
  "kind",
  "model",
  "firmware",
  "region",
  "code",
  "severity",
  "component",
  "message",
  "context",
  "received_ms",
  "clock_skewed",
  "device_ts",
]
  .map((c) => influxql.quoted(c))
  .join(", ");

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** One row per distinct key with how many items have it, sorted by key. */
function countBy<T, K extends Record<string, string>>(items: readonly T[], key: (item: T) => K) {
  const counts = new Map<string, K & { count: number }>();
  for (const item of items) {
    const k = key(item);
    const id = JSON.stringify(Object.values(k));
    counts.set(id, { ...k, count: (counts.get(id)?.count ?? 0) + 1 });
  }
  return [...counts.entries()].sort(([a], [b]) => compare(a, b)).map(([, row]) => row);
}

function toEvent(row: Row): EventRecord {
  const data: EventRecord["data"] = {};
  for (const [column, value] of Object.entries(row)) {
    if (EVENT_COLUMNS.has(column) || BOOKKEEPING.has(column)) continue;
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean")
      data[column] = value;
  }
  const deviceTs = row.clock_skewed === true ? integer(row.device_ts) : null;
  return {
    type: text(row.type) ?? UNKNOWN,
    ts: iso(deviceTs ?? row.time.getTime()),
    receivedAt: iso(integer(row.received_ms) ?? row.time.getTime()),
    data,
  };
}

function toFault(row: Row): FaultRecord {
  // A point stored at receive time because the device clock was off keeps the claimed time in device_ts.
  const deviceTs = row.clock_skewed === true ? integer(row.device_ts) : null;
  const receivedMs = integer(row.received_ms);
  return {
    device: text(row.device) ?? UNKNOWN,
    kind: text(row.kind) ?? UNKNOWN,
    model: text(row.model) ?? UNKNOWN,
    firmware: text(row.firmware) ?? UNKNOWN,
    region: text(row.region) ?? UNKNOWN,
    code: text(row.code) ?? UNKNOWN,
    severity: text(row.severity) ?? UNKNOWN,
    component: text(row.component),
    message: text(row.message),
    context: parseContext(row.context),
    ts: iso(deviceTs ?? row.time.getTime()),
    receivedAt: iso(receivedMs ?? row.time.getTime()),
  };
}

export type InfluxFleetStoreOptions = {
  pingTimeoutMs?: number;
  /** When a device counts as silent: factor, per-model intervals, floor, default, cadence window. */
  silence?: Partial<SilenceOptions>;
  /** The clock statuses are judged by; tests pin it. */
  now?: () => number;
  /** How long the whole fleet's learned intervals are reused; default 5 minutes, 0 to never. */
  cadenceTtlMs?: number;
};

export function createInfluxFleetStore(influx: InfluxDB, options: InfluxFleetStoreOptions = {}): FleetStore {
  const pingTimeoutMs = options.pingTimeoutMs ?? 2000;
  const silence = silenceOptions(options.silence);
  const now = options.now ?? Date.now;
  const cadenceTtlMs = options.cadenceTtlMs ?? 5 * 60_000;
  /** An instant a request took as "now" a moment ago still is. */
  const isPresent = (atMs: number) => atMs >= now() - 60_000;

  const groups = async (query: string) => (await queryGroups(influx, [query]))[0] ?? [];
  const rows = async (query: string) => (await groups(query)).flatMap((g) => g.rows);

  async function knownDevices(id?: string): Promise<string[]> {
    const where = id === undefined ? "" : ` WHERE ${tagIs("device", id)}`;
    const found = await rows(
      `SHOW TAG VALUES FROM ${ACTIVITY.map(from).join(", ")} WITH KEY = "device"${where}`,
    );
    return [...new Set(found.map((r) => text(r.value)).filter((v) => v !== null))];
  }

  /** Latest hello per device; with a single selector InfluxDB returns the other columns of the same point. */
  async function hellos(ids?: readonly string[]): Promise<Map<string, Hello>> {
    const where = ids === undefined ? "" : ` WHERE ${anyDevice(ids)}`;
    const found = await groups(
      `SELECT last("serial") AS "serial", "kind", "model", "firmware", "hardware", "region", "isp" FROM ${from("device")}${where} GROUP BY "device"`,
    );
    const byDevice = new Map<string, Hello>();
    for (const group of found) {
      const row = group.rows[0];
      const id = group.tags.device;
      if (row === undefined || id === undefined) continue;
      byDevice.set(id, {
        kind: text(row.kind) ?? UNKNOWN_HELLO.kind,
        model: text(row.model) ?? UNKNOWN_HELLO.model,
        firmware: text(row.firmware) ?? UNKNOWN_HELLO.firmware,
        hardware: text(row.hardware),
        serial: text(row.serial),
        region: text(row.region) ?? UNKNOWN_HELLO.region,
        isp: text(row.isp),
      });
    }
    return byDevice;
  }

  async function queryCadences(ids: readonly string[] | undefined, atMs: number) {
    const conditions = [timeRange(atMs - silence.cadenceWindowMs, atMs)];
    if (ids !== undefined) conditions.unshift(anyDevice(ids));
    const found = await groups(
      `SELECT median("gap_ms") AS "median", count("gap_ms") AS "samples" FROM ${from("activity")} ` +
        `WHERE ${conditions.join(" AND ")} GROUP BY "device"`,
    );
    const cadences = new Map<string, Cadence>();
    for (const group of found) {
      const id = group.tags.device;
      const medianMs = group.rows[0]?.median;
      const samples = integer(group.rows[0]?.samples);
      if (id !== undefined && typeof medianMs === "number" && samples !== null)
        cadences.set(id, { medianMs, samples });
    }
    return cadences;
  }

  // The fleet's median over a week of activity is the costliest query here (seconds for 10,000 devices)
  // and moves slowly, so the present one is kept for cadenceTtlMs. Past instants are always queried.
  let cached: { atMs: number; cadences: Promise<Map<string, Cadence>> } | undefined;
  function cadencesAt(ids: readonly string[] | undefined, atMs: number) {
    const current = now();
    if (cached !== undefined && isPresent(atMs) && current - cached.atMs < cadenceTtlMs)
      return cached.cadences;
    if (!isPresent(atMs) || ids !== undefined) return queryCadences(ids, atMs);
    const cadences = queryCadences(undefined, atMs);
    cached = { atMs, cadences };
    cadences.catch(() => {
      if (cached?.cadences === cadences) cached = undefined;
    });
    return cadences;
  }

  /**
   * Per device: lastReport, the newest received_ms of the messages it sent itself (last() of each
   * measurement rather than max(received_ms), which would read every raw telemetry point it has); its
   * presence per source; its cadence (median gap_ms over the cadence window); and so its status at atMs.
   * ids undefined: every device, with GROUP BY and no device list.
   */
  async function liveness(
    ids: readonly string[] | undefined,
    atMs: number,
    models: ReadonlyMap<string, string>,
  ) {
    const result = new Map<string, Liveness>();
    if (ids?.length === 0) return result;
    const devices = ids === undefined ? [] : [anyDevice(ids)];
    // A past instant bounds what counts; for the present, points stamped a little ahead by a device
    // clock still count.
    const before = isPresent(atMs) ? [] : [`time < ${atMs}ms`];
    const where = (conditions: string[]) =>
      conditions.length === 0 ? "" : ` WHERE ${conditions.join(" AND ")}`;
    const [reports, presence, cadences] = await Promise.all([
      groups(
        `SELECT last("received_ms") AS "received_ms" FROM ${REPORTS.map(from).join(", ")}${where([...devices, ...before])} GROUP BY "device"`,
      ),
      groups(
        `SELECT last("state") AS "state", "received_ms" FROM ${from("presence")}${where([...devices, ...before])} GROUP BY "device", "source"`,
      ),
      cadencesAt(ids, atMs),
    ]);
    const lastReport = new Map<string, number>();
    const latest = (id: string, ms: number) => lastReport.set(id, Math.max(ms, lastReport.get(id) ?? ms));
    for (const group of reports) {
      const id = group.tags.device;
      const ms = integer(group.rows[0]?.received_ms);
      if (id !== undefined && ms !== null) latest(id, ms);
    }
    const lastPresence = new Map<string, PresenceState>();
    for (const group of presence) {
      const id = group.tags.device;
      const row = group.rows[0];
      const state = row?.state;
      if (id === undefined || row === undefined || (state !== "online" && state !== "offline")) continue;
      const atPresence = integer(row.received_ms) ?? row.time.getTime();
      if (group.tags.source === "device") latest(id, atPresence);
      const known = lastPresence.get(id);
      if (known === undefined || atPresence >= known.atMs) lastPresence.set(id, { state, atMs: atPresence });
    }
    for (const id of ids ?? new Set([...lastReport.keys(), ...lastPresence.keys()])) {
      const reportMs = lastReport.get(id) ?? null;
      const presenceNow = lastPresence.get(id) ?? null;
      const model = models.get(id) ?? UNKNOWN;
      const interval = expectedInterval(cadences.get(id), silence.expectedIntervals.get(model), silence);
      const seenMs = Math.max(reportMs ?? -1, presenceNow?.atMs ?? -1);
      result.set(id, {
        lastSeen: seenMs < 0 ? null : iso(seenMs),
        online: presenceNow === null ? null : presenceNow.state === "online",
        lastReport: reportMs === null ? null : iso(reportMs),
        lastReportMs: reportMs,
        status: presenceStatus({
          lastSeenMs: reportMs,
          expectedMs: interval.ms,
          lastPresence: presenceNow,
          nowMs: atMs,
          factor: silence.factor,
        }),
        expectedIntervalS: Math.round(interval.ms / 1000),
        intervalSource: interval.source,
      });
    }
    return result;
  }

  const modelsOf = (metadata: ReadonlyMap<string, Hello>) =>
    new Map([...metadata].map(([id, hello]) => [id, hello.model]));

  async function presenceRows(conditions: string[], limit: number, offset = 0) {
    const found = await rows(
      `SELECT "state", "source", "received_ms" FROM ${from("presence")} WHERE ${conditions.join(" AND ")} ` +
        `ORDER BY time DESC LIMIT ${limit} OFFSET ${offset}`,
    );
    return found.map(
      (r): PresenceRecord => ({
        time: iso(integer(r.received_ms) ?? r.time.getTime()),
        state: r.state === "offline" ? "offline" : "online",
        source: text(r.source) ?? UNKNOWN,
      }),
    );
  }

  async function device(id: string): Promise<Device | undefined> {
    const metadata = await hellos([id]);
    const seen = (await liveness([id], now(), modelsOf(metadata))).get(id);
    const hello = metadata.get(id);
    if (hello === undefined && (seen === undefined || seen.lastSeen === null)) return undefined;
    return { id, ...(hello ?? UNKNOWN_HELLO), ...deviceLiveness(seen) };
  }

  return {
    async ping() {
      const started = performance.now();
      const hosts = await influx.ping(pingTimeoutMs);
      return { ok: hosts.some((h) => h.online), latencyMs: Math.round(performance.now() - started) };
    },

    async listDevices(input) {
      const filter = DeviceFilter.parse(input);
      const [ids, metadata] = await Promise.all([knownDevices(), hellos()]);
      const matching = ids
        .map((id) => ({ id, ...(metadata.get(id) ?? UNKNOWN_HELLO) }))
        .filter(
          (d) =>
            (filter.kind === undefined || d.kind === filter.kind) &&
            (filter.model === undefined || d.model === filter.model) &&
            (filter.firmware === undefined || d.firmware === filter.firmware),
        )
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const models = modelsOf(metadata);
      // A status filter needs every device's status before paging; without one, only the page's.
      const seen = await liveness(
        filter.status === undefined
          ? matching.slice(filter.offset, filter.offset + filter.limit).map((d) => d.id)
          : undefined,
        now(),
        models,
      );
      const listed =
        filter.status === undefined
          ? matching
          : matching.filter((d) => deviceLiveness(seen.get(d.id)).status === filter.status);
      const pageItems = listed.slice(filter.offset, filter.offset + filter.limit);
      const end = filter.offset + pageItems.length;
      return {
        items: pageItems.map((d) => ({ ...d, ...deviceLiveness(seen.get(d.id)) })),
        total: listed.length,
        nextOffset: end < listed.length ? end : null,
      };
    },

    async getDevice(input) {
      const id = DeviceId.parse(input);
      const [found, faults] = await Promise.all([
        device(id),
        rows(
          `SELECT ${FAULT_COLUMNS} FROM ${from("fault")} WHERE ${tagIs("device", id)} ORDER BY time DESC LIMIT ${RECENT_FAULTS}`,
        ),
      ]);
      return found === undefined ? undefined : { ...found, recentFaults: faults.map(toFault) };
    },

    async presenceHistory(input) {
      const q = PresenceQuery.parse(input);
      const known = await knownDevices(q.device);
      if (known.length === 0) return undefined;
      const found = await presenceRows(
        [tagIs("device", q.device), timeRange(q.fromMs, q.toMs)],
        q.limit + 1,
        q.offset,
      );
      return {
        items: found.slice(0, q.limit),
        nextOffset: found.length > q.limit ? q.offset + q.limit : null,
      };
    },

    async deviceSummary(input) {
      const id = DeviceId.parse(input);
      const own = tagIs("device", id);
      const feedback = `${own} AND ${tagIs("type", "feedback")}`;
      const sinceMs = now() - LATEST_METRICS_SPAN_MS;
      const [found, faults, events, presence, metrics, ratingStats, ratings] = await Promise.all([
        device(id),
        rows(
          `SELECT ${FAULT_COLUMNS} FROM ${from("fault")} WHERE ${own} ORDER BY time DESC LIMIT ${RECENT_FAULTS}`,
        ),
        rows(`SELECT * FROM ${from("event")} WHERE ${own} ORDER BY time DESC LIMIT ${RECENT_EVENTS}`),
        presenceRows([own], RECENT_PRESENCE),
        rows(`SELECT last(*) FROM ${from("telemetry")} WHERE ${deviceIs(id)} AND time >= ${sinceMs}ms`),
        rows(
          `SELECT mean("rating") AS "mean", count("rating") AS "count" FROM ${from("event")} WHERE ${feedback}`,
        ),
        rows(
          `SELECT "rating", "comment", "received_ms", "clock_skewed", "device_ts" FROM ${from("event")} WHERE ${feedback} ORDER BY time DESC LIMIT ${RECENT_RATINGS}`,
        ),
      ]);
      if (found === undefined) return undefined;
      const values: DeviceSummary["metrics"]["values"] = {};
      for (const [column, value] of Object.entries(metrics[0] ?? {})) {
        const metric = column.startsWith("last_") ? column.slice("last_".length) : undefined;
        if (metric === undefined || BOOKKEEPING.has(metric)) continue;
        if (typeof value === "number" || typeof value === "boolean" || typeof value === "string")
          values[metric] = value;
      }
      const stats = ratingStats[0];
      return {
        ...found,
        recentPresence: presence,
        metrics: { since: iso(sinceMs), values },
        recentFaults: faults.map(toFault),
        recentEvents: events.map(toEvent),
        feedback: {
          count: integer(stats?.count) ?? 0,
          mean: typeof stats?.mean === "number" ? stats.mean : null,
          recent: ratings
            .filter((r) => typeof r.rating === "number")
            .map((r) => ({
              time: iso((r.clock_skewed === true ? integer(r.device_ts) : null) ?? r.time.getTime()),
              receivedAt: iso(integer(r.received_ms) ?? r.time.getTime()),
              rating: r.rating as number,
              comment: text(r.comment),
            })),
        },
      };
    },

    async silence(input) {
      const q = SilenceQuery.parse(input);
      // A device seen in the window reported at or after the start of from's hour, so an update more than
      // a day before that cannot be within a day of its last report.
      const updatesFromMs = Math.max(0, q.fromMs - 2 * 3_600_000 - AFTER_UPDATE_MS);
      const [seenRows, metadata, updates] = await Promise.all([
        groups(
          `SELECT last("hours") AS "hours", "model", "firmware" FROM ${from("activity")} WHERE ${timeRange(q.fromMs, q.toMs)} GROUP BY "device"`,
        ),
        hellos(),
        groups(
          `SELECT last("to") AS "to", "from", "received_ms", "model" FROM ${from("event")} ` +
            `WHERE ${tagIs("type", "firmware_update")} AND "result" = 'success' AND ${timeRange(updatesFromMs, q.toMs)} GROUP BY "device"`,
        ),
      ]);
      const status = await liveness(undefined, q.toMs, modelsOf(metadata));
      const byModel = new Map<string, { model: string; seen: number; silent: number }>();
      const byFirmware = new Map<string, { model: string; firmware: string; seen: number; silent: number }>();
      const silentIds = new Set<string>();
      for (const group of seenRows) {
        const id = group.tags.device;
        const row = group.rows[0];
        if (id === undefined || row === undefined) continue;
        const model = text(row.model) ?? UNKNOWN;
        const firmware = text(row.firmware) ?? UNKNOWN;
        const silent = status.get(id)?.status === "silent" ? 1 : 0;
        if (silent) silentIds.add(id);
        const m = byModel.get(model) ?? { model, seen: 0, silent: 0 };
        byModel.set(model, { ...m, seen: m.seen + 1, silent: m.silent + silent });
        const key = JSON.stringify([model, firmware]);
        const f = byFirmware.get(key) ?? { model, firmware, seen: 0, silent: 0 };
        byFirmware.set(key, { ...f, seen: f.seen + 1, silent: f.silent + silent });
      }
      const devices: SilentAfterUpdate[] = [];
      for (const group of updates) {
        const id = group.tags.device;
        const row = group.rows[0];
        const reportMs = id === undefined ? null : (status.get(id)?.lastReportMs ?? null);
        if (id === undefined || row === undefined || reportMs === null || !silentIds.has(id)) continue;
        const updatedMs = integer(row.received_ms) ?? row.time.getTime();
        if (reportMs < updatedMs || reportMs - updatedMs > AFTER_UPDATE_MS) continue;
        devices.push({
          device: id,
          model: text(row.model) ?? UNKNOWN,
          from: text(row.from) ?? UNKNOWN,
          to: text(row.to) ?? UNKNOWN,
          updatedAt: iso(updatedMs),
          lastReport: iso(reportMs),
        });
      }
      devices.sort((a, b) => compare(a.device, b.device));
      const withRate = <T extends { seen: number; silent: number }>(r: T) => ({
        ...r,
        rate: r.silent / r.seen,
      });
      return {
        from: iso(q.fromMs),
        to: iso(q.toMs),
        factor: silence.factor,
        byModel: [...byModel.values()].sort((a, b) => compare(a.model, b.model)).map(withRate),
        byFirmware: [...byFirmware.values()]
          .sort((a, b) => compare(a.model, b.model) || compare(a.firmware, b.firmware))
          .map(withRate),
        afterUpdate: {
          withinS: AFTER_UPDATE_MS / 1000,
          devices,
          byModel: countBy(devices, (d) => ({ model: d.model })),
          byFirmware: countBy(devices, (d) => ({ model: d.model, firmware: d.to })),
        },
      };
    },

    async telemetry(input) {
      const q = TelemetryQuery.parse(input);
      const [known, fieldKeys] = await Promise.all([
        knownDevices(q.device),
        rows(`SHOW FIELD KEYS FROM ${from("telemetry")}`),
      ]);
      if (known.length === 0) return { ok: false, reason: "unknown_device" };
      const types = fieldKeys.filter((r) => r.fieldKey === q.metric).map((r) => r.fieldType);
      if (q.fn !== "last" && types.some((t) => t !== "float" && t !== "integer")) {
        return { ok: false, reason: "not_numeric" };
      }
      const series = {
        device: q.device,
        metric: q.metric,
        fn: q.fn,
        from: iso(q.fromMs),
        to: iso(q.toMs),
        everyMs: q.everyMs,
      };
      if (types.length === 0) return { ok: true, series: { ...series, points: [] } };
      // The offset aligns the buckets on `from` rather than on the epoch, so there are exactly
      // ceil((to - from) / every) of them.
      const found = await rows(
        `SELECT ${q.fn}(${influxql.quoted(q.metric)}) AS "value" FROM ${from("telemetry")} ` +
          `WHERE ${deviceIs(q.device)} AND ${timeRange(q.fromMs, q.toMs)} ` +
          `GROUP BY time(${q.everyMs}ms, ${q.fromMs % q.everyMs}ms) fill(null)`,
      );
      const points = found.map((r) => ({
        time: iso(r.time.getTime()),
        value: typeof r.value === "number" || typeof r.value === "boolean" ? r.value : null,
      }));
      return { ok: true, series: { ...series, points } };
    },

    async listFaults(input) {
      const filter = FaultFilter.parse(input);
      const conditions = [timeRange(filter.fromMs, filter.toMs)];
      for (const tag of Object.keys(FAULT_FILTER_FIELDS) as Array<keyof typeof FAULT_FILTER_FIELDS>) {
        const value = filter[tag];
        if (value !== undefined) conditions.push(tagIs(tag, value));
      }
      // One row more than asked tells whether there is a next page.
      const found = await rows(
        `SELECT ${FAULT_COLUMNS} FROM ${from("fault")} WHERE ${conditions.join(" AND ")} ` +
          `ORDER BY time DESC LIMIT ${filter.limit + 1} OFFSET ${filter.offset}`,
      );
      const items = found.slice(0, filter.limit).map(toFault);
      return { items, nextOffset: found.length > filter.limit ? filter.offset + filter.limit : null };
    },
  };
}
