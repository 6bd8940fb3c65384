import { expect, test } from "vitest";
import type { TelemetrySample } from "../../contract/messages.js";
import { historyOf, runBackfill } from "../../device-sim/backfill.js";
import { parseScenario } from "../../device-sim/scenario/parse.js";
import { planScenario } from "../../device-sim/scenario/plan.js";
import { deviceOf, type FleetPlan, plainPlan } from "../../device-sim/schedule.js";
import { PLAIN_SCRIPT } from "../../device-sim/script.js";
import { silentLogger } from "../../observe/logger.js";
import { startTestStack, TEST_SECRET } from "../support/stack.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const SEED = 21;

/** The telemetry timestamps a device's history holds, in the order it sends them. */
function sampleTimes(plan: FleetPlan, index: number): number[] {
  const times: number[] = [];
  const history = historyOf(deviceOf(plan, index, SEED), plan, index, 10);
  for (let next = history.next(); !next.done; next = history.next()) {
    const { message } = next.value;
    if (message.channel === "telemetry")
      times.push(...[message.payload as TelemetrySample | TelemetrySample[]].flat().map((s) => s.ts));
  }
  return times;
}

test("a backfill goes through the real stack into InfluxDB at the devices' past timestamps, a pool's worth of connections at a time", async () => {
  const stack = await startTestStack("sim-backfill");
  try {
    const startMs = Date.now() - 3 * 24 * HOUR;
    const plan: FleetPlan = {
      ...plainPlan({ devices: 6, seed: SEED, startMs, endMs: startMs + 12 * HOUR, cadenceMs: 10 * MINUTE }),
      deviceOptions: { offlineSpellsPerWeek: 0 },
    };
    const silent = plan.devices[5];
    if (silent === undefined) throw new Error("fleet too small");
    silent.script = { ...PLAIN_SCRIPT, silentAfter: { firmware: silent.hello.firmware, delayMs: 4 * HOUR } };

    let most = 0;
    const watch = setInterval(() => {
      most = Math.max(most, stack.stack.broker.connectedDevices());
    }, 1);
    const stats = await runBackfill({
      brokerUrl: stack.mqttUrl,
      secret: TEST_SECRET,
      plan,
      seed: SEED,
      logger: silentLogger,
      pool: 2,
      batch: 10,
    }).finally(() => clearInterval(watch));

    expect(stats).toMatchObject({ devices: 6, flushed: 6, failed: 0, silent: 1, refused: 0 });
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(2);
    await stack.drained();

    for (const [index, device] of plan.devices.entries()) {
      const rows = await stack.query<{ time: Date }>(
        `SELECT "seq" FROM "raw"."telemetry" WHERE "device" = '${device.id}' ORDER BY time`,
      );
      const expected = sampleTimes(plan, index);
      expect(rows.map((r) => r.time.getTime())).toEqual(expected);
      expect(expected[0]).toBeGreaterThanOrEqual(startMs);
    }
    // Silent after four hours: two dozen ten-minute samples, then nothing but the will.
    expect(sampleTimes(plan, 5).length).toBeLessThan(26);
    const wills = await stack.query<{ device: string; state: string }>(
      `SELECT "state", "device" FROM "long"."presence" WHERE "source" = 'will'`,
    );
    expect(wills.map((w) => [w.device, w.state])).toEqual([[silent.id, "offline"]]);
  } finally {
    await stack.close();
  }
});

const SCENARIO = `
name: backfill-small
seed: 5
start: -2d
duration: 1d
cadence: 10m
fleet:
  - kind: modem
    model: FQ-Modem 5530
    count: 6
    firmware: "8.02"
rollouts:
  - model: FQ-Modem 5530
    firmware: "8.10"
    spread: 1h
    stages:
      - { at: 2h, percent: 100 }
problems:
  - id: silent-8.10
    type: silent_after_update
    model: FQ-Modem 5530
    firmware: "8.10"
    count: 2
    delay: 3h
  - id: garbage
    type: malformed
    count: 2
    per_hour: 2
`;

test("a backfilled scenario's malformed payloads are refused one by one and its silent devices leave wills", async () => {
  const parsed = parseScenario(SCENARIO, "backfill-small.yaml");
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.text).join("\n"));
  const plan = planScenario(parsed.scenario, { nowMs: Date.now() });
  const silentDevices = plan.truth.problems.flatMap((p) =>
    p.type === "silent_after_update" ? p.devices : [],
  );
  expect(silentDevices).toHaveLength(2);
  const stack = await startTestStack("sim-backfill-scenario");
  try {
    const stats = await runBackfill({
      brokerUrl: stack.mqttUrl,
      secret: TEST_SECRET,
      plan,
      seed: plan.truth.seed,
      logger: silentLogger,
      pool: 3,
    });
    expect(stats).toMatchObject({ devices: 6, flushed: 6, failed: 0, silent: 2 });
    expect(stats.published.raw).toBeGreaterThan(0);
    await stack.drained();

    const rejections = await stack.query<{ count: number }>(`SELECT count("bytes") FROM "long"."rejection"`);
    expect(rejections[0]?.count).toBe(stats.published.raw);
    const wills = await stack.query<{ device: string }>(
      `SELECT "state", "device" FROM "long"."presence" WHERE "source" = 'will'`,
    );
    expect(wills.map((w) => w.device).sort()).toEqual([...silentDevices].sort());
    // Every stored sample carries its device's time, inside the scenario's span, on the firmware it ran then.
    const span = await stack.query<{ time: Date; firmware: string }>(
      `SELECT "seq", "firmware" FROM "raw"."telemetry" ORDER BY time`,
    );
    expect(span.length).toBeGreaterThan(0);
    expect(span[0]?.time.getTime()).toBeGreaterThanOrEqual(plan.startMs);
    expect(span.at(-1)?.time.getTime()).toBeLessThan(plan.endMs);
    const firstUpdate = Math.min(...plan.devices.flatMap((d) => d.script.updates.map((u) => u.atMs)));
    expect(span.filter((p) => p.time.getTime() < firstUpdate).every((p) => p.firmware === "8.02")).toBe(true);
    expect(
      span.filter((p) => p.time.getTime() > firstUpdate + 2 * HOUR).some((p) => p.firmware === "8.10"),
    ).toBe(true);
  } finally {
    await stack.close();
  }
});
