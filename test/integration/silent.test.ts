import { test as base, describe, expect } from "vitest";
import { createApp } from "../../api/app.js";
import type { Role } from "../../config/env.js";
import {
  DevicePage,
  DeviceSummaryResponse,
  PresencePage,
  SilenceReport,
} from "../../contract/api/devices.js";
import type { Event } from "../../contract/messages.js";
import { HOUR_MS, iso } from "../../contract/time.js";
import type { DecodedMessage } from "../../ingest/decode.js";
import type { DeviceMetaRecord } from "../../ingest/journal.js";
import {
  activityPoint,
  deviceTags,
  messagePoints,
  type PresenceSource,
  presencePoint,
} from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import { createInfluxDeviceServices } from "../../services/devices.js";
import { createInflux, createPointWriter, ensureSchema } from "../../storage/influx.js";
import { createRollupReader } from "../../storage/rollup-reader.js";
import type { Point } from "../../storage/schema.js";
import { deviceStatesOf } from "../support/device-state.js";
import { testDatabase } from "../support/influx.js";
import { rollingUp } from "../support/rollups.js";

// A fleet with known cadences, written with the ingest's own point builders, judged at a pinned NOW.
// Silence: factor 3; M9 has a configured 10 min interval; others learn theirs (floor 60 s, default 1 h
// below 3 samples).

const MINUTE = 60_000;
const DAY = 24 * HOUR_MS;
const NOW = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
const ago = (ms: number) => NOW - ms;

const VIEWER = "viewer-token-silent";
const TOKENS = new Map<string, Role>([[VIEWER, "viewer"]]);

const meta = (model: string, firmware: string): DeviceMetaRecord => ({
  kind: model === "M9" ? "router" : "modem",
  model,
  firmware,
  hardware: "rev-a",
  region: "eu",
  isp: "isp1",
  serial: `SN-${model}`,
});

let discriminator = 0;
const context = (m: DeviceMetaRecord, receivedMs: number) => ({
  meta: m,
  receivedMs,
  clockSkewFutureMs: 10 * MINUTE,
  clockSkewPastMs: 60 * DAY,
  discriminator: ++discriminator,
});

const message = (m: DeviceMetaRecord, msg: DecodedMessage, ms: number) =>
  messagePoints(msg, context(m, ms)).records.map((r) => r.point);

let seq = 0;
const telemetry = (id: string, m: DeviceMetaRecord, ms: number, metrics: Record<string, number | boolean>) =>
  message(m, { channel: "telemetry", deviceId: id, body: [{ ts: ms, seq: ++seq, metrics }] }, ms);
const event = (id: string, m: DeviceMetaRecord, ms: number, body: Omit<Event, "ts" | "seq">) =>
  message(m, { channel: "event", deviceId: id, body: { ...body, ts: ms, seq: ++seq } as Event }, ms);
const presence = (
  id: string,
  m: DeviceMetaRecord,
  ms: number,
  state: "online" | "offline",
  source: PresenceSource,
) => presencePoint(deviceTags(id, m), { receivedMs: ms, discriminator: ++discriminator }, state, source);

/** A hello long ago, one activity hour per cadence step back from the last report, and that report. */
function reporter(
  id: string,
  m: DeviceMetaRecord,
  o: { cadenceMs: number; lastMs: number; samples: number },
) {
  const { model, firmware, kind, hardware, serial, region, isp } = m;
  const points: Point[] = message(
    m,
    { channel: "hello", deviceId: id, body: { kind, model, firmware, hardware, serial, region, isp } },
    o.lastMs - 6 * DAY,
  );
  const step = Math.max(o.cadenceMs, HOUR_MS);
  for (let i = 0; i < o.samples; i++) {
    const hourMs = Math.floor((o.lastMs - i * step) / HOUR_MS) * HOUR_MS;
    points.push(activityPoint(deviceTags(id, m), hourMs, o.cadenceMs));
  }
  points.push(...telemetry(id, m, o.lastMs, { snr_margin_db: 9 }));
  return points;
}

const M1_10 = meta("M1", "1.0");
const M1_11 = meta("M1", "1.1");
const M2 = meta("M2", "2.0");
const M9_30 = meta("M9", "3.0");
const M9_31 = meta("M9", "3.1");

const POINTS: Point[] = [
  // 60 s cadence, reported a minute ago, connected: online. Also the summary's device.
  ...reporter("m1-steady", M1_10, { cadenceMs: MINUTE, lastMs: ago(MINUTE), samples: 5 }),
  presence("m1-steady", M1_10, ago(2 * HOUR_MS), "online", "broker"),
  ...telemetry("m1-steady", M1_10, ago(5 * MINUTE), { snr_margin_db: 10, link_up: true }),
  ...telemetry("m1-steady", M1_10, ago(8 * DAY), { old_metric: 1 }),
  ...event("m1-steady", M1_10, ago(50 * MINUTE), { type: "feedback", data: { rating: 4, comment: "ok" } }),
  ...event("m1-steady", M1_10, ago(45 * MINUTE), { type: "reboot", data: { reason: "user" } }),
  ...event("m1-steady", M1_10, ago(40 * MINUTE), { type: "feedback", data: { rating: 2 } }),
  ...message(
    M1_10,
    {
      channel: "fault",
      deviceId: "m1-steady",
      body: { ts: ago(30 * MINUTE), seq: ++seq, code: "DSL_RESYNC", severity: "warning" },
    },
    ago(30 * MINUTE),
  ),
  // 60 s cadence, last report 10 min ago: silent, though its will said offline. A failed update and an old
  // successful one do not make it "silent after an update".
  ...reporter("m1-will", M1_10, { cadenceMs: MINUTE, lastMs: ago(10 * MINUTE), samples: 5 }),
  ...event("m1-will", M1_10, ago(3 * DAY), {
    type: "firmware_update",
    data: { from: "0.9", to: "1.0", result: "success" },
  }),
  ...event("m1-will", M1_10, ago(20 * MINUTE), {
    type: "firmware_update",
    data: { from: "1.0", to: "1.1", result: "failure" },
  }),
  presence("m1-will", M1_10, ago(3 * HOUR_MS), "online", "broker"),
  presence("m1-will", M1_10, ago(3 * HOUR_MS) + 1000, "online", "device"),
  presence("m1-will", M1_10, ago(8.5 * MINUTE), "offline", "will"),
  // 5 min cadence, disconnected cleanly after its last report: offline, not yet overdue.
  ...reporter("m1-bye", M1_11, { cadenceMs: 5 * MINUTE, lastMs: ago(4 * MINUTE), samples: 4 }),
  presence("m1-bye", M1_11, ago(3 * MINUTE), "offline", "broker"),
  // 5 min cadence, its broker connection dropped 20 min ago but it reported since: online.
  ...reporter("m1-back", M1_11, { cadenceMs: 5 * MINUTE, lastMs: ago(2 * MINUTE), samples: 4 }),
  presence("m1-back", M1_11, ago(HOUR_MS), "online", "broker"),
  presence("m1-back", M1_11, ago(20 * MINUTE), "offline", "broker"),
  // 2 h cadence, last report 4 h ago: online (allowance 6 h).
  ...reporter("m2-slow", M2, { cadenceMs: 2 * HOUR_MS, lastMs: ago(4 * HOUR_MS), samples: 4 }),
  // 2 samples only: the 1 h default, so 4 h without a report is silent; updated an hour before.
  ...reporter("m2-new", M2, { cadenceMs: MINUTE, lastMs: ago(4 * HOUR_MS), samples: 2 }),
  ...event("m2-new", M2, ago(5 * HOUR_MS), {
    type: "firmware_update",
    data: { from: "1.9", to: "2.0", result: "success" },
  }),
  // Learned 60 s, but M9 is configured at 10 min: 20 min without a report is still online.
  ...reporter("m9-config", M9_30, { cadenceMs: MINUTE, lastMs: ago(20 * MINUTE), samples: 5 }),
  // Configured 10 min, 90 min without a report after an update 2 h ago.
  ...reporter("m9-updated", M9_31, { cadenceMs: MINUTE, lastMs: ago(90 * MINUTE), samples: 5 }),
  ...event("m9-updated", M9_30, ago(2 * HOUR_MS), {
    type: "firmware_update",
    data: { from: "3.0", to: "3.1", result: "success" },
  }),
  // Gone for 10 days: silent, but not seen in a 7-day window.
  ...reporter("m1-gone", M1_10, { cadenceMs: MINUTE, lastMs: ago(10 * DAY), samples: 5 }),
];

/** m2-slow's and m2-new's points as written before device times were kept: read on the broker's clock. */
function olderState(point: Point): Point {
  if (point.fields.device !== "m2-slow" && point.fields.device !== "m2-new") return point;
  const { last_report_device_ms: _, update_device_ms: __, ...fields } = point.fields;
  return { ...point, fields };
}

const test = base.extend(
  "services",
  { scope: "file" },
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
  async ({}, { onCleanup }) => {
    const db = await testDatabase("silent");
    const influx = createInflux(db);
    await ensureSchema(influx, db);
    await rollingUp(
      influx,
      createPointWriter(db),
    )([...POINTS, ...deviceStatesOf(POINTS, NOW).map(olderState)]);
    const services = createInfluxDeviceServices(influx, {
      now: () => NOW,
      silence: { expectedIntervals: new Map([["M9", 10 * MINUTE]]) },
      rollups: createRollupReader(influx),
      directory: { refreshEveryMs: 0 },
    });
    onCleanup(async () => {
      services.close();
      await db.drop();
    });
    return services;
  },
);

const page = { limit: 100, offset: 0 };

const EXPECTED: Record<string, [string, number, string]> = {
  "m1-back": ["online", 300, "learned"],
  "m1-bye": ["offline", 300, "learned"],
  // The ingest keeps a device's last gap samples however old (device_state), so its cadence is still known.
  "m1-gone": ["silent", 60, "learned"],
  "m1-steady": ["online", 60, "learned"],
  "m1-will": ["silent", 60, "learned"],
  "m2-new": ["silent", 3600, "default"],
  "m2-slow": ["online", 7200, "learned"],
  "m9-config": ["online", 600, "configured"],
  "m9-updated": ["silent", 600, "configured"],
};

describe("silent devices in InfluxDB", () => {
  test("judges each device's status from its last report and expected interval", async ({
    services: { devices: store },
  }) => {
    const { items, total } = await store.listDevices(page);
    expect(total).toBe(9);
    expect(
      Object.fromEntries(items.map((d) => [d.id, [d.status, d.expectedIntervalS, d.intervalSource]])),
    ).toEqual(EXPECTED);
    const will = items.find((d) => d.id === "m1-will");
    expect(will).toMatchObject({
      online: false,
      lastReport: iso(ago(10 * MINUTE)),
      lastSeen: iso(ago(8.5 * MINUTE)),
    });
  });

  test.for([
    ["silent", ["m1-gone", "m1-will", "m2-new", "m9-updated"]],
    ["offline", ["m1-bye"]],
    ["online", ["m1-back", "m1-steady", "m2-slow", "m9-config"]],
  ] as const)(
    "filters by status %s, before paging",
    async ([status, ids], { services: { devices: store } }) => {
      const all = await store.listDevices({ ...page, status });
      expect(all.items.map((d) => d.id)).toEqual(ids);
      expect(all.total).toBe(ids.length);
      const second = await store.listDevices({ limit: 1, offset: 1, status });
      expect(second.items.map((d) => d.id)).toEqual(ids.slice(1, 2));
      expect(second.nextOffset).toBe(ids.length > 2 ? 2 : null);
    },
  );

  test("combines the status filter with the hello filters", async ({ services: { devices: store } }) => {
    const result = await store.listDevices({ ...page, status: "silent", model: "M9" });
    expect(result.items.map((d) => d.id)).toEqual(["m9-updated"]);
  });

  test("computes silent rates per model and firmware, and who went silent after an update", async ({
    services: { devices: store },
  }) => {
    const report = SilenceReport.parse(await store.silence({ fromMs: ago(7 * DAY), toMs: NOW }));
    expect(report.byModel).toEqual([
      { model: "M1", seen: 4, silent: 1, rate: 0.25 },
      { model: "M2", seen: 2, silent: 1, rate: 0.5 },
      { model: "M9", seen: 2, silent: 1, rate: 0.5 },
    ]);
    expect(report.byFirmware).toEqual([
      { model: "M1", firmware: "1.0", seen: 2, silent: 1, rate: 0.5 },
      { model: "M1", firmware: "1.1", seen: 2, silent: 0, rate: 0 },
      { model: "M2", firmware: "2.0", seen: 2, silent: 1, rate: 0.5 },
      { model: "M9", firmware: "3.0", seen: 1, silent: 0, rate: 0 },
      { model: "M9", firmware: "3.1", seen: 1, silent: 1, rate: 1 },
    ]);
    expect(report.afterUpdate).toEqual({
      withinS: 86_400,
      devices: [
        {
          device: "m2-new",
          model: "M2",
          from: "1.9",
          to: "2.0",
          updatedAt: iso(ago(5 * HOUR_MS)),
          lastReport: iso(ago(4 * HOUR_MS)),
        },
        {
          device: "m9-updated",
          model: "M9",
          from: "3.0",
          to: "3.1",
          updatedAt: iso(ago(2 * HOUR_MS)),
          lastReport: iso(ago(90 * MINUTE)),
        },
      ],
      byModel: [
        { model: "M2", count: 1 },
        { model: "M9", count: 1 },
      ],
      byFirmware: [
        { model: "M2", firmware: "2.0", count: 1 },
        { model: "M9", firmware: "3.1", count: 1 },
      ],
    });
  });

  test("judges silence at the end of a past window", async ({ services: { devices: store } }) => {
    // Three hours ago m2-new had reported an hour before (default 1 h: online), m9-updated was not yet updated.
    const report = await store.silence({ fromMs: ago(DAY), toMs: ago(3 * HOUR_MS) });
    expect(report.byModel.find((r) => r.model === "M2")).toEqual({
      model: "M2",
      seen: 2,
      silent: 0,
      rate: 0,
    });
    expect(report.afterUpdate.devices).toEqual([]);
  });

  test("pages a device's presence history newest first within the window", async ({
    services: { devices: store },
  }) => {
    const window = { device: "m1-will", fromMs: ago(DAY), toMs: NOW };
    expect(await store.presenceHistory({ ...window, limit: 2, offset: 0 })).toEqual({
      items: [
        { time: iso(ago(8.5 * MINUTE)), state: "offline", source: "will" },
        { time: iso(ago(3 * HOUR_MS) + 1000), state: "online", source: "device" },
      ],
      nextOffset: 2,
    });
    expect(await store.presenceHistory({ ...window, limit: 2, offset: 2 })).toEqual({
      items: [{ time: iso(ago(3 * HOUR_MS)), state: "online", source: "broker" }],
      nextOffset: null,
    });
    const lastHour = await store.presenceHistory({ ...window, fromMs: ago(HOUR_MS), ...page });
    expect(lastHour?.items.map((p) => p.source)).toEqual(["will"]);
    expect(await store.presenceHistory({ ...window, device: "m2-slow", ...page })).toEqual({
      items: [],
      nextOffset: null,
    });
    expect(await store.presenceHistory({ ...window, device: "nobody", ...page })).toBeUndefined();
  });

  test("summarises a device for the support desk", async ({ services: { devices: store } }) => {
    const summary = await store.deviceSummary("m1-steady");
    expect(summary).toMatchObject({
      id: "m1-steady",
      model: "M1",
      status: "online",
      expectedIntervalS: 60,
      lastReport: iso(ago(MINUTE)),
      online: true,
      recentPresence: [{ time: iso(ago(2 * HOUR_MS)), state: "online", source: "broker" }],
      // link_up was sent as true: every metric is stored, and read back, as a float.
      metrics: { since: iso(ago(7 * DAY)), values: { snr_margin_db: 9, link_up: 1 } },
      feedback: {
        count: 2,
        mean: 3,
        recent: [
          { time: iso(ago(40 * MINUTE)), receivedAt: iso(ago(40 * MINUTE)), rating: 2, comment: null },
          { time: iso(ago(50 * MINUTE)), receivedAt: iso(ago(50 * MINUTE)), rating: 4, comment: "ok" },
        ],
      },
    });
    expect(summary?.recentFaults.map((f) => [f.code, f.ts])).toEqual([["DSL_RESYNC", iso(ago(30 * MINUTE))]]);
    expect(summary?.recentEvents).toEqual([
      { type: "feedback", ts: iso(ago(40 * MINUTE)), receivedAt: iso(ago(40 * MINUTE)), data: { rating: 2 } },
      {
        type: "reboot",
        ts: iso(ago(45 * MINUTE)),
        receivedAt: iso(ago(45 * MINUTE)),
        data: { reason: "user" },
      },
      {
        type: "feedback",
        ts: iso(ago(50 * MINUTE)),
        receivedAt: iso(ago(50 * MINUTE)),
        data: { rating: 4, comment: "ok" },
      },
    ]);
    expect(await store.deviceSummary("nobody")).toBeUndefined();
  });
});

describe("the silence endpoints on InfluxDB", () => {
  const withApi = test.extend("get", async ({ services: { devices, faults } }) => {
    const app = createApp({
      devices,
      faults,
      tokens: TOKENS,
      logger: silentLogger,
      metrics: createMetrics(),
      now: () => NOW,
    });
    return (path: string) => app.request(path, { headers: { authorization: `Bearer ${VIEWER}` } });
  });

  withApi("lists silent devices and reports silent rates", async ({ get }) => {
    const devices = DevicePage.parse(await (await get("/api/v1/devices?status=silent&limit=2")).json());
    expect(devices.items.map((d) => d.id)).toEqual(["m1-gone", "m1-will"]);
    expect(devices).toMatchObject({ total: 4, nextOffset: 2 });
    const response = await get("/api/v1/silence");
    expect(response.status).toBe(200);
    const report = SilenceReport.parse(await response.json());
    expect(report).toMatchObject({ from: iso(ago(7 * DAY)), to: iso(NOW), factor: 3 });
    expect(report.afterUpdate.devices.map((d) => d.device)).toEqual(["m2-new", "m9-updated"]);
  });

  withApi(
    "serves presence and the summary, without issues when no issue store is wired in",
    async ({ get }) => {
      const history = PresencePage.parse(
        await (await get("/api/v1/devices/m1-will/presence?limit=1")).json(),
      );
      expect(history).toMatchObject({
        limit: 1,
        offset: 0,
        nextOffset: 1,
        from: iso(ago(7 * DAY)),
        to: iso(NOW),
      });
      expect(history.items.map((p) => p.source)).toEqual(["will"]);
      const summary = DeviceSummaryResponse.parse(
        await (await get("/api/v1/devices/m1-will/summary")).json(),
      );
      expect(summary).toMatchObject({
        status: "silent",
        online: false,
        issues: { available: false, items: [] },
      });
    },
  );

  withApi("answers 404 for an unknown device and 400 for bad parameters", async ({ get }) => {
    expect((await get("/api/v1/devices/nobody/summary")).status).toBe(404);
    expect((await get("/api/v1/devices/nobody/presence")).status).toBe(404);
    expect((await get("/api/v1/devices?status=asleep")).status).toBe(400);
    expect((await get(`/api/v1/silence?from=${iso(NOW)}&to=${iso(ago(DAY))}`)).status).toBe(400);
    expect((await get("/api/v1/devices/m1-will/presence?to=soon")).status).toBe(400);
  });
});
