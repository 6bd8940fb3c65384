import { expect, test } from "vitest";
import type { TelemetrySample } from "../../contract/messages.js";
import { historyOf, runBackfill } from "../../device-sim/backfill.js";
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
