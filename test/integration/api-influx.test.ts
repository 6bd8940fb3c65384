import { test as base, describe, expect } from "vitest";
import { startApi } from "../../api/start-api.js";
import type { Role } from "../../config/env.js";
import { Health } from "../../contract/api/common.js";
import {
  type Device,
  DeviceDetail,
  DevicePage,
  DeviceSummaryResponse,
  TelemetrySeries,
} from "../../contract/api/devices.js";
import { FaultPage, type FaultRecord } from "../../contract/api/faults.js";
import { err, ok } from "../../contract/result.js";
import { iso } from "../../contract/time.js";
import { faultListPoint } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import { createInfluxDeviceServices, type DeviceListFilter } from "../../services/devices.js";
import { createInflux, createPointWriter, ensureSchema } from "../../storage/influx.js";
import {
  type FieldValue,
  MEASUREMENTS,
  type MeasurementKey,
  type Point,
  pointTimeNs,
} from "../../storage/schema.js";
import { deviceStatesOf } from "../support/device-state.js";
import { testDatabase } from "../support/influx.js";

// A small fleet written point by point as the ingest would (docs/storage.md), with every expected value
// worked out by hand from it.

const HOUR = 3_600_000;
const T0 = Math.floor(Date.now() / HOUR) * HOUR - 6 * HOUR;
const at = (seconds: number) => T0 + seconds * 1000;
const int = (value: number) => ({ int: value });

const VIEWER = "viewer-token-1234";
const TOKENS = new Map<string, Role>([[VIEWER, "viewer"]]);

type DeviceTags = { device: string; kind: string; model: string; firmware: string; region: string };
const modem1v10: DeviceTags = {
  device: "modem-0001",
  kind: "modem",
  model: "M1",
  firmware: "1.0",
  region: "eu",
};
const modem1: DeviceTags = { ...modem1v10, firmware: "1.1" };
const modem2: DeviceTags = {
  device: "modem-0002",
  kind: "modem",
  model: "M2",
  firmware: "1.0",
  region: "us",
};
const router1: DeviceTags = {
  device: "router-0001",
  kind: "router",
  model: "R1",
  firmware: "2.0",
  region: "eu",
};
const ghost: DeviceTags = {
  device: "ghost-0001",
  kind: "unknown",
  model: "unknown",
  firmware: "unknown",
  region: "unknown",
};

function point(
  key: MeasurementKey,
  tags: Record<string, string>,
  fields: Record<string, FieldValue>,
  ms: number,
  seq = 0,
): Point {
  const { name, rp } = MEASUREMENTS[key];
  return { measurement: name, rp, tags, fields, timeNs: pointTimeNs(ms, seq) };
}

const hello = (tags: DeviceTags, extra: { hardware: string; isp: string }, serial: string, ms: number) =>
  point("device", { ...tags, ...extra }, { serial, received_ms: int(ms) }, ms);

const presence = (tags: DeviceTags, state: "online" | "offline", source: string, ms: number) =>
  point("presence", { ...tags, source }, { state, received_ms: int(ms) }, ms);

let seq = 100;
const telemetry = (tags: DeviceTags, seconds: number, metrics: Record<string, number | boolean>) => {
  seq += 1;
  const ms = at(seconds);
  return point(
    "telemetry",
    tags,
    { ...metrics, seq: int(seq), received_ms: int(ms + 1000), skew_ms: int(1000) },
    ms,
    seq,
  );
};

const fault = (
  tags: DeviceTags,
  seconds: number,
  f: { code: string; severity: string; component?: string; message?: string; context?: object },
) => {
  seq += 1;
  const ms = at(seconds);
  const fields: Record<string, FieldValue> = { seq: int(seq), received_ms: int(ms + 500), skew_ms: int(500) };
  if (f.message !== undefined) fields.message = f.message;
  if (f.context !== undefined) fields.context = JSON.stringify(f.context);
  const extraTags: Record<string, string> = { code: f.code, severity: f.severity };
  if (f.component !== undefined) extraTags.component = f.component;
  return point("fault", { ...tags, ...extraTags }, fields, ms, seq);
};

const CLAIMED_MS = T0 - 70 * 24 * HOUR;

const POINTS: Point[] = [
  hello(modem1v10, { hardware: "rev-a", isp: "isp1" }, "SN-1", at(0)),
  hello(modem1, { hardware: "rev-a", isp: "isp1" }, "SN-1b", at(60)),
  hello(modem2, { hardware: "rev-b", isp: "unknown" }, "SN-2", at(0)),
  hello(router1, { hardware: "h1", isp: "isp2" }, "SN-R", at(10)),
  presence(modem1v10, "online", "device", at(5)),
  presence(modem2, "online", "broker", at(1)),
  presence(modem2, "offline", "will", at(200)),
  presence(ghost, "online", "broker", at(300)),
  telemetry(modem1v10, 0, { snr_margin_db: 10 }),
  telemetry(modem1v10, 20, { snr_margin_db: 20, link_up: true }),
  telemetry(modem1v10, 40, { snr_margin_db: 30 }),
  telemetry(modem1, 60, { snr_margin_db: 5 }),
  telemetry(modem1, 100, { snr_margin_db: 7, link_up: false }),
  telemetry(modem1, 130, { snr_margin_db: 9 }),
  fault(modem1v10, 30, {
    code: "DSL_RESYNC",
    severity: "warning",
    component: "dsl",
    context: { snr: 3.5, line: "a" },
  }),
  fault(modem2, 45, { code: "DSL_RESYNC", severity: "error" }),
  fault(router1, 50, { code: "WAN_DOWN", severity: "error", message: "no carrier" }),
  fault(modem1, 90, { code: "DSL_RESYNC", severity: "warning" }),
  fault(modem1, 150, { code: "LOS", severity: "critical", message: "loss of signal" }),
  point(
    "event",
    { ...modem2, type: "reboot" },
    { seq: int(1), reason: "watchdog", received_ms: int(at(180)) },
    at(180),
    1,
  ),
  // An event type without a schema of its own keeps its data as JSON; stored at receive time for a clock
  // that claimed 70 days back.
  point(
    "event",
    { ...modem2, type: "door_open" },
    {
      seq: int(3),
      data: JSON.stringify({ door: "front", open: true, count: 2 }),
      received_ms: int(at(170)),
      skew_ms: int(at(170) - CLAIMED_MS),
      clock_skewed: true,
      device_ts: int(CLAIMED_MS),
    },
    at(170),
    3,
  ),
  // Stored at receive time because the device clock claimed a time 70 days back.
  point(
    "fault",
    { ...modem2, code: "CLOCK", severity: "info" },
    {
      seq: int(2),
      received_ms: int(at(60)),
      skew_ms: int(at(60) - CLAIMED_MS),
      clock_skewed: true,
      device_ts: int(CLAIMED_MS),
    },
    at(60),
    2,
  ),
];

const faultAt = (
  tags: DeviceTags,
  seconds: number,
  f: Partial<FaultRecord> & Pick<FaultRecord, "code" | "severity">,
) => ({
  device: tags.device,
  kind: tags.kind,
  model: tags.model,
  firmware: tags.firmware,
  region: tags.region,
  component: null,
  message: null,
  context: {},
  ts: iso(at(seconds)),
  receivedAt: iso(at(seconds) + 500),
  ...f,
});

const LOS = faultAt(modem1, 150, { code: "LOS", severity: "critical", message: "loss of signal" });
const RESYNC_M1_LATE = faultAt(modem1, 90, { code: "DSL_RESYNC", severity: "warning" });
const CLOCK = faultAt(modem2, 60, {
  code: "CLOCK",
  severity: "info",
  ts: iso(CLAIMED_MS),
  receivedAt: iso(at(60)),
});
const WAN = faultAt(router1, 50, { code: "WAN_DOWN", severity: "error", message: "no carrier" });
const RESYNC_M2 = faultAt(modem2, 45, { code: "DSL_RESYNC", severity: "error" });
const RESYNC_M1_EARLY = faultAt(modem1v10, 30, {
  code: "DSL_RESYNC",
  severity: "warning",
  component: "dsl",
  context: { snr: 3.5, line: "a" },
});
const ALL_FAULTS = [LOS, RESYNC_M1_LATE, CLOCK, WAN, RESYNC_M2, RESYNC_M1_EARLY];

const MODEM1 = {
  id: "modem-0001",
  kind: "modem",
  model: "M1",
  firmware: "1.1",
  hardware: "rev-a",
  serial: "SN-1b",
  region: "eu",
  isp: "isp1",
  lastSeen: iso(at(150) + 500),
  online: true,
  // On the device's clock: its fault's ts, received half a second later.
  lastReport: iso(at(150)),
  status: "silent" as const,
  expectedIntervalS: 3600,
  intervalSource: "default" as const,
};
const MODEM2 = {
  id: "modem-0002",
  kind: "modem",
  model: "M2",
  firmware: "1.0",
  hardware: "rev-b",
  serial: "SN-2",
  region: "us",
  // The ingest leaves an unknown isp out of device_state.
  isp: null,
  lastSeen: iso(at(200)),
  online: false,
  lastReport: iso(at(180)),
  status: "silent" as const,
  expectedIntervalS: 3600,
  intervalSource: "default" as const,
};
const ROUTER1 = {
  id: "router-0001",
  kind: "router",
  model: "R1",
  firmware: "2.0",
  hardware: "h1",
  serial: "SN-R",
  region: "eu",
  isp: "isp2",
  lastSeen: iso(at(50) + 500),
  online: null,
  lastReport: iso(at(50)),
  status: "silent" as const,
  expectedIntervalS: 3600,
  intervalSource: "default" as const,
};
const GHOST = {
  id: "ghost-0001",
  kind: "unknown",
  model: "unknown",
  firmware: "unknown",
  hardware: null,
  serial: null,
  region: "unknown",
  isp: null,
  lastSeen: iso(at(300)),
  online: true,
  lastReport: null,
  status: "silent" as const,
  expectedIntervalS: 3600,
  intervalSource: "default" as const,
};

/** Each fault again in fault_list, as the ingest writes it. */
const FAULT_LIST = POINTS.filter((p) => p.measurement === MEASUREMENTS.fault.name).map((p) =>
  faultListPoint(p, p.tags.device ?? "", Number(BigInt(p.timeNs) % 1_000_000n)),
);

const test = base.extend(
  "services",
  { scope: "file" },
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
  async ({}, { onCleanup }) => {
    const db = await testDatabase("api");
    const influx = createInflux(db);
    await ensureSchema(influx, db);
    await createPointWriter(db)([...POINTS, ...FAULT_LIST, ...deviceStatesOf(POINTS, at(400))]);
    const services = createInfluxDeviceServices(influx, { directory: { refreshEveryMs: 0 } });
    onCleanup(async () => {
      services.close();
      await db.drop();
    });
    return services;
  },
);

const page = { limit: 100, offset: 0 };

describe("the device and fault services on InfluxDB", () => {
  test("answers a ping with its latency", async ({ services: { devices: store } }) => {
    const ping = await store.ping();
    expect(ping.ok).toBe(true);
    expect(ping.latencyMs).toBeGreaterThanOrEqual(0);
  });

  test("lists every device that sent anything, by id, with metadata from its latest hello", async ({
    services: { devices: store },
  }) => {
    expect(await store.listDevices(page)).toEqual({
      items: [GHOST, MODEM1, MODEM2, ROUTER1],
      total: 4,
      nextOffset: null,
    });
  });

  test.for<[Partial<DeviceListFilter>, Device[]]>([
    [{ kind: "modem" }, [MODEM1, MODEM2]],
    [{ model: "R1" }, [ROUTER1]],
    [{ firmware: "1.0" }, [MODEM2]],
    [{ firmware: "1.1", kind: "modem" }, [MODEM1]],
    [{ kind: "unknown" }, [GHOST]],
    [{ model: "nothing" }, []],
  ])(
    "filters devices by their latest hello: %o",
    async ([filter, expected], { services: { devices: store } }) => {
      const result = await store.listDevices({ ...page, ...filter });
      expect(result.items).toEqual(expected);
      expect(result.total).toBe(expected.length);
    },
  );

  test.for<[number, number, string[], number | null]>([
    [1, 2, ["modem-0001", "modem-0002"], 3],
    [2, 2, ["modem-0002", "router-0001"], null],
    [0, 4, ["ghost-0001", "modem-0001", "modem-0002", "router-0001"], null],
    [4, 2, [], null],
  ])(
    "pages devices at offset %i, limit %i",
    async ([offset, limit, ids, nextOffset], { services: { devices: store } }) => {
      const result = await store.listDevices({ limit, offset });
      expect(result.items.map((d) => d.id)).toEqual(ids);
      expect(result.nextOffset).toBe(nextOffset);
      expect(result.total).toBe(4);
    },
  );

  test("returns one device with its faults newest first", async ({ services: { devices: store } }) => {
    expect(await store.getDevice("modem-0001")).toEqual({
      ...MODEM1,
      recentFaults: [LOS, RESYNC_M1_LATE, RESYNC_M1_EARLY],
    });
    expect(await store.getDevice("ghost-0001")).toEqual({ ...GHOST, recentFaults: [] });
  });

  test("knows nothing of a device that never sent anything", async ({ services: { devices: store } }) => {
    expect(await store.getDevice("modem-9999")).toBeUndefined();
  });

  test.for([
    ["mean", [20, 6, 9]],
    ["min", [10, 5, 9]],
    ["max", [30, 7, 9]],
    ["last", [30, 7, 9]],
  ] as const)(
    "aggregates a metric with %s per bucket",
    async ([fn, values], { services: { devices: store } }) => {
      const result = await store.telemetry({
        device: "modem-0001",
        metric: "snr_margin_db",
        fn,
        fromMs: at(0),
        toMs: at(180),
        everyMs: 60_000,
      });
      expect(result).toEqual(
        ok({
          device: "modem-0001",
          metric: "snr_margin_db",
          fn,
          from: iso(at(0)),
          to: iso(at(180)),
          everyMs: 60_000,
          points: values.map((value, i) => ({ time: iso(at(i * 60)), value })),
        }),
      );
    },
  );

  test("starts the buckets at from, not at a multiple of every", async ({ services: { devices: store } }) => {
    const result = await store.telemetry({
      device: "modem-0001",
      metric: "snr_margin_db",
      fn: "mean",
      fromMs: at(30),
      toMs: at(150),
      everyMs: 60_000,
    });
    expect(result.ok && result.value.points).toEqual([
      { time: iso(at(30)), value: 17.5 },
      { time: iso(at(90)), value: 8 },
    ]);
  });

  test("gives the last value of a boolean metric and null for an empty bucket", async ({
    services: { devices: store },
  }) => {
    const result = await store.telemetry({
      device: "modem-0001",
      metric: "link_up",
      fn: "last",
      fromMs: at(0),
      toMs: at(180),
      everyMs: 60_000,
    });
    expect(result.ok && result.value.points).toEqual([
      { time: iso(at(0)), value: true },
      { time: iso(at(60)), value: false },
      { time: iso(at(120)), value: null },
    ]);
  });

  test("refuses to average a boolean metric", async ({ services: { devices: store } }) => {
    const query = { device: "modem-0001", metric: "link_up", fromMs: at(0), toMs: at(180), everyMs: 60_000 };
    expect(await store.telemetry({ ...query, fn: "mean" })).toEqual(err("not_numeric"));
  });

  test("returns no points for a metric the device never reported", async ({
    services: { devices: store },
  }) => {
    const query = {
      metric: "never_sent",
      fn: "mean",
      fromMs: at(0),
      toMs: at(180),
      everyMs: 60_000,
    } as const;
    const result = await store.telemetry({ ...query, device: "modem-0001" });
    expect(result.ok && result.value.points).toEqual([]);
    const other = await store.telemetry({ ...query, metric: "snr_margin_db", device: "modem-0002" });
    expect(other.ok && other.value.points).toEqual([]);
  });

  test("says when the device of a series is unknown", async ({ services: { devices: store } }) => {
    const query = {
      metric: "snr_margin_db",
      fn: "mean",
      fromMs: at(0),
      toMs: at(180),
      everyMs: 60_000,
    } as const;
    expect(await store.telemetry({ ...query, device: "modem-9999" })).toEqual(err("unknown_device"));
  });

  const window = { fromMs: at(0), toMs: at(3600), ...page };

  test("lists faults newest first, with a clock-skewed one at the time the device claimed", async ({
    services: { faults },
  }) => {
    expect(await faults.listFaults(window)).toEqual(ok({ items: ALL_FAULTS, nextOffset: null }));
  });

  test.for([
    ["model and code", { model: "M1", code: "DSL_RESYNC" }, [RESYNC_M1_LATE, RESYNC_M1_EARLY]],
    ["code", { code: "DSL_RESYNC" }, [RESYNC_M1_LATE, RESYNC_M2, RESYNC_M1_EARLY]],
    ["firmware at the time of the fault", { firmware: "1.0" }, [CLOCK, RESYNC_M2, RESYNC_M1_EARLY]],
    ["kind", { kind: "router" }, [WAN]],
    ["severity", { severity: "critical" }, [LOS]],
    ["device", { device: "modem-0002" }, [CLOCK, RESYNC_M2]],
    ["time, from inclusive and to exclusive", { fromMs: at(45), toMs: at(90) }, [CLOCK, WAN, RESYNC_M2]],
    ["a code nobody reported", { code: "NOPE" }, []],
  ] as const)("filters faults by %s", async ([_name, filter, expected], { services: { faults } }) => {
    expect(await faults.listFaults({ ...window, ...filter })).toEqual(
      ok({ items: expected, nextOffset: null }),
    );
  });

  // Month-long windows: one whose newest day holds no fault but whose newest week holds them all, one whose
  // newest day holds them all. The pages must not depend on which span answered them.
  const month = { fromMs: at(0) - 30 * 24 * HOUR, toMs: at(0) + 2 * 24 * HOUR };
  const monthToNow = { fromMs: at(0) - 30 * 24 * HOUR, toMs: at(3600) };
  test.for<[number, number, FaultRecord[], number | null]>([
    [0, 2, [LOS, RESYNC_M1_LATE], 2],
    [2, 2, [CLOCK, WAN], 4],
    [4, 2, [RESYNC_M2, RESYNC_M1_EARLY], null],
    [5, 2, [RESYNC_M1_EARLY], null],
    [0, 6, ALL_FAULTS, null],
    [0, 5, ALL_FAULTS.slice(0, 5), 5],
    [6, 2, [], null],
  ])(
    "pages faults at offset %i, limit %i, in an hour's window and in a month's",
    async ([offset, limit, items, nextOffset], { services: { faults } }) => {
      expect(await faults.listFaults({ ...window, offset, limit })).toEqual(ok({ items, nextOffset }));
      expect(await faults.listFaults({ ...month, offset, limit })).toEqual(ok({ items, nextOffset }));
      expect(await faults.listFaults({ ...monthToNow, offset, limit })).toEqual(ok({ items, nextOffset }));
    },
  );

  test("knows no faults of a device that never sent anything", async ({ services: { faults } }) => {
    expect(await faults.listFaults({ ...window, device: "modem-9999" })).toEqual(err("unknown_device"));
  });

  test("escapes a value so that it cannot change the query", async ({ services: { faults } }) => {
    const injected = await faults.listFaults({ ...window, code: "x' OR code =~ /./ OR code = 'y" });
    expect(injected).toEqual(ok({ items: [], nextOffset: null }));
  });

  test("matches labels with the punctuation the alphabet allows", async ({ services: { faults } }) => {
    expect(await faults.listFaults({ ...window, code: "A/B (x)#1: +ü.-_" })).toEqual(
      ok({ items: [], nextOffset: null }),
    );
  });

  test.for<[Partial<DeviceListFilter>, string[]]>([
    [{ q: "modem" }, ["modem-0001", "modem-0002"]],
    [{ q: "sn-r" }, ["router-0001"]],
    [{ q: "m2" }, ["modem-0002"]],
    [{ serial: "SN-1b" }, ["modem-0001"]],
    [{ serial: "SN-1" }, []],
    [{ q: "nothing" }, []],
  ])("finds devices by %o", async ([filter, ids], { services: { devices } }) => {
    const result = await devices.listDevices({ ...page, ...filter });
    expect(result.items.map((d) => d.id)).toEqual(ids);
  });

  test("summarises a device: every event at the device's time, its data an object", async ({
    services: { devices },
  }) => {
    const summary = await devices.deviceSummary("modem-0002");
    expect(summary?.recentEvents).toEqual([
      { type: "reboot", ts: iso(at(180)), receivedAt: iso(at(180)), data: { reason: "watchdog" } },
      {
        type: "door_open",
        ts: iso(CLAIMED_MS),
        receivedAt: iso(at(170)),
        data: { door: "front", open: true, count: 2 },
      },
    ]);
    expect(summary).toMatchObject({
      ...MODEM2,
      recentFaults: [CLOCK, RESYNC_M2],
      issues: { available: false },
    });
    expect(await devices.deviceSummary("modem-9999")).toBeUndefined();
  });
});

describe("the HTTP API on InfluxDB", () => {
  const withApi = test.extend("api", async ({ services: { devices, faults } }, { onCleanup }) => {
    const handle = await startApi({
      port: 0,
      devices,
      faults,
      tokens: TOKENS,
      logger: silentLogger,
      metrics: createMetrics(),
      now: () => T0 + HOUR,
    });
    onCleanup(() => handle.close());
    const get = (path: string) =>
      fetch(`${handle.url}${path}`, { headers: { authorization: `Bearer ${VIEWER}` } });
    return { url: handle.url, get };
  });

  withApi("serves devices, a device, its telemetry and faults from InfluxDB", async ({ api }) => {
    const devices = await api.get("/api/v1/devices?kind=modem&limit=1");
    expect(devices.status).toBe(200);
    expect(DevicePage.parse(await devices.json())).toEqual({
      items: [MODEM1],
      total: 2,
      limit: 1,
      offset: 0,
      nextOffset: 1,
    });

    const device = await api.get("/api/v1/devices/modem-0002");
    expect(DeviceDetail.parse(await device.json())).toEqual({ ...MODEM2, recentFaults: [CLOCK, RESYNC_M2] });

    const series = await api.get(
      `/api/v1/devices/modem-0001/telemetry?metric=snr_margin_db&from=${iso(at(0))}&to=${iso(at(120))}&every=1m&fn=max`,
    );
    expect(TelemetrySeries.parse(await series.json()).points).toEqual([
      { time: iso(at(0)), value: 30 },
      { time: iso(at(60)), value: 7 },
    ]);

    const faults = await api.get(`/api/v1/faults?model=M1&code=DSL_RESYNC&from=${iso(at(0))}&limit=1`);
    expect(FaultPage.parse(await faults.json())).toEqual({
      items: [RESYNC_M1_LATE],
      limit: 1,
      offset: 0,
      nextOffset: 1,
      from: iso(at(0)),
      to: iso(T0 + HOUR),
    });
  });

  withApi(
    "defaults the telemetry window to the last 6 hours in at most 500 one-minute buckets",
    async ({ api }) => {
      const response = await api.get("/api/v1/devices/modem-0001/telemetry?metric=snr_margin_db");
      const series = TelemetrySeries.parse(await response.json());
      expect(series).toMatchObject({ from: iso(T0 - 5 * HOUR), to: iso(T0 + HOUR), everyMs: 60_000 });
      expect(series.points).toHaveLength(360);
      const withData = series.points.filter((p) => p.value !== null);
      expect(withData).toEqual([
        { time: iso(at(0)), value: 20 },
        { time: iso(at(60)), value: 6 },
        { time: iso(at(120)), value: 9 },
      ]);
    },
  );

  withApi(
    "finds a device by serial or free text, and refuses a parameter it does not know",
    async ({ api }) => {
      const bySerial = DevicePage.parse(await (await api.get("/api/v1/devices?serial=SN-2")).json());
      expect(bySerial.items.map((d) => d.id)).toEqual(["modem-0002"]);
      const unknownSerial = DevicePage.parse(await (await api.get("/api/v1/devices?serial=SN-404")).json());
      expect(unknownSerial).toMatchObject({ items: [], total: 0 });
      const search = DevicePage.parse(await (await api.get("/api/v1/devices?q=ROUTER")).json());
      expect(search.items.map((d) => d.id)).toEqual(["router-0001"]);
      const unknown = await api.get("/api/v1/devices?isp=isp1");
      expect(unknown.status).toBe(400);
      expect(await unknown.json()).toMatchObject({
        error: { code: "BAD_REQUEST", message: expect.stringContaining("isp") },
      });
    },
  );

  withApi("answers 404 for the faults of a device that never sent anything", async ({ api }) => {
    const response = await api.get("/api/v1/faults?device=modem-9999");
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({
      error: { code: "NOT_FOUND", message: 'no device "modem-9999"' },
    });
    expect((await api.get("/api/v1/faults?device=modem-0002")).status).toBe(200);
  });

  withApi("serves the summary with event data as an object and device times", async ({ api }) => {
    const response = await api.get("/api/v1/devices/modem-0002/summary");
    expect(response.status).toBe(200);
    const summary = DeviceSummaryResponse.parse(await response.json());
    expect(summary.recentEvents[1]).toEqual({
      type: "door_open",
      ts: iso(CLAIMED_MS),
      receivedAt: iso(at(170)),
      data: { door: "front", open: true, count: 2 },
    });
    expect((await api.get("/api/v1/devices/modem-9999/summary")).status).toBe(404);
  });

  withApi("answers 404 for an unknown device and 400 for averaging a boolean", async ({ api }) => {
    expect((await api.get("/api/v1/devices/modem-9999")).status).toBe(404);
    expect((await api.get("/api/v1/devices/modem-9999/telemetry?metric=snr_margin_db")).status).toBe(404);
    const boolean = await api.get("/api/v1/devices/modem-0001/telemetry?metric=link_up");
    expect(boolean.status).toBe(400);
    expect(await boolean.json()).toEqual({
      error: { code: "BAD_REQUEST", message: 'metric "link_up" is not a number: only fn=last applies to it' },
    });
  });

  withApi.for(["107000d", "99999999999999999999999s"])(
    "answers 400, never 500, for a bucket width InfluxDB cannot hold: every=%s",
    async (every, { api }) => {
      const response = await api.get(
        `/api/v1/devices/modem-0001/telemetry?metric=snr_margin_db&every=${every}`,
      );
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: "BAD_REQUEST" } });
    },
  );

  withApi(
    "takes the widest bucket width, the longest window (1970 to 2200), in one bucket",
    async ({ api }) => {
      const response = await api.get(
        `/api/v1/devices/modem-0001/telemetry?metric=snr_margin_db&fn=max&every=84006d&from=${iso(at(0))}&to=${iso(at(180))}`,
      );
      expect(response.status).toBe(200);
      expect(TelemetrySeries.parse(await response.json()).points).toEqual([{ time: iso(at(0)), value: 30 }]);
    },
  );

  withApi("reports a reachable InfluxDB without a token", async ({ api }) => {
    const response = await fetch(`${api.url}/api/v1/health`);
    expect(response.status).toBe(200);
    expect(Health.parse(await response.json())).toMatchObject({
      status: "ok",
      influx: { reachable: true },
      journalBacklog: null,
      connectedDevices: null,
    });
  });
});

describe("the HTTP API's limits over a socket", () => {
  const limited = test.extend("limited", async ({ services: { devices, faults } }, { onCleanup }) => {
    const metrics = createMetrics();
    const handle = await startApi({
      port: 0,
      devices,
      faults,
      tokens: TOKENS,
      logger: silentLogger,
      metrics,
      limits: { rate: 1, burst: 2, maxBodyBytes: 1024 },
      // The clock stands still: no bucket refills during the test.
      now: () => T0 + HOUR,
    });
    onCleanup(() => handle.close());
    return { url: handle.url, metrics };
  });

  limited(
    "keys requests without a token by the peer's address and answers 429 with Retry-After",
    async ({ limited: api }) => {
      const statuses: number[] = [];
      let last = new Response();
      for (let i = 0; i < 3; i++) {
        last = await fetch(`${api.url}/api/v1/devices`, {
          headers: { authorization: "Bearer a-guess-0001" },
        });
        statuses.push(last.status);
      }
      expect(statuses).toEqual([401, 401, 429]);
      expect(last.headers.get("retry-after")).toBe("1");
      expect(await last.json()).toMatchObject({ error: { code: "RATE_LIMITED" } });
      expect((await api.metrics.apiRateLimited.get()).values[0]?.value).toBe(1);
      const valid = await fetch(`${api.url}/api/v1/devices`, {
        headers: { authorization: `Bearer ${VIEWER}` },
      });
      expect(valid.status).toBe(200);
      expect((await fetch(`${api.url}/api/v1/health`)).status).toBe(200);
    },
  );

  limited(
    "answers 413 to a body over the limit without reading it, and goes on serving",
    async ({ limited: api }) => {
      const response = await fetch(`${api.url}/api/v1/devices`, {
        method: "POST",
        headers: { authorization: `Bearer ${VIEWER}`, "content-type": "application/json" },
        body: JSON.stringify({ text: "x".repeat(1_000_000) }),
      });
      expect(response.status).toBe(413);
      expect(await response.json()).toEqual({
        error: { code: "PAYLOAD_TOO_LARGE", message: "the request body is larger than 1024 bytes" },
      });
      const next = await fetch(`${api.url}/api/v1/devices`, {
        headers: { authorization: `Bearer ${VIEWER}` },
      });
      expect(next.status).toBe(200);
    },
  );
});

describe("the HTTP API without InfluxDB", () => {
  const unreachable = createInflux({ url: "http://127.0.0.1:1", database: "nowhere", rawRetention: "1d" });

  test("reports 503 from health and UNAVAILABLE from a query", async () => {
    const services = createInfluxDeviceServices(unreachable, {
      pingTimeoutMs: 500,
      directory: { refreshEveryMs: 0 },
    });
    const handle = await startApi({
      port: 0,
      devices: services.devices,
      faults: services.faults,
      tokens: TOKENS,
      logger: silentLogger,
      metrics: createMetrics(),
      status: () => ({ journalBacklog: 7, connectedDevices: 3 }),
    });
    try {
      const health = await fetch(`${handle.url}/api/v1/health`);
      expect(health.status).toBe(503);
      expect(Health.parse(await health.json())).toMatchObject({
        status: "unavailable",
        influx: { reachable: false },
        journalBacklog: 7,
        connectedDevices: 3,
      });
      const devices = await fetch(`${handle.url}/api/v1/devices`, {
        headers: { authorization: `Bearer ${VIEWER}` },
      });
      expect(devices.status).toBe(503);
      expect(await devices.json()).toEqual({
        error: { code: "UNAVAILABLE", message: "the database is not reachable, try again later" },
      });
    } finally {
      services.close();
      await handle.close();
    }
  });
});
