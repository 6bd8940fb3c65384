import { once } from "node:events";
import { type AddressInfo, createServer } from "node:net";
import { test as base, describe, expect } from "vitest";
import { fingerprintId } from "../../analytics/fingerprint.js";
import { createApp } from "../../api/app.js";
import type { Role, TokenHolder } from "../../config/env.js";
import { IssueChange, IssueDetail, IssuePage } from "../../contract/api/issues.js";
import type { Severity } from "../../contract/messages.js";
import type { DeviceMetaRecord } from "../../ingest/journal.js";
import { activityPoint, deviceTags, messagePoints } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import type { HelloLookup } from "../../services/health.js";
import { createIssueService, type IssueService } from "../../services/issues.js";
import { createInflux, createPointWriter, ensureSchema } from "../../storage/influx.js";
import { StoreUnavailable } from "../../storage/influxql.js";
import { createRollupReader } from "../../storage/rollup-reader.js";
import type { Point } from "../../storage/schema.js";
import { appRequester } from "../support/app-request.js";
import { memoryDeviceServices } from "../support/device-services.js";
import { testDatabase } from "../support/influx.js";
import { settling } from "../support/settle.js";

// A small fleet written with the ingest's own functions (messagePoints, activityPoint), every statistic
// worked out by hand below. Three separate periods keep the three parts apart: statistics around T0,
// merges around T1, the lifecycle around T2.

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2025, 0, 6);
const T1 = T0 + 30 * DAY;
const T2 = T0 + 60 * DAY;
const iso = (ms: number) => new Date(ms).toISOString();

const VIEWER = "viewer-token-issues";
const OPERATOR = "operator-token-issues";
const OPERATOR_ACTOR = "Bea Costa";
const TOKENS = new Map<string, Role | TokenHolder>([
  [VIEWER, "viewer"],
  [OPERATOR, { role: "operator", name: OPERATOR_ACTOR }],
]);

const meta = (kind: string, model: string, firmware: string, region: string): DeviceMetaRecord => ({
  kind,
  model,
  firmware,
  hardware: "h1",
  region,
  isp: "isp1",
  serial: "SN",
});
const m1 = { id: "modem-0001", meta: meta("modem", "M1", "1.0", "eu") };
const m2 = { id: "modem-0002", meta: meta("modem", "M1", "1.0", "us") };
const m3 = { id: "modem-0003", meta: meta("modem", "M1", "1.1", "eu") };
const m4 = { id: "modem-0004", meta: meta("modem", "M1", "1.1", "eu") };
const m5 = { id: "modem-0005", meta: meta("modem", "M1", "1.1", "eu") };
const r1 = { id: "router-0001", meta: meta("router", "R1", "2.0", "eu") };
const n1 = { id: "modem-0101", meta: meta("modem", "M2", "3.0", "eu") };
const n2 = { id: "modem-0102", meta: meta("modem", "M2", "3.0", "us") };
const p1 = { id: "printer-0001", meta: meta("printer", "L1", "1.0", "eu") };
const p2 = { id: "printer-0002", meta: meta("printer", "L1", "2.0", "eu") };
const p3 = { id: "printer-0003", meta: meta("printer", "L1", "2.1", "eu") };
type Dev = typeof m1;

let seq = 0;
function fault(device: Dev, ms: number, code: string, severity: Severity): Point[] {
  seq += 1;
  const { records } = messagePoints(
    { channel: "fault", deviceId: device.id, body: { ts: ms, seq, code, severity } },
    {
      meta: device.meta,
      receivedMs: ms + 100,
      clockSkewFutureMs: 600_000,
      clockSkewPastMs: 60 * DAY,
      discriminator: seq,
    },
  );
  return records.map((r) => r.point);
}
const active = (device: Dev, hourMs: number) => activityPoint(deviceTags(device.id, device.meta), hourMs);

const A = fingerprintId("modem/M1/DSL_RESYNC");
const B = fingerprintId("modem/M1/LOS");
const C = fingerprintId("router/R1/WAN_DOWN");
const D = fingerprintId("modem/M2/LINK_FLAP");
const E = fingerprintId("modem/M2/LINK_DOWN");
const F = fingerprintId("printer/L1/NOZZLE_JAM");

const STATS: Point[] = [
  // A: one fault before and one after the window [T0, T0 + 2d); six inside it.
  ...fault(m1, T0 - 3 * DAY, "DSL_RESYNC", "info"),
  ...fault(m1, T0 + 1 * HOUR, "DSL_RESYNC", "warning"),
  ...fault(m1, T0 + 1 * HOUR + 10 * 60_000, "DSL_RESYNC", "warning"),
  ...fault(m2, T0 + 2 * HOUR, "DSL_RESYNC", "warning"),
  ...fault(m3, T0 + 26 * HOUR, "DSL_RESYNC", "warning"),
  ...fault(m3, T0 + 27 * HOUR, "DSL_RESYNC", "warning"),
  ...fault(m1, T0 + 30 * HOUR, "DSL_RESYNC", "error"),
  ...fault(m1, T0 + 3 * DAY, "DSL_RESYNC", "warning"),
  // B: growing, all in the second half.
  ...fault(m3, T0 + 40 * HOUR, "LOS", "critical"),
  ...fault(m3, T0 + 41 * HOUR, "LOS", "critical"),
  ...fault(m3, T0 + 42 * HOUR, "LOS", "warning"),
  // C: shrinking, all in the first half.
  ...fault(r1, T0 + 3 * HOUR, "WAN_DOWN", "error"),
  ...fault(r1, T0 + 4 * HOUR, "WAN_DOWN", "error"),
  ...fault(r1, T0 + 5 * HOUR, "WAN_DOWN", "warning"),
  ...fault(r1, T0 + 6 * HOUR, "WAN_DOWN", "info"),
  // Active in the window: M1 m1-m4 (4 devices), R1 r1; m5 only before it.
  active(m1, T0 + HOUR),
  active(m1, T0 + 30 * HOUR),
  active(m2, T0 + 2 * HOUR),
  active(m3, T0 + 26 * HOUR),
  active(m4, T0 + 10 * HOUR),
  active(m5, T0 - 2 * DAY),
  active(r1, T0 + 3 * HOUR),
  // Merges: D and E on M2 around T1.
  ...fault(n1, T1 + HOUR, "LINK_FLAP", "warning"),
  ...fault(n2, T1 + 2 * HOUR, "LINK_FLAP", "warning"),
  ...fault(n1, T1 + 3 * HOUR, "LINK_DOWN", "error"),
  active(n1, T1 + HOUR),
  active(n2, T1 + 2 * HOUR),
  // Lifecycle: F on L1 around T2, before any fix.
  ...fault(p1, T2, "NOZZLE_JAM", "error"),
];

const W = { from: iso(T0), to: iso(T0 + 2 * DAY) };

/** What the directory holds of each device's latest hello: m3's names neither ISP nor hardware. */
const HELLOS: Record<string, { isp: string | null; hardware: string | null }> = {
  [m1.id]: { isp: "1und1", hardware: "rev-b" },
  [m2.id]: { isp: "telekom", hardware: "rev-b" },
  [m3.id]: { isp: null, hardware: null },
};
const directory: HelloLookup = {
  ready: async () => {},
  helloRevision: () => 0,
  get: (id) => {
    const hello = HELLOS[id];
    return hello === undefined ? undefined : { hello };
  },
};

type Fixture = {
  influx: ReturnType<typeof createInflux>;
  issues: IssueService;
  write: ReturnType<typeof settling>;
  clock: { now: number };
  request(path: string, init?: { token?: string | null; method?: string; body?: unknown }): Promise<Response>;
};

const test = base.extend(
  "fx",
  { scope: "file" },
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
  async ({}, { onCleanup }): Promise<Fixture> => {
    const db = await testDatabase("issues");
    onCleanup(() => db.drop());
    const influx = createInflux(db);
    await ensureSchema(influx, db);
    const clock = { now: T0 + 2 * DAY };
    const now = () => clock.now;
    // Every point written is rolled up and the issues settled before the write returns, as the ingest's
    // runners do a moment later; the service's own events go through it too.
    const write = settling(influx, createPointWriter(db), { requiredHours: 3, now });
    await write(STATS);
    const issues = createIssueService({ influx, rollups: createRollupReader(influx), write, directory });
    const app = createApp({
      ...memoryDeviceServices(),
      issues,
      tokens: TOKENS,
      logger: silentLogger,
      metrics: createMetrics(),
      now,
    });
    return {
      influx,
      issues,
      write,
      clock,
      request: appRequester(app, VIEWER),
    };
  },
);

const query = (params: Record<string, string | number>) =>
  new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)])).toString();

async function list(fx: Fixture, params: Record<string, string | number> = {}) {
  const response = await fx.request(`/api/v1/issues?${query({ ...W, ...params })}`);
  expect(response.status).toBe(200);
  return IssuePage.parse(await response.json());
}

async function detail(fx: Fixture, id: string, window: { from: string; to: string } = W) {
  const response = await fx.request(`/api/v1/issues/${id}?${query(window)}`);
  expect(response.status).toBe(200);
  return IssueDetail.parse(await response.json());
}

async function post(fx: Fixture, id: string, action: string, body: unknown, token: string | null = OPERATOR) {
  return fx.request(`/api/v1/issues/${id}/${action}`, { method: "POST", body, token });
}

const SUMMARY_A = {
  id: A,
  key: "modem/M1/DSL_RESYNC",
  kind: "modem",
  model: "M1",
  models: ["modem/M1"],
  codes: ["DSL_RESYNC"],
  mergedIds: [],
  status: "new",
  assignee: null,
  fixVersion: null,
  firstSeen: iso(T0 - 3 * DAY),
  lastSeen: iso(T0 + 3 * DAY),
  occurrences: 6,
  affectedDevices: 3,
  activeDevices: 4,
  fleetShare: 0.75,
  worstSeverity: "error",
  growth: { firstHalf: 3, secondHalf: 3, delta: 0 },
};
const SUMMARY_B = {
  ...SUMMARY_A,
  id: B,
  key: "modem/M1/LOS",
  codes: ["LOS"],
  firstSeen: iso(T0 + 40 * HOUR),
  lastSeen: iso(T0 + 42 * HOUR),
  occurrences: 3,
  affectedDevices: 1,
  fleetShare: 0.25,
  worstSeverity: "critical",
  growth: { firstHalf: 0, secondHalf: 3, delta: 3 },
};
const SUMMARY_C = {
  ...SUMMARY_A,
  id: C,
  key: "router/R1/WAN_DOWN",
  kind: "router",
  model: "R1",
  models: ["router/R1"],
  codes: ["WAN_DOWN"],
  firstSeen: iso(T0 + 3 * HOUR),
  lastSeen: iso(T0 + 6 * HOUR),
  occurrences: 4,
  affectedDevices: 1,
  activeDevices: 1,
  fleetShare: 1,
  worstSeverity: "error",
  growth: { firstHalf: 4, secondHalf: 0, delta: -4 },
};
// B and C tie on affected devices; ties go by id.
const [B_OR_C, C_OR_B] = [SUMMARY_B, SUMMARY_C].sort((x, y) => (x.id < y.id ? -1 : 1));

describe("issue statistics", () => {
  test("lists the window's issues by affected devices with every statistic", async ({ fx }) => {
    expect(await list(fx)).toEqual({
      items: [SUMMARY_A, B_OR_C, C_OR_B],
      total: 3,
      limit: 100,
      offset: 0,
      nextOffset: null,
      ...W,
      from: iso(T0),
      to: iso(T0 + 2 * DAY),
    });
  });

  test.for<[string, string[]]>([
    ["occurrences", [A, C, B]],
    ["last_seen", [A, B, C]],
    ["growth", [B, A, C]],
  ])("sorts by %s", async ([sort, ids], { fx }) => {
    expect((await list(fx, { sort })).items.map((i) => i.id)).toEqual(ids);
  });

  test.for<[Record<string, string>, string[]]>([
    [{ kind: "router" }, [C]],
    [{ model: "M1", sort: "occurrences" }, [A, B]],
    [{ firmware: "1.0" }, [A]],
    [{ firmware: "1.1", sort: "occurrences" }, [A, B]],
    [{ severity: "critical" }, [B]],
    [{ severity: "error", sort: "occurrences" }, [A, C, B]],
    [{ status: "new", sort: "growth" }, [B, A, C]],
    [{ status: "muted" }, []],
    [{ model: "nothing" }, []],
  ])("filters by %o", async ([filter, ids], { fx }) => {
    expect((await list(fx, filter)).items.map((i) => i.id)).toEqual(ids);
  });

  test("adds each listed issue's trend on request, the same occurrences bucketed (for sparklines)", async ({
    fx,
  }) => {
    expect((await list(fx)).items.every((i) => i.trend === undefined)).toBe(true);
    const page = await list(fx, { withTrend: "true" });
    expect(page.items.length).toBe(3);
    for (const item of page.items) {
      // A two-day window is bucketed by the hour.
      expect(item.trend?.bucketMs).toBe(HOUR);
      expect(item.trend?.occurrences.length).toBe(48);
      expect(item.trend?.occurrences.reduce((a, b) => a + b, 0)).toBe(item.occurrences);
    }
  });

  test("pages with limit and offset", async ({ fx }) => {
    const first = await list(fx, { sort: "occurrences", limit: 2 });
    expect([first.items.map((i) => i.id), first.total, first.nextOffset]).toEqual([[A, C], 3, 2]);
    const second = await list(fx, { sort: "occurrences", limit: 2, offset: 2 });
    expect([second.items.map((i) => i.id), second.total, second.nextOffset]).toEqual([[B], 3, null]);
  });

  test("defaults to the 7 days before now", async ({ fx }) => {
    const page = await list(fx, {});
    const response = await fx.request("/api/v1/issues");
    const defaulted = IssuePage.parse(await response.json());
    expect([defaulted.from, defaulted.to]).toEqual([iso(T0 - 5 * DAY), iso(T0 + 2 * DAY)]);
    // The fault at T0 - 3d now counts too.
    expect(defaulted.items.find((i) => i.id === A)?.occurrences).toBe(7);
    expect(page.items.find((i) => i.id === A)?.occurrences).toBe(6);
  });

  test("details an issue: breakdowns, hourly trend, affected devices", async ({ fx }) => {
    const issue = await detail(fx, A);
    expect(issue).toMatchObject({ ...SUMMARY_A, from: W.from, to: W.to, closure: null, regressions: 0 });
    expect(issue.byFirmware).toEqual([
      { firmware: "1.0", occurrences: 4, affectedDevices: 2 },
      { firmware: "1.1", occurrences: 2, affectedDevices: 1 },
    ]);
    expect(issue.byRegion).toEqual([
      { region: "eu", occurrences: 5, affectedDevices: 2 },
      { region: "us", occurrences: 1, affectedDevices: 1 },
    ]);
    // By each device's current hello: m1 on 1und1 (3), m3 without one (2), m2 on telekom (1).
    expect(issue.byIsp).toEqual([
      { isp: "1und1", occurrences: 3, affectedDevices: 1 },
      { isp: "unknown", occurrences: 2, affectedDevices: 1 },
      { isp: "telekom", occurrences: 1, affectedDevices: 1 },
    ]);
    expect(issue.byHardware).toEqual([
      { hardware: "rev-b", occurrences: 4, affectedDevices: 2 },
      { hardware: "unknown", occurrences: 2, affectedDevices: 1 },
    ]);
    // Half of the 6 occurrences come from m1 alone, 80% (4.8) from m1 and m3.
    expect(issue.concentration).toEqual({
      devices: 3,
      occurrences: 6,
      top: [
        { share: 0.5, devices: 1, occurrences: 3 },
        { share: 0.8, devices: 2, occurrences: 5 },
      ],
      topDevice: { id: m1.id, occurrences: 3, share: 0.5 },
    });
    expect(issue.trend.bucketMs).toBe(HOUR);
    expect(issue.trend.buckets).toHaveLength(48);
    const busy = issue.trend.buckets.filter((b) => b.occurrences > 0);
    expect(busy).toEqual([
      { time: iso(T0 + HOUR), occurrences: 2, affectedDevices: 1 },
      { time: iso(T0 + 2 * HOUR), occurrences: 1, affectedDevices: 1 },
      { time: iso(T0 + 26 * HOUR), occurrences: 1, affectedDevices: 1 },
      { time: iso(T0 + 27 * HOUR), occurrences: 1, affectedDevices: 1 },
      { time: iso(T0 + 30 * HOUR), occurrences: 1, affectedDevices: 1 },
    ]);
    expect(issue.devices).toEqual({
      total: 3,
      offset: 0,
      nextOffset: null,
      items: [
        { id: m1.id, occurrences: 3, lastSeen: iso(T0 + 30 * HOUR), firmware: "1.0" },
        { id: m3.id, occurrences: 2, lastSeen: iso(T0 + 27 * HOUR), firmware: "1.1" },
        { id: m2.id, occurrences: 1, lastSeen: iso(T0 + 2 * HOUR), firmware: "1.0" },
      ],
    });
    expect(issue.history).toEqual([]);
  });

  test("answers the same after the warm-up as before it", async ({ fx }) => {
    const cold = { list: await list(fx), detail: await detail(fx, A) };
    const warmed = createIssueService({
      influx: fx.influx,
      rollups: createRollupReader(fx.influx),
      write: fx.write,
      directory,
    });
    await warmed.warm(T0 + 2 * DAY);
    const window = { fromMs: T0, toMs: T0 + 2 * DAY };
    const page = await warmed.list({ ...window, sort: "devices", limit: 100, offset: 0 });
    expect(page.items).toEqual(cold.list.items);
    expect(await warmed.detail(A, window)).toEqual(cold.detail);
  });

  test("pages the affected devices", async ({ fx }) => {
    const page = (limit: number, offset: number) =>
      fx.request(`/api/v1/issues/${A}?${query({ ...W, devicesLimit: limit, devicesOffset: offset })}`);
    const first = IssueDetail.parse(await (await page(2, 0)).json()).devices;
    expect(first).toMatchObject({ total: 3, offset: 0, nextOffset: 2 });
    expect(first.items.map((d) => d.id)).toEqual([m1.id, m3.id]);
    const second = IssueDetail.parse(await (await page(2, 2)).json()).devices;
    expect(second).toMatchObject({ total: 3, offset: 2, nextOffset: null });
    expect(second.items.map((d) => d.id)).toEqual([m2.id]);
    for (const bad of ["devicesLimit=0", "devicesLimit=501", "devicesOffset=-1"]) {
      const response = await fx.request(`/api/v1/issues/${A}?${bad}`);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { message: string } }).error.message).toContain(
        bad.split("=")[0],
      );
    }
  });

  test("refuses an unknown query parameter on the list and the detail", async ({ fx }) => {
    for (const path of ["/api/v1/issues?assignee=ana", `/api/v1/issues/${A}?devices=5`]) {
      const response = await fx.request(path);
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: "BAD_REQUEST" } });
    }
  });

  test("buckets the trend by day for windows over 2 days", async ({ fx }) => {
    const issue = await detail(fx, A, { from: iso(T0), to: iso(T0 + 7 * DAY) });
    expect(issue.trend.bucketMs).toBe(DAY);
    expect(issue.trend.buckets).toEqual(
      [
        [3, 2],
        [3, 2],
        [0, 0],
        [1, 1],
        [0, 0],
        [0, 0],
        [0, 0],
      ].map(([occurrences, affectedDevices], day) => ({
        time: iso(T0 + (day ?? 0) * DAY),
        occurrences,
        affectedDevices,
      })),
    );
  });

  test("widens the window to whole UTC hours", async ({ fx }) => {
    // [T0 + 1h05m, T0 + 48h30m) is read as [T0 + 1h, T0 + 49h): A's faults at T0 + 1h count, and as no
    // fault falls in [T0, T0 + 1h) or [T0 + 48h, T0 + 49h) every statistic is W's (A's growth: 1h-25h 3,
    // 25h-49h 3). Device sets come from the hours T0 + 1h…23h and T0 + 48h and the day T0 + 1d; m1, in
    // both (faults at 1h and 30h), counts once.
    const window = { from: iso(T0 + HOUR + 5 * 60_000), to: iso(T0 + 48 * HOUR + 30 * 60_000) };
    expect((await list(fx, window)).items).toEqual([SUMMARY_A, B_OR_C, C_OR_B]);
    const issue = await detail(fx, A, window);
    expect(issue).toMatchObject({ ...SUMMARY_A, from: iso(T0 + HOUR), to: iso(T0 + 49 * HOUR) });
    expect(issue.trend.buckets).toHaveLength(48);
    expect(issue.trend.buckets[0]).toEqual({ time: iso(T0 + HOUR), occurrences: 2, affectedDevices: 1 });
    expect(issue.devices.total).toBe(3);
  });

  test("splits the window for growth at a whole hour, the first half taking the odd hour", async ({ fx }) => {
    // [T0 + 1h, T0 + 4h): halves [1h, 3h) and [3h, 4h). A: m1 twice at 1h and m2 at 2h, all in the first
    // half; C: r1 at 3h, in the second.
    const page = await list(fx, { from: iso(T0 + HOUR), to: iso(T0 + 4 * HOUR) });
    expect(page.items.map((i) => [i.id, i.growth])).toEqual([
      [A, { firstHalf: 3, secondHalf: 0, delta: -3 }],
      [C, { firstHalf: 0, secondHalf: 1, delta: 1 }],
    ]);
  });
});

describe("manual merges", () => {
  const M = { from: iso(T1), to: iso(T1 + DAY) };

  test("refuses a merge into itself, into an unknown issue, or from a viewer", async ({ fx }) => {
    expect((await post(fx, D, "merge", { into: D })).status).toBe(400);
    const unknown = await post(fx, D, "merge", { into: "nope" });
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toEqual({
      error: { code: "BAD_REQUEST", message: 'body field "into": no issue "nope"' },
    });
    expect((await post(fx, D, "merge", { into: E }, VIEWER)).status).toBe(403);
  });

  test("combines two issues, and holds for a fault that arrives after the merge", async ({ fx }) => {
    fx.clock.now = T1 + 4 * HOUR;
    const merged = await post(fx, D, "merge", { into: E, reason: "same root cause" });
    expect(merged.status).toBe(200);
    expect(IssueChange.parse(await merged.json())).toMatchObject({ issue: D, mergedInto: E });

    // n1 had faults of both (D at T1 + 1h, E at T1 + 3h): the merged issue has 2 devices, not 2 + 1.
    const page = await list(fx, M);
    expect(page.items.map((i) => [i.id, i.occurrences, i.affectedDevices, i.mergedIds, i.codes])).toEqual([
      [E, 3, 2, [D], ["LINK_DOWN", "LINK_FLAP"]],
    ]);
    expect(page.items[0]).toMatchObject({ firstSeen: iso(T1 + HOUR), activeDevices: 2, fleetShare: 1 });

    await fx.write(fault(n2, T1 + 5 * HOUR, "LINK_FLAP", "critical"));
    const after = await detail(fx, D, M);
    expect(after).toMatchObject({ id: E, occurrences: 4, affectedDevices: 2, worstSeverity: "critical" });
    expect(after.devices.items).toEqual([
      { id: n2.id, occurrences: 2, lastSeen: iso(T1 + 5 * HOUR), firmware: "3.0" },
      { id: n1.id, occurrences: 2, lastSeen: iso(T1 + 3 * HOUR), firmware: "3.0" },
    ]);
    expect(after.byFirmware).toEqual([{ firmware: "3.0", occurrences: 4, affectedDevices: 2 }]);
    expect(after.history).toEqual([
      {
        issue: D,
        event: {
          type: "merge",
          into: E,
          actor: OPERATOR_ACTOR,
          at: T1 + 4 * HOUR,
          reason: "same root cause",
        },
      },
    ]);
  });

  test("refuses merging back into an issue merged into this one, and changes to a merged issue", async ({
    fx,
  }) => {
    const back = await post(fx, E, "merge", { into: D });
    expect(back.status).toBe(409);
    expect(((await back.json()) as { error: { message: string } }).error.message).toContain("cycle");
    expect((await post(fx, D, "transitions", { to: "acknowledged" })).status).toBe(409);
    expect((await post(fx, D, "notes", { text: "x" })).status).toBe(409);
  });
});

describe("the issue lifecycle", () => {
  const L = { from: iso(T2 - DAY), to: iso(T2 + DAY) };
  const status = async (fx: Fixture) => (await detail(fx, F, L)).status;

  test("records transitions, assignments and notes with who, when and why", async ({ fx }) => {
    fx.clock.now = T2 + HOUR;
    const ack = await post(fx, F, "transitions", { to: "acknowledged" });
    expect(ack.status).toBe(200);
    expect(IssueChange.parse(await ack.json())).toEqual({
      issue: F,
      recorded: {
        issue: F,
        event: { type: "transition", to: "acknowledged", actor: OPERATOR_ACTOR, at: T2 + HOUR },
      },
      status: "acknowledged",
      assignee: null,
      fixVersion: null,
      mergedInto: null,
    });
    fx.clock.now = T2 + HOUR + 1000;
    expect((await post(fx, F, "assignee", { assignee: "ana" })).status).toBe(200);
    expect((await post(fx, F, "notes", { text: "nozzle heater suspected" })).status).toBe(200);
    const issue = await detail(fx, F, L);
    expect(issue).toMatchObject({ status: "acknowledged", assignee: "ana" });
    expect(issue.history.map((h) => h.event)).toEqual([
      { type: "transition", to: "acknowledged", actor: OPERATOR_ACTOR, at: T2 + HOUR },
      { type: "assign", assignee: "ana", actor: OPERATOR_ACTOR, at: T2 + HOUR + 1000 },
      { type: "note", text: "nozzle heater suspected", actor: OPERATOR_ACTOR, at: T2 + HOUR + 1000 },
    ]);
    expect((await list(fx, { ...L, status: "acknowledged" })).items.map((i) => i.id)).toEqual([F]);
    expect((await list(fx, { ...L, assignedTo: "ana" })).items.map((i) => i.id)).toEqual([F]);
    expect((await list(fx, { ...L, assignedTo: "none" })).items.map((i) => i.id)).not.toContain(F);
    expect((await list(fx, { ...L, assignedTo: "bo" })).items).toEqual([]);
  });

  test.for<[object, string, number]>([
    [{ to: "verifying" }, "INVALID_TRANSITION", 409],
    [{ to: "fix_released" }, "FIX_VERSION_REQUIRED", 400],
    [{ to: "closed" }, "REASON_REQUIRED", 400],
  ])("refuses %o", async ([body, code, status], { fx }) => {
    const response = await post(fx, F, "transitions", body);
    expect(response.status).toBe(status);
    expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(
      new RegExp(`^${code}: `),
    );
  });

  test("does not reopen for a recurrence on firmware older than the fix", async ({ fx }) => {
    fx.clock.now = T2 + 2 * HOUR;
    const released = await post(fx, F, "transitions", { to: "fix_released", fixVersion: "2.0" });
    expect(released.status).toBe(200);
    await fx.write([...fault(p1, T2 + 3 * HOUR, "NOZZLE_JAM", "error"), active(p1, T2 + 3 * HOUR)]);
    fx.clock.now = T2 + 4 * HOUR;
    expect(await status(fx)).toBe("fix_released");
  });

  test("verifies the fix on device-hours and closes it as effective", async ({ fx }) => {
    // The runner settles after each write; an hour counts once it has ended.
    fx.clock.now = T2 + 4 * HOUR;
    await fx.write([active(p2, T2 + 3 * HOUR)]);
    expect(await status(fx)).toBe("verifying");
    fx.clock.now = T2 + 6 * HOUR;
    await fx.write([active(p2, T2 + 4 * HOUR), active(p3, T2 + 5 * HOUR), active(p1, T2 + 5 * HOUR)]);
    const closed = await detail(fx, F, L);
    expect(closed).toMatchObject({ status: "closed", closure: "effective" });
    expect(closed.history.slice(-2).map((h) => h.event)).toEqual([
      {
        type: "transition",
        to: "verifying",
        actor: "system",
        at: T2 + 4 * HOUR,
        reason: "firmware 2.0 is running in the field",
      },
      { type: "auto_close", exposureHours: 3, requiredHours: 3, actor: "system", at: T2 + 6 * HOUR },
    ]);
  });

  test("lists the issues affecting a device, advising the update where the fix is newer than its firmware", async ({
    fx,
  }) => {
    // F is closed as effective with the fix in 2.0; p1 had the fault and still runs 1.0.
    expect(await fx.issues.forDevice(p1.id)).toEqual([
      {
        id: F,
        key: "printer/L1/NOZZLE_JAM",
        status: "closed",
        fixVersion: "2.0",
        advice: "fixed in firmware 2.0: advise the update",
      },
    ]);
    expect(await fx.issues.forDevice(p2.id)).toEqual([]);
    expect(await fx.issues.forDevice(m1.id)).toContainEqual({
      id: A,
      key: "modem/M1/DSL_RESYNC",
      status: "new",
      fixVersion: null,
      advice: null,
    });
  });

  test("regresses once when the fault recurs on firmware at or above the fix", async ({ fx }) => {
    fx.clock.now = T2 + 8 * HOUR;
    await fx.write(fault(p3, T2 + 7 * HOUR, "NOZZLE_JAM", "critical"));
    const first = await detail(fx, F, L);
    expect(first).toMatchObject({ status: "regressed", regressions: 1 });
    expect(first.history.at(-1)?.event).toEqual({
      type: "regression",
      firmware: "2.1",
      at: T2 + 7 * HOUR,
      actor: "system",
    });
    // Further passes of the runner find the regression recorded already.
    expect((await fx.write.settle()).appended).toEqual([]);
    const regressions = (await fx.issues.events(F)).filter((e) => e.event.type === "regression");
    expect(regressions).toHaveLength(1);
  });
});

describe("the OpenAPI document", () => {
  test("describes every issue route", async ({ fx }) => {
    const response = await fx.request("/api/v1/openapi.json");
    const doc = (await response.json()) as { paths: Record<string, object> };
    expect(Object.keys(doc.paths).filter((p) => p.startsWith("/api/v1/issues"))).toEqual([
      "/api/v1/issues",
      "/api/v1/issues/{id}",
      "/api/v1/issues/{id}/transitions",
      "/api/v1/issues/{id}/assignee",
      "/api/v1/issues/{id}/notes",
      "/api/v1/issues/{id}/merge",
    ]);
  });
});

describe("refusals", () => {
  test("asks for a token", async ({ fx }) => {
    expect((await fx.request("/api/v1/issues", { token: null })).status).toBe(401);
    expect((await fx.request(`/api/v1/issues/${A}`, { token: null })).status).toBe(401);
    expect((await post(fx, A, "notes", { text: "x" }, null)).status).toBe(401);
  });

  test.for(["transitions", "assignee", "notes", "merge"])(
    "refuses a viewer's POST to %s",
    async (action, { fx }) => {
      const response = await post(fx, A, action, {}, VIEWER);
      expect(response.status).toBe(403);
      expect(await response.json()).toMatchObject({ error: { code: "FORBIDDEN" } });
    },
  );

  test("answers 404 for an unknown issue", async ({ fx }) => {
    const response = await fx.request("/api/v1/issues/unknown-issue");
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({
      error: { code: "NOT_FOUND", message: 'no issue "unknown-issue"' },
    });
    expect((await post(fx, "unknown-issue", "notes", { text: "x" })).status).toBe(404);
  });

  test.for<[string, string]>([
    ["sort=bogus", 'query parameter "sort"'],
    ["limit=0", 'query parameter "limit"'],
    ["severity=fatal", 'query parameter "severity"'],
    ["status=open", 'query parameter "status"'],
    ["from=yesterday", 'query parameter "from"'],
    [`from=${iso(T0 + DAY)}&to=${iso(T0)}`, "from must be before to"],
  ])("refuses %s", async ([params, message], { fx }) => {
    const response = await fx.request(`/api/v1/issues?${params}`);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { message: string } }).error.message).toContain(message);
  });

  test.for([`/api/v1/issues/${A}`, "/api/v1/issues"])(
    "answers 400 for %s over more than 400 days instead of a daily trend of megabytes or seconds of CPU",
    async (path, { fx }) => {
      const response = await fx.request(`${path}?from=1970-01-01T00:00:00Z&to=2199-12-31T00:00:00Z`);
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({
        error: {
          code: "BAD_REQUEST",
          message: "from and to span more than 400 days: choose a shorter window",
        },
      });
    },
  );

  test("answers an issue over 400 days, the longest window, with a daily trend of 400 buckets", async ({
    fx,
  }) => {
    const issue = await detail(fx, A, { from: iso(T0 - 200 * DAY), to: iso(T0 + 200 * DAY) });
    expect(issue.trend.bucketMs).toBe(DAY);
    expect(issue.trend.buckets).toHaveLength(400);
  });

  test.for<[string, object, string]>([
    ["transitions", { to: "reopened" }, 'body field "to"'],
    ["assignee", {}, 'body field "assignee"'],
    ["notes", { text: " " }, 'body field "text"'],
    ["merge", { into: "a b" }, 'body field "into"'],
  ])("refuses a bad body for %s", async ([action, body, message], { fx }) => {
    const response = await post(fx, A, action, body);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { message: string } }).error.message).toContain(message);
  });

  test("answers 503 when InfluxDB is unreachable", async () => {
    // A port nothing listens on (fetch refuses port 9 outright, as a "bad port").
    const server = createServer().listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const config = { url: `http://127.0.0.1:${port}`, database: "x", rawRetention: "1d" };
    const influx = createInflux(config);
    const down = createIssueService({
      influx,
      rollups: createRollupReader(influx),
      write: createPointWriter(config),
    });
    await expect(down.detail(A, { fromMs: T0, toMs: T0 + DAY })).rejects.toBeInstanceOf(StoreUnavailable);
    await expect(
      down.list({ fromMs: T0, toMs: T0 + DAY, sort: "devices", limit: 10, offset: 0 }),
    ).rejects.toBeInstanceOf(StoreUnavailable);
    await expect(
      down.append(A, { type: "note", text: "x", actor: "operator", at: T0 }),
    ).rejects.toBeInstanceOf(StoreUnavailable);
  });
});
