import { test as base, describe, expect } from "vitest";
import { type ScanTally, scanWithTiming } from "../../analytics/regression-scan.js";
import { createApp } from "../../api/app.js";
import { createApiClient } from "../../api/client.js";
import type { Role } from "../../config/env.js";
import { ErrorEnvelope } from "../../contract/api/common.js";
import { RegressionList } from "../../contract/api/regressions.js";
import { HOUR_MS, iso, type Window } from "../../contract/time.js";
import type { DeviceMetaRecord } from "../../ingest/journal.js";
import { activityPoint, deviceTags, messagePoints } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import { RegressionRunner, scanForRegressions } from "../../rollup/regression-runner.js";
import { createFirmwareService } from "../../services/firmware.js";
import { createInflux, createPointWriter, ensureSchema } from "../../storage/influx.js";
import { queryGroups } from "../../storage/influxql.js";
import type { Point } from "../../storage/schema.js";
import { memoryDeviceServices } from "../support/device-services.js";
import { testDatabase } from "../support/influx.js";
import { rollingUp } from "../support/rollups.js";

// Regressions found without asking, over real InfluxDB and rollups. Model R1, three days, every device
// reporting every hour, faults drawn per device and hour from a seeded generator:
//   1.0, 1.1: 25 devices each, from the start, A 5% and B 2% an hour (alike)
//   1.2:      25 devices from hour 6; B at 25% an hour for the first two days (a real regression), then 2%
// The scans read 24 hours, so the scan at the end of day 3 no longer sees the bad days: the verdict clears.

const START = Date.UTC(2025, 5, 2);
const DAY2_END = START + 48 * HOUR_MS;
const DAY3_END = START + 72 * HOUR_MS;
const SPAN = 24 * HOUR_MS;

function mulberry32(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const meta = (firmware: string): DeviceMetaRecord => ({
  kind: "printer",
  model: "R1",
  firmware,
  hardware: "h1",
  region: "eu",
  isp: "isp1",
  serial: "SN",
});

type Hour = { device: string; firmware: string; hour: number; codes: string[] };
const random = mulberry32(11);
const HOURS: Hour[] = [];
for (const [firmware, fromHour] of [
  ["1.0", 0],
  ["1.1", 0],
  ["1.2", 6],
] as const) {
  for (let i = 0; i < 25; i++) {
    for (let hour = fromHour; hour < 72; hour++) {
      const b = firmware === "1.2" && hour < 48 ? 0.25 : 0.02;
      const codes = [random() < 0.05 ? ["A"] : [], random() < b ? ["B"] : []].flat();
      HOURS.push({ device: `r1-${firmware}-${String(i).padStart(2, "0")}`, firmware, hour, codes });
    }
  }
}

let seq = 0;
function points(h: Hour): Point[] {
  const at = START + h.hour * HOUR_MS;
  const faults = h.codes.flatMap((code) => {
    seq += 1;
    const { records } = messagePoints(
      { channel: "fault", deviceId: h.device, body: { ts: at + 60_000, seq, code, severity: "error" } },
      {
        meta: meta(h.firmware),
        receivedMs: at + 61_000,
        clockSkewFutureMs: 600_000,
        clockSkewPastMs: 400 * 24 * HOUR_MS,
        discriminator: seq,
      },
    );
    return records.map((r) => r.point);
  });
  return [activityPoint(deviceTags(h.device, meta(h.firmware)), at), ...faults];
}

/** The same fleet's per-device tallies of a window, in memory: what the simulator's bench gives the scan. */
function talliesOf(window: Window): ScanTally[] {
  const byDevice = new Map<
    string,
    ScanTally & { faults: Array<{ severity: string; code: string; n: number }> }
  >();
  for (const h of HOURS) {
    const at = START + h.hour * HOUR_MS;
    if (at < window.fromMs || at >= window.toMs) continue;
    let t = byDevice.get(h.device);
    if (t === undefined) {
      t = {
        device: h.device,
        kind: "printer",
        model: "R1",
        firmware: h.firmware,
        region: "eu",
        hours: 0,
        faults: [],
      };
      byDevice.set(h.device, t);
    }
    t.hours += 1;
    for (const code of h.codes) {
      const f = t.faults.find((x) => x.code === code);
      if (f === undefined) t.faults.push({ severity: "error", code, n: 1 });
      else f.n += 1;
    }
  }
  return [...byDevice.values()];
}

type Fixture = { influx: ReturnType<typeof createInflux>; write: ReturnType<typeof createPointWriter> };

const test = base.extend(
  "fx",
  { scope: "file" },
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
  async ({}, { onCleanup }): Promise<Fixture> => {
    const db = await testDatabase("regressions");
    onCleanup(() => db.drop());
    const influx = createInflux(db);
    await ensureSchema(influx, db);
    const write = createPointWriter(db);
    await rollingUp(influx, write)(HOURS.flatMap(points));
    return { influx, write };
  },
);

const verdictPoints = async (influx: Fixture["influx"]) => {
  const [groups = []] = await queryGroups(influx, [
    `SELECT "event", "verdict" FROM "long"."verdict" GROUP BY "model", "subject"`,
  ]);
  return groups.flatMap((g) =>
    g.rows.map((r) => ({ ...g.tags, time: iso(r.time.getTime()), event: r.event })),
  );
};

const VIEWER = "viewer-token-5521";
const TOKENS = new Map<string, Role>([[VIEWER, "viewer"]]);
const auth = { authorization: `Bearer ${VIEWER}` };
const list = async (influx: Fixture["influx"], query = "") => {
  const app = createApp({
    ...memoryDeviceServices(),
    firmware: createFirmwareService(influx),
    tokens: TOKENS,
    logger: silentLogger,
    metrics: createMetrics(),
  });
  const response = await app.request(`/api/v1/firmware/regressions${query}`, { headers: auth });
  return { status: response.status, body: (await response.json()) as unknown };
};

// The tests run in order: each builds on the verdict log the one before left.
describe("the regression runner", () => {
  test("waits while hours before the newest one are still to be rolled up (a backfill under way)", async ({
    fx,
  }) => {
    const pass = await scanForRegressions({
      ...fx,
      spanMs: SPAN,
      now: () => DAY2_END,
      pending: () => [START + 3 * HOUR_MS],
    });
    expect(pass).toEqual({ scanned: false, reason: "rollups_pending", toMs: DAY2_END });
    expect(await verdictPoints(fx.influx)).toEqual([]);
  });

  test("keeps a regression with its evidence and the hour first reached, as the scan in memory dates it", async ({
    fx,
  }) => {
    const pass = await scanForRegressions({ ...fx, spanMs: SPAN, now: () => DAY2_END + 30 * 60_000 });
    if (!pass.scanned) throw new Error(`no scan: ${pass.reason}`);
    expect(pass.toMs).toBe(DAY2_END);
    const inMemory = await scanWithTiming({ toMs: DAY2_END, spanMs: SPAN, tallies: talliesOf });
    expect(inMemory.findings.map((f) => [f.key, f.verdict])).toEqual([
      ["firmware|1.2|predecessor", "regression"],
      ["firmware|1.2|rest", "regression"],
    ]);
    expect(pass.raised.map((v) => [v.subject, v.verdict, v.firstReached])).toEqual(
      inMemory.findings.map((f) => [f.subject, "regression", iso(f.firstReachedMs)]),
    );
    const [first] = pass.raised;
    expect(Date.parse(first?.firstReached ?? "")).toBeGreaterThan(START + 6 * HOUR_MS);
    expect(first?.codes.map((c) => c.code)).toEqual(["B"]);
    expect([first?.model, first?.deviceKind]).toEqual(["R1", "printer"]);
    expect(first?.overall.evidence.devices).toEqual({ baseline: 25, candidate: 25 });
    expect(first?.familySize).toBe(inMemory.scan.familySize);
    expect([first?.from, first?.to]).toEqual([iso(DAY2_END - SPAN), iso(DAY2_END)]);
  });

  test("lists the verdicts that hold through GET /api/v1/firmware/regressions, with filters", async ({
    fx,
  }) => {
    const { status, body } = await list(fx.influx);
    expect(status).toBe(200);
    const parsed = RegressionList.parse(body);
    expect(parsed.items.map((v) => [v.model, v.subject, v.verdict])).toEqual(
      expect.arrayContaining([
        [
          "R1",
          { kind: "firmware", firmware: "1.2", baseline: "predecessor", baselineFirmware: ["1.1"] },
          "regression",
        ],
        [
          "R1",
          { kind: "firmware", firmware: "1.2", baseline: "rest", baselineFirmware: ["1.0", "1.1"] },
          "regression",
        ],
      ]),
    );
    expect(parsed.items).toHaveLength(2);
    const reached = parsed.items.map((v) => Date.parse(v.firstReached));
    expect(reached).toEqual([...reached].sort((a, b) => b - a));
    expect(
      RegressionList.parse((await list(fx.influx, "?model=R1&verdict=regression")).body).items,
    ).toHaveLength(2);
    expect(RegressionList.parse((await list(fx.influx, "?verdict=improvement")).body).items).toEqual([]);
    expect(RegressionList.parse((await list(fx.influx, "?kind=printer")).body).items).toHaveLength(2);
    expect(RegressionList.parse((await list(fx.influx, "?kind=modem")).body).items).toEqual([]);
    // The typed client knows the route, its query and its answer.
    const app = createApp({
      ...memoryDeviceServices(),
      firmware: createFirmwareService(fx.influx),
      tokens: TOKENS,
      logger: silentLogger,
      metrics: createMetrics(),
    });
    const client = createApiClient("http://fieldq.test", {
      token: VIEWER,
      fetch: (input, init) =>
        Promise.resolve(app.request(input instanceof Request ? input : String(input), init)),
    });
    const typed = await client.api.v1.firmware.regressions.$get({
      query: { model: "R1", verdict: "regression" },
    });
    expect(typed.status).toBe(200);
    if (typed.status === 200)
      expect((await typed.json()).items.map((v) => v.subject.kind)).toEqual(["firmware", "firmware"]);
    expect(RegressionList.parse((await list(fx.influx, "?model=Other")).body).items).toEqual([]);
  });

  test("writes nothing new when run again over the same data, or by a second runner", async ({ fx }) => {
    const before = await verdictPoints(fx.influx);
    expect(before).toHaveLength(2);
    for (const run of [1, 2]) {
      const pass = await scanForRegressions({ ...fx, spanMs: SPAN, now: () => DAY2_END + run * 60_000 });
      expect(pass).toMatchObject({ scanned: true, raised: [], cleared: [] });
    }
    expect(await verdictPoints(fx.influx)).toEqual(before);
  });

  test("marks a verdict that no longer holds cleared, at the end of the data that cleared it", async ({
    fx,
  }) => {
    const runner = new RegressionRunner({
      ...fx,
      spanMs: SPAN,
      now: () => DAY3_END,
      logger: silentLogger,
      intervalMs: 60_000,
    });
    const pass = await runner.runOnce();
    expect(pass).toMatchObject({ scanned: true, toMs: DAY3_END, raised: [] });
    if (!pass.scanned) return;
    expect(pass.cleared.map((c) => c.subject).sort()).toEqual([
      "firmware|1.2|predecessor",
      "firmware|1.2|rest",
    ]);
    const log = await verdictPoints(fx.influx);
    expect(log.filter((p) => p.event === "cleared").map((p) => p.time)).toEqual([
      iso(DAY3_END),
      iso(DAY3_END),
    ]);
    expect(log.filter((p) => p.event === "raised")).toHaveLength(2);
    expect(RegressionList.parse((await list(fx.influx)).body).items).toEqual([]);
    // A poke runs one pass; nothing changed since.
    await runner.poke();
    expect(await verdictPoints(fx.influx)).toEqual(log);
    await runner.stop();
  });
});

describe("GET /api/v1/firmware/regressions refusals", () => {
  test("refuses a request without a valid token", async ({ fx }) => {
    const app = createApp({
      ...memoryDeviceServices(),
      firmware: createFirmwareService(fx.influx),
      tokens: TOKENS,
      logger: silentLogger,
      metrics: createMetrics(),
    });
    for (const headers of [{}, { authorization: "Bearer wrong" }]) {
      const response = await app.request("/api/v1/firmware/regressions", { headers });
      expect(response.status).toBe(401);
      expect(ErrorEnvelope.parse(await response.json()).error.code).toBe("UNAUTHORIZED");
    }
  });

  test.for<[string, string]>([
    ["?verdict=worse", 'query parameter "verdict"'],
    ["?model=%2Fbad", 'query parameter "model"'],
    ["?severity=critical", '"severity"'],
  ])("refuses %s", async ([query, message], { fx }) => {
    const { status, body } = await list(fx.influx, query);
    expect(status).toBe(400);
    const error = ErrorEnvelope.parse(body).error;
    expect(error.code).toBe("BAD_REQUEST");
    expect(error.message).toContain(message);
  });
});
