import type { InfluxDB } from "influx";
import { deviceQueries, deviceTagIs, type HelloColumns, helloColumns, integer } from "./device-queries.js";
import { from, queryGroups, text } from "./influxql.js";
import type { MeasurementKey } from "./schema.js";

// What the device_state backfill (ingest/device-state-backfill.ts) reads: which devices the raw data knows
// and device_state lacks, and per group of devices what their state is made of. Typed rows only.

/** A device's newest hello as stored in `device`. */
export type HelloRow = HelloColumns & { device: string; receivedMs: number };

/** A device's device_state point: where it is (its slot) and the hello it holds. */
export type StatePointRow = Omit<HelloRow, "receivedMs"> & { slot: number };

/** A device's newest presence change from one source. */
export type SourcePresenceRow = { device: string; source: string; state: "online" | "offline"; atMs: number };

/** A device's newest activity hour, and the gap samples (activity gap_ms) of its newest hours, newest first. */
export type ActivityRow = { device: string; newestHourMs: number; gapsMs: number[] };

/** Every measurement a device's own points are tagged by device in (not rejection: a refused device is not one). */
const DEVICE_SERIES: readonly MeasurementKey[] = [
  "device",
  "telemetry",
  "fault",
  "event",
  "command",
  "presence",
  "activity",
];

const anyDevice = (ids: readonly string[]) => `(${ids.map(deviceTagIs).join(" OR ")})`;

export type DeviceStateSources = ReturnType<typeof deviceStateSources>;

export function deviceStateSources(influx: InfluxDB) {
  const groups = async (query: string) => (await queryGroups(influx, [query]))[0] ?? [];
  const devices = deviceQueries(influx);

  return {
    /** Every device_state point: the device, its slot (the point's time in ns) and its hello (one series). */
    async statePoints(): Promise<StatePointRow[]> {
      const found = await groups(
        `SELECT "device", "kind", "model", "firmware", "hardware", "serial", "region", "isp" FROM ${from("deviceState")}`,
      );
      return found
        .flatMap((g) => g.rows)
        .flatMap((row): StatePointRow[] => {
          const device = text(row.device);
          const nano = (row.time as { getNanoTime?: () => string }).getNanoTime?.();
          const slot = nano === undefined ? row.time.getTime() * 1_000_000 : Number(nano);
          if (device === null || !Number.isSafeInteger(slot)) return [];
          return [{ device, slot, ...helloColumns(row) }];
        });
    },

    /** Every device id a raw measurement is tagged with (the index only: tens of ms at 10,000 devices). */
    async knownDevices(): Promise<Set<string>> {
      const found = await groups(
        `SHOW TAG VALUES FROM ${DEVICE_SERIES.map(from).join(", ")} WITH KEY = "device"`,
      );
      const ids = new Set<string>();
      for (const row of found.flatMap((g) => g.rows)) {
        const id = text(row.value);
        if (id !== null) ids.add(id);
      }
      return ids;
    },

    /** Each listed device's newest hello. */
    async latestHellos(ids: readonly string[]): Promise<HelloRow[]> {
      if (ids.length === 0) return [];
      const found = await groups(
        `SELECT last("received_ms") AS "received_ms", "serial", "kind", "model", "firmware", "hardware", "region", "isp" ` +
          `FROM ${from("device")} WHERE ${anyDevice(ids)} GROUP BY "device"`,
      );
      return found.flatMap((group): HelloRow[] => {
        const row = group.rows[0];
        const device = group.tags.device;
        if (row === undefined || device === undefined) return [];
        return [{ device, ...helloColumns(row), receivedMs: integer(row.received_ms) ?? row.time.getTime() }];
      });
    },

    /**
     * Each listed device's newest report (device, telemetry, fault, event, command) in [fromMs, toMs): a
     * bound near the devices' newest activity hour reads a day of raw telemetry instead of a month (~5x).
     */
    lastReports: (ids: readonly string[], fromMs: number, toMs: number) =>
      devices.lastReportsIn(fromMs, toMs, ids),

    /** Each listed device's last successful firmware update before toMs. */
    firmwareUpdates: (ids: readonly string[], toMs: number) => devices.firmwareUpdates(ids, 0, toMs),

    /** Each listed device's newest presence change per source. */
    async latestPresence(ids: readonly string[]): Promise<SourcePresenceRow[]> {
      if (ids.length === 0) return [];
      const found = await groups(
        `SELECT last("state") AS "state", "received_ms" FROM ${from("presence")} WHERE ${anyDevice(ids)} GROUP BY "device", "source"`,
      );
      return found.flatMap((group): SourcePresenceRow[] => {
        const row = group.rows[0];
        const { device, source } = group.tags;
        const state = row?.state;
        if (row === undefined || device === undefined || (state !== "online" && state !== "offline"))
          return [];
        return [
          { device, source: source ?? "", state, atMs: integer(row.received_ms) ?? row.time.getTime() },
        ];
      });
    },

    /**
     * Each listed device's newest `limit` activity hours: the newest one's start, and the gap samples among
     * them, newest first. Devices without activity are left out.
     */
    async recentActivity(ids: readonly string[], limit: number): Promise<ActivityRow[]> {
      if (ids.length === 0) return [];
      const found = await groups(
        `SELECT "gap_ms", "hours" FROM ${from("activity")} WHERE ${anyDevice(ids)} GROUP BY "device" ORDER BY time DESC LIMIT ${Math.trunc(limit)}`,
      );
      return found.flatMap((group): ActivityRow[] => {
        const device = group.tags.device;
        const newest = group.rows[0];
        if (device === undefined || newest === undefined) return [];
        const gapsMs = group.rows.map((r) => integer(r.gap_ms)).filter((g): g is number => g !== null);
        return [{ device, newestHourMs: newest.time.getTime(), gapsMs }];
      });
    },
  };
}
