import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DAY_MS, HOUR_MS } from "../../contract/time.js";
import {
  adoptedSlots,
  type BackfillOptions,
  factsOf,
  filledState,
  missingDevices,
  reportBatches,
  type StoredFacts,
  startDeviceStateBackfill,
  storedActivity,
} from "../../ingest/device-state-backfill.js";
import { createIngest } from "../../ingest/ingest.js";
import { type DeviceMetaRecord, Journal } from "../../ingest/journal.js";
import { unknownMeta } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import type { HelloRow, StatePointRow } from "../../storage/device-state-sources.js";
import { hashedSlot } from "../../storage/schema.js";

const T = 1_736_150_400_000; // 2025-01-06T08:00:00Z

const helloRow = (device: string, receivedMs: number, extra: Partial<HelloRow> = {}): HelloRow => ({
  device,
  kind: "modem",
  model: "FQ-M200",
  firmware: "2.4.1",
  hardware: "rev C",
  serial: `S-${device}`,
  region: "eu",
  isp: "unknown",
  receivedMs,
  ...extra,
});

const stateRow = (device: string, slot: number, model: string | null = null): StatePointRow => ({
  device,
  slot,
  kind: null,
  model,
  firmware: null,
  hardware: null,
  serial: null,
  region: null,
  isp: null,
});

const facts = (extra: Partial<StoredFacts> = {}): StoredFacts => ({ presence: [], gapsMs: [], ...extra });

describe("missingDevices", () => {
  it("lists the known devices without a state point once each, in id order", () => {
    expect(missingDevices(["b", "a", "c", "a", "d"], new Set(["c", "x"]))).toEqual(["a", "b", "d"]);
    expect(missingDevices(["a"], new Set(["a"]))).toEqual([]);
  });
});

describe("storedActivity", () => {
  it("takes the newest presence of any source; a status the device sent itself is a report", () => {
    const activity = storedActivity(
      facts({
        lastReportMs: T,
        presence: [
          { device: "d", source: "broker", state: "online", atMs: T - HOUR_MS },
          { device: "d", source: "device", state: "online", atMs: T + 1_000 },
          { device: "d", source: "will", state: "offline", atMs: T + 5_000 },
        ],
      }),
    );
    expect(activity).toEqual({
      lastReportMs: T + 1_000,
      lastSeenMs: T + 5_000,
      presence: { state: "offline", atMs: T + 5_000, source: "will" },
    });
  });

  it("keeps the device time of the newest timestamped report, which a hello does not move", () => {
    const stored = facts({ lastReportMs: T, lastReportDeviceMs: T - HOUR_MS, hello: helloRow("d", T + 5) });
    expect(storedActivity(stored)).toEqual({
      lastReportMs: T + 5,
      lastReportDeviceMs: T - HOUR_MS,
      lastSeenMs: T + 5,
    });
    // What the ingest saw since start is newer.
    const filled = filledState({ activity: { lastReportDeviceMs: T } }, stored);
    expect(filled.activity.lastReportDeviceMs).toBe(T);
  });

  it("takes a hello newer than the other reports as the last report", () => {
    expect(storedActivity(facts({ lastReportMs: T, hello: helloRow("d", T + 5) }))).toEqual({
      lastReportMs: T + 5,
      lastSeenMs: T + 5,
    });
  });

  it("knows nothing of a device with no reports and no presence", () => {
    expect(storedActivity(facts())).toEqual({});
  });
});

describe("filledState", () => {
  it("makes the state of a device the ingest does not know from the stored points", () => {
    const { record, activity } = filledState(
      {},
      facts({
        hello: helloRow("d", T - 2 * HOUR_MS),
        lastReportMs: T,
        presence: [{ device: "d", source: "broker", state: "offline", atMs: T + 10 }],
        gapsMs: [60_000, 61_000, 59_000], // newest first
      }),
    );
    expect(record).toEqual({
      kind: "modem",
      model: "FQ-M200",
      firmware: "2.4.1",
      hardware: "rev C",
      region: "eu",
      isp: "unknown",
      serial: "S-d",
      gapsMs: [59_000, 61_000, 60_000],
    });
    expect(activity).toEqual({
      lastReportMs: T,
      lastSeenMs: T + 10,
      presence: { state: "offline", atMs: T + 10, source: "broker" },
    });
  });

  it("takes the firmware of a successful update newer than the hello, not of an older one", () => {
    const hello = helloRow("d", T);
    const newer = filledState({}, facts({ hello, firmwareUpdate: { firmware: "2.5.0", atMs: T + 1 } }));
    expect(newer.record.firmware).toBe("2.5.0");
    const older = filledState({}, facts({ hello, firmwareUpdate: { firmware: "2.3.0", atMs: T - 1 } }));
    expect(older.record.firmware).toBe("2.4.1");
  });

  it("keeps at most 24 gap samples, the newest", () => {
    const gaps = Array.from({ length: 30 }, (_, i) => 1_000 + i); // newest first: 1000 is the newest
    const { record } = filledState({}, facts({ gapsMs: gaps }));
    expect(record.gapsMs).toHaveLength(24);
    expect(record.gapsMs?.at(-1)).toBe(1_000);
    expect(record.gapsMs?.[0]).toBe(1_023);
  });

  it("keeps what the ingest knows: its record's hello, slot and samples, a newer report and presence", () => {
    const record: DeviceMetaRecord = {
      ...unknownMeta(),
      kind: "modem",
      model: "FQ-M300",
      firmware: "3.0.0",
      slot: 7,
      firstMs: T - HOUR_MS,
      gapsMs: [30_000],
    };
    const activity = {
      lastReportMs: T + 5_000,
      lastSeenMs: T + 5_000,
      presence: { state: "online" as const, atMs: T + 4_000, source: "broker" as const },
      writtenMs: T + 5_000,
    };
    const filled = filledState(
      { record, activity },
      facts({
        hello: helloRow("d", T - HOUR_MS),
        lastReportMs: T,
        presence: [{ device: "d", source: "broker", state: "offline", atMs: T + 1_000 }],
        gapsMs: [60_000],
      }),
    );
    expect(filled.record).toEqual(record);
    expect(filled.activity).toEqual(activity);
  });

  it("fills the hello of a record that knows none, keeping its slot, and an older presence", () => {
    const record: DeviceMetaRecord = { ...unknownMeta(), slot: 3 };
    const filled = filledState(
      { record, activity: { lastReportMs: T, lastSeenMs: T } },
      facts({
        hello: helloRow("d", T - HOUR_MS),
        lastReportMs: T - 10,
        presence: [{ device: "d", source: "broker", state: "online", atMs: T - HOUR_MS }],
      }),
    );
    expect(filled.record).toMatchObject({ model: "FQ-M200", serial: "S-d", slot: 3 });
    expect(filled.activity).toEqual({
      lastReportMs: T,
      lastSeenMs: T,
      presence: { state: "online", atMs: T - HOUR_MS, source: "broker" },
    });
  });
});

describe("reportBatches", () => {
  it("groups devices by their newest activity hour, newest first, each group from its oldest", () => {
    const newest = new Map([
      ["a", T - 30 * DAY_MS],
      ["b", T],
      ["c", T - HOUR_MS],
      ["d", T],
    ]);
    expect(reportBatches(["a", "b", "c", "d", "e"], newest, 2)).toEqual([
      { ids: ["b", "d"], fromMs: T },
      { ids: ["c", "a"], fromMs: T - 30 * DAY_MS },
      { ids: ["e"], fromMs: 0 }, // no activity: every report it has
    ]);
  });
});

describe("adoptedSlots", () => {
  it("takes every slot, and the slot and hello of each device the journal has no record of", () => {
    const points = [stateRow("a", 3, "FQ-M200"), stateRow("b", 9), stateRow("c", 4)];
    const adopted = adoptedSlots(points, (id) => id === "c");
    expect(adopted.taken).toEqual([3, 9, 4]);
    expect(adopted.records).toEqual([
      ["a", { ...unknownMeta(), model: "FQ-M200", slot: 3 }],
      ["b", { ...unknownMeta(), slot: 9 }],
    ]);
    expect(adoptedSlots([], () => false)).toEqual({ taken: [], records: [] });
  });
});

describe("factsOf", () => {
  it("gathers each device's rows and ignores rows of devices not asked for", () => {
    const found = factsOf(["a", "b"], {
      hellos: [helloRow("a", T), helloRow("z", T)],
      reports: new Map([
        ["a", { receivedMs: T + 1, atMs: T - 5, deviceMs: T - 5 }],
        ["b", { receivedMs: T, atMs: T, deviceMs: null }],
        ["z", { receivedMs: T, atMs: T, deviceMs: T }],
      ]),
      updates: [{ device: "b", to: "2.5.0", atMs: T }],
      presence: [
        { device: "a", source: "broker", state: "online", atMs: T },
        { device: "a", source: "device", state: "online", atMs: T + 1 },
      ],
      gaps: [{ device: "b", gapsMs: [5, 4] }],
    });
    expect([...found.keys()]).toEqual(["a", "b"]);
    expect(found.get("a")).toMatchObject({
      hello: { device: "a" },
      lastReportMs: T + 1,
      lastReportDeviceMs: T - 5,
    });
    expect(found.get("a")?.presence).toHaveLength(2);
    // Only a hello: no device time.
    expect(found.get("b")).toEqual({
      lastReportMs: T,
      presence: [],
      gapsMs: [5, 4],
      firmwareUpdate: { firmware: "2.5.0", atMs: T },
    });
  });
});

describe("Journal.mark and drainedTo", () => {
  it("tell when every entry appended before the mark has been committed", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fieldq-journal-mark-"));
    const journal = await Journal.open({ dir, maxBytes: 1e8, logger: silentLogger });
    try {
      expect(journal.drainedTo(journal.mark())).toBe(true);
      const point = { measurement: "m", rp: "long", tags: {}, fields: { v: 1 }, timeNs: "1" };
      await journal.append([{ point }]);
      await journal.append([{ point }]);
      const mark = journal.mark();
      await journal.append([{ point }]);
      expect(journal.drainedTo(mark)).toBe(false);
      const first = await journal.readBatch(1);
      await journal.commit(first.keys, []);
      expect(journal.drainedTo(mark)).toBe(false);
      const second = await journal.readBatch(1);
      await journal.commit(second.keys, []);
      // The entry appended after the mark is still there, and does not count.
      expect(journal.backlog.entries).toBe(1);
      expect(journal.drainedTo(mark)).toBe(true);
    } finally {
      await journal.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("startDeviceStateBackfill with the real ingest and journal", () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  async function start() {
    dir = await mkdtemp(join(tmpdir(), "fieldq-backfill-"));
    const journal = await Journal.open({ dir, maxBytes: 1e8, logger: silentLogger });
    const clock = { now: T + 2 * HOUR_MS };
    const ingest = await createIngest({
      journal,
      logger: silentLogger,
      metrics: createMetrics(),
      maxPayloadBytes: 65_536,
      clockSkewFutureMs: 600_000,
      clockSkewPastMs: 86_400_000,
      limits: {
        maxPointBytes: 65_536,
        maxMetricNames: 100,
        maxDeviceMetricNames: 100,
        maxLabelValues: 100,
        maxDeviceLabelValues: 10,
      },
      now: () => clock.now,
    });
    /** Drains the journal; the device_state points in it. */
    const drain = async () => {
      const batch = await journal.readBatch(10_000);
      await journal.commit(batch.keys, []);
      return batch.records.map((r) => r.point).filter((p) => p.measurement === "device_state");
    };
    return { journal, ingest, clock, drain };
  }

  /** Sources over fixed rows; failing: how many passes throw first (InfluxDB away). */
  function fakeSources(withState: Set<string>, failing = 0) {
    const asked: string[][] = [];
    const reportsFrom: number[] = [];
    let passes = 0;
    const sources: NonNullable<BackfillOptions["sources"]> = {
      async statePoints() {
        passes += 1;
        if (passes <= failing) throw new Error("connect ECONNREFUSED");
        return [...withState].map((device, i) => stateRow(device, 1_000 + i));
      },
      knownDevices: async () => new Set(["old-1", "old-2", "has-state"]),
      async latestHellos(ids) {
        asked.push([...ids]);
        return ids.filter((id) => id === "old-1").map((id) => helloRow(id, T - HOUR_MS));
      },
      async lastReports(ids, fromMs) {
        reportsFrom.push(fromMs);
        return new Map(ids.map((id) => [id, { receivedMs: T, atMs: T - 60_000, deviceMs: T - 60_000 }]));
      },
      firmwareUpdates: async () => [],
      latestPresence: async (ids) =>
        ids.map((device) => ({ device, source: "broker", state: "offline" as const, atMs: T + 1 })),
      recentActivity: async (ids) =>
        ids.map((device) => ({ device, newestHourMs: T - HOUR_MS, gapsMs: [60_000] })),
    };
    return { sources, asked, reportsFrom, passes: () => passes };
  }

  it("writes a state point for each missing device through the journal, in groups, and then nothing more", async () => {
    const { journal, ingest, drain } = await start();
    try {
      const fake = fakeSources(new Set(["has-state"]));
      const backfill = startDeviceStateBackfill({
        ingest,
        journal,
        sources: fake.sources,
        logger: silentLogger,
        batchSize: 1,
      });
      expect(await backfill.done).toBe(2);
      expect(fake.asked).toEqual([["old-1"], ["old-2"]]);
      // Reports are read from the devices' newest activity hour on.
      expect(fake.reportsFrom).toEqual([T - HOUR_MS, T - HOUR_MS]);
      const points = await drain();
      expect(points.map((p) => p.fields.device)).toEqual(["old-1", "old-2"]);
      // Each device's hashed slot; the device device_state holds but the journal lost keeps its own.
      expect(points.map((p) => p.timeNs)).toEqual([String(hashedSlot("old-1")), String(hashedSlot("old-2"))]);
      expect(ingest.deviceMeta("has-state")?.slot).toBe(1_000);
      expect(points[0]?.fields).toMatchObject({
        model: "FQ-M200",
        serial: "S-old-1",
        last_report_ms: { int: T },
        presence: "offline",
        presence_ms: { int: T + 1 },
        gap_median_ms: 60_000,
        gap_samples: { int: 1 },
      });
      // The restored hello tags the device's later points; its slot stays.
      expect(ingest.deviceMeta("old-1")).toMatchObject({ model: "FQ-M200", slot: expect.any(Number) });

      // Once InfluxDB has them, another start finds nothing missing.
      const again = fakeSources(new Set(["has-state", "old-1", "old-2"]));
      const second = startDeviceStateBackfill({
        ingest,
        journal,
        sources: again.sources,
        logger: silentLogger,
      });
      expect(await second.done).toBe(0);
      expect(again.asked).toEqual([]);
      expect(await drain()).toEqual([]);
    } finally {
      await journal.close();
    }
  });

  it("retries a pass that failed, and waits for the journal's backlog at start first", async () => {
    const { journal, ingest, clock, drain } = await start();
    try {
      // A backlog at start: the report of old-2 the ingest took since start, not yet in InfluxDB.
      clock.now = T + 3 * HOUR_MS;
      await ingest.presence("old-2", "online");
      const fake = fakeSources(new Set(["has-state"]), 1);
      const backfill = startDeviceStateBackfill({
        ingest,
        journal,
        sources: fake.sources,
        logger: silentLogger,
        retryMs: 10,
      });
      await new Promise((r) => setTimeout(r, 50));
      expect(fake.passes()).toBe(0); // the backlog has not drained
      const before = await drain();
      expect(before.map((p) => p.fields.device)).toEqual(["old-2"]);
      expect(await backfill.done).toBe(2);
      expect(fake.passes()).toBe(2);
      const points = await drain();
      const old2 = points.find((p) => p.fields.device === "old-2");
      // Its presence since start is newer than the stored one and stays; its slot is the one it had.
      expect(old2?.fields).toMatchObject({ presence: "online", presence_ms: { int: T + 3 * HOUR_MS } });
      expect(old2?.timeNs).toBe(before[0]?.timeNs);
    } finally {
      await journal.close();
    }
  });

  it("stops while InfluxDB is away without waiting for the retry", async () => {
    const { journal, ingest } = await start();
    try {
      const fake = fakeSources(new Set(), Number.POSITIVE_INFINITY);
      const backfill = startDeviceStateBackfill({
        ingest,
        journal,
        sources: fake.sources,
        logger: silentLogger,
        retryMs: 3_600_000,
      });
      while (fake.passes() === 0) await new Promise((r) => setTimeout(r, 5));
      await backfill.stop();
      expect(await backfill.done).toBe(0);
      expect(fake.passes()).toBe(1);
    } finally {
      await journal.close();
    }
  });
});
