import { type InfluxDB, escape as influxql } from "influx";
import { ServiceNotAvailableError } from "influx/lib/src/pool.js";
import { z } from "zod";
import { Context, Label, MetricName, Severity } from "../contract/messages.js";
import { DEVICE_ID_PATTERN } from "../contract/topics.js";
import { MEASUREMENTS, type MeasurementKey, UNKNOWN } from "./schema.js";

// The API's read side of InfluxDB. Every value that reaches InfluxQL is validated by one of the schemas
// below first and escaped as it is spliced in; docs/storage.md describes the measurements queried here.

export const MAX_PAGE = 1000;
export const RECENT_FAULTS = 20;

export const DeviceId = z
  .string()
  .regex(DEVICE_ID_PATTERN, "must be 1-64 letters, digits, _ . or - and start with a letter or digit");

const isoTime = z.iso.datetime();

export const Device = z
  .object({
    id: DeviceId,
    kind: z.string().meta({ examples: ["modem"] }),
    model: z.string(),
    firmware: z.string(),
    hardware: z.string().nullable().meta({ description: "Hardware revision; null before any hello" }),
    serial: z.string().nullable().meta({ description: "null before any hello" }),
    region: z.string(),
    isp: z.string().nullable(),
    lastSeen: isoTime
      .nullable()
      .meta({ description: "Broker time of the newest message or presence change" }),
    online: z.boolean().nullable().meta({ description: "Last presence state; null when never reported" }),
  })
  .meta({ id: "Device", description: 'Metadata from the device\'s latest hello ("unknown" before any)' });
export type Device = z.infer<typeof Device>;

export const FaultRecord = z
  .object({
    device: DeviceId,
    kind: z.string(),
    model: z.string(),
    firmware: z.string(),
    region: z.string(),
    code: z.string().meta({ examples: ["DSL_RESYNC"] }),
    severity: z.string().meta({ description: "info, warning, error or critical" }),
    component: z.string().nullable(),
    message: z.string().nullable(),
    context: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
    ts: isoTime.meta({ description: "Device time" }),
    receivedAt: isoTime.meta({ description: "Broker time" }),
  })
  .meta({ id: "FaultRecord" });
export type FaultRecord = z.infer<typeof FaultRecord>;

export const DeviceDetail = Device.extend({ recentFaults: z.array(FaultRecord).max(RECENT_FAULTS) }).meta({
  id: "DeviceDetail",
  description: `A device with its ${RECENT_FAULTS} most recent faults, newest first`,
});
export type DeviceDetail = z.infer<typeof DeviceDetail>;

export const TELEMETRY_FNS = ["mean", "min", "max", "last"] as const;
export const TelemetryFn = z.enum(TELEMETRY_FNS);

export const TelemetrySeries = z
  .object({
    device: DeviceId,
    metric: z.string(),
    fn: TelemetryFn,
    from: isoTime,
    to: isoTime,
    everyMs: z.number().int().positive(),
    points: z.array(
      z.object({
        time: isoTime.meta({ description: "Start of the bucket" }),
        value: z
          .union([z.number(), z.boolean()])
          .nullable()
          .meta({ description: "null for an empty bucket" }),
      }),
    ),
  })
  .meta({ id: "TelemetrySeries" });
export type TelemetrySeries = z.infer<typeof TelemetrySeries>;

const epochMs = z.number().int().min(0);
const page = { limit: z.number().int().min(1).max(MAX_PAGE), offset: z.number().int().min(0) };

export const DeviceFilter = z.object({
  kind: Label.optional(),
  model: Label.optional(),
  firmware: Label.optional(),
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

/** What faults can be narrowed by; the API's query schema spreads the same fields. */
export const FAULT_FILTER_FIELDS = {
  device: DeviceId.optional(),
  kind: Label.optional(),
  model: Label.optional(),
  firmware: Label.optional(),
  code: Label.optional(),
  severity: Severity.optional(),
};

export const FaultFilter = z
  .object({ fromMs: epochMs, toMs: epochMs, ...FAULT_FILTER_FIELDS, ...page })
  .refine((q) => q.fromMs < q.toMs, "fromMs must be before toMs");
export type FaultFilter = z.infer<typeof FaultFilter>;

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
}

/** InfluxDB could not be reached (as opposed to refusing a query, which is a defect). */
export class StoreUnavailable extends Error {
  constructor(options: { cause: unknown }) {
    super("InfluxDB is not reachable", options);
    this.name = "StoreUnavailable";
  }
}

const NETWORK_ERRORS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

function isUnreachable(error: unknown): boolean {
  if (error instanceof ServiceNotAvailableError) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && NETWORK_ERRORS.has(code);
}

const from = (key: MeasurementKey) =>
  `${influxql.quoted(MEASUREMENTS[key].rp)}.${influxql.quoted(MEASUREMENTS[key].name)}`;
const tagIs = (tag: string, value: string) => `${influxql.quoted(tag)} = ${influxql.stringLit(value)}`;
const anyDevice = (ids: readonly string[]) => `(${ids.map((id) => tagIs("device", id)).join(" OR ")})`;
const timeRange = (fromMs: number, toMs: number) => `time >= ${fromMs}ms AND time < ${toMs}ms`;

/** Measurements whose points show that a device exists and when it was last heard from. */
const ACTIVITY: readonly MeasurementKey[] = ["device", "telemetry", "fault", "event", "presence"];

type Row = Record<string, unknown> & { time: Date };
type Group = { name: string; tags: Record<string, string>; rows: Row[] };

const text = (value: unknown) => (typeof value === "string" ? value : null);
const integer = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : null);
const iso = (ms: number) => new Date(ms).toISOString();

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

export function createInfluxFleetStore(
  influx: InfluxDB,
  options: { pingTimeoutMs?: number } = {},
): FleetStore {
  const pingTimeoutMs = options.pingTimeoutMs ?? 2000;

  async function groups(query: string): Promise<Group[]> {
    try {
      const results = await influx.query<Record<string, unknown>>(query);
      return results.groups() as Group[];
    } catch (cause) {
      if (isUnreachable(cause)) throw new StoreUnavailable({ cause });
      throw cause;
    }
  }
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

  /**
   * lastSeen: the received_ms of each measurement's newest point, the latest of those. last() rather than
   * max(received_ms), which would read every raw telemetry point the device has.
   */
  async function activity(ids: readonly string[]) {
    const result = new Map<string, { lastSeen: string | null; online: boolean | null }>();
    if (ids.length === 0) return result;
    const where = anyDevice(ids);
    const [seen, presence] = await Promise.all([
      groups(
        `SELECT last("received_ms") AS "received_ms" FROM ${ACTIVITY.map(from).join(", ")} WHERE ${where} GROUP BY "device"`,
      ),
      groups(`SELECT last("state") AS "state" FROM ${from("presence")} WHERE ${where} GROUP BY "device"`),
    ]);
    const lastMs = new Map<string, number>();
    for (const group of seen) {
      const id = group.tags.device;
      const ms = integer(group.rows[0]?.received_ms);
      if (id === undefined || ms === null) continue;
      lastMs.set(id, Math.max(ms, lastMs.get(id) ?? ms));
    }
    const online = new Map<string, boolean>();
    for (const group of presence) {
      const id = group.tags.device;
      const state = group.rows[0]?.state;
      if (id !== undefined && (state === "online" || state === "offline")) online.set(id, state === "online");
    }
    for (const id of ids) {
      const ms = lastMs.get(id);
      result.set(id, { lastSeen: ms === undefined ? null : iso(ms), online: online.get(id) ?? null });
    }
    return result;
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
      const pageItems = matching.slice(filter.offset, filter.offset + filter.limit);
      const seen = await activity(pageItems.map((d) => d.id));
      const end = filter.offset + pageItems.length;
      return {
        items: pageItems.map((d) => ({ ...d, lastSeen: null, online: null, ...seen.get(d.id) })),
        total: matching.length,
        nextOffset: end < matching.length ? end : null,
      };
    },

    async getDevice(input) {
      const id = DeviceId.parse(input);
      const [metadata, seen, faults] = await Promise.all([
        hellos([id]),
        activity([id]),
        rows(
          `SELECT ${FAULT_COLUMNS} FROM ${from("fault")} WHERE ${tagIs("device", id)} ORDER BY time DESC LIMIT ${RECENT_FAULTS}`,
        ),
      ]);
      const hello = metadata.get(id);
      const { lastSeen = null, online = null } = seen.get(id) ?? {};
      if (hello === undefined && lastSeen === null && online === null) return undefined;
      return { id, ...(hello ?? UNKNOWN_HELLO), lastSeen, online, recentFaults: faults.map(toFault) };
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
          `WHERE ${tagIs("device", q.device)} AND ${timeRange(q.fromMs, q.toMs)} ` +
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
