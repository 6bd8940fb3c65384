import { Writable } from "node:stream";
import { OpenAPIHono } from "@hono/zod-openapi";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { type AppDeps, createApp } from "../../api/app.js";
import { type ApiEnv, authenticate } from "../../api/auth.js";
import { handleError, validationHook } from "../../api/errors.js";
import {
  getDeviceRoute,
  listDevicesRoute,
  presenceRoute,
  registerDevices,
  silenceRoute,
  summaryRoute,
  telemetryRoute,
} from "../../api/routes/devices.js";
import { listFaultsRoute } from "../../api/routes/faults.js";
import { healthRoute } from "../../api/routes/health.js";
import type { Role } from "../../config/env.js";
import type { Device } from "../../contract/api/devices.js";
import type { FaultRecord } from "../../contract/api/faults.js";
import { iso } from "../../contract/time.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import type { DeviceStateRow, EventRow, FaultRow, PresenceRow } from "../../storage/device-queries.js";
import type { MemoryFleet, MemorySample } from "../../storage/device-reads-memory.js";
import { StoreUnavailable } from "../../storage/influxql.js";
import { memoryDeviceServices } from "../support/device-services.js";

const NOW = Date.parse("2025-03-01T12:00:00.000Z");
const MINUTE = 60_000;

const VIEWER = "viewer-token-0001";
const TOKENS = new Map<string, Role>([[VIEWER, "viewer"]]);
const auth = { authorization: `Bearer ${VIEWER}` };

const device = (id: string, fields: Partial<Device> = {}): Device => ({
  id,
  kind: "modem",
  model: "M1",
  firmware: "1.0",
  hardware: "rev-a",
  serial: `SN-${id}`,
  region: "eu",
  isp: "isp1",
  lastSeen: iso(NOW - MINUTE),
  online: true,
  lastReport: iso(NOW - MINUTE),
  status: "online",
  expectedIntervalS: 60,
  intervalSource: "learned",
  ...fields,
});

const fault = (deviceId: string, minutesAgo: number, fields: Partial<FaultRecord> = {}): FaultRecord => ({
  device: deviceId,
  kind: "modem",
  model: "M1",
  firmware: "1.0",
  region: "eu",
  code: "DSL_RESYNC",
  severity: "warning",
  component: null,
  message: null,
  context: {},
  ts: iso(NOW - minutesAgo * MINUTE),
  receivedAt: iso(NOW - minutesAgo * MINUTE + 200),
  ...fields,
});

/** The directory's row for a device whose status, as the liveness rule judges it at NOW, is `d.status`. */
const stateOf = (d: Device): DeviceStateRow => ({
  device: d.id,
  kind: d.kind,
  model: d.model,
  firmware: d.firmware,
  hardware: d.hardware,
  serial: d.serial,
  region: d.region,
  isp: d.isp,
  firstMs: NOW - 1440 * MINUTE,
  lastReportMs: d.lastReport === null ? null : Date.parse(d.lastReport),
  lastSeenMs: d.lastSeen === null ? null : Date.parse(d.lastSeen),
  presence: d.online === null ? null : d.online ? "online" : "offline",
  presenceMs: d.lastSeen === null ? null : Date.parse(d.lastSeen),
  presenceSource: d.online === null ? null : "broker",
  gapMedianMs: d.expectedIntervalS * 1000,
  gapSamples: 10,
  updatedMs: NOW - MINUTE,
  // The ingest records a successful firmware update in the device's state (the events below hold it too).
  lastUpdate: d.id === "modem-0002" ? { atMs: NOW - 700 * MINUTE, from: "1.9", to: "2.0" } : null,
});

const DEVICES = [
  device("modem-0001"),
  device("modem-0002", {
    model: "M2",
    firmware: "2.0",
    online: false,
    lastSeen: iso(NOW - 5 * MINUTE),
    status: "silent",
    lastReport: iso(NOW - 600 * MINUTE),
  }),
  device("router-0001", {
    kind: "router",
    model: "R1",
    isp: null,
    online: false,
    lastSeen: iso(NOW - 30_000),
    status: "offline",
  }),
];

const FAULTS = [
  fault("modem-0001", 10, { context: { snr: 3.5 } }),
  fault("modem-0002", 20, { model: "M2", firmware: "2.0", code: "LOS", severity: "critical" }),
  fault("modem-0001", 30),
];

const faultRow = (f: FaultRecord): FaultRow & { device: string } => ({
  ...f,
  deviceMs: Date.parse(f.ts),
  receivedMs: Date.parse(f.receivedAt),
});

const event = (
  device: string,
  type: string,
  deviceMs: number,
  receivedMs: number,
  data: EventRow["data"],
) => ({
  device,
  type,
  deviceMs,
  receivedMs,
  data,
});

const presence = (device: string, minutesAgo: number, state: PresenceRow["state"], source: string) => ({
  device,
  atMs: NOW - minutesAgo * MINUTE,
  state,
  source,
});

const sample = (metric: string, minutesAgo: number, value: number | boolean): MemorySample => ({
  device: "modem-0001",
  metric,
  timeMs: NOW - minutesAgo * MINUTE,
  value,
});

const FLEET: MemoryFleet = {
  states: DEVICES.map(stateOf),
  presence: [
    presence("modem-0001", 30, "online", "broker"),
    presence("modem-0001", 90, "offline", "will"),
    presence("modem-0001", 10 * 1440, "online", "device"),
    presence("modem-0002", 5, "offline", "will"),
  ],
  events: [
    event("modem-0002", "firmware_update", NOW - 700 * MINUTE, NOW - 700 * MINUTE, {
      from: "1.9",
      to: "2.0",
      result: "success",
    }),
    event("modem-0002", "door_open", NOW - 62 * MINUTE, NOW - 60 * MINUTE, { door: "front", open: true }),
    event("modem-0001", "feedback", NOW - 21 * MINUTE, NOW - 20 * MINUTE, { rating: 4, comment: "fine" }),
    event("modem-0001", "feedback", NOW - 40 * MINUTE, NOW - 40 * MINUTE, { rating: 1 }),
  ],
  faults: FAULTS.map(faultRow),
  telemetry: [
    sample("snr_db", 50, 10),
    sample("snr_db", 45, 20),
    sample("snr_db", 5, 4),
    sample("link_up", 5, true),
  ],
};

function app(overrides: Partial<AppDeps> = {}) {
  return createApp({
    ...memoryDeviceServices(FLEET, { now: () => NOW }),
    tokens: TOKENS,
    logger: silentLogger,
    metrics: createMetrics(),
    now: () => NOW,
    ...overrides,
  });
}

const get = (path: string, headers: Record<string, string> = auth, deps: Partial<AppDeps> = {}) =>
  app(deps).request(path, { headers });

/** The 200 schema of a route definition: responses are checked against what the route promises. */
const okSchema = <R extends { responses: { 200: { content: { "application/json": { schema: unknown } } } } }>(
  route: R,
) =>
  route.responses[200].content["application/json"]
    .schema as R["responses"][200]["content"]["application/json"]["schema"];

async function expectError(response: Response, status: number, code: string, message?: string | RegExp) {
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  const body = (await response.json()) as { error: { code: string; message: string } };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error.code).toBe(code);
  if (message !== undefined) expect(body.error.message).toMatch(message);
  return body.error.message;
}

const GUARDED = [
  "/api/v1/devices",
  "/api/v1/devices/modem-0001",
  "/api/v1/devices/modem-0001/telemetry?metric=snr_db",
  "/api/v1/devices/modem-0001/presence",
  "/api/v1/devices/modem-0001/summary",
  "/api/v1/silence",
  "/api/v1/faults",
];

describe("GET /api/v1/health", () => {
  it("reports a reachable store without a token, and null for the broker's numbers when it runs elsewhere", async () => {
    const response = await get("/api/v1/health", {});
    expect(response.status).toBe(200);
    expect(okSchema(healthRoute).parse(await response.json())).toEqual({
      status: "ok",
      influx: { reachable: true, latencyMs: 1 },
      journalBacklog: null,
      connectedDevices: null,
    });
  });

  it("includes the journal backlog and connected devices from the broker's status", async () => {
    const status = () => ({ journalBacklog: 12, connectedDevices: 3 });
    const body = await (await get("/api/v1/health", {}, { status })).json();
    expect(body).toMatchObject({ journalBacklog: 12, connectedDevices: 3 });
  });

  it("answers 503 with the same shape when the store is unreachable", async () => {
    const response = await get("/api/v1/health", {}, memoryDeviceServices({ reachable: false }));
    expect(response.status).toBe(503);
    expect(okSchema(healthRoute).parse(await response.json())).toMatchObject({
      status: "unavailable",
      influx: { reachable: false },
    });
  });
});

describe("GET /api/v1/devices", () => {
  it("lists devices by id with the paging it applied", async () => {
    const response = await get("/api/v1/devices");
    expect(response.status).toBe(200);
    const body = okSchema(listDevicesRoute).parse(await response.json());
    expect(body.items.map((d) => d.id)).toEqual(["modem-0001", "modem-0002", "router-0001"]);
    expect(body).toMatchObject({ total: 3, limit: 100, offset: 0, nextOffset: null });
    expect(body.items).toEqual(DEVICES);
  });

  it.each([
    ["kind=router", ["router-0001"]],
    ["model=M2", ["modem-0002"]],
    ["firmware=1.0", ["modem-0001", "router-0001"]],
    ["kind=modem&firmware=2.0", ["modem-0002"]],
    ["model=nothing", []],
    ["status=silent", ["modem-0002"]],
    ["status=offline", ["router-0001"]],
    ["status=online&kind=modem", ["modem-0001"]],
  ])("filters with %s", async (query, ids) => {
    const body = okSchema(listDevicesRoute).parse(await (await get(`/api/v1/devices?${query}`)).json());
    expect(body.items.map((d) => d.id)).toEqual(ids);
  });

  it.each([
    ["q=router", ["router-0001"]],
    ["q=MODEM", ["modem-0001", "modem-0002"]],
    ["q=sn-modem-0002", ["modem-0002"]],
    ["q=m2", ["modem-0002"]],
    ["q=r1&kind=router", ["router-0001"]],
    ["q=nothing", []],
    ["serial=SN-modem-0002", ["modem-0002"]],
    ["serial=SN-modem-000", []],
    ["serial=sn-modem-0002", []],
    ["serial=SN-router-0001&status=offline", ["router-0001"]],
  ])("finds devices with %s", async (query, ids) => {
    const body = okSchema(listDevicesRoute).parse(await (await get(`/api/v1/devices?${query}`)).json());
    expect(body.items.map((d) => d.id)).toEqual(ids);
    expect(body.total).toBe(ids.length);
  });

  it("pages with limit and offset and says where the next page starts", async () => {
    const first = okSchema(listDevicesRoute).parse(await (await get("/api/v1/devices?limit=2")).json());
    expect(first.items.map((d) => d.id)).toEqual(["modem-0001", "modem-0002"]);
    expect(first.nextOffset).toBe(2);
    const second = okSchema(listDevicesRoute).parse(
      await (await get("/api/v1/devices?limit=2&offset=2")).json(),
    );
    expect(second.items.map((d) => d.id)).toEqual(["router-0001"]);
    expect(second.nextOffset).toBeNull();
  });

  it.each([
    ["limit=0", /^query parameter "limit": Too small/],
    ["limit=1001", /^query parameter "limit": Too big/],
    ["limit=ten", /^query parameter "limit": .*expected number/],
    ["offset=-1", /^query parameter "offset": Too small/],
    ["kind=%27%20OR%201%3D1", /^query parameter "kind": must be 1-64 letters/],
    ["model=", /^query parameter "model": must be/],
    ["status=dead", /^query parameter "status": /],
    ["q=", /^query parameter "q": /],
    ["isp=isp1", /"isp"/],
  ])("answers 400 naming the parameter for %s", async (query, message) => {
    await expectError(await get(`/api/v1/devices?${query}`), 400, "BAD_REQUEST", message);
  });
});

describe("GET /api/v1/devices/{id}", () => {
  it("returns the device with its recent faults, newest first", async () => {
    const response = await get("/api/v1/devices/modem-0001");
    expect(response.status).toBe(200);
    const body = okSchema(getDeviceRoute).parse(await response.json());
    expect(body.id).toBe("modem-0001");
    expect(body.recentFaults.map((f) => f.ts)).toEqual([iso(NOW - 10 * MINUTE), iso(NOW - 30 * MINUTE)]);
    expect(body.recentFaults[0]?.context).toEqual({ snr: 3.5 });
  });

  it("answers 404 for a device that never sent anything", async () => {
    await expectError(await get("/api/v1/devices/modem-9999"), 404, "NOT_FOUND", 'no device "modem-9999"');
  });

  it("answers 400 for an id outside the device id grammar", async () => {
    await expectError(await get("/api/v1/devices/-bad"), 400, "BAD_REQUEST", /^path parameter "id": must be/);
  });
});

describe("GET /api/v1/devices/{id}/telemetry", () => {
  const path = "/api/v1/devices/modem-0001/telemetry";

  it("aggregates the last 6 hours into at most 500 buckets by default", async () => {
    const response = await get(`${path}?metric=snr_db`);
    expect(response.status).toBe(200);
    const body = okSchema(telemetryRoute).parse(await response.json());
    expect(body).toMatchObject({
      device: "modem-0001",
      metric: "snr_db",
      fn: "mean",
      from: iso(NOW - 6 * 60 * MINUTE),
      to: iso(NOW),
      everyMs: MINUTE,
    });
    expect(body.points).toHaveLength(360);
    expect(body.points.filter((p) => p.value !== null)).toEqual([
      { time: iso(NOW - 50 * MINUTE), value: 10 },
      { time: iso(NOW - 45 * MINUTE), value: 20 },
      { time: iso(NOW - 5 * MINUTE), value: 4 },
    ]);
  });

  it.each([
    ["mean", 15],
    ["min", 10],
    ["max", 20],
    ["last", 20],
  ])("applies fn=%s per bucket of the given width", async (fn, value) => {
    const from = iso(NOW - 60 * MINUTE);
    const to = iso(NOW - 30 * MINUTE);
    const body = okSchema(telemetryRoute).parse(
      await (await get(`${path}?metric=snr_db&fn=${fn}&from=${from}&to=${to}&every=30m`)).json(),
    );
    expect(body.points).toEqual([{ time: from, value }]);
  });

  it("answers 404 for an unknown device", async () => {
    await expectError(
      await get("/api/v1/devices/modem-9999/telemetry?metric=snr_db"),
      404,
      "NOT_FOUND",
      'no device "modem-9999"',
    );
  });

  it.each([
    ["", 'query parameter "metric": is required'],
    ["metric=1st", /^query parameter "metric": must be 1-64 letters/],
    ["metric=seq", 'query parameter "metric": is a reserved name'],
    ["metric=snr_db&fn=median", /^query parameter "fn": /],
    ["metric=snr_db&from=yesterday", /^query parameter "from": /],
    ["metric=snr_db&to=2025-13-01T00:00:00Z", /^query parameter "to": /],
    ["metric=snr_db&from=2025-03-01T10:00:00Z&to=2025-03-01T10:00:00Z", "from must be before to"],
    ["metric=snr_db&from=2025-03-01T11:00:00Z&to=2025-03-01T10:00:00Z", "from must be before to"],
    ["metric=snr_db&from=1960-01-01T00:00:00Z", /^from and to must lie between 1970/],
    ["metric=snr_db&every=5 minutes", /^query parameter "every": must be a duration/],
    ["metric=snr_db&every=0s", /^query parameter "every": must be a duration/],
    ["metric=snr_db&every=1s", "every=1s gives 21600 buckets, more than 500: choose a wider one"],
    ["metric=link_up", 'metric "link_up" is not a number: only fn=last applies to it'],
  ])("answers 400 for ?%s", async (query, message) => {
    await expectError(await get(`${path}?${query}`), 400, "BAD_REQUEST", message);
  });

  it("gives the last value of a boolean metric", async () => {
    const body = okSchema(telemetryRoute).parse(await (await get(`${path}?metric=link_up&fn=last`)).json());
    expect(body.points.filter((p) => p.value !== null)).toEqual([
      { time: iso(NOW - 5 * MINUTE), value: true },
    ]);
  });
});

describe("GET /api/v1/devices/{id}/presence", () => {
  const path = "/api/v1/devices/modem-0001/presence";

  it("lists the last 7 days of presence changes newest first", async () => {
    const response = await get(path);
    expect(response.status).toBe(200);
    expect(okSchema(presenceRoute).parse(await response.json())).toEqual({
      items: [
        { time: iso(NOW - 30 * MINUTE), state: "online", source: "broker" },
        { time: iso(NOW - 90 * MINUTE), state: "offline", source: "will" },
      ],
      limit: 100,
      offset: 0,
      nextOffset: null,
      from: iso(NOW - 7 * 1440 * MINUTE),
      to: iso(NOW),
    });
  });

  it("pages with limit and offset", async () => {
    const first = okSchema(presenceRoute).parse(await (await get(`${path}?limit=1`)).json());
    expect(first.items.map((p) => p.source)).toEqual(["broker"]);
    expect(first.nextOffset).toBe(1);
    const second = okSchema(presenceRoute).parse(await (await get(`${path}?limit=1&offset=1`)).json());
    expect(second.items.map((p) => p.source)).toEqual(["will"]);
    expect(second.nextOffset).toBeNull();
  });

  it("answers 404 for an unknown device", async () => {
    await expectError(
      await get("/api/v1/devices/modem-9999/presence"),
      404,
      "NOT_FOUND",
      'no device "modem-9999"',
    );
  });

  it.each([
    ["limit=0", /^query parameter "limit": Too small/],
    ["from=yesterday", /^query parameter "from": /],
    [`from=${iso(NOW)}&to=${iso(NOW - MINUTE)}`, "from must be before to"],
  ])("answers 400 for ?%s", async (query, message) => {
    await expectError(await get(`${path}?${query}`), 400, "BAD_REQUEST", message);
  });
});

describe("GET /api/v1/devices/{id}/summary", () => {
  it("gathers status, presence, latest metrics, faults, events and ratings, and says issues are not available", async () => {
    const response = await get("/api/v1/devices/modem-0001/summary");
    expect(response.status).toBe(200);
    const body = okSchema(summaryRoute).parse(await response.json());
    expect(body).toMatchObject({ ...DEVICES[0], status: "online", expectedIntervalS: 60 });
    expect(body.recentPresence.map((p) => p.source)).toEqual(["broker", "will", "device"]);
    expect(body.metrics).toEqual({
      since: iso(NOW - 7 * 1440 * MINUTE),
      values: { snr_db: 4, link_up: true },
    });
    expect(body.recentFaults).toHaveLength(2);
    expect(body.recentEvents.map((e) => e.data.rating)).toEqual([4, 1]);
    expect(body.feedback).toEqual({
      count: 2,
      mean: 2.5,
      recent: [
        { time: iso(NOW - 21 * MINUTE), receivedAt: iso(NOW - 20 * MINUTE), rating: 4, comment: "fine" },
        { time: iso(NOW - 40 * MINUTE), receivedAt: iso(NOW - 40 * MINUTE), rating: 1, comment: null },
      ],
    });
    expect(body.issues).toEqual({ available: false, items: [] });
  });

  it("includes the open issues from the issue store when one is wired in", async () => {
    const withIssues = new OpenAPIHono<ApiEnv>({ defaultHook: validationHook });
    withIssues.onError(handleError(silentLogger));
    withIssues.use("/api/v1/*", authenticate(TOKENS));
    const asked: string[] = [];
    const { devices } = memoryDeviceServices(FLEET, {
      now: () => NOW,
      issuesForDevice: async (id) => {
        asked.push(id);
        return [{ id: "abc123", status: "investigating", key: "modem/M1/DSL_RESYNC" }];
      },
    });
    registerDevices(withIssues, { devices, now: () => NOW });
    const response = await withIssues.request("/api/v1/devices/modem-0001/summary", { headers: auth });
    const body = okSchema(summaryRoute).parse(await response.json());
    expect(body.issues).toEqual({
      available: true,
      items: [{ id: "abc123", status: "investigating", key: "modem/M1/DSL_RESYNC" }],
    });
    expect(asked).toEqual(["modem-0001"]);
  });

  it("shows each event at the device's time with the receive time beside it, its data an object", async () => {
    const body = okSchema(summaryRoute).parse(await (await get("/api/v1/devices/modem-0002/summary")).json());
    expect(body.recentEvents).toEqual([
      {
        type: "door_open",
        ts: iso(NOW - 62 * MINUTE),
        receivedAt: iso(NOW - 60 * MINUTE),
        data: { door: "front", open: true },
      },
      {
        type: "firmware_update",
        ts: iso(NOW - 700 * MINUTE),
        receivedAt: iso(NOW - 700 * MINUTE),
        data: { from: "1.9", to: "2.0", result: "success" },
      },
    ]);
  });

  it("answers 404 for an unknown device and 400 for a bad id", async () => {
    await expectError(
      await get("/api/v1/devices/modem-9999/summary"),
      404,
      "NOT_FOUND",
      'no device "modem-9999"',
    );
    await expectError(await get("/api/v1/devices/-x/summary"), 400, "BAD_REQUEST", /^path parameter "id"/);
  });
});

describe("GET /api/v1/silence", () => {
  it("gives silent rates and the devices that went silent within a day of an update", async () => {
    const response = await get("/api/v1/silence");
    expect(response.status).toBe(200);
    const body = okSchema(silenceRoute).parse(await response.json());
    expect(body).toMatchObject({ from: iso(NOW - 7 * 1440 * MINUTE), to: iso(NOW), factor: 3 });
    expect(body.byModel).toEqual([
      { model: "M1", seen: 1, silent: 0, rate: 0 },
      { model: "M2", seen: 1, silent: 1, rate: 1 },
      { model: "R1", seen: 1, silent: 0, rate: 0 },
    ]);
    expect(body.afterUpdate).toEqual({
      withinS: 86_400,
      devices: [
        {
          device: "modem-0002",
          model: "M2",
          from: "1.9",
          to: "2.0",
          updatedAt: iso(NOW - 700 * MINUTE),
          lastReport: iso(NOW - 600 * MINUTE),
        },
      ],
      byModel: [{ model: "M2", count: 1 }],
      byFirmware: [{ model: "M2", firmware: "2.0", count: 1 }],
    });
  });

  it.each([
    ["from=2025", /^query parameter "from": /],
    [`from=${iso(NOW)}&to=${iso(NOW - MINUTE)}`, "from must be before to"],
  ])("answers 400 for ?%s", async (query, message) => {
    await expectError(await get(`/api/v1/silence?${query}`), 400, "BAD_REQUEST", message);
  });
});

describe("GET /api/v1/faults", () => {
  it("lists the last 7 days of faults newest first", async () => {
    const response = await get("/api/v1/faults");
    expect(response.status).toBe(200);
    const body = okSchema(listFaultsRoute).parse(await response.json());
    expect(body).toMatchObject({
      limit: 100,
      offset: 0,
      nextOffset: null,
      from: iso(NOW - 7 * 1440 * MINUTE),
      to: iso(NOW),
    });
    expect(body.items).toEqual(FAULTS);
  });

  it.each([
    ["model=M2", ["LOS"]],
    ["code=DSL_RESYNC&device=modem-0001", ["DSL_RESYNC", "DSL_RESYNC"]],
    ["severity=critical", ["LOS"]],
    ["kind=router", []],
    [`from=${iso(NOW - 25 * MINUTE)}`, ["DSL_RESYNC", "LOS"]],
  ])("filters with %s", async (query, codes) => {
    const body = okSchema(listFaultsRoute).parse(await (await get(`/api/v1/faults?${query}`)).json());
    expect(body.items.map((f) => f.code)).toEqual(codes);
  });

  it("answers 404 for a device that never sent anything, like /devices/{id}", async () => {
    await expectError(
      await get("/api/v1/faults?device=modem-9999"),
      404,
      "NOT_FOUND",
      'no device "modem-9999"',
    );
  });

  it("pages with limit and offset", async () => {
    const body = okSchema(listFaultsRoute).parse(await (await get("/api/v1/faults?limit=1&offset=1")).json());
    expect(body.items.map((f) => f.code)).toEqual(["LOS"]);
    expect(body.nextOffset).toBe(2);
  });

  it.each([
    ["severity=fatal", /^query parameter "severity": /],
    ["device=a%20b", /^query parameter "device": must be/],
    ["code=%22x%22", /^query parameter "code": must be/],
    ["limit=5000", /^query parameter "limit": Too big/],
    ["from=2025-03-01", /^query parameter "from": /],
    ["to=2000-01-01T00:00:00Z&from=2001-01-01T00:00:00Z", "from must be before to"],
    ["devise=modem-0001", /"devise"/],
    ["format=csv", /"format"/],
  ])("answers 400 for ?%s", async (query, message) => {
    await expectError(await get(`/api/v1/faults?${query}`), 400, "BAD_REQUEST", message);
  });
});

describe("unknown query parameters", () => {
  it.each([
    "/api/v1/devices?isp=isp1",
    "/api/v1/devices/modem-0001?verbose=1",
    "/api/v1/devices/modem-0001/telemetry?metric=snr_db&bucket=5m",
    "/api/v1/devices/modem-0001/presence?state=online",
    "/api/v1/devices/modem-0001/summary?full=true",
    "/api/v1/silence?model=M1",
    "/api/v1/faults?devise=modem-0001",
  ])("refuses %s with 400 naming the parameter", async (path) => {
    const name = [...new URL(path, "http://x").searchParams.keys()].at(-1) ?? "";
    await expectError(await get(path), 400, "BAD_REQUEST", new RegExp(`"${name}"`));
  });
});

describe("authentication", () => {
  it.each(GUARDED)("answers 401 with a Bearer challenge when %s has no token", async (path) => {
    const response = await get(path, {});
    await expectError(response, 401, "UNAUTHORIZED", "a bearer token is required");
    expect(response.headers.get("www-authenticate")).toBe('Bearer realm="fieldq"');
  });

  it.each(GUARDED)("answers 401 with invalid_token when %s has an unknown token", async (path) => {
    const response = await get(path, { authorization: "Bearer not-a-known-token" });
    await expectError(response, 401, "UNAUTHORIZED", "the bearer token is not valid");
    expect(response.headers.get("www-authenticate")).toBe('Bearer realm="fieldq", error="invalid_token"');
  });

  it.each([
    `Basic ${Buffer.from(`x:${VIEWER}`).toString("base64")}`,
    VIEWER,
    `Bearer ${VIEWER}x`,
    `Bearer ${VIEWER.slice(0, -1)}`,
    "Bearer",
  ])("refuses the authorization header %j", async (header) => {
    await expectError(await get("/api/v1/devices", { authorization: header }), 401, "UNAUTHORIZED");
  });

  it("checks the token before the parameters", async () => {
    await expectError(await get("/api/v1/devices?limit=0", {}), 401, "UNAUTHORIZED");
  });
});

describe("errors", () => {
  it("answers an unknown path with the NOT_FOUND envelope", async () => {
    await expectError(await get("/api/v1/nothing"), 404, "NOT_FOUND", "no route for GET /api/v1/nothing");
    await expectError(await get("/elsewhere", {}), 404, "NOT_FOUND");
  });

  it("answers 503 UNAVAILABLE when the store cannot reach InfluxDB", async () => {
    const { devices } = memoryDeviceServices();
    const unreachable = {
      ...devices,
      listDevices: () => Promise.reject(new StoreUnavailable({ cause: new Error("ECONNREFUSED") })),
    };
    await expectError(await get("/api/v1/devices", auth, { devices: unreachable }), 503, "UNAVAILABLE");
  });

  it("answers 500 INTERNAL without details and logs the cause", async () => {
    const lines: string[] = [];
    const logger = pino(
      { level: "error" },
      new Writable({
        write(chunk, _encoding, done) {
          lines.push(String(chunk));
          done();
        },
      }),
    );
    const failing = { listFaults: () => Promise.reject(new Error("secret detail at /srv/influx")) };
    const message = await expectError(
      await get("/api/v1/faults", auth, { faults: failing, logger }),
      500,
      "INTERNAL",
    );
    expect(message).toBe("internal error");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? "{}")).toMatchObject({
      msg: "unhandled error on GET /api/v1/faults",
      err: { message: "secret detail at /srv/influx" },
    });
  });
});

describe("GET /api/v1/openapi.json", () => {
  it("documents every route, those of services it was built without too, its parameters and the bearer scheme, without a token", async () => {
    const response = await get("/api/v1/openapi.json", {});
    expect(response.status).toBe(200);
    const doc = JSON.parse(await response.text());
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths).sort()).toEqual([
      "/api/v1/alerts",
      "/api/v1/alerts/{id}",
      "/api/v1/alerts/{id}/acknowledge",
      "/api/v1/commands",
      "/api/v1/devices",
      "/api/v1/devices/{id}",
      "/api/v1/devices/{id}/commands",
      "/api/v1/devices/{id}/presence",
      "/api/v1/devices/{id}/summary",
      "/api/v1/devices/{id}/telemetry",
      "/api/v1/faults",
      "/api/v1/feedback",
      "/api/v1/feedback/summary",
      "/api/v1/firmware",
      "/api/v1/firmware/compare",
      "/api/v1/firmware/regressions",
      "/api/v1/fleet/cohorts",
      "/api/v1/fleet/summary",
      "/api/v1/fleet/trend",
      "/api/v1/health",
      "/api/v1/issues",
      "/api/v1/issues/{id}",
      "/api/v1/issues/{id}/assignee",
      "/api/v1/issues/{id}/merge",
      "/api/v1/issues/{id}/notes",
      "/api/v1/issues/{id}/transitions",
      "/api/v1/promises",
      "/api/v1/reports/review",
      "/api/v1/silence",
    ]);
    const names = (p: string) => doc.paths[p].get.parameters.map((x: { name: string }) => x.name);
    expect(names("/api/v1/devices/{id}/telemetry")).toEqual(["id", "metric", "fn", "from", "to", "every"]);
    expect(names("/api/v1/faults")).toEqual(
      expect.arrayContaining([
        "from",
        "to",
        "device",
        "kind",
        "model",
        "firmware",
        "code",
        "severity",
        "limit",
        "offset",
      ]),
    );
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.paths["/api/v1/faults"].get.security).toEqual([{ bearer: [] }]);
    expect(doc.paths["/api/v1/health"].get.security).toBeUndefined();
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining([
        "Device",
        "DeviceDetail",
        "FaultRecord",
        "TelemetrySeries",
        "Health",
        "Error",
        "PresencePage",
        "DeviceSummary",
        "SilenceReport",
      ]),
    );
  });
});

describe("GET /metrics", () => {
  it("serves the Prometheus registry without a token", async () => {
    const metrics = createMetrics();
    metrics.pointsWritten.inc(3);
    const response = await get("/metrics", {}, { metrics });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await response.text()).toContain("fieldq_points_written_total 3");
  });
});
