import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test as base, describe, expect } from "vitest";
import type { DeviceMetaRecord } from "../../ingest/journal.js";
import { Journal } from "../../ingest/journal.js";
import { activityPoint, deviceTags, messagePoints } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
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
import { createRollupReader, type RollupView, type SumQuery } from "../../storage/rollup-reader.js";
import type { Point } from "../../storage/schema.js";
import { testDatabase } from "../support/influx.js";

// Rollups computed from raw points written as the ingest writes them, checked against counts worked out by
// hand, and the runner that keeps them current from the journal's dirty marks.

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const D1 = Date.UTC(2024, 4, 1);
const D2 = D1 + DAY;

const meta = (model: string, firmware: string): DeviceMetaRecord => ({
  kind: "modem",
  model,
  firmware,
  hardware: "a",
  region: "eu",
  isp: "i",
  serial: "s",
});
const M1 = meta("M1", "1.0");
const M2 = meta("M2", "2.0");
const active = (id: string, m: DeviceMetaRecord, hourMs: number) =>
  activityPoint(deviceTags(id, m), hourMs, 60_000);
let seq = 0;
function fault(id: string, m: DeviceMetaRecord, ts: number, code: string): Point[] {
  seq += 1;
  const ctx = {
    meta: m,
    receivedMs: ts,
    clockSkewFutureMs: DAY,
    clockSkewPastMs: 400 * DAY,
    discriminator: seq,
  };
  const body = { ts, seq, code, severity: "error" as const };
  return messagePoints({ channel: "fault", deviceId: id, body }, ctx).records.map((r) => r.point);
}

// Hours with activity, by device:
//   a (M1): D1 22:00, D1 23:00, D2 00:00 … D2 23:00 (whole day), with faults X at D1 22:30 and D2 05:10
//   b (M1): D2 03:00, fault X at D2 03:20 and Y at D2 03:40
//   c (M2): D1 23:00
// Window D1 22:00 – D2 24:00: hours 22 and 23 of D1 come from hour sets, D2 from its day set.
const HISTORY: Point[] = [
  active("a", M1, D1 + 22 * HOUR),
  active("a", M1, D1 + 23 * HOUR),
  ...Array.from({ length: 24 }, (_, h) => active("a", M1, D2 + h * HOUR)),
  ...fault("a", M1, D1 + 22 * HOUR + 30 * 60_000, "X"),
  ...fault("a", M1, D2 + 5 * HOUR + 10 * 60_000, "X"),
  active("b", M1, D2 + 3 * HOUR),
  ...fault("b", M1, D2 + 3 * HOUR + 20 * 60_000, "X"),
  ...fault("b", M1, D2 + 3 * HOUR + 40 * 60_000, "Y"),
  active("c", M2, D1 + 23 * HOUR),
];

type Db = Awaited<ReturnType<typeof testDatabase>>;
const test = base.extend<{ db: Db; influx: InfluxDB; write: PointWriter }>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  db: async ({}, use) => {
    const db = await testDatabase("rollups");
    await ensureSchema(createInflux(db), db);
    await createPointWriter(db)(HISTORY);
    await use(db);
    await db.drop();
  },
  influx: async ({ db }, use) => use(createInflux(db)),
  write: async ({ db }, use) => use(createPointWriter(db)),
});

const hoursOf = (points: Point[]) => points.map((p) => Number(BigInt(p.timeNs) / 1_000_000n));
const byModel = (s: { model: string }) => s.model;

describe("rollups", () => {
  test("count exposure, faults and distinct devices per hour, day and window", async ({ influx, write }) => {
    const result = await createRollups(influx, write).recompute(hoursOf(HISTORY));
    expect(result).toMatchObject({ hours: 26, days: 2 });

    const [cohorts = []] = await queryGroups(influx, [
      `SELECT sum("hours") AS "hours", sum("faults_error") AS "faults" FROM "long"."cohort_1h" GROUP BY "model"`,
    ]);
    const totals = Object.fromEntries(cohorts.map((g) => [g.tags.model, g.rows[0]]));
    expect(totals.M1).toMatchObject({ hours: 27, faults: 4 });
    expect(totals.M2).toMatchObject({ hours: 1, faults: 0 });

    const [fingerprints = []] = await queryGroups(influx, [
      `SELECT "key", "first_ms", "last_ms" FROM "long"."fingerprint" GROUP BY "fingerprint"`,
    ]);
    expect(
      fingerprints.map((g) => g.rows[0]).sort((a, b) => String(a?.key).localeCompare(String(b?.key))),
    ).toEqual([
      expect.objectContaining({
        key: "modem/M1/X",
        first_ms: D1 + 22 * HOUR + 30 * 60_000,
        last_ms: D2 + 5 * HOUR + 10 * 60_000,
      }),
      expect.objectContaining({ key: "modem/M1/Y", first_ms: D2 + 3 * HOUR + 40 * 60_000 }),
    ]);

    const window = { fromMs: D1 + 22 * HOUR, toMs: D2 + DAY };
    const view = await createRollupReader(influx).load([
      window,
      { fromMs: D1 + 23 * HOUR, toMs: D2 + 3 * HOUR },
    ]);
    expect(Object.fromEntries(view.count("active", byModel))).toEqual({ M1: 2, M2: 1 });
    expect(Object.fromEntries(view.count("faulty", byModel))).toEqual({ M1: 2 });
    // X and Y merged into one issue: device b had both and counts once.
    expect(Object.fromEntries(view.count("fault", () => "X+Y"))).toEqual({ "X+Y": 2 });
    const modelOf = (members: Map<string, { model: string }>) =>
      Object.fromEntries([...members].map(([id, s]) => [id, s.model]));
    expect(modelOf(view.members("active"))).toEqual({ a: "M1", b: "M1", c: "M2" });
    expect(modelOf(view.members("faulty", { fromMs: D1 + 23 * HOUR, toMs: D2 + 3 * HOUR }))).toEqual({});
    // D1 23:00 – D2 03:00 (hour sets only): a and c; b reported at 03:00, outside.
    expect(
      Object.fromEntries(view.count("active", byModel, { fromMs: D1 + 23 * HOUR, toMs: D2 + 3 * HOUR })),
    ).toEqual({ M1: 1, M2: 1 });
  });

  test("count late data once its hour is recomputed, and readers see the new revision", async ({
    influx,
    write,
  }) => {
    const rollups = createRollups(influx, write);
    await rollups.recompute(hoursOf(HISTORY));
    const sets = createRollupReader(influx);
    const window = { fromMs: D1, toMs: D2 + DAY };
    // The day D1 whole (its day rollup) and D2's first 6 hours (hour rollups): both kinds of bucket.
    const exposure: SumQuery = {
      rollup: { hourly: "cohort1h", daily: "cohort1d" },
      select: `sum("hours") AS "hours"`,
      where: "",
      groupBy: ["model"],
    };
    const hoursByModel = (view: RollupView) => {
      const totals: Record<string, number> = {};
      for (const g of view.sums(exposure, { fromMs: D1, toMs: D2 + 6 * HOUR })) {
        const model = g.tags.model ?? "";
        totals[model] = (totals[model] ?? 0) + Number(g.rows[0]?.hours ?? 0);
      }
      return totals;
    };
    const before = await sets.load([window, { fromMs: D1, toMs: D2 + 6 * HOUR }], [exposure]);
    expect(Object.fromEntries(before.count("active", byModel))).toEqual({ M1: 2, M2: 1 });
    const hoursBefore = hoursByModel(before);

    // Device d flushes its buffer: an hour of D1 that was rolled up already, and a day-old fault.
    const late = [active("d", M2, D1 + 5 * HOUR), ...fault("d", M2, D1 + 5 * HOUR + 60_000, "X")];
    await write(late);
    expect(Object.fromEntries((await sets.load([window])).count("active", byModel))).toEqual({
      M1: 2,
      M2: 1,
    });
    expect(hoursByModel(await sets.load([window, { fromMs: D1, toMs: D2 + 6 * HOUR }], [exposure]))).toEqual(
      hoursBefore,
    );
    // A reader that trusts revisions for an hour keeps answering what it read.
    const trusting = createRollupReader(influx, { revisionTtlMs: 3_600_000 });
    await trusting.load([window]);
    await rollups.recompute(hoursOf(late));
    expect(Object.fromEntries((await trusting.load([window])).count("active", byModel))).toEqual({
      M1: 2,
      M2: 1,
    });
    const view = await sets.load([window, { fromMs: D1, toMs: D2 + 6 * HOUR }], [exposure]);
    expect(Object.fromEntries(view.count("active", byModel))).toEqual({ M1: 2, M2: 2 });
    expect(Object.fromEntries(view.count("faulty", byModel))).toEqual({ M1: 2, M2: 1 });
    // The cached day row of D1 gave way to the recomputed one: one more device-hour for M2.
    expect(hoursByModel(view)).toEqual({ ...hoursBefore, M2: (hoursBefore.M2 ?? 0) + 1 });
  });
});

describe("the rollup reader", () => {
  test("reads a bucket once for loads that ask for it at the same time, and only the set kinds asked for", async ({
    influx,
    write,
  }) => {
    await createRollups(influx, write).recompute(hoursOf(HISTORY));
    const statements: string[] = [];
    const counting = new Proxy(influx, {
      get(target, key, receiver) {
        if (key !== "query") return Reflect.get(target, key, receiver);
        return (query: string | string[], ...rest: unknown[]) => {
          statements.push(...[query].flat());
          return (target.query as (...args: unknown[]) => unknown)(query, ...rest);
        };
      },
    });
    const window = { fromMs: D1 + 22 * HOUR, toMs: D2 + DAY };
    const setReads = () => statements.filter((q) => q.includes("device_set"));

    const alone = await createRollupReader(counting).load([window], [], { sets: ["active"] });
    const once = setReads().length;
    expect(once).toBeGreaterThan(0);
    expect(setReads().every((q) => q.includes(`"set" = 'active'`))).toBe(true);
    expect(() => alone.count("faulty", byModel)).toThrow(/not loaded/);

    statements.length = 0;
    const reader = createRollupReader(counting);
    const views = await Promise.all([1, 2, 3].map(() => reader.load([window], [], { sets: ["active"] })));
    expect(setReads()).toHaveLength(once);
    for (const view of views)
      expect(Object.fromEntries(view.count("active", byModel))).toEqual({ M1: 2, M2: 1 });
  });
});

describe("issue rollups", () => {
  // On top of HISTORY: a's firmware moves to 1.1 before another X; e, in another region, has two X.
  const M1_NEW = meta("M1", "1.1");
  const M1_US = { ...M1, region: "us" };
  const EXTRA: Point[] = [
    ...fault("a", M1_NEW, D2 + 6 * HOUR, "X"),
    ...fault("e", M1_US, D2 + 7 * HOUR, "X"),
    ...fault("e", M1_US, D2 + 7 * HOUR + 30 * 60_000, "X"),
  ];
  const fingerprintIds = async (influx: InfluxDB) => {
    const [found = []] = await queryGroups(influx, [
      `SELECT "key" FROM "long"."fingerprint" GROUP BY "fingerprint"`,
    ]);
    return Object.fromEntries(found.map((g) => [String(g.rows[0]?.key), g.tags.fingerprint ?? ""]));
  };

  test("count an issue's devices per firmware and region, and tally each device's faults", async ({
    influx,
    write,
  }) => {
    await write(EXTRA);
    const rollups = createRollups(influx, write);
    await rollups.recompute(hoursOf([...HISTORY, ...EXTRA]));
    const ids = await fingerprintIds(influx);
    const [x = "", y = ""] = [ids["modem/M1/X"], ids["modem/M1/Y"]];
    const window = { fromMs: D1 + 22 * HOUR, toMs: D2 + DAY };
    const firstHours = { fromMs: D1 + 22 * HOUR, toMs: D2 };

    const check = async () => {
      const view = await createRollupReader(influx).load([window, firstHours], [], { tallies: [x, y] });
      const ofX = (s: { fingerprint: string }) => s.fingerprint === x;
      expect(Object.fromEntries(view.count("fault_fw", (s) => (ofX(s) ? s.firmware : undefined)))).toEqual({
        "1.0": 3,
        "1.1": 1,
      });
      expect(Object.fromEntries(view.count("fault_region", (s) => (ofX(s) ? s.region : undefined)))).toEqual({
        eu: 2,
        us: 1,
      });
      const byDevice = (tallies: Array<{ device: string }>) =>
        Object.fromEntries(tallies.map(({ device, ...t }) => [device, t]));
      expect(byDevice(view.deviceTallies([x]))).toEqual({
        a: { n: 3, lastMs: D2 + 6 * HOUR, firmware: "1.1" },
        b: { n: 1, lastMs: D2 + 3 * HOUR + 20 * 60_000, firmware: "1.0" },
        e: { n: 2, lastMs: D2 + 7 * HOUR + 30 * 60_000, firmware: "1.0" },
      });
      expect(byDevice(view.deviceTallies([x, y])).b).toEqual({
        n: 2,
        lastMs: D2 + 3 * HOUR + 40 * 60_000,
        firmware: "1.0",
      });
      // The hours before D2 alone: a's first fault.
      expect(byDevice(view.deviceTallies([x], firstHours))).toEqual({
        a: { n: 1, lastMs: D1 + 22 * HOUR + 30 * 60_000, firmware: "1.0" },
      });
      expect(() => view.deviceTallies(["not-loaded"])).toThrow(/not loaded/);
    };
    await check();
    // A recompute of the same hours changes nothing.
    await rollups.recompute(hoursOf([...HISTORY, ...EXTRA]));
    await createRollups(influx, write).recompute(hoursOf(EXTRA));
    await check();
  });
});

describe("RollupRunner", () => {
  test("recomputes the hours the journal marks and clears their marks", async ({ influx, write }) => {
    const dir = await mkdtemp(join(tmpdir(), "fieldq-rollup-"));
    const journal = await Journal.open({ dir, maxBytes: 1024 ** 2, logger: silentLogger });
    const metrics = createMetrics();
    const followed: number[] = [];
    const runner = new RollupRunner({
      source: journal,
      rollups: createRollups(influx, write),
      logger: silentLogger,
      metrics,
      intervalMs: 10,
      after: (hours) => {
        followed.push(...hours);
        // A failing follower is logged and changes nothing for the rollups.
        throw new Error("follower failed");
      },
    });
    try {
      runner.start();
      await journal.commit([], [], 0, new Set(hoursOf(HISTORY).map((ms) => Math.floor(ms / HOUR) * HOUR)));
      await expect.poll(() => journal.dirty().size, { timeout: 20_000 }).toBe(0);
      const view = await createRollupReader(influx).load([{ fromMs: D1, toMs: D2 + DAY }]);
      expect(Object.fromEntries(view.count("active", byModel))).toEqual({ M1: 2, M2: 1 });
      expect((await metrics.rollupHours.get()).values[0]?.value).toBe(26);
      // The after hook saw every recomputed hour once.
      expect(followed.sort((a, b) => a - b)).toEqual(
        [...new Set(hoursOf(HISTORY).map((ms) => Math.floor(ms / HOUR) * HOUR))].sort((a, b) => a - b),
      );
    } finally {
      await runner.stop();
      await journal.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
