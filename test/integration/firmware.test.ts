import { test as base, describe, expect } from "vitest";
import { compareRates } from "../../analytics/rate-ratio.js";
import { createApp } from "../../api/app.js";
import type { Role } from "../../config/env.js";
import { ErrorEnvelope } from "../../contract/api/common.js";
import { FirmwareComparison, FirmwareVersions } from "../../contract/api/fleet.js";
import type { Severity } from "../../contract/messages.js";
import type { DeviceMetaRecord } from "../../ingest/journal.js";
import { activityPoint, deviceTags, messagePoints } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
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
// Comparisons, 1-2 April (48 hours), 20 devices per cohort, 960 device-hours each:
//   X1 2.9 → 2.10: LOS critical 2 → 30, DSL_RESYNC warning 5 → 5 (a real critical regression)
//   Y1 3.0 → 3.1:  WAN_DOWN error 150 → 150 (identical)
//   Z1 4.0 → 4.1:  one device for 5 hours each, LOS critical 1 → 1 (too small to tell)

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

/** 20 devices reporting every hour of 1-2 April, and faults spread over them and the hours. */
function cohort(model: string, firmware: string, faults: Array<[code: string, Severity, number]>): Point[] {
  const devices = Array.from({ length: COHORT_DEVICES }, (_, i) =>
    device(`${model.toLowerCase()}-${firmware}-${String(i).padStart(2, "0")}`, model, firmware),
  );
  const points = devices.flatMap((d) => activity(d, APRIL, COHORT_HOURS));
  let n = 0;
  for (const [code, severity, count] of faults) {
    for (let i = 0; i < count; i += 1, n += 1) {
      const d = devices[n % COHORT_DEVICES] as Device;
      const hour = Math.floor(n / COHORT_DEVICES) % COHORT_HOURS;
      points.push(...fault(d, APRIL + hour * HOUR + 60_000 * (1 + (n % 50)), code, severity));
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

/** What compareRates says of the hand-counted numbers; its exactness is test/unit/rate-ratio.test.ts's job. */
function rates(baseline: [number, number], candidate: [number, number]) {
  const result = compareRates({
    baseline: { count: baseline[0], exposureHours: baseline[1] },
    candidate: { count: candidate[0], exposureHours: candidate[1] },
  });
  if (!result.ok) throw new Error(result.problem.message);
  return result.comparison;
}

const VIEWER = "viewer-token-9012";
const TOKENS = new Map<string, Role>([[VIEWER, "viewer"]]);

const test = base.extend(
  "health",
  { scope: "file" },
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
  async ({}, { onCleanup }): Promise<HealthService> => {
    const db = await testDatabase("firmware");
    onCleanup(() => db.drop());
    const influx = createInflux(db);
    await ensureSchema(influx, db);
    await rollingUp(influx, createPointWriter(db))(POINTS);
    return createHealthService(influx);
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
    health,
  }) => {
    const versions = await health.firmwareVersions({ ...MARCH_WINDOW, model: "P1" });
    expect(versions).toEqual({ from: iso(day(1)), to: iso(day(4)), models: [P1_VERSIONS] });
    expect(versions.models[0]?.versions[2]?.adoption.map((a) => a.share)).toEqual([0, 0.5, 0.5]);
    expect(FirmwareVersions.parse(versions)).toEqual(versions);
  });

  test("orders versions as versions, not as text", async ({ health }) => {
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

  test("lists every model active in the window without a model", async ({ health }) => {
    const april = await health.firmwareVersions(APRIL_WINDOW);
    expect(april.models.map((m) => [m.model, m.versions.map((v) => v.firmware)])).toEqual([
      ["X1", ["2.9", "2.10"]],
      ["Y1", ["3.0", "3.1"]],
      ["Z1", ["4.0", "4.1"]],
    ]);
    expect((await health.firmwareVersions(MARCH_WINDOW)).models).toEqual([P1_VERSIONS]);
  });
});

describe("comparing firmware cohorts", () => {
  test("finds a really worse critical-fault rate a regression", async ({ health }) => {
    const result = await health.compareFirmware({
      ...APRIL_WINDOW,
      model: "X1",
      baseline: "2.9",
      candidate: "2.10",
    });
    if (!result.ok) throw new Error("expected exposure in both cohorts");
    const c = result.value;
    expect(c.baseline).toEqual({ firmware: "2.9", devices: 20, exposureHours: 960 });
    expect(c.candidate).toEqual({ firmware: "2.10", devices: 20, exposureHours: 960 });
    expect(c.critical).toEqual(rates([2, 960], [30, 960]));
    expect(c.critical.rateRatio).toBe(15);
    expect(c.critical.candidate.ratePer1000h).toBe(31.25);
    expect(c.critical.verdict).toBe("regression");
    expect(c.critical.moreExposureNeeded).toBeNull();
    expect(c.overall).toEqual(rates([7, 960], [35, 960]));
    expect(c.overall.verdict).toBe("regression");
    expect(c.byCode).toEqual([
      { code: "LOS", comparison: rates([2, 960], [30, 960]) },
      { code: "DSL_RESYNC", comparison: rates([5, 960], [5, 960]) },
    ]);
    expect(c.byCode[1]?.comparison.verdict).toBe("insufficient_evidence");
    expect(FirmwareComparison.parse(c)).toEqual(c);
  });

  test("counts one severity when asked", async ({ health }) => {
    const result = await health.compareFirmware({
      ...APRIL_WINDOW,
      model: "X1",
      baseline: "2.9",
      candidate: "2.10",
      severity: "warning",
    });
    if (!result.ok) throw new Error("expected exposure in both cohorts");
    expect(result.value.severity).toBe("warning");
    expect(result.value.overall).toEqual(rates([5, 960], [5, 960]));
    expect(result.value.critical).toEqual(rates([2, 960], [30, 960]));
    expect(result.value.byCode.map((b) => b.code)).toEqual(["DSL_RESYNC"]);
  });

  test("finds identical cohorts no different once there are enough faults", async ({ health }) => {
    const result = await health.compareFirmware({
      ...APRIL_WINDOW,
      model: "Y1",
      baseline: "3.0",
      candidate: "3.1",
    });
    if (!result.ok) throw new Error("expected exposure in both cohorts");
    expect(result.value.overall).toEqual(rates([150, 960], [150, 960]));
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

  test("says a small sample is insufficient evidence, and how much more exposure would settle it", async ({
    health,
  }) => {
    const result = await health.compareFirmware({
      ...APRIL_WINDOW,
      model: "Z1",
      baseline: "4.0",
      candidate: "4.1",
    });
    if (!result.ok) throw new Error("expected exposure in both cohorts");
    expect(result.value.baseline).toEqual({ firmware: "4.0", devices: 1, exposureHours: 5 });
    expect(result.value.critical).toEqual(rates([1, 5], [1, 5]));
    expect(result.value.critical.verdict).toBe("insufficient_evidence");
    expect(result.value.critical.moreExposureNeeded).toMatchObject({ reachable: true });
  });

  test("names the cohorts without exposure", async ({ health }) => {
    const query = { ...APRIL_WINDOW, model: "X1", baseline: "2.9", candidate: "9.9" };
    expect(await health.compareFirmware(query)).toEqual({
      ok: false,
      error: { reason: "no_exposure", cohorts: ["candidate"] },
    });
    expect(await health.compareFirmware({ ...query, model: "nothing" })).toEqual({
      ok: false,
      error: { reason: "no_exposure", cohorts: ["baseline", "candidate"] },
    });
  });
});

const appTest = test.extend("app", async ({ health }) => {
  const app = createApp({
    ...memoryDeviceServices(),
    health,
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
