import type {
  DeviceStateRow,
  EventRow,
  FaultRow,
  FirmwareUpdateRow,
  LastReport,
  PresenceLatestRow,
  PresenceRow,
  TelemetryQuery,
} from "./device-queries.js";
import type { FaultQuery } from "./fault-queries.js";

// The device and fault reads from hand-made rows, for unit tests of the services and routes above them
// only: the InfluxDB queries have integration tests of their own (test/integration/api-influx.test.ts).

export type MemorySample = { device: string; metric: string; timeMs: number; value: number | boolean };

export type MemoryFleet = {
  states?: DeviceStateRow[];
  /** Any order; read newest first by device time. */
  faults?: Array<FaultRow & { device: string }>;
  events?: Array<EventRow & { device: string }>;
  presence?: Array<PresenceRow & { device: string }>;
  telemetry?: MemorySample[];
  /** The activity hours of the raw silence path: device, hour start, model, firmware. */
  activity?: Array<{ device: string; hourMs: number; model: string; firmware: string }>;
  reachable?: boolean;
};

const newestFirst =
  <T>(time: (item: T) => number) =>
  (a: T, b: T) =>
    time(b) - time(a);
const within = (ms: number, fromMs: number, toMs: number) => ms >= fromMs && ms < toMs;

function aggregate(fn: TelemetryQuery["fn"], values: Array<number | boolean>): number | boolean | null {
  if (values.length === 0) return null;
  if (fn === "last") return values.at(-1) ?? null;
  const numbers = values.map(Number);
  if (fn === "min") return Math.min(...numbers);
  if (fn === "max") return Math.max(...numbers);
  return numbers.reduce((sum, v) => sum + v, 0) / numbers.length;
}

export function createMemoryDeviceReads(fleet: MemoryFleet = {}) {
  const faults = [...(fleet.faults ?? [])].sort(newestFirst((f) => f.deviceMs));
  const events = [...(fleet.events ?? [])].sort(newestFirst((e) => e.deviceMs));
  const presence = [...(fleet.presence ?? [])].sort(newestFirst((p) => p.atMs));
  const samples = [...(fleet.telemetry ?? [])].sort((a, b) => a.timeMs - b.timeMs);

  return {
    async ping(_timeoutMs: number) {
      return { ok: fleet.reachable ?? true, latencyMs: 1 };
    },

    async deviceStates(updatedAfterMs?: number) {
      if (fleet.reachable === false) throw new Error("unreachable");
      return (fleet.states ?? []).filter(
        (s) => updatedAfterMs === undefined || (s.updatedMs ?? 0) > updatedAfterMs,
      );
    },

    async recentFaults(device: string, limit: number): Promise<FaultRow[]> {
      return faults.filter((f) => f.device === device).slice(0, limit);
    },

    async recentEvents(device: string, limit: number): Promise<EventRow[]> {
      return events
        .filter((e) => e.device === device)
        .slice(0, limit)
        .map(({ device: _, ...e }) => e);
    },

    async presence(
      device: string,
      window: { fromMs: number; toMs: number } | undefined,
      limit: number,
      offset = 0,
    ) {
      return presence
        .filter(
          (p) => p.device === device && (window === undefined || within(p.atMs, window.fromMs, window.toMs)),
        )
        .slice(offset, offset + limit)
        .map(({ device: _, ...p }): PresenceRow => p);
    },

    async latestMetrics(device: string, sinceMs: number) {
      const values: Record<string, number | boolean | string> = {};
      for (const s of samples) if (s.device === device && s.timeMs >= sinceMs) values[s.metric] = s.value;
      return values;
    },

    async ratings(device: string, limit: number) {
      const rated = events.filter(
        (e) => e.device === device && e.type === "feedback" && typeof e.data.rating === "number",
      );
      const sum = rated.reduce((total, e) => total + Number(e.data.rating), 0);
      return {
        count: rated.length,
        mean: rated.length === 0 ? null : sum / rated.length,
        recent: rated.slice(0, limit).map((e) => ({
          deviceMs: e.deviceMs,
          receivedMs: e.receivedMs,
          rating: Number(e.data.rating),
          comment: typeof e.data.comment === "string" ? e.data.comment : null,
        })),
      };
    },

    async telemetryFieldTypes() {
      const types = new Map<string, string[]>();
      for (const s of samples) types.set(s.metric, [typeof s.value === "boolean" ? "boolean" : "float"]);
      return types;
    },

    async telemetry(q: TelemetryQuery) {
      const own = samples.filter(
        (s) => s.device === q.device && s.metric === q.metric && within(s.timeMs, q.fromMs, q.toMs),
      );
      if (own.length === 0) return [];
      const points: Array<{ timeMs: number; value: number | boolean | null }> = [];
      for (let start = q.fromMs; start < q.toMs; start += q.everyMs) {
        const values = own.filter((s) => within(s.timeMs, start, start + q.everyMs)).map((s) => s.value);
        points.push({ timeMs: start, value: aggregate(q.fn, values) });
      }
      return points;
    },

    async firmwareUpdates(devices: readonly string[], fromMs: number, toMs: number) {
      const found = new Map<string, FirmwareUpdateRow>();
      for (const e of events) {
        if (!devices.includes(e.device) || e.type !== "firmware_update" || e.data.result !== "success")
          continue;
        if (!within(e.deviceMs, fromMs, toMs) || found.has(e.device)) continue;
        const text = (v: unknown) => (typeof v === "string" ? v : null);
        const model = fleet.states?.find((s) => s.device === e.device)?.model ?? null;
        found.set(e.device, {
          device: e.device,
          model,
          from: text(e.data.from),
          to: text(e.data.to),
          atMs: e.receivedMs,
          deviceMs: e.deviceMs,
        });
      }
      return [...found.values()];
    },

    /** From the states: a report's stored time is its device time where the state knows it. */
    async lastReportsIn(fromMs: number, toMs: number) {
      const reports = new Map<string, LastReport>();
      for (const s of fleet.states ?? []) {
        const atMs = s.lastReportDeviceMs ?? s.lastReportMs;
        if (s.lastReportMs !== null && atMs !== null && within(atMs, fromMs, toMs))
          reports.set(s.device, { receivedMs: s.lastReportMs, atMs, deviceMs: atMs });
      }
      return reports;
    },

    async presenceIn(fromMs: number, toMs: number): Promise<PresenceLatestRow[]> {
      const latest = new Map<string, PresenceLatestRow>();
      for (const p of presence) {
        const key = `${p.device}\n${p.source}`;
        if (within(p.atMs, fromMs, toMs) && !latest.has(key))
          latest.set(key, { device: p.device, source: p.source ?? "", state: p.state, atMs: p.atMs });
      }
      return [...latest.values()];
    },

    async activeDevices(fromMs: number, toMs: number) {
      const newest = new Map<string, { device: string; model: string; firmware: string; hourMs: number }>();
      for (const a of fleet.activity ?? []) {
        if (!within(a.hourMs, fromMs, toMs)) continue;
        const known = newest.get(a.device);
        if (known === undefined || a.hourMs > known.hourMs) newest.set(a.device, a);
      }
      return [...newest.values()].map(({ device, model, firmware }) => ({ device, model, firmware }));
    },

    async faults(q: FaultQuery & { rows: number }): Promise<FaultRow[]> {
      return faults
        .filter(
          (f) =>
            within(f.deviceMs, q.fromMs, q.toMs) &&
            (q.device === undefined || f.device === q.device) &&
            (q.kind === undefined || f.kind === q.kind) &&
            (q.model === undefined || f.model === q.model) &&
            (q.firmware === undefined || f.firmware === q.firmware) &&
            (q.code === undefined || f.code === q.code) &&
            (q.severity === undefined || f.severity === q.severity),
        )
        .slice(q.offset, q.offset + q.rows);
    },
  };
}
