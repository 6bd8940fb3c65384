import { DeviceId } from "../contract/api/common.js";
import {
  type Device,
  type DeviceSummary,
  type EventRecord,
  type PresenceRecord,
  RECENT_EVENTS,
  RECENT_FAULTS,
  RECENT_PRESENCE,
  RECENT_RATINGS,
  type SilenceReport,
  type TelemetrySeries,
} from "../contract/api/devices.js";
import type { FaultRecord } from "../contract/api/faults.js";
import {
  AFTER_UPDATE_MS,
  DeviceFilter,
  FaultFilter,
  type FleetStore,
  LATEST_METRICS_SPAN_MS,
  PresenceQuery,
  SilenceQuery,
  TelemetryQuery,
} from "./fleet-store.js";

// For unit tests of the layers above the store only: the InfluxDB store has integration tests of its own.

export type MemorySample = { device: string; metric: string; timeMs: number; value: number | boolean };

export type MemoryFleet = {
  /** With their status already decided: this store does not judge silence. */
  devices?: Device[];
  /** Any order; listed newest first. */
  presence?: Array<PresenceRecord & { device: string }>;
  /** Any order; listed newest first by receivedAt. */
  events?: Array<EventRecord & { device: string }>;
  /** The clock for the summary's metrics window. */
  nowMs?: number;
  /** Any order; listed newest first by ts. */
  faults?: FaultRecord[];
  telemetry?: MemorySample[];
  reachable?: boolean;
};

const byNewest = (a: FaultRecord, b: FaultRecord) => Date.parse(b.ts) - Date.parse(a.ts);
const newestFirst =
  <T>(time: (item: T) => string) =>
  (a: T, b: T) =>
    Date.parse(time(b)) - Date.parse(time(a));

function rates<K extends Record<string, string>>(devices: readonly Device[], key: (d: Device) => K) {
  const rows = new Map<string, K & { seen: number; silent: number }>();
  for (const d of devices) {
    const k = key(d);
    const id = JSON.stringify(Object.values(k));
    const row = rows.get(id) ?? { ...k, seen: 0, silent: 0 };
    rows.set(id, { ...row, seen: row.seen + 1, silent: row.silent + (d.status === "silent" ? 1 : 0) });
  }
  return [...rows.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, row]) => ({ ...row, rate: row.silent / row.seen }));
}

function aggregate(fn: TelemetrySeries["fn"], values: Array<number | boolean>): number | boolean | null {
  if (values.length === 0) return null;
  if (fn === "last") return values.at(-1) ?? null;
  const numbers = values.filter((v) => typeof v === "number");
  if (fn === "min") return Math.min(...numbers);
  if (fn === "max") return Math.max(...numbers);
  return numbers.reduce((sum, v) => sum + v, 0) / numbers.length;
}

export function createMemoryFleetStore(fleet: MemoryFleet = {}): FleetStore {
  const devices = [...(fleet.devices ?? [])].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const faults = [...(fleet.faults ?? [])].sort(byNewest);
  const samples = [...(fleet.telemetry ?? [])].sort((a, b) => a.timeMs - b.timeMs);
  const presence = [...(fleet.presence ?? [])].sort(newestFirst((p) => p.time));
  const events = [...(fleet.events ?? [])].sort(newestFirst((e) => e.receivedAt));
  const strip = <T extends { device: string }>({ device: _, ...rest }: T) => rest;

  return {
    async ping() {
      return { ok: fleet.reachable ?? true, latencyMs: 1 };
    },

    async listDevices(input) {
      const filter = DeviceFilter.parse(input);
      const matching = devices.filter(
        (d) =>
          (filter.kind === undefined || d.kind === filter.kind) &&
          (filter.model === undefined || d.model === filter.model) &&
          (filter.firmware === undefined || d.firmware === filter.firmware) &&
          (filter.status === undefined || d.status === filter.status),
      );
      const end = Math.min(filter.offset + filter.limit, matching.length);
      return {
        items: matching.slice(filter.offset, end),
        total: matching.length,
        nextOffset: end < matching.length ? end : null,
      };
    },

    async getDevice(input) {
      const id = DeviceId.parse(input);
      const device = devices.find((d) => d.id === id);
      if (device === undefined) return undefined;
      return { ...device, recentFaults: faults.filter((f) => f.device === id).slice(0, RECENT_FAULTS) };
    },

    async telemetry(input) {
      const q = TelemetryQuery.parse(input);
      if (!devices.some((d) => d.id === q.device)) return { ok: false, reason: "unknown_device" };
      const own = samples.filter((s) => s.device === q.device && s.metric === q.metric);
      if (q.fn !== "last" && own.some((s) => typeof s.value === "boolean"))
        return { ok: false, reason: "not_numeric" };
      const inRange = own.filter((s) => s.timeMs >= q.fromMs && s.timeMs < q.toMs);
      const points: TelemetrySeries["points"] = [];
      if (inRange.length > 0) {
        for (let start = q.fromMs; start < q.toMs; start += q.everyMs) {
          const values = inRange
            .filter((s) => s.timeMs >= start && s.timeMs < start + q.everyMs)
            .map((s) => s.value);
          points.push({ time: new Date(start).toISOString(), value: aggregate(q.fn, values) });
        }
      }
      return {
        ok: true,
        series: {
          device: q.device,
          metric: q.metric,
          fn: q.fn,
          from: new Date(q.fromMs).toISOString(),
          to: new Date(q.toMs).toISOString(),
          everyMs: q.everyMs,
          points,
        },
      };
    },

    async listFaults(input) {
      const filter = FaultFilter.parse(input);
      const matching = faults.filter((f) => {
        const ts = Date.parse(f.ts);
        return (
          ts >= filter.fromMs &&
          ts < filter.toMs &&
          (filter.device === undefined || f.device === filter.device) &&
          (filter.kind === undefined || f.kind === filter.kind) &&
          (filter.model === undefined || f.model === filter.model) &&
          (filter.firmware === undefined || f.firmware === filter.firmware) &&
          (filter.code === undefined || f.code === filter.code) &&
          (filter.severity === undefined || f.severity === filter.severity)
        );
      });
      const end = Math.min(filter.offset + filter.limit, matching.length);
      return { items: matching.slice(filter.offset, end), nextOffset: end < matching.length ? end : null };
    },

    async presenceHistory(input) {
      const q = PresenceQuery.parse(input);
      if (!devices.some((d) => d.id === q.device)) return undefined;
      const matching = presence.filter((p) => {
        const ms = Date.parse(p.time);
        return p.device === q.device && ms >= q.fromMs && ms < q.toMs;
      });
      const end = Math.min(q.offset + q.limit, matching.length);
      return {
        items: matching.slice(q.offset, end).map(strip),
        nextOffset: end < matching.length ? end : null,
      };
    },

    async deviceSummary(input) {
      const id = DeviceId.parse(input);
      const device = devices.find((d) => d.id === id);
      if (device === undefined) return undefined;
      const sinceMs = (fleet.nowMs ?? Date.now()) - LATEST_METRICS_SPAN_MS;
      const values: DeviceSummary["metrics"]["values"] = {};
      for (const s of samples) if (s.device === id && s.timeMs >= sinceMs) values[s.metric] = s.value;
      const own = events.filter((e) => e.device === id);
      const ratings = own.filter((e) => e.type === "feedback" && typeof e.data.rating === "number");
      const sum = ratings.reduce((total, e) => total + Number(e.data.rating), 0);
      return {
        ...device,
        recentPresence: presence
          .filter((p) => p.device === id)
          .slice(0, RECENT_PRESENCE)
          .map(strip),
        metrics: { since: new Date(sinceMs).toISOString(), values },
        recentFaults: faults.filter((f) => f.device === id).slice(0, RECENT_FAULTS),
        recentEvents: own.slice(0, RECENT_EVENTS).map(strip),
        feedback: {
          count: ratings.length,
          mean: ratings.length === 0 ? null : sum / ratings.length,
          recent: ratings.slice(0, RECENT_RATINGS).map((e) => ({
            time: e.ts,
            receivedAt: e.receivedAt,
            rating: Number(e.data.rating),
            comment: typeof e.data.comment === "string" ? e.data.comment : null,
          })),
        },
      };
    },

    async silence(input) {
      const q = SilenceQuery.parse(input);
      const seen = devices.filter((d) => {
        const ms = d.lastReport === null ? Number.NaN : Date.parse(d.lastReport);
        return ms >= q.fromMs && ms < q.toMs;
      });
      const afterUpdate: SilenceReport["afterUpdate"]["devices"] = [];
      for (const d of seen) {
        if (d.status !== "silent" || d.lastReport === null) continue;
        const update = events.find(
          (e) => e.device === d.id && e.type === "firmware_update" && e.data.result === "success",
        );
        if (update === undefined) continue;
        const gap = Date.parse(d.lastReport) - Date.parse(update.receivedAt);
        if (gap < 0 || gap > AFTER_UPDATE_MS) continue;
        afterUpdate.push({
          device: d.id,
          model: d.model,
          from: String(update.data.from),
          to: String(update.data.to),
          updatedAt: update.receivedAt,
          lastReport: d.lastReport,
        });
      }
      const count = <K extends Record<string, string>>(key: (d: (typeof afterUpdate)[number]) => K) => {
        const rows = new Map<string, K & { count: number }>();
        for (const d of afterUpdate) {
          const k = key(d);
          const id = JSON.stringify(Object.values(k));
          rows.set(id, { ...k, count: (rows.get(id)?.count ?? 0) + 1 });
        }
        return [...rows.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, row]) => row);
      };
      return {
        from: new Date(q.fromMs).toISOString(),
        to: new Date(q.toMs).toISOString(),
        factor: 3,
        byModel: rates(seen, (d) => ({ model: d.model })),
        byFirmware: rates(seen, (d) => ({ model: d.model, firmware: d.firmware })),
        afterUpdate: {
          withinS: AFTER_UPDATE_MS / 1000,
          devices: afterUpdate,
          byModel: count((d) => ({ model: d.model })),
          byFirmware: count((d) => ({ model: d.model, firmware: d.to })),
        },
      };
    },
  };
}
