import { test as base, describe, expect } from "vitest";
import { fingerprintId } from "../../analytics/fingerprint.js";
import { replay } from "../../analytics/lifecycle.js";
import type { IssueEvent } from "../../contract/issue-events.js";
import { HOUR_MS } from "../../contract/time.js";
import { faultTopic, helloTopic, telemetryTopic } from "../../contract/topics.js";
import type { DeviceMetaRecord } from "../../ingest/journal.js";
import { activityPoint, deviceTags, messagePoints } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { SettleRunner, settleIssues } from "../../rollup/settle-issues.js";
import { createInflux, createPointWriter, ensureSchema, type PointWriter } from "../../storage/influx.js";
import { queryGroups } from "../../storage/influxql.js";
import { issueEventPoint, readIssueEvents } from "../../storage/issue-queries.js";
import type { Point } from "../../storage/schema.js";
import { testDatabase } from "../support/influx.js";
import { rollingUp } from "../support/rollups.js";
import { startTestStack } from "../support/stack.js";

// Settling runs in the ingest's runner, and there may be two of them (two ingest processes, or one that
// restarted mid-pass): the same system event must land in the log once however many runners compute it.

const T = Date.UTC(2025, 3, 7);
const NOW = T + 12 * HOUR_MS;

const meta = (firmware: string): DeviceMetaRecord => ({
  kind: "printer",
  model: "L1",
  firmware,
  hardware: "h1",
  region: "eu",
  isp: "isp1",
  serial: "SN",
});
const p1 = { id: "printer-0001", meta: meta("1.0") };
const p2 = { id: "printer-0002", meta: meta("2.0") };
const p3 = { id: "printer-0003", meta: meta("2.1") };
type Dev = typeof p1;

const F = fingerprintId("printer/L1/NOZZLE_JAM");
const G = fingerprintId("printer/L1/PAPER_OUT");

let seq = 0;
function fault(device: Dev, ms: number, code: string): Point[] {
  seq += 1;
  const { records } = messagePoints(
    { channel: "fault", deviceId: device.id, body: { ts: ms, seq, code, severity: "error" } },
    {
      meta: device.meta,
      receivedMs: ms + 100,
      clockSkewFutureMs: 600_000,
      clockSkewPastMs: 400 * 24 * HOUR_MS,
      discriminator: seq,
    },
  );
  return records.map((r) => r.point);
}
const active = (device: Dev, hour: number) =>
  activityPoint(deviceTags(device.id, device.meta), T + hour * HOUR_MS);

const released = (fixVersion: string, at: number): IssueEvent => ({
  type: "transition",
  to: "fix_released",
  fixVersion,
  actor: "operator:1",
  at,
});

type Fixture = { influx: ReturnType<typeof createInflux>; db: Awaited<ReturnType<typeof testDatabase>> };

const test = base.extend(
  "fx",
  { scope: "file" },
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
  async ({}, { onCleanup }): Promise<Fixture> => {
    const db = await testDatabase("settle_runner");
    onCleanup(() => db.drop());
    const influx = createInflux(db);
    await ensureSchema(influx, db);
    const write = rollingUp(influx, createPointWriter(db));
    await write([
      // F: a fault on 1.0 before the fix; the fix (2.0) runs 3 device-hours, then the fault recurs on 2.1.
      ...fault(p1, T, "NOZZLE_JAM"),
      active(p1, 0),
      active(p2, 3),
      active(p2, 4),
      active(p3, 5),
      ...fault(p3, T + 7 * HOUR_MS + 600_000, "NOZZLE_JAM"),
      // G: a fix (3.0) no device runs: nothing to settle.
      ...fault(p1, T + HOUR_MS, "PAPER_OUT"),
    ]);
    await createPointWriter(db)([
      issueEventPoint(F, released("2.0", T + 2 * HOUR_MS), 4242),
      issueEventPoint(G, released("3.0", T + 2 * HOUR_MS), 4243),
    ]);
    return { influx, db };
  },
);

/** Points in the log per event type, counted by InfluxDB. */
async function pointsPerType(fx: Fixture): Promise<Record<string, number>> {
  const [groups = []] = await queryGroups(fx.influx, [
    `SELECT count("actor") AS "n" FROM "long"."issue_event" GROUP BY "type"`,
  ]);
  return Object.fromEntries(groups.map((g) => [g.tags.type, Number(g.rows[0]?.n ?? 0)]));
}

/** A runner as another process would have it: its own client and writer. */
const runner = (fx: Fixture, write: PointWriter = createPointWriter(fx.db)) => ({
  influx: createInflux(fx.db),
  write,
  requiredHours: 3,
  now: () => NOW,
});

describe("the settle runner", () => {
  test("two runners at once append each system event exactly once", async ({ fx }) => {
    const [a, b] = await Promise.all([settleIssues(runner(fx)), settleIssues(runner(fx))]);
    // Both saw the same log and data, so both computed (and wrote) the same three events.
    expect(a.appended).toEqual(b.appended);
    expect(a.appended.map((e) => e.event.type)).toEqual(["transition", "auto_close", "regression"]);
    expect(await pointsPerType(fx)).toEqual({ transition: 3, auto_close: 1, regression: 1 });

    // More passes, in parallel and one after another, find nothing left to do.
    const again = await Promise.all([1, 2, 3].map(() => settleIssues(runner(fx))));
    expect(again.flatMap((r) => r.appended)).toEqual([]);
    expect(await pointsPerType(fx)).toEqual({ transition: 3, auto_close: 1, regression: 1 });

    const log = await readIssueEvents(fx.influx, F);
    expect(log.map((e) => e.event)).toEqual([
      released("2.0", T + 2 * HOUR_MS),
      {
        type: "transition",
        to: "verifying",
        actor: "system",
        at: T + 4 * HOUR_MS,
        reason: "firmware 2.0 is running in the field",
      },
      { type: "auto_close", exposureHours: 3, requiredHours: 3, actor: "system", at: T + 6 * HOUR_MS },
      { type: "regression", firmware: "2.1", actor: "system", at: T + 7 * HOUR_MS + 600_000 },
    ]);
    expect(replay(log.map((e) => e.event))).toMatchObject({ status: "regressed", regressions: 1 });
    expect(replay((await readIssueEvents(fx.influx, G)).map((e) => e.event)).status).toBe("fix_released");
  });

  test("runners that interleave their passes still write each event once", async ({ fx }) => {
    // A new fix for F (2.2); two SettleRunners poked over and over at once, one of them writing slowly.
    await createPointWriter(fx.db)([issueEventPoint(F, released("2.2", T + 8 * HOUR_MS), 777)]);
    await rollingUp(fx.influx, createPointWriter(fx.db))([active(p3, 9), active(p2, 9)]);
    const p3New = { id: p3.id, meta: meta("2.2") };
    await rollingUp(fx.influx, createPointWriter(fx.db))([active(p3New, 9), active(p3New, 10)]);
    const plain = createPointWriter(fx.db);
    const slow: PointWriter = async (points) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      await plain(points);
    };
    const runners = [
      new SettleRunner({ ...runner(fx), logger: silentLogger, intervalMs: 60_000 }),
      new SettleRunner({ ...runner(fx, slow), logger: silentLogger, intervalMs: 60_000 }),
    ];
    await Promise.all(runners.flatMap((r) => [r.poke(), r.poke(), r.poke()]));
    expect(await pointsPerType(fx)).toEqual({ transition: 5, auto_close: 1, regression: 1 });
    const last = (await readIssueEvents(fx.influx, F)).at(-1)?.event;
    expect(last).toEqual({
      type: "transition",
      to: "verifying",
      actor: "system",
      at: T + 10 * HOUR_MS,
      reason: "firmware 2.2 is running in the field",
    });
  });
});

/** Waits until check() holds, polling; the deadline only bounds a failing test. */
async function until(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("the ingest process", () => {
  base("settles an issue after the rollups of the data that settles it", async ({ onTestFinished }) => {
    const stack = await startTestStack("settle_ingest", { FIELDQ_VERIFY_DEVICE_HOURS: "1" });
    onTestFinished(() => stack.close());
    const hour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
    const fp = fingerprintId("printer/L9/HEAD_CRASH");
    const hello = (firmware: string) =>
      JSON.stringify({ kind: "printer", model: "L9", firmware, hardware: "h1", serial: `SN-${firmware}` });
    const events = async () => (await readIssueEvents(stack.influx, fp)).map((e) => e.event);

    const older = await stack.connect("printer-0901");
    await older.publishAsync(helloTopic("printer-0901"), hello("1.0"), { qos: 1, retain: true });
    await older.publishAsync(
      faultTopic("printer-0901"),
      JSON.stringify({ ts: hour - 4 * HOUR_MS, seq: 1, code: "HEAD_CRASH", severity: "error" }),
      { qos: 1 },
    );
    await stack.drained();
    await until(
      async () => (await queryGroups(stack.influx, [`SELECT * FROM "long"."fingerprint"`]))[0]?.length === 1,
    );
    // Released three hours ago; the fixed firmware then runs one device-hour, in a completed hour.
    await createPointWriter(stack.db)([issueEventPoint(fp, released("2.0", hour - 3 * HOUR_MS), 99)]);
    const fixed = await stack.connect("printer-0902");
    await fixed.publishAsync(helloTopic("printer-0902"), hello("2.0"), { qos: 1, retain: true });
    await fixed.publishAsync(
      telemetryTopic("printer-0902"),
      JSON.stringify({ ts: hour - 2 * HOUR_MS + 60_000, seq: 1, metrics: { temp_c: 40 } }),
      { qos: 1 },
    );
    await until(async () => (await events()).some((e) => e.type === "auto_close"));
    expect((await events()).slice(1)).toEqual([
      {
        type: "transition",
        to: "verifying",
        actor: "system",
        at: hour - HOUR_MS,
        reason: "firmware 2.0 is running in the field",
      },
      { type: "auto_close", exposureHours: 1, requiredHours: 1, actor: "system", at: hour - HOUR_MS + 1 },
    ]);

    // The fault recurs on the fix: the next rollup recompute regresses the issue.
    await fixed.publishAsync(
      faultTopic("printer-0902"),
      JSON.stringify({ ts: hour - 30 * 60_000, seq: 2, code: "HEAD_CRASH", severity: "critical" }),
      { qos: 1 },
    );
    await until(async () => (await events()).some((e) => e.type === "regression"));
    expect((await events()).at(-1)).toEqual({
      type: "regression",
      firmware: "2.0",
      actor: "system",
      at: hour - 30 * 60_000,
    });
  });
});
