import { type InfluxDB, escape as influxql } from "influx";
import { RESERVED_FIELDS } from "../contract/messages.js";
import { from, queryGroups, type Row, tagIs, text, timeRange } from "./influxql.js";
import { DEVICE_TAGS, MEASUREMENTS, type MeasurementKey, SEQ_HI_TAG } from "./schema.js";

// What the device reads ask of InfluxDB, one function per question, each answering typed rows. Every query
// but the directory's and the raw liveness path's (a past instant) touches one device's series only.

/** What a hello says of a device, as `device` and `device_state` store it; null where it did not say. */
export type HelloColumns = {
  kind: string | null;
  model: string | null;
  firmware: string | null;
  hardware: string | null;
  serial: string | null;
  region: string | null;
  isp: string | null;
};

export const helloColumns = (row: Row): HelloColumns => ({
  kind: text(row.kind),
  model: text(row.model),
  firmware: text(row.firmware),
  hardware: text(row.hardware),
  serial: text(row.serial),
  region: text(row.region),
  isp: text(row.isp),
});

/** A device's point in device_state (written by the ingest: docs/storage.md); null where it was left out. */
export type DeviceStateRow = HelloColumns & {
  device: string;
  firstMs: number | null;
  lastReportMs: number | null;
  /** Device time of its newest timestamped report; absent from points written before it was kept. */
  lastReportDeviceMs?: number | null;
  lastSeenMs: number | null;
  presence: "online" | "offline" | null;
  presenceMs: number | null;
  presenceSource: string | null;
  gapMedianMs: number | null;
  gapSamples: number | null;
  updatedMs: number | null;
  /** The device's newest successful firmware update, when the ingest has recorded one. */
  lastUpdate?: DeviceUpdate | null;
};

/** A stored fault with its device time resolved (a point stored at receive time keeps the claim apart). */
export type FaultRow = {
  device: string | null;
  kind: string | null;
  model: string | null;
  firmware: string | null;
  region: string | null;
  code: string | null;
  severity: string | null;
  component: string | null;
  message: string | null;
  context: Record<string, string | number | boolean>;
  deviceMs: number;
  receivedMs: number;
};

export type EventRow = {
  type: string | null;
  deviceMs: number;
  receivedMs: number;
  data: Record<string, string | number | boolean>;
};

export type PresenceRow = { atMs: number; state: "online" | "offline"; source: string | null };

export type RatingRow = { deviceMs: number; receivedMs: number; rating: number; comment: string | null };

/** A successful firmware update: broker time, and the time its event is stored at (null: not known). */
export type DeviceUpdate = { atMs: number; deviceMs?: number | null; from: string | null; to: string | null };

export type FirmwareUpdateRow = {
  device: string;
  model: string | null;
  from: string | null;
  to: string | null;
  /** Broker time. */
  atMs: number;
  /** The time its event is stored at: the device's ts, or the receive time for a clock not trusted. */
  deviceMs: number;
};

/**
 * A device's newest report in a span of stored time. receivedMs: broker time of the newest by stored time;
 * atMs: its stored time (a hello's is its receive time); deviceMs: the newest timestamped report's stored
 * time (telemetry, fault, event, command), null when the span holds only hellos.
 */
export type LastReport = { receivedMs: number; atMs: number; deviceMs: number | null };

/** A device's newest presence change from one source, for the raw liveness path. */
export type PresenceLatestRow = { device: string; source: string; state: "online" | "offline"; atMs: number };

export type TelemetryQuery = {
  device: string;
  metric: string;
  fn: "mean" | "min" | "max" | "last";
  fromMs: number;
  toMs: number;
  everyMs: number;
};

/** Written with every message: not metrics, not event data. */
const BOOKKEEPING: ReadonlySet<string> = new Set(RESERVED_FIELDS);
const EVENT_COLUMNS: ReadonlySet<string> = new Set([...DEVICE_TAGS, SEQ_HI_TAG, "type", "time"]);
/** Messages a device sends itself: its reports. Presence is read apart, as only source=device counts. */
const REPORTS: readonly MeasurementKey[] = ["device", "telemetry", "fault", "event", "command"];
/** The one report stored at receive time. */
const HELLO = MEASUREMENTS.device.name;

export const FAULT_COLUMNS = [
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

export const integer = (value: unknown) =>
  typeof value === "number" && Number.isFinite(value) ? value : null;

/**
 * The device tag, cast: InfluxQL takes a bare "device" for a field of that name where one exists (a metric
 * stored before tag keys were reserved, or fault_list's device field), which would hide the tag.
 */
export const deviceTagIs = (id: string) => `${influxql.quoted("device")}::tag = ${influxql.stringLit(id)}`;
/** Beyond this many devices a query reads by tag rather than listing them. */
const MAX_DEVICE_LIST = 400;
const anyDevice = (ids: readonly string[]) => `(${ids.map(deviceTagIs).join(" OR ")})`;

/** The device's own clock: the point's time unless it was stored at receive time for a skewed clock. */
const deviceTime = (row: Row) =>
  (row.clock_skewed === true ? integer(row.device_ts) : null) ?? row.time.getTime();
const receiveTime = (row: Row) => integer(row.received_ms) ?? row.time.getTime();

/** A stored JSON object of flat values (a fault's context, an unknown event's data); {} if it is not one. */
export function flatJson(value: unknown): Record<string, string | number | boolean> {
  if (typeof value !== "string") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return {};
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return {};
  const flat: Record<string, string | number | boolean> = {};
  for (const [key, v] of Object.entries(parsed)) {
    if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") flat[key] = v;
  }
  return flat;
}

export function deviceStateRow(row: Row): DeviceStateRow | undefined {
  const device = text(row.device);
  if (device === null) return undefined;
  const presence = row.presence === "online" || row.presence === "offline" ? row.presence : null;
  return {
    device,
    ...helloColumns(row),
    firstMs: integer(row.first_ms),
    lastReportMs: integer(row.last_report_ms),
    lastReportDeviceMs: integer(row.last_report_device_ms),
    lastSeenMs: integer(row.last_seen_ms),
    presence,
    presenceMs: integer(row.presence_ms),
    presenceSource: text(row.presence_source),
    gapMedianMs: integer(row.gap_median_ms),
    gapSamples: integer(row.gap_samples),
    updatedMs: integer(row.updated_ms),
    lastUpdate: updateOf(row),
  };
}

function updateOf(row: Row): DeviceUpdate | null {
  const atMs = integer(row.update_ms);
  if (atMs === null) return null;
  return {
    atMs,
    deviceMs: integer(row.update_device_ms),
    from: text(row.update_from),
    to: text(row.update_to),
  };
}

export function faultRow(row: Row): FaultRow {
  return {
    device: text(row.device),
    kind: text(row.kind),
    model: text(row.model),
    firmware: text(row.firmware),
    region: text(row.region),
    code: text(row.code),
    severity: text(row.severity),
    component: text(row.component),
    message: text(row.message),
    context: flatJson(row.context),
    deviceMs: deviceTime(row),
    receivedMs: receiveTime(row),
  };
}

/**
 * An event's data: its own fields, or for a type without a schema of its own the object stored as JSON in
 * its `data` field.
 */
export function eventRow(row: Row): EventRow {
  const data: EventRow["data"] = {};
  for (const [column, value] of Object.entries(row)) {
    if (EVENT_COLUMNS.has(column) || BOOKKEEPING.has(column) || value === null) continue;
    if (column === "data" && typeof value === "string") Object.assign(data, flatJson(value));
    else if (typeof value === "string" || typeof value === "number" || typeof value === "boolean")
      data[column] = value;
  }
  return { type: text(row.type), deviceMs: deviceTime(row), receivedMs: receiveTime(row), data };
}

/** The last value of each metric in a `SELECT last(*)` row (columns last_<metric>). */
export function lastMetrics(row: Row | undefined): Record<string, number | boolean | string> {
  const values: Record<string, number | boolean | string> = {};
  for (const [column, value] of Object.entries(row ?? {})) {
    const metric = column.startsWith("last_") ? column.slice("last_".length) : undefined;
    if (metric === undefined || BOOKKEEPING.has(metric)) continue;
    if (typeof value === "number" || typeof value === "boolean" || typeof value === "string")
      values[metric] = value;
  }
  return values;
}

export type DeviceQueries = ReturnType<typeof deviceQueries>;

export function deviceQueries(influx: InfluxDB) {
  const groups = async (query: string) => (await queryGroups(influx, [query]))[0] ?? [];
  const rows = async (query: string) => (await groups(query)).flatMap((g) => g.rows);

  return {
    async ping(timeoutMs: number) {
      const started = performance.now();
      const hosts = await influx.ping(timeoutMs);
      return { ok: hosts.some((h) => h.online), latencyMs: Math.round(performance.now() - started) };
    },

    /** Every device's state, or those written after updatedAfterMs (one series: ~30 ms at 10,000 devices). */
    async deviceStates(updatedAfterMs?: number): Promise<DeviceStateRow[]> {
      const where = updatedAfterMs === undefined ? "" : ` WHERE "updated_ms" > ${Math.floor(updatedAfterMs)}`;
      const found = await rows(`SELECT * FROM ${from("deviceState")}${where}`);
      return found.map(deviceStateRow).filter((r) => r !== undefined);
    },

    /** The newest updated_ms in device_state (a few ms: one series, one aggregate); null when empty. */
    async newestStateUpdate(): Promise<number | null> {
      const [row] = await rows(`SELECT max("updated_ms") AS "newest" FROM ${from("deviceState")}`);
      return integer(row?.newest);
    },

    /** Newest first. */
    async recentFaults(device: string, limit: number): Promise<FaultRow[]> {
      const found = await rows(
        `SELECT ${FAULT_COLUMNS} FROM ${from("fault")} WHERE ${tagIs("device", device)} ORDER BY time DESC LIMIT ${limit}`,
      );
      return found.map(faultRow);
    },

    /** Newest first by device time (the point's time, unless the clock was off). */
    async recentEvents(device: string, limit: number): Promise<EventRow[]> {
      const found = await rows(
        `SELECT * FROM ${from("event")} WHERE ${tagIs("device", device)} ORDER BY time DESC LIMIT ${limit}`,
      );
      return found.map(eventRow);
    },

    /** Newest first; window undefined: all time. */
    async presence(
      device: string,
      window: { fromMs: number; toMs: number } | undefined,
      limit: number,
      offset = 0,
    ): Promise<PresenceRow[]> {
      const conditions = [tagIs("device", device)];
      if (window !== undefined) conditions.push(timeRange(window.fromMs, window.toMs));
      const found = await rows(
        `SELECT "state", "source", "received_ms" FROM ${from("presence")} WHERE ${conditions.join(" AND ")} ` +
          `ORDER BY time DESC LIMIT ${limit} OFFSET ${offset}`,
      );
      return found.map((r) => ({
        atMs: receiveTime(r),
        state: r.state === "offline" ? "offline" : "online",
        source: text(r.source),
      }));
    },

    /** The last value of each metric the device reported since sinceMs. */
    async latestMetrics(device: string, sinceMs: number) {
      const found = await rows(
        `SELECT last(*) FROM ${from("telemetry")} WHERE ${deviceTagIs(device)} AND time >= ${Math.floor(sinceMs)}ms`,
      );
      return lastMetrics(found[0]);
    },

    /** Every rating's count and mean, and the newest `limit` ratings by device time. */
    async ratings(device: string, limit: number) {
      const feedback = `${tagIs("device", device)} AND ${tagIs("type", "feedback")}`;
      const [[stats], recent] = await Promise.all([
        rows(
          `SELECT mean("rating") AS "mean", count("rating") AS "count" FROM ${from("event")} WHERE ${feedback}`,
        ),
        rows(
          `SELECT "rating", "comment", "received_ms", "clock_skewed", "device_ts" FROM ${from("event")} WHERE ${feedback} ORDER BY time DESC LIMIT ${limit}`,
        ),
      ]);
      return {
        count: integer(stats?.count) ?? 0,
        mean: typeof stats?.mean === "number" ? stats.mean : null,
        recent: recent.flatMap((r): RatingRow[] =>
          typeof r.rating === "number"
            ? [
                {
                  deviceMs: deviceTime(r),
                  receivedMs: receiveTime(r),
                  rating: r.rating,
                  comment: text(r.comment),
                },
              ]
            : [],
        ),
      };
    },

    /** The field types of every telemetry metric (a metric has one per shard: there may be several). */
    async telemetryFieldTypes(): Promise<Map<string, string[]>> {
      const found = await rows(`SHOW FIELD KEYS FROM ${from("telemetry")}`);
      const types = new Map<string, string[]>();
      for (const r of found) {
        const key = text(r.fieldKey);
        const type = text(r.fieldType);
        if (key !== null && type !== null) types.set(key, [...(types.get(key) ?? []), type]);
      }
      return types;
    },

    /** One metric per bucket; the offset aligns the buckets on fromMs, so there are ceil(span / every). */
    async telemetry(q: TelemetryQuery) {
      const found = await rows(
        `SELECT ${q.fn}(${influxql.quoted(q.metric)}) AS "value" FROM ${from("telemetry")} ` +
          `WHERE ${deviceTagIs(q.device)} AND ${timeRange(q.fromMs, q.toMs)} ` +
          `GROUP BY time(${q.everyMs}ms, ${q.fromMs % q.everyMs}ms) fill(null)`,
      );
      return found.map((r) => ({
        timeMs: r.time.getTime(),
        value: typeof r.value === "number" || typeof r.value === "boolean" ? r.value : null,
      }));
    },

    /** Each listed device's last successful firmware update stored in [fromMs, toMs) (device time). */
    async firmwareUpdates(
      devices: readonly string[],
      fromMs: number,
      toMs: number,
    ): Promise<FirmwareUpdateRow[]> {
      if (devices.length === 0) return [];
      // A few devices: their own series through the index. Many: every update series in the range (only
      // the devices that updated have one), kept to those asked for.
      const few = devices.length <= MAX_DEVICE_LIST;
      const wanted = new Set(devices);
      const updates = await groups(
        `SELECT last("to") AS "to", "from", "received_ms", "model" FROM ${from("event")} ` +
          `WHERE ${few ? `${anyDevice(devices)} AND ` : ""}${tagIs("type", "firmware_update")} AND "result" = 'success' AND ${timeRange(fromMs, toMs)} GROUP BY "device"`,
      );
      const found: FirmwareUpdateRow[] = [];
      for (const group of updates) {
        const row = group.rows[0];
        const device = group.tags.device;
        if (row === undefined || device === undefined || !wanted.has(device)) continue;
        found.push({
          device,
          model: text(row.model),
          from: text(row.from),
          to: text(row.to),
          atMs: receiveTime(row),
          deviceMs: row.time.getTime(),
        });
      }
      return found;
    },

    // The raw liveness path: for an instant in the past the directory does not know the state then. These
    // read every device's series over the span asked (10,000 devices × a week: seconds; × a few hours: less).

    /**
     * Each device's newest report stored in [fromMs, toMs) (stored time: the device's where trusted), of
     * every device or of these (an OR list up to MAX_DEVICE_LIST, else every device's, kept to those).
     */
    async lastReportsIn(
      fromMs: number,
      toMs: number,
      devices?: readonly string[],
    ): Promise<Map<string, LastReport>> {
      const few = devices !== undefined && devices.length <= MAX_DEVICE_LIST;
      // One series per measurement and device; last() answers the newest point's time with its value.
      const found = await groups(
        `SELECT last("received_ms") AS "received_ms" FROM ${REPORTS.map(from).join(", ")} ` +
          `WHERE ${few ? `${anyDevice(devices)} AND ` : ""}${timeRange(fromMs, toMs)} GROUP BY "device"`,
      );
      const wanted = devices === undefined ? undefined : new Set(devices);
      const reports = new Map<string, LastReport>();
      for (const group of found) {
        const id = group.tags.device;
        const row = group.rows[0];
        if (id === undefined || row === undefined || (wanted !== undefined && !wanted.has(id))) continue;
        const atMs = row.time.getTime();
        const receivedMs = integer(row.received_ms) ?? atMs;
        const deviceMs = group.name === HELLO ? null : atMs;
        const known = reports.get(id);
        if (known === undefined) {
          reports.set(id, { receivedMs, atMs, deviceMs });
          continue;
        }
        reports.set(id, {
          receivedMs: Math.max(known.receivedMs, receivedMs),
          atMs: Math.max(known.atMs, atMs),
          deviceMs: deviceMs === null ? known.deviceMs : Math.max(known.deviceMs ?? deviceMs, deviceMs),
        });
      }
      return reports;
    },

    /** Each device's newest presence change per source in [fromMs, toMs). */
    async presenceIn(fromMs: number, toMs: number): Promise<PresenceLatestRow[]> {
      const found = await groups(
        `SELECT last("state") AS "state", "received_ms" FROM ${from("presence")} WHERE ${timeRange(fromMs, toMs)} GROUP BY "device", "source"`,
      );
      return found.flatMap((group): PresenceLatestRow[] => {
        const row = group.rows[0];
        const { device, source } = group.tags;
        const state = row?.state;
        if (row === undefined || device === undefined || (state !== "online" && state !== "offline"))
          return [];
        return [{ device, source: source ?? "", state, atMs: receiveTime(row) }];
      });
    },

    /** Devices with an activity hour in [fromMs, toMs), with the tags of the newest one. */
    async activeDevices(fromMs: number, toMs: number) {
      const found = await groups(
        `SELECT last("hours") AS "hours", "model", "firmware" FROM ${from("activity")} WHERE ${timeRange(fromMs, toMs)} GROUP BY "device"`,
      );
      return found.flatMap((group) => {
        const device = group.tags.device;
        const row = group.rows[0];
        return device === undefined || row === undefined
          ? []
          : [{ device, model: text(row.model), firmware: text(row.firmware) }];
      });
    },
  };
}
