import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test as base, describe, expect } from "vitest";
import type { DeviceMetaRecord } from "../../ingest/journal.js";
import { Journal } from "../../ingest/journal.js";
import { activityPoint, deviceTags, messagePoints, rejectionPoint } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { hoursInOlderFormat } from "../../rollup/rebuild.js";
import { createRollups } from "../../rollup/rollups.js";
import { RollupRunner } from "../../rollup/runner.js";
import {
  createInflux,
  createPointWriter,
  ensureSchema,
  type InfluxDB,
  type PointWriter,
} from "../../storage/influx.js";
import { queryGroups } from "../../storage/influxql.js";
import { createRollupReader } from "../../storage/rollup-reader.js";
import { type DeviceCohortTally, RATINGS } from "../../storage/rollup-schema.js";
import { type Point, pointTimeNs } from "../../storage/schema.js";
import { testDatabase } from "../support/influx.js";

// device_cohort computed from raw points written as the ingest writes them, read back per window and
// compared with tallies worked out by hand; and how an install whose rollups predate it gets them.

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const D1 = Date.UTC(2024, 4, 1);
const D2 = D1 + DAY;

const meta = (firmware: string, region = "eu"): DeviceMetaRecord => ({
  kind: "printer",
  model: "Mk3",
  firmware,
  hardware: "a",
  region,
  isp: "i",
  serial: "s",
});
const V10 = meta("1.0");
const V11 = meta("1.1");
const V11US = meta("1.1", "us");
const CLOG = "NOZZLE:CLOG";
const DRIFT = "BED/drift (x)";

const active = (id: string, m: DeviceMetaRecord, hourMs: number) =>
  activityPoint(deviceTags(id, m), hourMs, MIN);
let seq = 0;
const ctxOf = (m: DeviceMetaRecord, ts: number) => ({
  meta: m,
  receivedMs: ts,
  clockSkewFutureMs: DAY,
  clockSkewPastMs: 400 * DAY,
  discriminator: ++seq,
});
const fault = (id: string, m: DeviceMetaRecord, ts: number, code: string, severity: "error" | "warning") =>
  messagePoints(
    { channel: "fault", deviceId: id, body: { ts, seq: ++seq, code, severity } },
    ctxOf(m, ts),
  ).records.map((r) => r.point);
const reboot = (id: string, m: DeviceMetaRecord, ts: number) =>
  messagePoints(
    {
      channel: "event",
      deviceId: id,
      body: { ts, seq: ++seq, type: "reboot", data: { reason: "watchdog" } },
    },
    ctxOf(m, ts),
  ).records.map((r) => r.point);
const rating = (id: string, m: DeviceMetaRecord, ts: number, value: number) =>
  messagePoints(
    { channel: "event", deviceId: id, body: { ts, seq: ++seq, type: "feedback", data: { rating: value } } },
    ctxOf(m, ts),
  ).records.map((r) => r.point);
const rejection = (id: string, m: DeviceMetaRecord, ts: number) =>
  rejectionPoint(
    deviceTags(id, m),
    { receivedMs: ts, discriminator: ++seq },
    {
      reason: "invalid_schema",
      topic: `fieldq/v1/${id}/telemetry`,
      detail: "bad",
      bytes: 10,
    },
  );
const hoursFrom = (startMs: number, n: number) => Array.from({ length: n }, (_, h) => startMs + h * HOUR);

// p1 (1.0, eu): D1 22:00 and 23:00, all of D2; CLOG at D1 22:10 and D2 05:00, DRIFT at D2 06:00, a reboot at
//   D2 07:00, a rating of 3 at D2 08:00.
// p2 updates mid-D2: 1.0 for D2 00:00-11:59 (CLOG at 02:00), 1.1 from 12:00 (CLOG twice at 14:00, rating 9
//   at 13:00).
// p3 (1.1, us): D2 10:00, one refused message then.
const HISTORY: Point[] = [
  ...[D1 + 22 * HOUR, D1 + 23 * HOUR, ...hoursFrom(D2, 24)].map((h) => active("p1", V10, h)),
  ...fault("p1", V10, D1 + 22 * HOUR + 10 * MIN, CLOG, "error"),
  ...fault("p1", V10, D2 + 5 * HOUR, CLOG, "error"),
  ...fault("p1", V10, D2 + 6 * HOUR, DRIFT, "warning"),
  ...reboot("p1", V10, D2 + 7 * HOUR),
  ...rating("p1", V10, D2 + 8 * HOUR, 3),
  ...hoursFrom(D2, 12).map((h) => active("p2", V10, h)),
  ...hoursFrom(D2 + 12 * HOUR, 12).map((h) => active("p2", V11, h)),
  ...fault("p2", V10, D2 + 2 * HOUR, CLOG, "error"),
  ...fault("p2", V11, D2 + 14 * HOUR, CLOG, "error"),
  ...fault("p2", V11, D2 + 14 * HOUR + MIN, CLOG, "error"),
  ...rating("p2", V11, D2 + 13 * HOUR, 9),
  active("p3", V11US, D2 + 10 * HOUR),
  rejection("p3", V11US, D2 + 10 * HOUR + 5 * MIN),
];
const HOURS = [
  ...new Set(HISTORY.map((p) => Math.floor(Number(BigInt(p.timeNs) / 1_000_000n) / HOUR) * HOUR)),
];

const ratings = (given: Record<number, number> = {}) =>
  Array.from({ length: RATINGS }, (_, r) => given[r] ?? 0);
const tally = (
  device: string,
  m: DeviceMetaRecord,
  counts: Partial<Omit<DeviceCohortTally, "device" | "kind" | "model" | "firmware" | "region">>,
): DeviceCohortTally => ({
  device,
  kind: m.kind,
  model: m.model,
  firmware: m.firmware,
  region: m.region ?? "",
  hours: 0,
  reboots: 0,
  rejections: 0,
  ratings: ratings(),
  faults: [],
  ...counts,
});
/** Sorted by device and firmware, each device's faults by severity and code: comparable. */
const ordered = (tallies: DeviceCohortTally[]) =>
  tallies
    .map((t) => ({
      ...t,
      faults: [...t.faults].sort((a, b) =>
        `${a.severity}=${a.code}`.localeCompare(`${b.severity}=${b.code}`),
      ),
    }))
    .sort((a, b) => `${a.device} ${a.firmware}`.localeCompare(`${b.device} ${b.firmware}`));

type Db = Awaited<ReturnType<typeof testDatabase>>;
const test = base.extend<{ db: Db; influx: InfluxDB; write: PointWriter }>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  db: async ({}, use) => {
    const db = await testDatabase("device_cohorts");
    await ensureSchema(createInflux(db), db);
    await createPointWriter(db)(HISTORY);
    await use(db);
    await db.drop();
  },
  influx: async ({ db }, use) => use(createInflux(db)),
  write: async ({ db }, use) => use(createPointWriter(db)),
});

const storedCohortPoints = async (influx: InfluxDB) => {
  const [groups = []] = await queryGroups(influx, [
    `SELECT "entries", "parts" FROM "long"."device_cohort" GROUP BY *`,
  ]);
  return groups
    .flatMap((g) => g.rows.map((r) => JSON.stringify([g.tags, r.time.getTime(), r.entries, r.parts])))
    .sort();
};

describe("device cohort tallies", () => {
  test("add up each device's hours, reboots, rejections, ratings and faults per cohort over a window", async ({
    influx,
    write,
  }) => {
    await createRollups(influx, write).recompute(HOURS);
    // D1 22:00-24:00 from hour buckets, D2 from its day bucket.
    const window = { fromMs: D1 + 22 * HOUR, toMs: D2 + DAY };
    const hoursOnly = { fromMs: D1 + 23 * HOUR, toMs: D2 + 13 * HOUR };
    const view = await createRollupReader(influx).load([window, hoursOnly], [], { deviceCohorts: true });
    expect(ordered(view.deviceCohorts())).toEqual(
      ordered([
        tally("p1", V10, {
          hours: 26,
          reboots: 1,
          ratings: ratings({ 3: 1 }),
          faults: [
            { severity: "error", code: CLOG, n: 2 },
            { severity: "warning", code: DRIFT, n: 1 },
          ],
        }),
        tally("p2", V10, { hours: 12, faults: [{ severity: "error", code: CLOG, n: 1 }] }),
        tally("p2", V11, {
          hours: 12,
          ratings: ratings({ 9: 1 }),
          faults: [{ severity: "error", code: CLOG, n: 2 }],
        }),
        tally("p3", V11US, { hours: 1, rejections: 1 }),
      ]),
    );
    // D1 23:00 - D2 13:00, hour buckets only: p1's D1 22:00 hour and fault, p2's 1.1 faults and rating are
    // outside; p2's first 1.1 hour (12:00) is in.
    expect(ordered(view.deviceCohorts(hoursOnly))).toEqual(
      ordered([
        tally("p1", V10, {
          hours: 14,
          reboots: 1,
          ratings: ratings({ 3: 1 }),
          faults: [
            { severity: "error", code: CLOG, n: 1 },
            { severity: "warning", code: DRIFT, n: 1 },
          ],
        }),
        tally("p2", V10, { hours: 12, faults: [{ severity: "error", code: CLOG, n: 1 }] }),
        tally("p2", V11, { hours: 1 }),
        tally("p3", V11US, { hours: 1, rejections: 1 }),
      ]),
    );
    const unloaded = await createRollupReader(influx).load([window]);
    expect(() => unloaded.deviceCohorts()).toThrow(/not loaded/);
  });

  test("a recompute of the same hours writes the same tallies, and a reader reads them anew", async ({
    influx,
    write,
  }) => {
    const rollups = createRollups(influx, write);
    await rollups.recompute(HOURS);
    const before = await storedCohortPoints(influx);
    expect(before.length).toBeGreaterThan(0);
    const reader = createRollupReader(influx);
    const window = { fromMs: D1, toMs: D2 + DAY };
    const first = ordered((await reader.load([window], [], { deviceCohorts: true })).deviceCohorts());
    // Again by another job, which must read D2's hours back for the day.
    await createRollups(influx, write).recompute([D2 + 14 * HOUR]);
    await rollups.recompute(HOURS);
    expect(await storedCohortPoints(influx)).toEqual(before);
    expect(ordered((await reader.load([window], [], { deviceCohorts: true })).deviceCohorts())).toEqual(
      first,
    );

    // A late fault of p3 reaches the window once its hour is recomputed.
    const late = fault("p3", V11US, D2 + 10 * HOUR + 30 * MIN, CLOG, "error");
    await write(late);
    await createRollups(influx, write).recompute([D2 + 10 * HOUR]);
    const p3 = (await reader.load([window], [], { deviceCohorts: true }))
      .deviceCohorts()
      .find((t) => t.device === "p3");
    expect(p3?.faults).toEqual([{ severity: "error", code: CLOG, n: 1 }]);
  });
});

describe("rollups of an older format", () => {
  test("are found by their rollup_rev, and the runner gives them device_cohort once their hours are marked", async ({
    influx,
    write,
  }) => {
    // As a version before device_cohort left them: a rev without format for every hour and day.
    const rev = (span: string, ms: number): Point => ({
      measurement: "rollup_rev",
      rp: "long",
      tags: { span },
      fields: { rev: { int: 1 } },
      timeNs: pointTimeNs(ms, 0),
    });
    await write([...HOURS.map((h) => rev("1h", h)), rev("1d", D1), rev("1d", D2)]);
    expect(await hoursInOlderFormat(influx)).toEqual([...HOURS].sort((a, b) => a - b));

    const dir = await mkdtemp(join(tmpdir(), "fieldq-device-cohorts-"));
    const journal = await Journal.open({ dir, maxBytes: 1024 ** 2, logger: silentLogger });
    const runner = new RollupRunner({
      source: journal,
      rollups: createRollups(influx, write),
      logger: silentLogger,
      intervalMs: 10,
    });
    try {
      await journal.commit([], [], Date.now(), await hoursInOlderFormat(influx));
      while (await runner.runOnce()) {}
    } finally {
      await journal.close();
      await rm(dir, { recursive: true, force: true });
    }
    expect(await hoursInOlderFormat(influx)).toEqual([]);
    const view = await createRollupReader(influx).load([{ fromMs: D1, toMs: D2 + DAY }], [], {
      deviceCohorts: true,
    });
    expect(
      view
        .deviceCohorts()
        .map((t) => `${t.device} ${t.firmware} ${t.hours}`)
        .sort(),
    ).toEqual(["p1 1.0 26", "p2 1.0 12", "p2 1.1 12", "p3 1.1 1"]);

    // A day whose day rollup alone is older (a crash between its hours and its day) gets one of its hours
    // marked, so the day is redone with it.
    const D0 = D1 - DAY;
    await write([
      { ...rev("1h", D0 + 3 * HOUR), fields: { rev: { int: 1 }, format: { int: 2 } } },
      { ...rev("1h", D0 + 5 * HOUR), fields: { rev: { int: 1 }, format: { int: 2 } } },
      rev("1d", D0),
    ]);
    expect(await hoursInOlderFormat(influx)).toEqual([D0 + 3 * HOUR]);
  });
});
