import {
  type Device,
  DeviceFilter,
  DeviceId,
  FaultFilter,
  type FaultRecord,
  type FleetStore,
  RECENT_FAULTS,
  TelemetryQuery,
  type TelemetrySeries,
} from "./fleet-store.js";

// For unit tests of the layers above the store only: the InfluxDB store has integration tests of its own.

export type MemorySample = { device: string; metric: string; timeMs: number; value: number | boolean };

export type MemoryFleet = {
  devices?: Device[];
  /** Any order; listed newest first by ts. */
  faults?: FaultRecord[];
  telemetry?: MemorySample[];
  reachable?: boolean;
};

const byNewest = (a: FaultRecord, b: FaultRecord) => Date.parse(b.ts) - Date.parse(a.ts);

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
          (filter.firmware === undefined || d.firmware === filter.firmware),
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
  };
}
