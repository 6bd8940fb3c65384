import { expect, test } from "vitest";
import { runBackfill } from "../../device-sim/backfill.js";
import { runSim } from "../../device-sim/run-sim.js";
import { parseScenario } from "../../device-sim/scenario/parse.js";
import { planScenario } from "../../device-sim/scenario/plan.js";
import { silentLogger } from "../../observe/logger.js";
import { createInfluxDeviceServices } from "../../services/devices.js";
import { startTestStack, TEST_SECRET } from "../support/stack.js";

// Silence on the device's clock: one scenario played live (sped up, so its device clocks lag the broker's by
// up to its whole span) and as a backfill (every message received after the history's end) gives the same
// silent devices, right after it ends, and the same silent-after-update ones.

const HOUR = 3_600_000;

const SCENARIO = `
name: silent-clock
seed: 11
start: -12h
duration: 12h
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
`;

function plan() {
  const parsed = parseScenario(SCENARIO, "silent-clock.yaml");
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.text).join("\n"));
  return planScenario(parsed.scenario, { nowMs: Date.now() });
}

type Stack = Awaited<ReturnType<typeof startTestStack>>;

/** Every device's status and the silence report, judged now, from device_state through the API's services. */
async function judged(stack: Stack, window: { fromMs: number }) {
  await stack.drained();
  const services = createInfluxDeviceServices(stack.influx, { directory: { refreshEveryMs: 0 } });
  try {
    const { items } = await services.devices.listDevices({ limit: 100, offset: 0 });
    const now = Date.now();
    const report = await services.devices.silence({ fromMs: window.fromMs, toMs: now });
    const past = await services.devices.silence({ fromMs: window.fromMs, toMs: now - 2 * HOUR });
    return {
      statuses: Object.fromEntries(items.map((d) => [d.id, d.status])),
      silent: items.filter((d) => d.status === "silent").map((d) => d.id),
      afterUpdate: report.afterUpdate.devices.map((d) => [d.device, d.to]),
      past: { byModel: past.byModel, afterUpdate: past.afterUpdate.devices.map((d) => d.device) },
    };
  } finally {
    services.close();
  }
}

test("a scenario played live and as a backfill shows the same silent devices right after it ends", async () => {
  const backfilled = plan();
  const silentIds = backfilled.truth.problems
    .flatMap((p) => (p.type === "silent_after_update" ? p.devices : []))
    .sort();
  expect(silentIds).toHaveLength(2);

  const backfillStack = await startTestStack("silent-clock-backfill");
  const liveStack = await startTestStack("silent-clock-live");
  try {
    const stats = await runBackfill({
      brokerUrl: backfillStack.mqttUrl,
      secret: TEST_SECRET,
      plan: backfilled,
      seed: backfilled.truth.seed,
      logger: silentLogger,
      pool: 3,
    });
    expect(stats).toMatchObject({ devices: 6, flushed: 6, failed: 0, silent: 2 });
    const afterBackfill = await judged(backfillStack, { fromMs: backfilled.startMs });

    // 12 hours in about 7 s of wall time: scenario time starts 12 h behind the broker's and catches up.
    const live = plan();
    const sim = await runSim({
      brokerUrl: liveStack.mqttUrl,
      secret: TEST_SECRET,
      plan: live,
      seed: live.truth.seed,
      logger: silentLogger,
      speed: 6_000,
    });
    await sim.done;
    await sim.stop();
    const afterLive = await judged(liveStack, { fromMs: live.startMs });

    expect(afterBackfill.silent).toEqual(silentIds);
    expect(afterBackfill.afterUpdate).toEqual(silentIds.map((id) => [id, "8.10"]));
    expect(afterLive.silent).toEqual(afterBackfill.silent);
    expect(afterLive.statuses).toEqual(afterBackfill.statuses);
    expect(afterLive.afterUpdate).toEqual(afterBackfill.afterUpdate);
    // Two hours before the end, on the device clock too.
    expect(afterBackfill.past.afterUpdate).toEqual(silentIds);
    expect(afterLive.past).toEqual(afterBackfill.past);
  } finally {
    await Promise.all([backfillStack.close(), liveStack.close()]);
  }
}, 120_000);
