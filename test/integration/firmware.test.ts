import { test as base, describe, expect } from "vitest";
import { compareDeviceRates, judgeFamily } from "../../analytics/device-rates.js";
import { createApp } from "../../api/app.js";
import type { Role } from "../../config/env.js";
import { ErrorEnvelope } from "../../contract/api/common.js";
import { FirmwareComparison, FirmwareVersions } from "../../contract/api/fleet.js";
import type { Severity } from "../../contract/messages.js";
import type { DeviceMetaRecord } from "../../ingest/journal.js";
import { activityPoint, deviceTags, messagePoints } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import { createFirmwareService, type FirmwareService } from "../../services/firmware.js";
import { createHealthService, type HealthService } from "../../services/health.js";
import { createInflux, createPointWriter, ensureSchema } from "../../storage/influx.js";
import type { Point } from "../../storage/schema.js";
import { memoryDeviceServices } from "../support/device-services.js";
import { testDatabase } from "../support/influx.js";
import { rollingUp } from "../support/rollups.js";

// Firmware cohorts written with the ingest's own point builders and rolled up as the ingest would
// (rollingUp).
//
// Adoption, model P1, 1-3 March (hours 0-3 of each day):
//   printer-1  1.9 all three days
//   printer-2  1.9 on day 1 and day 2 h0-1; 1.10 from day 2 h1 (h1 counts for both) and all of day 3
//   printer-3  1.10-rc1 on day 1, and once on 20 February
//
// Comparisons, 1-2 April (48 hours), 20 devices per cohort, 960 device-hours each, compared device by device
// (faults dealt to the devices in turn):
//   X1 2.9 → 2.10: LOS critical 2 → 30, DSL_RESYNC warning 5 → 5 (a real critical regression)
//   Y1 3.0 → 3.1:  WAN_DOWN error 150 → 150 (identical)
//   Z1 4.0 → 4.1:  one device for 5 hours each, LOS critical 1 → 1 (too few devices to tell)

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MARCH = Date.UTC(2024, 2, 1);
const APRIL = Date.UTC(2024, 3, 1);
const iso = (ms: number) => new Date(ms).toISOString();

const meta = (kind: string, model: string, firmware: string): DeviceMetaRecord => ({
  kind,
  model,
  firmware,
  hardware: "rev-a",
  region: "eu",
  isp: "isp1",
  serial: "SN",
});
type Device = { id: string; meta: DeviceMetaRecord };
const device = (id: string, model: string, firmware: string): Device => ({
  id,
  meta: meta("printer", model, firmware),
});

const activity = (d: Device, start: number, hours: number): Point[] =>
  Array.from({ length: hours }, (_, h) => activityPoint(deviceTags(d.id, d.meta), start + h * HOUR));

let seq = 0;
function fault(d: Device, ts: number, code: string, severity: Severity): Point[] {
  seq += 1;
  const message = { channel: "fault" as const, deviceId: d.id, body: { ts, seq, code, severity } };
  const context = {
    meta: d.meta,
    receivedMs: ts + 1000,
    clockSkewFutureMs: 600_000,
    clockSkewPastMs: 60 * DAY,
    discriminator: seq,
  };
  return messagePoints(message, context).records.map((r) => r.point);
}

const P1_19 = device("printer-1", "P1", "1.9");
const P2_19 = device("printer-2", "P1", "1.9");
const P2_110 = device("printer-2", "P1", "1.10");
const P3_RC = device("printer-3", "P1", "1.10-rc1");
const day = (n: number) => MARCH + (n - 1) * DAY;

const ADOPTION: Point[] = [
  ...activity(P1_19, day(1), 4),
  ...activity(P1_19, day(2), 4),
  ...activity(P1_19, day(3), 4),
  ...activity(P2_19, day(1), 4),
  ...activity(P2_19, day(2), 2),
  ...activity(P2_110, day(2) + HOUR, 3),
  ...activity(P2_110, day(3), 4),
  ...activity(P3_RC, day(1), 4),
  ...activity(P3_RC, Date.UTC(2024, 1, 20), 1),
];

const COHORT_HOURS = 48;
const COHORT_DEVICES = 20;
const EXPOSURE = COHORT_HOURS * COHORT_DEVICES;

/** Per cohort (model and firmware), each device's faults by code, as cohort() dealt them. */
const DEALT = new Map<string, Array<Map<string, number>>>();

/** 20 devices reporting every hour of 1-2 April, and faults dealt to them in turn over the hours. */
function cohort(model: string, firmware: string, faults: Array<[code: string, Severity, number]>): Point[] {
  const devices = Array.from({ length: COHORT_DEVICES }, (_, i) =>
    device(`${model.toLowerCase()}-${firmware}-${String(i).padStart(2, "0")}`, model, firmware),
  );
  const dealt = devices.map(() => new Map<string, number>());
  DEALT.set(`${model}|${firmware}`, dealt);
  const points = devices.flatMap((d) => activity(d, APRIL, COHORT_HOURS));
  let n = 0;
  for (const [code, severity, count] of faults) {
    for (let i = 0; i < count; i += 1, n += 1) {
      const d = devices[n % COHORT_DEVICES] as Device;
      const hour = Math.floor(n / COHORT_DEVICES) % COHORT_HOURS;
      points.push(...fault(d, APRIL + hour * HOUR + 60_000 * (1 + (n % 50)), code, severity));
      const byCode = dealt[n % COHORT_DEVICES] as Map<string, number>;
      byCode.set(code, (byCode.get(code) ?? 0) + 1);
    }
  }
  return points;
}

const Z40 = device("z1-4-0", "Z1", "4.0");
const Z41 = device("z1-4-1", "Z1", "4.1");

const POINTS: Point[] = [
  ...ADOPTION,
  ...cohort("X1", "2.9", [
    ["LOS", "critical", 2],
    ["DSL_RESYNC", "warning", 5],
  ]),
  ...cohort("X1", "2.10", [
    ["LOS", "critical", 30],
    ["DSL_RESYNC", "warning", 5],
  ]),
  ...cohort("Y1", "3.0", [["WAN_DOWN", "error", 150]]),
  ...cohort("Y1", "3.1", [["WAN_DOWN", "error", 150]]),
  ...activity(Z40, APRIL, 5),
  ...activity(Z41, APRIL, 5),
  ...fault(Z40, APRIL + 2 * HOUR, "LOS", "critical"),
  ...fault(Z41, APRIL + 3 * HOUR, "LOS", "critical"),
];

/**
 * What compareDeviceRates says of the dealt per-device counts of these codes; its statistics are
 * test/unit/device-rates.test.ts's job.
 */
function rates(model: string, baseline: string, candidate: string, codes: readonly string[]) {
  const side = (firmware: string) =>
    (DEALT.get(`${model}|${firmware}`) ?? []).map((byCode, i) => ({
      device: `${model.toLowerCase()}-${firmware}-${String(i).padStart(2, "0")}`,
      exposureHours: COHORT_HOURS,
      count: codes.reduce((sum, code) => sum + (byCode.get(code) ?? 0), 0),
    }));
  return compareDeviceRates({ baseline: side(baseline), candidate: side(candidate) });
}

const VIEWER = "viewer-token-9012";
const TOKENS = new Map<string, Role>([[VIEWER, "viewer"]]);

type Services = { health: HealthService; firmware: FirmwareService };

const test = base.extend(
  "services",
  { scope: "file" },
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
  async ({}, { onCleanup }): Promise<Services> => {
    const db = await testDatabase("firmware");
    onCleanup(() => db.drop());
    const influx = createInflux(db);
    await ensureSchema(influx, db);
    await rollingUp(influx, createPointWriter(db))(POINTS);
    return { health: createHealthService(influx), firmware: createFirmwareService(influx) };
  },
);

const MARCH_WINDOW = { fromMs: day(1), toMs: day(4) };
const APRIL_WINDOW = { fromMs: APRIL, toMs: APRIL + 2 * DAY };

const adoption = (devices: number[], model: number[]) =>
  devices.map((n, i) => ({
    day: iso(day(i + 1)),
    devices: n,
    share: (model[i] ?? 0) > 0 ? n / (model[i] ?? 1) : null,
  }));
const P1_DEVICES = [3, 2, 2];

const P1_VERSIONS = {
  model: "P1",
  devicesByDay: P1_DEVICES.map((devices, i) => ({ day: iso(day(i + 1)), devices })),
  versions: [
    {
      firmware: "1.9",
      firstSeen: iso(day(1)),
      devicesNow: 1,
      devices: 2,
      exposureHours: 12 + 4 + 2,
      adoption: adoption([2, 2, 1], P1_DEVICES),
    },
    {
      firmware: "1.10-rc1",
      firstSeen: iso(Date.UTC(2024, 1, 20)),
      devicesNow: 0,
      devices: 1,
      exposureHours: 4,
      adoption: adoption([1, 0, 0], P1_DEVICES),
    },
    {
      firmware: "1.10",
      firstSeen: iso(day(2) + HOUR),
      devicesNow: 1,
      devices: 1,
      exposureHours: 3 + 4,
      adoption: adoption([0, 1, 1], P1_DEVICES),
    },
  ],
};

describe("firmware versions", () => {
  test("lists each version oldest first with first seen, devices now and daily adoption", async ({
    services: { health },
  }) => {
    const versions = await health.firmwareVersions({ ...MARCH_WINDOW, model: "P1" });
    expect(versions).toEqual({ from: iso(day(1)), to: iso(day(4)), models: [P1_VERSIONS] });
    expect(versions.models[0]?.versions[2]?.adoption.map((a) => a.share)).toEqual([0, 0.5, 0.5]);
    expect(FirmwareVersions.parse(versions)).toEqual(versions);
  });

  test("orders versions as versions, not as text", async ({ services: { health } }) => {
    const versions = await health.firmwareVersions({ ...APRIL_WINDOW, model: "X1" });
    expect(versions.models[0]?.versions.map((v) => [v.firmware, v.devices, v.exposureHours])).toEqual([
      ["2.9", 20, EXPOSURE],
      ["2.10", 20, EXPOSURE],
    ]);
    expect(versions.models[0]?.versions[0]?.adoption.map((a) => [a.devices, a.share])).toEqual([
      [20, 0.5],
      [20, 0.5],
    ]);
  });

  test("lists every model active in the window without a model", async ({ services: { health } }) => {
    const april = await health.firmwareVersions(APRIL_WINDOW);
    expect(april.models.map((m) => [m.model, m.versions.map((v) => v.firmware)])).toEqual([
      ["X1", ["2.9", "2.10"]],
      ["Y1", ["3.0", "3.1"]],
      ["Z1", ["4.0", "4.1"]],
    ]);
    expect((await health.firmwareVersions(MARCH_WINDOW)).models).toEqual([P1_VERSIONS]);
  });
});

describe("comparing firmware cohorts device by device", () => {
  test("finds a really worse critical-fault rate a regression", async ({ services: { firmware } }) => {
    const result = await firmware.compare({
      ...APRIL_WINDOW,
      model: "X1",
      baseline: "2.9",
      candidate: "2.10",
    });
    if (!result.ok) throw new Error("expected exposure in both cohorts");
    const c = result.value;
    expect(c.baseline).toEqual({ firmware: "2.9", devices: 20, exposureHours: 960 });
    expect(c.candidate).toEqual({ firmware: "2.10", devices: 20, exposureHours: 960 });
    expect(c.critical).toEqual(rates("X1", "2.9", "2.10", ["LOS"]));
    expect(c.critical.rateRatio).toBe(15);
    expect(c.critical.candidate.ratePer1000h).toBe(31.25);
    expect(c.critical.verdict).toBe("regression");
    expect(c.critical.evidence.devices).toEqual({ baseline: 20, candidate: 20 });
    expect(c.overall).toEqual(rates("X1", "2.9", "2.10", ["LOS", "DSL_RESYNC"]));
    expect(c.overall.verdict).toBe("regression");
    // The codes are one family (Holm).
    const [los, dsl] = judgeFamily([
      rates("X1", "2.9", "2.10", ["LOS"]),
      rates("X1", "2.9", "2.10", ["DSL_RESYNC"]),
    ]);
    expect(c.byCode).toEqual([
      { code: "LOS", comparison: los },
      { code: "DSL_RESYNC", comparison: dsl },
    ]);
    expect(c.byCode.map((b) => [b.comparison.verdict, b.comparison.evidence.familySize])).toEqual([
      ["regression", 2],
      ["insufficient_evidence", 2],
    ]);
    expect(FirmwareComparison.safeParse(c).success).toBe(true);
  });

  test("counts one severity when asked", async ({ services: { firmware } }) => {
    const result = await firmware.compare({
      ...APRIL_WINDOW,
      model: "X1",
      baseline: "2.9",
      candidate: "2.10",
      severity: "warning",
    });
    if (!result.ok) throw new Error("expected exposure in both cohorts");
    expect(result.value.severity).toBe("warning");
    expect(result.value.overall).toEqual(rates("X1", "2.9", "2.10", ["DSL_RESYNC"]));
    expect(result.value.critical).toEqual(rates("X1", "2.9", "2.10", ["LOS"]));
    expect(result.value.byCode.map((b) => b.code)).toEqual(["DSL_RESYNC"]);
  });

  test("finds identical cohorts no different once there are enough faults", async ({
    services: { firmware },
  }) => {
    const result = await firmware.compare({
      ...APRIL_WINDOW,
      model: "Y1",
      baseline: "3.0",
      candidate: "3.1",
    });
    if (!result.ok) throw new Error("expected exposure in both cohorts");
    expect(result.value.overall).toEqual(rates("Y1", "3.0", "3.1", ["WAN_DOWN"]));
    expect(result.value.overall.rateRatio).toBe(1);
    expect(result.value.overall.verdict).toBe("no_difference");
    // No critical fault in either: nothing to compare, and more exposure alone cannot settle it.
    expect(result.value.critical.verdict).toBe("insufficient_evidence");
    expect(result.value.critical.moreExposureNeeded).toEqual({
      reachable: false,
      reason: "no_events",
      maxFactor: 1000,
    });
  });

  test("refuses a verdict on cohorts of too few devices, whatever the counts", async ({
    services: { firmware },
  }) => {
    const result = await firmware.compare({
      ...APRIL_WINDOW,
      model: "Z1",
      baseline: "4.0",
      candidate: "4.1",
    });
    if (!result.ok) throw new Error("expected exposure in both cohorts");
    expect(result.value.baseline).toEqual({ firmware: "4.0", devices: 1, exposureHours: 5 });
    expect(result.value.critical.verdict).toBe("insufficient_evidence");
    expect(result.value.critical.evidence).toMatchObject({
      refused: "too_few_devices",
      devices: { baseline: 1, candidate: 1 },
    });
  });

  test("names the cohorts without exposure", async ({ services: { firmware } }) => {
    const query = { ...APRIL_WINDOW, model: "X1", baseline: "2.9", candidate: "9.9" };
    expect(await firmware.compare(query)).toEqual({
      ok: false,
      error: { reason: "no_exposure", cohorts: ["candidate"] },
    });
    expect(await firmware.compare({ ...query, model: "nothing" })).toEqual({
      ok: false,
      error: { reason: "no_exposure", cohorts: ["baseline", "candidate"] },
    });
  });
});

const appTest = test.extend("app", async ({ services: { health, firmware } }) => {
  const app = createApp({
    ...memoryDeviceServices(),
    health,
    firmware,
    tokens: TOKENS,
    logger: silentLogger,
    metrics: createMetrics(),
    now: () => day(4),
  });
  return app;
});

const auth = { authorization: `Bearer ${VIEWER}` };
const april = `from=${iso(APRIL)}&to=${iso(APRIL + 2 * DAY)}`;

describe("GET /api/v1/firmware and /api/v1/firmware/compare", () => {
  appTest.for(["/api/v1/firmware", `/api/v1/firmware/compare?model=X1&baseline=2.9&candidate=2.10`])(
    "refuse %s without a valid token",
    async (path, { app }) => {
      for (const headers of [{}, { authorization: "Bearer wrong" }]) {
        const response = await app.request(path, { headers });
        expect(response.status).toBe(401);
        expect(ErrorEnvelope.parse(await response.json()).error.code).toBe("UNAUTHORIZED");
      }
    },
  );

  appTest("list a model's versions for a viewer, over the last 30 days by default", async ({ app }) => {
    const response = await app.request("/api/v1/firmware?model=P1", { headers: auth });
    expect(response.status).toBe(200);
    const body = FirmwareVersions.parse(await response.json());
    expect([body.from, body.to]).toEqual([iso(day(4) - 30 * DAY), iso(day(4))]);
    expect(body.models.map((m) => m.versions.map((v) => [v.firmware, v.devices, v.exposureHours]))).toEqual([
      [
        ["1.9", 2, 18],
        ["1.10-rc1", 1, 5],
        ["1.10", 1, 7],
      ],
    ]);
  });

  appTest("compare two cohorts for a viewer", async ({ app }) => {
    const response = await app.request(
      `/api/v1/firmware/compare?model=X1&baseline=2.9&candidate=2.10&${april}`,
      {
        headers: auth,
      },
    );
    expect(response.status).toBe(200);
    const body = FirmwareComparison.parse(await response.json());
    expect(body.critical.verdict).toBe("regression");
    expect([body.from, body.to]).toEqual([iso(APRIL), iso(APRIL + 2 * DAY)]);
  });

  appTest("answer 404 for a cohort without exposure", async ({ app }) => {
    const response = await app.request(
      `/api/v1/firmware/compare?model=X1&baseline=2.9&candidate=9.9&${april}`,
      {
        headers: auth,
      },
    );
    expect(response.status).toBe(404);
    const body = ErrorEnvelope.parse(await response.json());
    expect(body.error).toEqual({
      code: "NOT_FOUND",
      message: `candidate "9.9" of model "X1" reported no activity between ${iso(APRIL)} and ${iso(APRIL + 2 * DAY)}`,
    });
  });

  appTest.for<[string, string]>([
    ["/api/v1/firmware/compare?baseline=2.9&candidate=2.10", 'query parameter "model": is required'],
    ["/api/v1/firmware/compare?model=X1&candidate=2.10", 'query parameter "baseline": is required'],
    ["/api/v1/firmware/compare?model=X1&baseline=2.9", 'query parameter "candidate": is required'],
    [
      "/api/v1/firmware/compare?model=X1&baseline=2.9&candidate=2.9",
      'query parameter "candidate": must differ from baseline',
    ],
    [
      "/api/v1/firmware/compare?model=X1&baseline=2.9&candidate=3&severity=fatal",
      'query parameter "severity"',
    ],
    ["/api/v1/firmware/compare?model=X1&baseline=2.9&candidate=3&to=soon", 'query parameter "to"'],
    ["/api/v1/firmware?model=%2Fbad", 'query parameter "model"'],
    ["/api/v1/firmware?from=2020-01-01T00:00:00Z", "more than 400 days"],
    ["/api/v1/firmware?firmware=1.0", '"firmware"'],
    ["/api/v1/firmware/compare?model=X1&baseline=2.9&candidate=2.10&format=csv", '"format"'],
  ])("refuse %s", async ([path, message], { app }) => {
    const response = await app.request(path, { headers: auth });
    expect(response.status).toBe(400);
    const body = ErrorEnvelope.parse(await response.json());
    expect(body.error.code).toBe("BAD_REQUEST");
    expect(body.error.message).toContain(message);
  });
});
