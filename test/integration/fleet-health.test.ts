import { test as base, describe, expect } from "vitest";
import { MIN_DEVICES } from "../../analytics/device-rates.js";
import { createApp } from "../../api/app.js";
import type { Role } from "../../config/env.js";
import { ErrorEnvelope } from "../../contract/api/common.js";
import { CohortRanking, FleetSummary, FleetTrend, type HealthMetrics } from "../../contract/api/fleet.js";
import type { Event, Severity } from "../../contract/messages.js";
import type { DeviceMetaRecord } from "../../ingest/journal.js";
import { activityPoint, deviceTags, messagePoints, rejectionPoint } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import { createHealthService, type HealthService, type HelloLookup } from "../../services/health.js";
import { createInflux, createPointWriter, ensureSchema } from "../../storage/influx.js";
import { createRollupReader } from "../../storage/rollup-reader.js";
import type { Point } from "../../storage/schema.js";
import { memoryDeviceServices } from "../support/device-services.js";
import { testDatabase } from "../support/influx.js";
import { rollingUp } from "../support/rollups.js";

// A small fleet over two UTC days, written with the ingest's own point builders and rolled up as the ingest
// would (rollingUp), and every statistic worked out by hand from it:
//
//   device    kind    model firmware region  active hours               faults                 reboots  feedback  rejections
//   modem-a   modem   M1    1.0      eu      day 1 h0-23 (24)           h2 warning, h5 critical h6       8         -
//   modem-b   modem   M1    1.0→1.1  us      day 1 h0-9 (10, on 1.0)    -                       -        6         -
//                                            day 2 h0-14 (15, on 1.1)   h3 error, h4 critical   -        10        2 (h5)
//   router-c  router  R1    2.0      eu      day 2 h0-7 (8)             -                       h1, h2   3         1 (h3)
//
// Outside the window: modem-a also reported (and had an info fault) in the hour before day 1, and in the
// hour after day 2.

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const DAY1 = Date.UTC(2024, 2, 1);
const DAY2 = DAY1 + DAY;
const END = DAY2 + DAY;
const iso = (ms: number) => new Date(ms).toISOString();

const meta = (kind: string, model: string, firmware: string, region: string): DeviceMetaRecord => ({
  kind,
  model,
  firmware,
  hardware: "rev-a",
  region,
  isp: "isp1",
  serial: "SN",
});
type Device = { id: string; meta: DeviceMetaRecord };
const A: Device = { id: "modem-a", meta: meta("modem", "M1", "1.0", "eu") };
const B10: Device = { id: "modem-b", meta: meta("modem", "M1", "1.0", "us") };
const B11: Device = { id: "modem-b", meta: meta("modem", "M1", "1.1", "us") };
const C: Device = { id: "router-c", meta: meta("router", "R1", "2.0", "eu") };

let seq = 0;
const context = (device: Device, ts: number) => ({
  meta: device.meta,
  receivedMs: ts + 1000,
  clockSkewFutureMs: 600_000,
  clockSkewPastMs: 60 * DAY,
  discriminator: seq,
});

const activity = (device: Device, start: number, hours: number): Point[] =>
  Array.from({ length: hours }, (_, h) =>
    activityPoint(deviceTags(device.id, device.meta), start + h * HOUR, 60_000),
  );

function fault(device: Device, ts: number, code: string, severity: Severity): Point[] {
  seq += 1;
  const message = { channel: "fault" as const, deviceId: device.id, body: { ts, seq, code, severity } };
  return messagePoints(message, context(device, ts)).records.map((r) => r.point);
}

function event(device: Device, ts: number, body: Omit<Event, "ts" | "seq">): Point[] {
  seq += 1;
  const message = { channel: "event" as const, deviceId: device.id, body: { ...body, ts, seq } as Event };
  return messagePoints(message, context(device, ts)).records.map((r) => r.point);
}

const reboot = (device: Device, ts: number) =>
  event(device, ts, { type: "reboot", data: { reason: "watchdog" } });
const feedback = (device: Device, ts: number, rating: number) =>
  event(device, ts, { type: "feedback", data: { rating, comment: "fine" } });

function rejection(device: Device, ms: number): Point {
  seq += 1;
  return rejectionPoint(
    deviceTags(device.id, device.meta),
    { receivedMs: ms, discriminator: seq },
    { reason: "invalid_json", topic: `fq/v1/${device.id}/telemetry`, detail: "not JSON", bytes: 12 },
  );
}

const at = (day: number, hour: number, minute = 10) => day + hour * HOUR + minute * 60_000;

const POINTS: Point[] = [
  ...activity(A, DAY1, 24),
  ...activity(B10, DAY1, 10),
  ...activity(B11, DAY2, 15),
  ...activity(C, DAY2, 8),
  ...fault(A, at(DAY1, 2), "DSL_RESYNC", "warning"),
  ...fault(A, at(DAY1, 5), "LOS", "critical"),
  ...fault(B11, at(DAY2, 3), "DSL_RESYNC", "error"),
  ...fault(B11, at(DAY2, 4), "LOS", "critical"),
  ...reboot(A, at(DAY1, 6)),
  ...reboot(C, at(DAY2, 1)),
  ...reboot(C, at(DAY2, 2)),
  ...event(B11, at(DAY2, 0), {
    type: "firmware_update",
    data: { from: "1.0", to: "1.1", result: "success" },
  }),
  ...feedback(A, at(DAY1, 7), 8),
  ...feedback(B10, at(DAY1, 1), 6),
  ...feedback(B11, at(DAY2, 6), 10),
  ...feedback(C, at(DAY2, 4), 3),
  rejection(B11, at(DAY2, 5, 1)),
  rejection(B11, at(DAY2, 5, 2)),
  rejection(C, at(DAY2, 3)),
  // Outside the window.
  ...activity(A, DAY1 - HOUR, 1),
  ...fault(A, DAY1 - HOUR + 60_000, "BOOT_SLOW", "info"),
  ...activity(A, END, 1),
  ...reboot(A, END + 60_000),
];

/** The expected metrics from hand-counted numbers, by the definitions in docs/api.md. */
function expected(c: {
  devices: number;
  hours: number;
  faults?: Partial<Record<Severity, number>>;
  faulty?: number;
  reboots?: number;
  rejections?: number;
  ratings?: number[];
}): HealthMetrics {
  const per1000 = (n: number) => ({ count: n, per1000h: c.hours > 0 ? (n / c.hours) * 1000 : null });
  const f = { info: 0, warning: 0, error: 0, critical: 0, ...c.faults };
  const distribution = Array.from({ length: 11 }, (_, r) => (c.ratings ?? []).filter((x) => x === r).length);
  const ratings = c.ratings ?? [];
  return {
    devices: c.devices,
    exposureHours: c.hours,
    faults: {
      ...per1000(f.info + f.warning + f.error + f.critical),
      bySeverity: {
        info: per1000(f.info),
        warning: per1000(f.warning),
        error: per1000(f.error),
        critical: per1000(f.critical),
      },
    },
    faultyDevices: c.faulty ?? 0,
    faultFreeShare: c.devices > 0 ? (c.devices - (c.faulty ?? 0)) / c.devices : null,
    reboots: { count: c.reboots ?? 0, perDeviceDay: c.hours > 0 ? (c.reboots ?? 0) / (c.hours / 24) : null },
    rejections: per1000(c.rejections ?? 0),
    feedback: {
      count: ratings.length,
      mean: ratings.length > 0 ? ratings.reduce((s, r) => s + r, 0) / ratings.length : null,
      distribution,
    },
  };
}

const TOTAL = expected({
  devices: 3,
  hours: 57,
  faults: { warning: 1, error: 1, critical: 2 },
  faulty: 2,
  reboots: 3,
  rejections: 3,
  ratings: [8, 6, 10, 3],
});
const M1 = expected({
  devices: 2,
  hours: 49,
  faults: { warning: 1, error: 1, critical: 2 },
  faulty: 2,
  reboots: 1,
  rejections: 2,
  ratings: [8, 6, 10],
});
const R1 = expected({ devices: 1, hours: 8, reboots: 2, rejections: 1, ratings: [3] });

/** What each device's latest hello says beyond its cohort; router-c's names neither ISP nor hardware. */
const hellos = (byDevice: Record<string, { isp: string | null; hardware: string | null }>): HelloLookup => ({
  helloRevision: () => 0,
  ready: async () => {},
  get: (id) => {
    const hello = byDevice[id];
    return hello === undefined ? undefined : { hello };
  },
});
const HELLOS = hellos({
  "modem-a": { isp: "isp1", hardware: "rev-a" },
  "modem-b": { isp: "isp2", hardware: "rev-b" },
  "router-c": { isp: null, hardware: null },
});

const VIEWER = "viewer-token-5678";
const TOKENS = new Map<string, Role>([[VIEWER, "viewer"]]);

const test = base.extend(
  "health",
  { scope: "file" },
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
  async ({}, { onCleanup }): Promise<HealthService> => {
    const db = await testDatabase("fleet_health");
    onCleanup(() => db.drop());
    const influx = createInflux(db);
    await ensureSchema(influx, db);
    await rollingUp(influx, createPointWriter(db))(POINTS);
    return createHealthService(influx, { directory: HELLOS });
  },
);

const window = { fromMs: DAY1, toMs: END };

describe("the fleet summary", () => {
  test("totals the whole fleet, counting a device that changed firmware once", async ({ health }) => {
    const summary = await health.fleetSummary({ ...window, groupBy: ["model"] });
    expect(summary.total).toEqual(TOTAL);
    expect(summary.from).toBe(iso(DAY1));
    expect(summary.to).toBe(iso(END));
    // The same numbers as worked out on paper: 4 faults in 57 device-hours, 3 reboots in 57/24 device-days.
    expect(summary.total.exposureHours).toBe(57);
    expect(summary.total.faults.per1000h).toBeCloseTo(70.18, 2);
    expect(summary.total.faults.bySeverity.critical.per1000h).toBeCloseTo(35.09, 2);
    expect(summary.total.faultFreeShare).toBeCloseTo(1 / 3, 12);
    expect(summary.total.reboots.perDeviceDay).toBeCloseTo(1.2632, 4);
    expect(summary.total.rejections.per1000h).toBeCloseTo(52.63, 2);
    expect(summary.total.feedback.mean).toBe(6.75);
    expect(summary.total.feedback.distribution).toEqual([0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1]);
    expect(FleetSummary.parse(summary)).toEqual(summary);
  });

  test("splits the metrics per model", async ({ health }) => {
    const summary = await health.fleetSummary({ ...window, groupBy: ["model"] });
    expect(summary.groups).toEqual([
      { group: { model: "M1" }, ...M1 },
      { group: { model: "R1" }, ...R1 },
    ]);
    expect(summary.groups[0]?.faults.per1000h).toBeCloseTo(81.63, 2);
    expect(summary.groups[0]?.faultFreeShare).toBe(0);
    expect(summary.groups[1]?.reboots.perDeviceDay).toBe(6);
    expect(summary.groups[1]?.rejections.per1000h).toBe(125);
  });

  test("counts an hour's device in each firmware it ran, and once in the total", async ({ health }) => {
    const summary = await health.fleetSummary({ ...window, groupBy: ["firmware"] });
    expect(summary.groups).toEqual([
      {
        group: { firmware: "1.0" },
        ...expected({
          devices: 2,
          hours: 34,
          faults: { warning: 1, critical: 1 },
          faulty: 1,
          reboots: 1,
          ratings: [8, 6],
        }),
      },
      {
        group: { firmware: "1.1" },
        ...expected({
          devices: 1,
          hours: 15,
          faults: { error: 1, critical: 1 },
          faulty: 1,
          rejections: 2,
          ratings: [10],
        }),
      },
      { group: { firmware: "2.0" }, ...R1 },
    ]);
    expect(summary.groups.reduce((n, g) => n + g.devices, 0)).toBe(4);
    expect(summary.total).toEqual(TOTAL);
  });

  test("groups by several tags at once", async ({ health }) => {
    const summary = await health.fleetSummary({ ...window, groupBy: ["kind", "region"] });
    expect(summary.groupBy).toEqual(["kind", "region"]);
    expect(summary.groups.map((g) => [g.group, g.exposureHours, g.faults.count, g.faultFreeShare])).toEqual([
      [{ kind: "modem", region: "eu" }, 24, 2, 0],
      [{ kind: "modem", region: "us" }, 25, 2, 0],
      [{ kind: "router", region: "eu" }, 8, 0, 1],
    ]);
  });

  test("narrows to a selection", async ({ health }) => {
    const summary = await health.fleetSummary({ ...window, groupBy: ["model"], model: "M1", region: "us" });
    expect(summary.filter).toEqual({ model: "M1", region: "us" });
    const b = expected({
      devices: 1,
      hours: 25,
      faults: { error: 1, critical: 1 },
      faulty: 1,
      rejections: 2,
      ratings: [6, 10],
    });
    expect(summary.groups).toEqual([{ group: { model: "M1" }, ...b }]);
    expect(summary.total).toEqual(b);
  });

  test("widens the window to whole hours, and reports the window it used", async ({ health }) => {
    const summary = await health.fleetSummary({
      fromMs: DAY1 - 30 * 60_000,
      toMs: DAY1 + 90 * 60_000,
      groupBy: [],
    });
    expect([summary.from, summary.to]).toEqual([iso(DAY1 - HOUR), iso(DAY1 + 2 * HOUR)]);
    // a: h-1, h0, h1; b: h0, h1.
    expect(summary.total).toEqual(
      expected({ devices: 2, hours: 5, faults: { info: 1 }, faulty: 1, ratings: [6] }),
    );
    expect(summary.groups).toEqual([
      { group: {}, ...expected({ devices: 2, hours: 5, faults: { info: 1 }, faulty: 1, ratings: [6] }) },
    ]);
  });

  test("has nothing but zeros and nulls for a selection without data", async ({ health }) => {
    const summary = await health.fleetSummary({ ...window, groupBy: ["model"], model: "nothing" });
    expect(summary.groups).toEqual([]);
    expect(summary.total).toEqual(expected({ devices: 0, hours: 0 }));
    expect(summary.total.faults.per1000h).toBeNull();
  });
});

describe("ISP and hardware, from each device's latest hello", () => {
  const A_ALONE = expected({
    devices: 1,
    hours: 24,
    faults: { warning: 1, critical: 1 },
    faulty: 1,
    reboots: 1,
    ratings: [8],
  });
  const B_ALONE = expected({
    devices: 1,
    hours: 25,
    faults: { error: 1, critical: 1 },
    faulty: 1,
    rejections: 2,
    ratings: [6, 10],
  });

  test("groups by ISP, a device without one under unknown, with the same total as by model", async ({
    health,
  }) => {
    const summary = await health.fleetSummary({ ...window, groupBy: ["isp"] });
    expect(summary.groups).toEqual([
      { group: { isp: "isp1" }, ...A_ALONE },
      { group: { isp: "isp2" }, ...B_ALONE },
      { group: { isp: "unknown" }, ...R1 },
    ]);
    expect(summary.total).toEqual(TOTAL);
    expect(FleetSummary.parse(summary)).toEqual(summary);
  });

  test("groups by hardware beside a cohort tag, within a selection", async ({ health }) => {
    const summary = await health.fleetSummary({ ...window, groupBy: ["model", "hardware"], kind: "modem" });
    expect(summary.groups).toEqual([
      { group: { model: "M1", hardware: "rev-a" }, ...A_ALONE },
      { group: { model: "M1", hardware: "rev-b" }, ...B_ALONE },
    ]);
    expect(summary.total).toEqual(M1);
  });

  test("filters by ISP, counting a device that changed firmware in each version and once in all", async ({
    health,
  }) => {
    const summary = await health.fleetSummary({ ...window, groupBy: ["firmware"], isp: "isp2" });
    expect(summary.filter).toEqual({ isp: "isp2" });
    expect(summary.groups).toEqual([
      { group: { firmware: "1.0" }, ...expected({ devices: 1, hours: 10, ratings: [6] }) },
      {
        group: { firmware: "1.1" },
        ...expected({
          devices: 1,
          hours: 15,
          faults: { error: 1, critical: 1 },
          faulty: 1,
          rejections: 2,
          ratings: [10],
        }),
      },
    ]);
    expect(summary.total).toEqual(B_ALONE);
  });

  test("gives the daily trend of one hardware revision", async ({ health }) => {
    const trend = await health.fleetTrend({ ...window, hardware: "rev-b" });
    expect(trend.filter).toEqual({ hardware: "rev-b" });
    expect(
      trend.days.map(({ day, exposureHours, faults, rejections }) => [
        day,
        exposureHours,
        faults.count,
        rejections.count,
      ]),
    ).toEqual([
      [iso(DAY1), 10, 0, 0],
      [iso(DAY2), 15, 2, 2],
    ]);
  });
});

describe("the fleet trend", () => {
  test("gives the metrics per UTC day", async ({ health }) => {
    const trend = await health.fleetTrend(window);
    expect(trend.days).toEqual([
      {
        day: iso(DAY1),
        from: iso(DAY1),
        to: iso(DAY2),
        ...expected({
          devices: 2,
          hours: 34,
          faults: { warning: 1, critical: 1 },
          faulty: 1,
          reboots: 1,
          ratings: [8, 6],
        }),
      },
      {
        day: iso(DAY2),
        from: iso(DAY2),
        to: iso(END),
        ...expected({
          devices: 2,
          hours: 23,
          faults: { error: 1, critical: 1 },
          faulty: 1,
          reboots: 2,
          rejections: 3,
          ratings: [10, 3],
        }),
      },
    ]);
    expect(trend.days[0]?.reboots.perDeviceDay).toBeCloseTo(24 / 34, 12);
    expect(trend.days[1]?.rejections.per1000h).toBeCloseTo(130.43, 2);
    expect(FleetTrend.parse(trend)).toEqual(trend);
  });

  test("clips the first and last day to the window", async ({ health }) => {
    const trend = await health.fleetTrend({ fromMs: DAY1 + 12 * HOUR, toMs: DAY2 + 6 * HOUR });
    expect(trend.days).toEqual([
      { day: iso(DAY1), from: iso(DAY1 + 12 * HOUR), to: iso(DAY2), ...expected({ devices: 1, hours: 12 }) },
      {
        day: iso(DAY2),
        from: iso(DAY2),
        to: iso(DAY2 + 6 * HOUR),
        ...expected({
          devices: 2,
          hours: 12,
          faults: { error: 1, critical: 1 },
          faulty: 1,
          reboots: 2,
          rejections: 3,
          ratings: [3],
        }),
      },
    ]);
  });

  test("keeps the days on which the selection was silent", async ({ health }) => {
    const trend = await health.fleetTrend({ ...window, kind: "router" });
    expect(trend.filter).toEqual({ kind: "router" });
    expect(trend.days.map(({ day, from, to, ...m }) => [day, m])).toEqual([
      [iso(DAY1), expected({ devices: 0, hours: 0 })],
      [iso(DAY2), R1],
    ]);
  });
});

/** A database of its own, empty, for tests that write after reading. */
const freshTest = base.extend(
  "fresh",
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
  async ({}, { onCleanup }) => {
    const db = await testDatabase("fleet_health_late");
    onCleanup(() => db.drop());
    const influx = createInflux(db);
    await ensureSchema(influx, db);
    return { influx, write: rollingUp(influx, createPointWriter(db)), health: createHealthService(influx) };
  },
);

describe("warming up", () => {
  freshTest("leaves nothing for the default fleet and firmware reads to ask InfluxDB", async ({ fresh }) => {
    await fresh.write(POINTS);
    const statements: string[] = [];
    const counting = new Proxy(fresh.influx, {
      get(target, key, receiver) {
        if (key !== "query") return Reflect.get(target, key, receiver);
        return (query: string | string[], ...rest: unknown[]) => {
          statements.push(...[query].flat());
          return (target.query as (...args: unknown[]) => unknown)(query, ...rest);
        };
      },
    });
    const now = END;
    const health = createHealthService(counting, {
      rollups: createRollupReader(counting, { revisionTtlMs: 3_600_000 }),
      now: () => now,
    });
    await health.warm();
    expect(statements.length).toBeGreaterThan(0);
    statements.length = 0;
    // The routes' default windows: 7 days for the fleet, 30 for firmware versions and cohorts; any selection or grouping.
    const week = { fromMs: now - 7 * DAY, toMs: now };
    const month = { fromMs: now - 30 * DAY, toMs: now };
    const summary = await health.fleetSummary({ ...week, groupBy: ["model", "region"], kind: "modem" });
    await health.fleetTrend({ ...week, region: "eu" });
    const versions = await health.firmwareVersions(month);
    await health.fleetSummary({ ...week, groupBy: ["isp"] });
    await health.rankCohorts({ ...month, model: "M1", dimension: "firmware" });
    expect(statements).toEqual([]);
    // And they answer what a cold service answers.
    expect(summary).toEqual(
      await fresh.health.fleetSummary({ ...week, groupBy: ["model", "region"], kind: "modem" }),
    );
    expect(versions).toEqual(await fresh.health.firmwareVersions(month));
  });
});

describe("late data", () => {
  freshTest("shows up once the hours it lands in are rolled up again", async ({ fresh }) => {
    const { write, health } = fresh;
    // modem-a reports in h0-3 of day 1, with a warning in h2; every hour is rolled up as it is written.
    await write([...activity(A, DAY1, 4), ...fault(A, at(DAY1, 2), "DSL_RESYNC", "warning")]);
    const day = { fromMs: DAY1, toMs: DAY2, groupBy: ["region" as const] };
    const hour2 = { fromMs: DAY1 + 2 * HOUR, toMs: DAY1 + 3 * HOUR, groupBy: [] };
    const eu = expected({ devices: 1, hours: 4, faults: { warning: 1 }, faulty: 1 });
    expect((await health.fleetSummary(day)).groups).toEqual([{ group: { region: "eu" }, ...eu }]);
    expect((await health.fleetSummary(hour2)).total).toEqual(
      expected({ devices: 1, hours: 1, faults: { warning: 1 }, faulty: 1 }),
    );

    // A buffer flushed later: modem-b's h1-2 with a critical fault in h2, and modem-a's reboot in h3.
    await write([
      ...activity(B10, DAY1 + HOUR, 2),
      ...fault(B10, at(DAY1, 2), "LOS", "critical"),
      ...reboot(A, at(DAY1, 3)),
    ]);

    // The whole day (read from day sets) and h2 alone (from hour sets) both count modem-b now.
    const after = await health.fleetSummary(day);
    expect(after.groups).toEqual([
      {
        group: { region: "eu" },
        ...expected({ devices: 1, hours: 4, faults: { warning: 1 }, faulty: 1, reboots: 1 }),
      },
      { group: { region: "us" }, ...expected({ devices: 1, hours: 2, faults: { critical: 1 }, faulty: 1 }) },
    ]);
    expect(after.total).toEqual(
      expected({ devices: 2, hours: 6, faults: { warning: 1, critical: 1 }, faulty: 2, reboots: 1 }),
    );
    expect((await health.fleetSummary(hour2)).total).toEqual(
      expected({ devices: 2, hours: 2, faults: { warning: 1, critical: 1 }, faulty: 2 }),
    );
  });
});

const NOW = END + 30 * 60_000;

const appTest = test.extend("app", async ({ health }) => {
  const app = createApp({
    ...memoryDeviceServices(),
    health,
    tokens: TOKENS,
    logger: silentLogger,
    metrics: createMetrics(),
    now: () => NOW,
  });
  return app;
});

const auth = { authorization: `Bearer ${VIEWER}` };

describe("GET /api/v1/fleet/summary and /api/v1/fleet/trend", () => {
  appTest("refuse a request without a token", async ({ app }) => {
    for (const path of ["/api/v1/fleet/summary", "/api/v1/fleet/trend"]) {
      const response = await app.request(path);
      expect(response.status).toBe(401);
      expect(ErrorEnvelope.parse(await response.json()).error.code).toBe("UNAUTHORIZED");
    }
  });

  appTest("answer a viewer with the summary per group", async ({ app }) => {
    const query = new URLSearchParams({ from: iso(DAY1), to: iso(END), groupBy: "model" });
    const response = await app.request(`/api/v1/fleet/summary?${query}`, { headers: auth });
    expect(response.status).toBe(200);
    const body = FleetSummary.parse(await response.json());
    expect(body.total).toEqual(TOTAL);
    expect(body.groups.map((g) => g.group)).toEqual([{ model: "M1" }, { model: "R1" }]);
  });

  appTest("default to the last 7 days, grouped by model", async ({ app }) => {
    const response = await app.request("/api/v1/fleet/summary?kind=modem", { headers: auth });
    const body = FleetSummary.parse(await response.json());
    expect([body.from, body.to, body.groupBy]).toEqual([iso(END - 7 * DAY), iso(END + HOUR), ["model"]]);
    // The hours before and after the two days come in: modem-a's h-1 (with its info fault) and END's hour.
    expect(body.total).toEqual(
      expected({
        devices: 2,
        hours: 51,
        faults: { info: 1, warning: 1, error: 1, critical: 2 },
        faulty: 2,
        reboots: 2,
        rejections: 2,
        ratings: [8, 6, 10],
      }),
    );
  });

  appTest("group by ISP when asked", async ({ app }) => {
    const query = new URLSearchParams({ from: iso(DAY1), to: iso(END), groupBy: "kind,isp", isp: "isp1" });
    const response = await app.request(`/api/v1/fleet/summary?${query}`, { headers: auth });
    expect(response.status).toBe(200);
    const body = FleetSummary.parse(await response.json());
    expect(body.groups.map((g) => [g.group, g.devices, g.exposureHours])).toEqual([
      [{ kind: "modem", isp: "isp1" }, 1, 24],
    ]);
  });

  appTest("answer a viewer with the daily trend", async ({ app }) => {
    const query = new URLSearchParams({ from: iso(DAY1), to: iso(END), model: "R1" });
    const response = await app.request(`/api/v1/fleet/trend?${query}`, { headers: auth });
    expect(response.status).toBe(200);
    const body = FleetTrend.parse(await response.json());
    expect(body.days.map((d) => d.exposureHours)).toEqual([0, 8]);
  });

  appTest.for<[string, string]>([
    ["/api/v1/fleet/summary?groupBy=colour", 'query parameter "groupBy"'],
    ["/api/v1/fleet/summary?groupBy=model,", 'query parameter "groupBy"'],
    ["/api/v1/fleet/summary?from=yesterday", 'query parameter "from"'],
    ["/api/v1/fleet/summary?model=%21bad", 'query parameter "model"'],
    [`/api/v1/fleet/summary?from=${iso(END)}&to=${iso(DAY1)}`, "from must be before to"],
    ["/api/v1/fleet/trend?region=%20x", 'query parameter "region"'],
    ["/api/v1/fleet/trend?from=2020-01-01T00:00:00Z", "more than 400 days"],
    ["/api/v1/fleet/summary?modle=M1", '"modle"'],
    ["/api/v1/fleet/trend?groupBy=model", '"groupBy"'],
    ["/api/v1/fleet/summary?isp=a%2Cb", 'query parameter "isp"'],
    ["/api/v1/fleet/summary?groupBy=isp,colour", 'query parameter "groupBy"'],
  ])("refuse %s", async ([path, message], { app }) => {
    const response = await app.request(path, { headers: auth });
    expect(response.status).toBe(400);
    const body = ErrorEnvelope.parse(await response.json());
    expect(body.error.code).toBe("BAD_REQUEST");
    expect(body.error.message).toContain(message);
  });

  appTest("appear in the OpenAPI document", async ({ app }) => {
    const response = await app.request("/api/v1/openapi.json");
    const doc = (await response.json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/api/v1/fleet/summary",
        "/api/v1/fleet/trend",
        "/api/v1/firmware",
        "/api/v1/firmware/compare",
      ]),
    );
  });
});

// Which cohort is worst: modems of one model over the two days, PER_ISP on each of three ISPs (enough for a
// verdict: analytics/device-rates.ts MIN_DEVICES), all reporting every hour; those on 1und1 lose their line three times as often (the home demo's flaky ISP). A printer of
// another model on 1und1 faults a lot and must not count.
const MODEM = "FQ-Modem 7590";
const PER_ISP = 2 * Math.ceil(Math.max(12, MIN_DEVICES) / 2);
const ISPS = { telekom: 1, vodafone: 1, "1und1": 3 } as const;
const modems = Object.entries(ISPS).flatMap(([isp, factor]) =>
  Array.from({ length: PER_ISP }, (_, i) => ({
    device: { id: `${isp}-${i}`, meta: { ...meta("modem", MODEM, "7.57", "eu"), isp } } as Device,
    isp,
    factor,
  })),
);
const PRINTER: Device = {
  id: "printer-1",
  meta: { ...meta("printer", "FQ-Print Mk3", "4.4", "eu"), isp: "1und1" },
};
const LINE_POINTS: Point[] = [
  ...modems.flatMap(({ device, factor }) => [
    ...activity(device, DAY1, 48),
    ...Array.from({ length: 2 * factor }, (_, k) => k).flatMap((k) =>
      fault(device, at(DAY1, 3 + 7 * k), "DSL_RESYNC", "warning"),
    ),
    ...Array.from({ length: factor }, (_, k) => k).flatMap((k) =>
      fault(device, at(DAY2, 5 + 5 * k), "WAN_DOWN", "error"),
    ),
  ]),
  ...activity(PRINTER, DAY1, 48),
  ...Array.from({ length: 40 }, (_, k) => k).flatMap((k) =>
    fault(PRINTER, at(DAY1, k), "NOZZLE_CLOG", "error"),
  ),
];
const LINE_HELLOS = hellos({
  ...Object.fromEntries(
    modems.map(({ device, isp }, i) => [device.id, { isp, hardware: i % 2 === 0 ? "rev-a" : "rev-b" }]),
  ),
  [PRINTER.id]: { isp: "1und1", hardware: "rev-a" },
});

const cohortTest = base.extend(
  "cohorts",
  { scope: "file" },
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
  async ({}, { onCleanup }) => {
    const db = await testDatabase("fleet_cohorts");
    onCleanup(() => db.drop());
    const influx = createInflux(db);
    await ensureSchema(influx, db);
    await rollingUp(influx, createPointWriter(db))(LINE_POINTS);
    const health = createHealthService(influx, { directory: LINE_HELLOS });
    const app = createApp({
      ...memoryDeviceServices(),
      health,
      tokens: TOKENS,
      logger: silentLogger,
      metrics: createMetrics(),
      now: () => NOW,
    });
    return { health, app, influx };
  },
);

const cohortsPath = (query: Record<string, string>) =>
  `/api/v1/fleet/cohorts?${new URLSearchParams({ from: iso(DAY1), to: iso(END), ...query })}`;

describe("GET /api/v1/fleet/cohorts", () => {
  cohortTest("names the flaky ISP worst, a regression against the rest of its model", async ({ cohorts }) => {
    const response = await cohorts.app.request(cohortsPath({ model: MODEM, dimension: "isp" }), {
      headers: auth,
    });
    expect(response.status).toBe(200);
    const body = CohortRanking.parse(await response.json());
    expect(body).toMatchObject({
      model: MODEM,
      dimension: "isp",
      from: iso(DAY1),
      to: iso(END),
      devices: 3 * PER_ISP,
      familySize: 3 * 3,
      unknown: { devices: 0, exposureHours: 0 },
    });
    const [worst, ...others] = body.cohorts;
    expect(worst).toMatchObject({
      value: "1und1",
      devices: PER_ISP,
      exposureHours: PER_ISP * 48,
      faults: PER_ISP * 9,
      verdict: "regression",
      regressedCodes: ["DSL_RESYNC", "WAN_DOWN"],
    });
    expect(worst?.overall.rateRatio).toBeCloseTo(3, 12);
    expect(worst?.overall.verdict).toBe("regression");
    expect(worst?.overall.baseline).toMatchObject({
      count: 2 * PER_ISP * 3,
      exposureHours: 2 * PER_ISP * 48,
    });
    expect(worst?.overall.evidence).toMatchObject({
      devices: { baseline: 2 * PER_ISP, candidate: PER_ISP },
      familySize: 9,
    });
    expect(others.map((c) => c.value).sort()).toEqual(["telekom", "vodafone"]);
    for (const c of others) expect(c.verdict).not.toBe("regression");
  });

  cohortTest("ranks a kind's cohorts across its models, leaving other kinds out", async ({ cohorts }) => {
    const response = await cohorts.app.request(cohortsPath({ kind: "modem", dimension: "isp" }), {
      headers: auth,
    });
    expect(response.status).toBe(200);
    const body = CohortRanking.parse(await response.json());
    expect(body).toMatchObject({ model: null, kind: "modem", devices: 3 * PER_ISP });
    expect(body.cohorts[0]).toMatchObject({
      value: "1und1",
      devices: PER_ISP,
      faults: PER_ISP * 9,
      verdict: "regression",
    });
  });

  cohortTest("ranks ISPs over the whole fleet when asked nothing more", async ({ cohorts }) => {
    const response = await cohorts.app.request(cohortsPath({}), { headers: auth });
    expect(response.status).toBe(200);
    const body = CohortRanking.parse(await response.json());
    // The printer on 1und1 counts too, weighted by its own model's rate: it pulls 1und1 towards the rest.
    expect(body).toMatchObject({ model: null, kind: null, dimension: "isp", devices: 3 * PER_ISP + 1 });
    expect(body.cohorts[0]).toMatchObject({ value: "1und1", devices: PER_ISP + 1, verdict: "regression" });
  });

  cohortTest("compares hardware revisions alike when the ISP is what differs", async ({ cohorts }) => {
    const result = await cohorts.health.rankCohorts({
      fromMs: DAY1,
      toMs: END,
      model: MODEM,
      dimension: "hardware",
      code: "DSL_RESYNC",
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value.cohorts.map((c) => [c.value, c.devices, c.faults])).toEqual(
      expect.arrayContaining([
        ["rev-a", 1.5 * PER_ISP, 5 * PER_ISP],
        ["rev-b", 1.5 * PER_ISP, 5 * PER_ISP],
      ]),
    );
    expect(result.value.cohorts.map((c) => c.verdict)).not.toContain("regression");
  });

  cohortTest(
    "keeps a ranking while rollups and hellos stay the same, and ranks anew once a hello changes",
    async ({ cohorts }) => {
      let revision = 0;
      let moved = false;
      // The 1und1 lines move to another ISP: only a new hello can tell.
      const lookup: HelloLookup = {
        ready: async () => {},
        helloRevision: () => revision,
        get: (id) => {
          const held = LINE_HELLOS.get(id);
          if (held === undefined || !moved || held.hello.isp !== "1und1") return held;
          return { hello: { ...held.hello, isp: "1und1-fibre" } };
        },
      };
      const health = createHealthService(cohorts.influx, { directory: lookup });
      const ask = () => health.rankCohorts({ fromMs: DAY1, toMs: END, model: MODEM, dimension: "isp" });
      const values = (r: Awaited<ReturnType<typeof ask>>) =>
        r.ok ? r.value.cohorts.map((c) => c.value) : [];
      const first = await ask();
      expect(values(first)).toContain("1und1");
      moved = true;
      expect(await ask()).toBe(first);
      revision += 1;
      const after = await ask();
      expect(values(after)).toContain("1und1-fibre");
      expect(values(after)).not.toContain("1und1");
    },
  );

  cohortTest("answers 404 for a model without exposure in the window", async ({ cohorts }) => {
    const response = await cohorts.app.request(cohortsPath({ model: "FQ-Nothing", dimension: "isp" }), {
      headers: auth,
    });
    expect(response.status).toBe(404);
    expect(ErrorEnvelope.parse(await response.json()).error).toMatchObject({ code: "NOT_FOUND" });
  });

  cohortTest.for<[Record<string, string>, string]>([
    [{ model: MODEM, dimension: "colour" }, 'query parameter "dimension"'],
    [{ model: "a,b" }, 'query parameter "model"'],
    [{ model: MODEM, dimension: "isp", severity: "bad" }, 'query parameter "severity"'],
  ])("refuses %o", async ([query, message], { cohorts }) => {
    const response = await cohorts.app.request(cohortsPath(query), { headers: auth });
    expect(response.status).toBe(400);
    expect(ErrorEnvelope.parse(await response.json()).error.message).toContain(message);
  });

  cohortTest("refuses a request without a token", async ({ cohorts }) => {
    const response = await cohorts.app.request(cohortsPath({ model: MODEM, dimension: "isp" }));
    expect(response.status).toBe(401);
  });
});
